"""manifests/: what `kubectl apply -k` deploys, checked against the code it deploys.

The end-to-end twin (tests/e2e/test_manifests.py) applies it to a real API server and runs the
webhook with the ServiceAccount's RBAC; these checks catch drift and policy slips without one.
"""

from __future__ import annotations

import filecmp
import importlib.util
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from webhook.cluster import informers
from webhook.operator import configurations

REPO = Path(__file__).resolve().parents[3]
MANIFESTS = REPO / "manifests"
NAMESPACE = "multinic-ipam"
SERVICE = "multinic-ipam-webhook"
TLS_SECRET = "multinic-ipam-webhook-tls"


@cache
def _build(path: str) -> tuple[dict[str, Any], ...]:
    done = subprocess.run(["kubectl", "kustomize", str(MANIFESTS / path)], capture_output=True, text=True,
                          check=True)
    return tuple(doc for doc in yaml.safe_load_all(done.stdout) if doc)


def _one(kind: str, name: str | None = None, path: str = ".") -> dict[str, Any]:
    found = [d for d in _build(path) if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def _generator() -> Any:
    script = REPO / "scripts" / "generate-manifests.py"
    spec = importlib.util.spec_from_file_location("generate_manifests", script)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# -- copies of what the code builds ------------------------------------------------------------------


@pytest.mark.parametrize("crd", sorted((REPO / "webhook" / "crds").glob("*.yaml")), ids=lambda p: p.name)
def test_crd_copies_are_identical_to_the_packaged_crds(crd: Path) -> None:
    copy = MANIFESTS / "base" / "crds" / crd.name
    assert copy.is_file() and filecmp.cmp(crd, copy, shallow=False), (
        f"{copy} differs from {crd}; run: python scripts/generate-manifests.py"
    )


def test_webhook_configurations_are_what_install_builds() -> None:
    text = (MANIFESTS / "base" / "webhook-configurations.yaml").read_text()
    on_disk = [d for d in yaml.safe_load_all(text) if d]
    assert on_disk == _generator().webhook_configurations(), (
        "manifests/base/webhook-configurations.yaml drifted from webhook/operator/configurations.py; "
        "run: python scripts/generate-manifests.py"
    )


def test_webhook_configurations_exclude_kube_system_and_our_namespace() -> None:
    for kind in ("ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"):
        hook = _one(kind)["webhooks"][0]
        expressions = hook["namespaceSelector"]["matchExpressions"]
        by_name = next(e for e in expressions if e["key"] == "kubernetes.io/metadata.name")
        assert by_name["operator"] == "NotIn" and set(by_name["values"]) == {"kube-system", NAMESPACE}
        ignore = {"key": configurations.IGNORE_LABEL, "operator": "NotIn",
                  "values": [configurations.IGNORE_VALUE]}
        assert ignore in expressions
        service = hook["clientConfig"]["service"]
        assert (service["namespace"], service["name"], service["port"]) == (NAMESPACE, SERVICE, 443)
        assert hook["failurePolicy"] == "Fail"
    namespace = _one("Namespace", NAMESPACE)
    assert namespace["metadata"]["labels"][configurations.IGNORE_LABEL] == configurations.IGNORE_VALUE


def test_kustomization_lists_every_file_of_base() -> None:
    listed = yaml.safe_load((MANIFESTS / "base" / "kustomization.yaml").read_text())["resources"]
    on_disk = sorted(str(p.relative_to(MANIFESTS / "base")) for p in (MANIFESTS / "base").rglob("*.yaml")
                     if p.name != "kustomization.yaml")
    assert sorted(listed) == on_disk


# -- RBAC ------------------------------------------------------------------------------------------------


def _rules(role_kind: str, name: str) -> list[dict[str, Any]]:
    return _one(role_kind, name)["rules"]


def _allowed(rules: list[dict[str, Any]], group: str, resource: str, verb: str) -> bool:
    return any(group in r["apiGroups"] and resource in r["resources"] and verb in r["verbs"] for r in rules)


def test_rbac_has_no_wildcards() -> None:
    for doc in _build("."):
        for rule in doc.get("rules", []) if doc["kind"] in ("ClusterRole", "Role") else []:
            for field in ("apiGroups", "resources", "verbs"):
                assert "*" not in rule[field], f"{doc['metadata']['name']} uses * in {field}"


def test_webhook_may_list_and_watch_everything_its_informers_cache() -> None:
    rules = _rules("ClusterRole", "multinic-ipam-webhook")
    for kind, resource in informers.RESOURCES.items():
        group = resource.api_version.rpartition("/")[0]
        for verb in ("list", "watch"):
            assert _allowed(rules, group, kind, verb), f"the webhook cannot {verb} {kind}"


def test_webhook_writes_only_ip_objects_subnet_status_and_its_lease() -> None:
    writes = {"create", "update", "patch", "delete", "deletecollection"}
    cluster = _rules("ClusterRole", "multinic-ipam-webhook")
    written = {
        (group, resource)
        for rule in cluster if writes & set(rule["verbs"])
        for group in rule["apiGroups"] for resource in rule["resources"]
    }
    assert written == {("kubeovn.io", "ips"), ("kubeovn.io", "subnets/status")}
    role = _one("Role", "multinic-ipam-webhook-leader-election")
    assert role["metadata"]["namespace"] == NAMESPACE
    assert _allowed(role["rules"], "coordination.k8s.io", "leases", "update")


def test_node_daemon_only_reads_pods() -> None:
    assert _rules("ClusterRole", "multinic-ipam-node") == [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}
    ]


# -- the webhook Deployment ----------------------------------------------------------------------------


def test_webhook_deployment_is_highly_available_and_locked_down() -> None:
    deployment = _one("Deployment", SERVICE)
    spec = deployment["spec"]
    assert spec["replicas"] == 2
    pod = spec["template"]["spec"]
    anti = pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0]
    assert anti["podAffinityTerm"]["labelSelector"]["matchLabels"] == spec["selector"]["matchLabels"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["serviceAccountName"] == "multinic-ipam-webhook"
    container = pod["containers"][0]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]
    assert container["args"][0] == "serve"
    env = {e["name"]: e for e in container["env"]}
    assert "--lease-namespace=$(POD_NAMESPACE)" in container["args"]
    lease_namespace = env["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"]
    assert lease_namespace == "metadata.namespace"  # the leader-election Role lives there
    secret_volume = next(v for v in pod["volumes"] if "secret" in v)
    assert secret_volume["secret"]["secretName"] == TLS_SECRET
    cert_dir = next(a.split("=", 1)[1] for a in container["args"] if a.startswith("--cert-dir="))
    mount = next(m for m in container["volumeMounts"] if m["name"] == secret_volume["name"])
    assert mount["mountPath"] == cert_dir and mount["readOnly"] is True


def test_image_user_matches_run_as_user() -> None:
    pod = _one("Deployment", SERVICE)["spec"]["template"]["spec"]
    dockerfile_users = [line.split()[1] for line in (REPO / "Dockerfile").read_text().splitlines()
                        if line.startswith("USER ")]
    assert dockerfile_users[-1].split(":")[0] == str(pod["securityContext"]["runAsUser"])


def test_service_and_budget_select_the_webhook_pods() -> None:
    deployment = _one("Deployment", SERVICE)
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    service = _one("Service", SERVICE)
    assert all(labels.get(k) == v for k, v in service["spec"]["selector"].items())
    port = service["spec"]["ports"][0]
    assert port["port"] == 443
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container_ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert port["targetPort"] in container_ports
    bind = next(a for a in container["args"] if a.startswith("--bind="))
    assert bind.endswith(f":{container_ports[port['targetPort']]}")
    budget = _one("PodDisruptionBudget", SERVICE)
    assert budget["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert budget["spec"]["minAvailable"] == 1


# -- the node DaemonSet ----------------------------------------------------------------------------------


def test_node_daemonset_installs_the_plugin_and_serves_the_guides_socket() -> None:
    pod = _one("DaemonSet", "multinic-ipam-node")["spec"]["template"]["spec"]
    host_paths = {v["name"]: v["hostPath"]["path"] for v in pod["volumes"] if "hostPath" in v}
    assert set(host_paths.values()) == {"/opt/cni/bin", "/run/openvswitch"}
    init = pod["initContainers"][0]
    assert init["args"][0] == "install-cni"
    cni_dir = next(a.split("=", 1)[1] for a in init["args"] if a.startswith("--cni-bin-dir="))
    assert any(host_paths[m["name"]] == "/opt/cni/bin" and m["mountPath"] == cni_dir
               for m in init["volumeMounts"] if m["name"] in host_paths)
    node = pod["containers"][0]
    assert node["args"][:1] == ["node"]
    assert "--node-name=$(NODE_NAME)" in node["args"]
    assert "--socket=/run/openvswitch/kube-ovn-daemon.sock" in node["args"]
    env = {e["name"]: e for e in node["env"]}
    assert env["NODE_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"
    assert any(m["mountPath"] == "/run/openvswitch" for m in node["volumeMounts"])
    for container in (init, node):
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]


# -- the cert-manager variant ------------------------------------------------------------------------------


def test_cert_manager_variant_issues_the_mounted_secret_and_injects_the_ca() -> None:
    certificate = _one("Certificate", path="cert-manager")
    assert certificate["spec"]["secretName"] == TLS_SECRET
    assert f"{SERVICE}.{NAMESPACE}.svc" in certificate["spec"]["dnsNames"]
    issuer = _one("Issuer", certificate["spec"]["issuerRef"]["name"], path="cert-manager")
    assert issuer["metadata"]["namespace"] == certificate["metadata"]["namespace"] == NAMESPACE
    wanted = f"{NAMESPACE}/{certificate['metadata']['name']}"
    for kind in ("ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"):
        annotations = _one(kind, path="cert-manager")["metadata"]["annotations"]
        assert annotations["cert-manager.io/inject-ca-from"] == wanted
    base_kinds = sorted(d["kind"] for d in _build("."))
    variant_kinds = sorted(d["kind"] for d in _build("cert-manager"))
    assert sorted([*base_kinds, "Certificate", "Issuer"]) == variant_kinds


@pytest.mark.parametrize(
    ("kind", "name", "containers"),
    [("Deployment", SERVICE, "containers"), ("DaemonSet", "multinic-ipam-node", "containers"),
     ("DaemonSet", "multinic-ipam-node", "initContainers")],
)
def test_container_args_are_accepted_by_the_cli(kind: str, name: str, containers: str) -> None:
    """The image's entrypoint is `multinic-ipam`: every container's args must parse as a command."""
    from webhook import cli

    for container in _one(kind, name)["spec"]["template"]["spec"][containers]:
        args = cli.build_parser().parse_args(container["args"])
        assert callable(args.func), container["name"]
