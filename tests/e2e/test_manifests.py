"""manifests/ on a real API server, and the webhook running with nothing but its ServiceAccount's RBAC.

There is no kubelet here, so the Deployment and DaemonSet are checked with a server-side dry run;
the RBAC is applied for real and a `multinic-ipam serve` runs with a token of the webhook's
ServiceAccount (TokenRequest API), as it would in its pod. The guide's examples then go through it:
any permission the code needs and the manifests lack fails here (no watch: never ready; no create
of IP objects: pods refused; no delete: nothing released; the server log must show no 403).
"""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from devtools.controlplane import ControlPlane
from tests.fixtures.webhook import WebhookServer
from webhook import settings as webhook_settings
from webhook.cluster import objects
from webhook.leader.lease import LEASE_NAME
from webhook.operator import install

REPO = Path(__file__).resolve().parents[2]
MANIFESTS = REPO / "manifests"
EXAMPLES = MANIFESTS / "examples"
NAMESPACE = "multinic-ipam"
SERVICE_ACCOUNT = "multinic-ipam-webhook"
NODE_ACCOUNT = "multinic-ipam-node"
AS_WEBHOOK = f"system:serviceaccount:{NAMESPACE}:{SERVICE_ACCOUNT}"
RBAC_KINDS = ("Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")
GUIDE_PODS = ("samplepod", "static-ip", "samplepod-route", "samplepod-macvlan", "custom-routes-attach")
GUIDE_DEPLOYMENTS = ("static-workload", "custom-routes-attach")
Kubectl = Callable[..., subprocess.CompletedProcess[str]]
OPEN_SCHEMA = {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}


def _json(kubectl: Kubectl, *args: str) -> Any:
    return json.loads(kubectl(*args, "-o", "json").stdout)


def _build(path: str) -> list[dict[str, Any]]:
    done = subprocess.run(["kubectl", "kustomize", str(MANIFESTS / path)], capture_output=True, text=True,
                          check=True, timeout=60)
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def _for_server(docs: list[dict[str, Any]], version: tuple[int, int]) -> list[dict[str, Any]]:
    """The one concession to the 1.20 test server: PodDisruptionBudget is policy/v1 only from 1.21."""
    if version >= (1, 21):
        return docs
    return [{**doc, "apiVersion": "policy/v1beta1"} if doc["kind"] == "PodDisruptionBudget" else doc
            for doc in docs]


def _dry_run(kubectl: Kubectl, docs: list[dict[str, Any]]) -> str:
    """Server-side dry run of every document; webhook configurations are replaced, not merged,
    because the session's install wrote them with `url` and a merge would add `service` beside it."""
    configurations = [d for d in docs if d["kind"].endswith("WebhookConfiguration")]
    others = [d for d in docs if d not in configurations]
    out = kubectl("apply", "--dry-run=server", "-f", "-", input=yaml.safe_dump_all(others)).stdout
    for doc in configurations:
        kind, name = doc["kind"].lower(), doc["metadata"]["name"]
        exists = kubectl("get", kind, name, "--ignore-not-found", "-o", "name")
        verb = "replace" if exists.stdout.strip() else "create"
        out += kubectl(verb, "--dry-run=server", "-f", "-", input=yaml.safe_dump(doc)).stdout
    return out


@pytest.fixture(scope="module")
def server_version(k8s_api: Any) -> tuple[int, int]:
    return install.server_version(k8s_api)


@pytest.fixture(scope="module")
def rbac(kubectl: Kubectl) -> None:
    """The namespace, ServiceAccounts and RBAC of manifests/, applied for real."""
    docs = [d for d in _build(".") if d["kind"] in RBAC_KINDS]
    kubectl("apply", "-f", "-", input=yaml.safe_dump_all(docs))


def test_base_applies_with_a_server_side_dry_run(kubectl: Kubectl, rbac: None,
                                                 server_version: tuple[int, int]) -> None:
    docs = _for_server(_build("."), server_version)
    out = _dry_run(kubectl, docs)
    for doc in docs:
        name = doc["metadata"]["name"]
        assert any(f"/{name} " in line and "(server dry run)" in line for line in out.splitlines()), (
            f"{doc['kind']} {name} was not applied: {out}"
        )
    kinds = {d["kind"] for d in docs}
    assert {"Deployment", "DaemonSet", "Service", "PodDisruptionBudget", "CustomResourceDefinition",
            "ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"} <= kinds


@pytest.fixture
def cert_manager_crds(kubectl: Kubectl) -> Iterator[None]:
    """Stand-ins for cert-manager's Issuer and Certificate CRDs (cert-manager itself is not here)."""
    names = []
    for kind, plural in (("Issuer", "issuers"), ("Certificate", "certificates")):
        names.append(f"{plural}.cert-manager.io")
        kubectl("apply", "-f", "-", input=json.dumps({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": f"{plural}.cert-manager.io"},
            "spec": {"group": "cert-manager.io", "scope": "Namespaced",
                     "names": {"kind": kind, "plural": plural, "singular": kind.lower()},
                     "versions": [{"name": "v1", "served": True, "storage": True, "schema": OPEN_SCHEMA}]},
        }))
    kubectl("wait", "--for=condition=Established", "--timeout=60s", *(f"crd/{n}" for n in names))
    yield
    kubectl("delete", "crd", *names, "--ignore-not-found", check=False)


def test_cert_manager_variant_applies_with_a_server_side_dry_run(
    kubectl: Kubectl, rbac: None, cert_manager_crds: None, server_version: tuple[int, int]
) -> None:
    docs = _for_server(_build("cert-manager"), server_version)
    out = _dry_run(kubectl, docs)
    assert "certificate.cert-manager.io/multinic-ipam-webhook created (server dry run)" in out
    assert "issuer.cert-manager.io/multinic-ipam-selfsigned created (server dry run)" in out
    for kind in ("validatingwebhookconfiguration", "mutatingwebhookconfiguration"):
        assert any(line.startswith(f"{kind}.admissionregistration.k8s.io/multinic-ipam ")
                   and line.endswith("(server dry run)") for line in out.splitlines())


# -- the webhook with its ServiceAccount's RBAC only ----------------------------------------------------


def _service_account_kubeconfig(plane: ControlPlane, path: Path, account: str = SERVICE_ACCOUNT) -> Path:
    # TokenRequest, as the kubelet does for a pod (not through the `kubectl` fixture: it adds
    # --validate=false to every `create`, which `create token` does not accept).
    token = subprocess.run(
        [str(plane.kubectl_path), f"--kubeconfig={plane.kubeconfig}", "create", "token", account,
         "-n", NAMESPACE, "--duration=2h"], capture_output=True, text=True, timeout=60, check=True,
    ).stdout.strip()
    assert token.count(".") == 2, f"not a JWT: {token[:40]}"
    config = {
        "apiVersion": "v1", "kind": "Config", "current-context": account,
        "clusters": [{"name": "test",
                      "cluster": {"server": plane.server, "certificate-authority": str(plane.ca_file)}}],
        "users": [{"name": account, "user": {"token": token}}],
        "contexts": [{"name": account, "context": {"cluster": "test", "user": account}}],
    }
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


@pytest.fixture(scope="module")
def rbac_webhook(
    control_plane: ControlPlane, kubectl: Kubectl, rbac: None, webhook_server: WebhookServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[WebhookServer]:
    """`serve` with the ServiceAccount's token, installed; the session's admin server is paused so
    that every write (IP objects, releases, Subnet status, the Lease) is this server's."""
    workdir = tmp_path_factory.mktemp("rbac-webhook")
    kubeconfig = _service_account_kubeconfig(control_plane, workdir / "kubeconfig")
    server = WebhookServer(control_plane=control_plane, cert_dir=webhook_server.cert_dir, workdir=workdir,
                           workers=1, kubeconfig=kubeconfig)
    before = _guide_setup(kubectl)
    webhook_server.stop()
    # The Lease in the webhook's namespace, as the Deployment's fieldRef sets it; and a short grace
    # for reservations whose pod was deleted before the leader bound it (default 120 s).
    settings = {webhook_settings.NAMESPACE_ENV: NAMESPACE, webhook_settings.GRACE_ENV: "3"}
    previous = {key: os.environ.get(key) for key in settings}
    os.environ.update(settings)
    try:
        server.start()
        server.install()
        yield server
    finally:
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        try:
            # While this server still runs: it releases the addresses and admits the restore.
            _reset_guide_objects(kubectl, timeout=30, strict=False)
            _restore_guide_setup(kubectl, before)
        finally:
            server.stop()
            webhook_server.start()
            webhook_server.install()


GUIDE_SETUP = (("subnets", "macvlan", ""), ("subnets", "attachnet", ""),
               ("network-attachment-definitions", "macvlan", "default"),
               ("network-attachment-definitions", "attachnet", "default"))


def _guide_setup(kubectl: Kubectl) -> dict[tuple[str, str, str], dict[str, Any] | None]:
    """The guide's Subnets and NADs as they are before this module (other tests share them)."""
    found: dict[tuple[str, str, str], dict[str, Any] | None] = {}
    for kind, name, namespace in GUIDE_SETUP:
        where = ["-n", namespace] if namespace else []
        text = kubectl("get", kind, name, *where, "--ignore-not-found", "-o", "json").stdout.strip()
        found[(kind, name, namespace)] = json.loads(text) if text else None
    return found


def _restore_guide_setup(kubectl: Kubectl, before: dict[tuple[str, str, str], dict[str, Any] | None]) -> None:
    for (kind, name, namespace), obj in before.items():
        where = ["-n", namespace] if namespace else []
        if obj is None:
            if kind == "subnets":
                _release_subnet(kubectl, name)
            kubectl("delete", kind, name, *where, "--ignore-not-found", check=False)
            continue
        metadata = {"name": name, **({"namespace": namespace} if namespace else {})}
        body = {"apiVersion": obj["apiVersion"], "kind": obj["kind"], "metadata": metadata,
                "spec": obj["spec"]}
        kubectl("apply", "-f", "-", input=json.dumps(body), check=False)


def _apply(kubectl: Kubectl, example: str) -> subprocess.CompletedProcess[str]:
    return kubectl("apply", "-f", str(EXAMPLES / example))


def _annotations(kubectl: Kubectl, pod: str) -> dict[str, str]:
    return _json(kubectl, "get", "pod", pod, "-n", "default")["metadata"]["annotations"]


def _guide_ip_objects(kubectl: Kubectl) -> list[dict[str, Any]]:
    items = _json(kubectl, "get", "ips")["items"]
    ours = []
    for item in items:
        spec = item.get("spec") or {}
        pod = spec.get("podName") or spec.get("generateName") or ""
        if spec.get("namespace") == "default" and pod.startswith(GUIDE_PODS + GUIDE_DEPLOYMENTS):
            ours.append(item)
    return ours


def _wait(condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def _reset_guide_objects(kubectl: Kubectl, *, timeout: float = 60, strict: bool = True) -> None:
    """Delete the guide's pods and Deployments in default and wait until their addresses are released."""
    kubectl("delete", "deployment", *GUIDE_DEPLOYMENTS, "-n", "default", "--ignore-not-found", check=False)
    kubectl("delete", "pod", *GUIDE_PODS, "-n", "default", "--ignore-not-found", check=False)
    for app in ("static-workload", "nginx"):
        kubectl("delete", "pod", "-n", "default", "-l", f"app={app}", "--ignore-not-found", check=False)
    try:
        _wait(lambda: not _guide_ip_objects(kubectl), "the guide pods' addresses to be released", timeout)
    except AssertionError:
        if strict:
            raise


def _release_subnet(kubectl: Kubectl, subnet: str) -> None:
    """Leftover IP objects of earlier tests in this session would keep a Subnet's provider fixed."""
    kubectl("delete", "ips", "-l", f"{objects.LABEL_SUBNET}={subnet}", "--ignore-not-found", check=False)


def _in_guide_subnet(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    return ip in ipaddress.ip_network("172.17.0.0/16") and int(ip) > int(ipaddress.ip_address("172.17.0.10"))


def _workload_addresses(kubectl: Kubectl, app: str, key: str) -> list[str]:
    pods = _json(kubectl, "get", "pods", "-n", "default", "-l", f"app={app}")["items"]
    return [p["metadata"].get("annotations", {}).get(key, "") for p in pods]


def test_the_service_account_is_no_admin(kubectl: Kubectl, rbac: None) -> None:
    def can(verb: str, resource: str, *extra: str) -> str:
        done = kubectl("auth", "can-i", verb, resource, f"--as={AS_WEBHOOK}", *extra, check=False)
        return done.stdout.strip()

    assert can("create", "ips.kubeovn.io") == "yes"
    assert can("patch", "subnets.kubeovn.io", "--subresource=status") == "yes"
    assert can("update", "leases.coordination.k8s.io", "-n", NAMESPACE) == "yes"
    assert can("update", "leases.coordination.k8s.io", "-n", "kube-system") == "no"
    assert can("create", "pods") == "no"
    assert can("delete", "subnets.kubeovn.io") == "no"
    assert can("create", "customresourcedefinitions.apiextensions.k8s.io") == "no"


def test_macvlan_examples_through_the_rbac_only_webhook(
    kubectl: Kubectl, rbac_webhook: WebhookServer
) -> None:
    _reset_guide_objects(kubectl)
    _apply(kubectl, "nad-macvlan.yaml")
    _apply(kubectl, "subnet-macvlan.yaml")

    _apply(kubectl, "pod-samplepod.yaml")
    sample = _annotations(kubectl, "samplepod")
    assert _in_guide_subnet(sample["macvlan.default.kubernetes.io/ip_address"])
    assert sample["macvlan.default.kubernetes.io/logical_switch"] == "macvlan"
    assert sample["macvlan.default.kubernetes.io/gateway"] == "172.17.0.1"

    _apply(kubectl, "pod-static-ip.yaml")
    static = _annotations(kubectl, "static-ip")
    assert static["macvlan.default.kubernetes.io/ip_address"] == "172.17.0.100"
    assert static["macvlan.default.kubernetes.io/mac_address"].lower() == "00:00:00:53:6b:bb"

    _apply(kubectl, "deployment-static-workload.yaml")
    key = "macvlan.default.kubernetes.io/ip_address"
    _wait(lambda: len([a for a in _workload_addresses(kubectl, "static-workload", key) if a]) == 2,
          "both static-workload pods to get pool addresses")
    pool = _workload_addresses(kubectl, "static-workload", key)
    assert len(set(pool)) == 2 and set(pool) <= {"172.17.0.200", "172.17.0.201", "172.17.0.202"}

    for example, pod in (("pod-samplepod-route.yaml", "samplepod-route"),
                         ("pod-samplepod-macvlan.yaml", "samplepod-macvlan")):
        _apply(kubectl, example)
        assert _in_guide_subnet(_annotations(kubectl, pod)["macvlan.default.kubernetes.io/ip_address"])

    refused = kubectl("apply", "-f", str(EXAMPLES / "nad-empty-spec-refused.yaml"), check=False)
    assert refused.returncode != 0
    assert 'admission webhook "validate.multinic-ipam.io" denied the request' in refused.stderr


def test_attachnet_examples_through_the_rbac_only_webhook(
    kubectl: Kubectl, rbac_webhook: WebhookServer
) -> None:
    _reset_guide_objects(kubectl)
    _apply(kubectl, "nad-attachnet.yaml")
    _apply(kubectl, "subnet-attachnet.yaml")
    key = "attachnet.default.ovn.kubernetes.io/ip_address"

    _apply(kubectl, "pod-custom-routes-attach.yaml")
    routes = _annotations(kubectl, "custom-routes-attach")
    assert _in_guide_subnet(routes[key])
    assert json.loads(routes["attachnet.default.ovn.kubernetes.io/routes"])[1] == {"gw": "172.17.0.254"}

    _apply(kubectl, "deployment-custom-routes-attach.yaml")
    _wait(lambda: len({a for a in _workload_addresses(kubectl, "nginx", key) if a}) == 2,
          "both custom-routes-attach pods to get distinct addresses")

    _apply(kubectl, "pod-samplepod-attachnet.yaml")
    assert _in_guide_subnet(_annotations(kubectl, "samplepod")[key])


def test_provider_ovn_alternatives_through_the_rbac_only_webhook(
    kubectl: Kubectl, rbac_webhook: WebhookServer
) -> None:
    for subnet, nad, pod_example, key in (
        ("macvlan", "nad-macvlan.yaml", "pod-samplepod-logical-switch.yaml", "macvlan.default.kubernetes.io"),
        ("attachnet", "nad-attachnet.yaml", "pod-samplepod-attachnet-logical-switch.yaml",
         "attachnet.default.ovn.kubernetes.io"),
    ):
        _reset_guide_objects(kubectl)
        _release_subnet(kubectl, subnet)
        _apply(kubectl, nad)
        _apply(kubectl, f"subnet-{subnet}-provider-ovn.yaml")
        provider = kubectl("get", "subnet", subnet, "-o", "jsonpath={.spec.provider}").stdout
        assert provider == "ovn"
        _apply(kubectl, pod_example)
        annotations = _annotations(kubectl, "samplepod")
        assert _in_guide_subnet(annotations[f"{key}/ip_address"])
        assert annotations[f"{key}/logical_switch"] == subnet
    _reset_guide_objects(kubectl)
    for subnet in ("macvlan", "attachnet"):
        _release_subnet(kubectl, subnet)
        _apply(kubectl, f"subnet-{subnet}.yaml")


def _columns(kubectl: Kubectl, *args: str) -> dict[str, str]:
    header, row = kubectl("get", *args).stdout.splitlines()[:2]
    starts = [i for i, c in enumerate(header) if c != " " and (i == 0 or header[i - 1] == " ")]
    cells = [row[a:b].strip() for a, b in zip(starts, [*starts[1:], None], strict=True)]
    names = [header[a:b].strip() for a, b in zip(starts, [*starts[1:], None], strict=True)]
    return dict(zip(names, cells, strict=True))


def test_status_lease_printer_columns_and_release(kubectl: Kubectl, rbac_webhook: WebhookServer) -> None:
    _reset_guide_objects(kubectl)
    _apply(kubectl, "nad-macvlan.yaml")
    _apply(kubectl, "subnet-macvlan.yaml")
    _apply(kubectl, "pod-samplepod.yaml")
    address = _annotations(kubectl, "samplepod")["macvlan.default.kubernetes.io/ip_address"]
    name = objects.ip_object_name("macvlan", address)

    ip_row = _columns(kubectl, "ips", name)
    assert (ip_row["ADDRESS"], ip_row["POD"], ip_row["SUBNET"], ip_row["NAMESPACE"]) == (
        address, "samplepod", "macvlan", "default")

    held = len(_json(kubectl, "get", "ips", "-l", f"{objects.LABEL_SUBNET}=macvlan")["items"])
    _wait(lambda: _columns(kubectl, "subnets", "macvlan").get("V4USED") == str(held),
          f"Subnet macvlan's status to count {held} used (written by the leader)", timeout=30)
    subnet_row = _columns(kubectl, "subnets", "macvlan")
    assert subnet_row["PROVIDER"] == "macvlan.default" and subnet_row["CIDR"] == "172.17.0.0/16"
    assert int(subnet_row["V4AVAILABLE"]) == 65524 - held  # /16: 65534 usable, minus gateway and .2-.10

    holder = kubectl("get", "lease", LEASE_NAME, "-n", NAMESPACE,
                     "-o", "jsonpath={.spec.holderIdentity}").stdout
    assert holder, "the Lifecycle holds no Lease in the webhook's namespace"

    kubectl("delete", "pod", "samplepod", "-n", "default")
    _wait(lambda: not kubectl("get", "ips", name, "--ignore-not-found", "-o", "name").stdout.strip(),
          f"{address} to be released after its pod was deleted", timeout=30)


def test_no_request_of_the_webhook_was_forbidden(rbac_webhook: WebhookServer) -> None:
    log = rbac_webhook.log_path.read_text(errors="replace")
    assert "Pod default/samplepod CREATE: allowed" in log  # it is the log of the server that admitted
    forbidden = [line for line in log.splitlines() if "forbidden" in line.lower() or " 403" in line]
    assert forbidden == [], "\n".join(forbidden[:5])


def _samples(body: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    from prometheus_client.parser import text_string_to_metric_families

    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(body) for s in family.samples}


def test_metrics_count_what_went_through_the_webhook(kubectl: Kubectl, rbac_webhook: WebhookServer) -> None:
    _apply(kubectl, "nad-macvlan.yaml")
    _apply(kubectl, "subnet-macvlan.yaml")
    _apply(kubectl, "pod-samplepod.yaml")
    status, body = rbac_webhook.get("/metrics")
    assert status == 200
    samples = _samples(body)
    reviews = {"webhook": "mutate", "kind": "Pod", "operation": "CREATE", "result": "allowed"}
    assert samples[("multinic_ipam_admission_reviews_total", frozenset(reviews.items()))] >= 1
    assert samples[("multinic_ipam_allocation_seconds_count", frozenset({("outcome", "allocated")}))] >= 1
    usage = frozenset({("subnet", "macvlan"), ("provider", "macvlan.default"), ("family", "ipv4")})
    used = samples[("multinic_ipam_subnet_used_addresses", usage)]
    assert used >= 1
    assert samples[("multinic_ipam_subnet_available_addresses", usage)] == 65524 - used
    assert samples[("multinic_ipam_gc_passes_total", frozenset())] >= 1


def test_node_daemon_serves_the_plugin_with_its_service_account_only(
    control_plane: ControlPlane, kubectl: Kubectl, rbac_webhook: WebhookServer, tmp_path: Path
) -> None:
    _apply(kubectl, "nad-macvlan.yaml")
    _apply(kubectl, "subnet-macvlan.yaml")
    _apply(kubectl, "pod-samplepod.yaml")
    address = _annotations(kubectl, "samplepod")["macvlan.default.kubernetes.io/ip_address"]
    kubeconfig = _service_account_kubeconfig(control_plane, tmp_path / "node.kubeconfig", NODE_ACCOUNT)
    socket_path = tmp_path / "kube-ovn-daemon.sock"
    log_path = tmp_path / "node.log"
    with log_path.open("wb") as log:
        node = subprocess.Popen(
            [sys.executable, "-m", "webhook.cli", "node", "--kubeconfig", str(kubeconfig), "--node-name",
             "node-1", "--socket", str(socket_path)], stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait(socket_path.exists, "the node daemon's socket", timeout=30)
        ipam = {"type": "kube-ovn", "server_socket": str(socket_path), "provider": "macvlan.default"}
        conf = {"cniVersion": "0.3.0", "name": "macvlan", "type": "macvlan", "master": "eth0", "ipam": ipam}
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "CNI_COMMAND": "ADD",
               "CNI_CONTAINERID": "rbac", "CNI_NETNS": "/var/run/netns/rbac", "CNI_IFNAME": "net1",
               "CNI_PATH": "/usr/lib/cni",
               "CNI_ARGS": "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=samplepod"}
        plugin = Path(sys.executable).parent / "kube-ovn"
        result = subprocess.run([str(plugin)], input=json.dumps(conf), env=env, capture_output=True,
                                text=True, timeout=60, check=False)
        assert result.returncode == 0, result.stdout + result.stderr + log_path.read_text(errors="replace")
        assert [ip["address"] for ip in json.loads(result.stdout)["ips"]] == [f"{address}/16"]
    finally:
        os.killpg(node.pid, signal.SIGTERM)
        try:
            node.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(node.pid, signal.SIGKILL)
            node.wait(timeout=15)
    log = log_path.read_text(errors="replace")
    assert "forbidden" not in log.lower() and " 403" not in log, log[-2000:]
