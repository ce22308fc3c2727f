"""The webhook-configuration builders and CRD manifests: pure, no cluster needed."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import celpy
import pytest

from webhook.operator import configurations

CA = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
URL = configurations.Target.parse(url="https://127.0.0.1:8443")
SERVICE = configurations.Target.parse(service="multinic-ipam/multinic-ipam-webhook")


def _hook(config: dict[str, Any]) -> dict[str, Any]:
    assert len(config["webhooks"]) == 1
    return config["webhooks"][0]


def _operations(config: dict[str, Any]) -> dict[tuple[str, str], set[str]]:
    """(group, resource) → operations, over every rule of the configuration."""
    found: dict[tuple[str, str], set[str]] = {}
    for rule in _hook(config)["rules"]:
        assert rule["apiVersions"] == ["*"]
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                found.setdefault((group, resource), set()).update(rule["operations"])
    return found


# -- Target ------------------------------------------------------------------------------------


def test_url_target_appends_paths() -> None:
    config = URL.client_config("/validate", CA)
    assert config == {"url": "https://127.0.0.1:8443/validate", "caBundle": base64.b64encode(CA).decode()}
    assert configurations.Target.parse(url="https://webhook.example:443/").url == "https://webhook.example:443"


def test_service_target_uses_port_443() -> None:
    config = SERVICE.client_config("/mutate", CA)
    assert config["service"] == {
        "namespace": "multinic-ipam", "name": "multinic-ipam-webhook", "path": "/mutate", "port": 443,
    }
    assert "url" not in config


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "exactly one of --url"),
        ({"url": "https://a:1", "service": "a/b"}, "exactly one of --url"),
        ({"url": "http://127.0.0.1:8443"}, "--url 'http://127.0.0.1:8443' is not accepted"),
        ({"url": "https://127.0.0.1:8443/validate"}, "no path"),
        ({"service": "multinic-ipam"}, "--service 'multinic-ipam' is not accepted; give NAMESPACE/NAME"),
        ({"service": "Bad_NS/webhook"}, "--service 'Bad_NS/webhook' is not accepted"),
    ],
)
def test_bad_targets_are_refused_with_the_value(kwargs: dict[str, str], message: str) -> None:
    with pytest.raises(configurations.InstallError) as failure:
        configurations.Target.parse(**kwargs)
    assert message in str(failure.value)


def test_excluded_namespaces() -> None:
    assert URL.excluded_namespaces() == ("kube-system",)
    assert SERVICE.excluded_namespaces() == ("kube-system", "multinic-ipam")
    assert configurations.Target.parse(service="kube-system/hook").excluded_namespaces() == ("kube-system",)


# -- selectors and conditions by server version --------------------------------------------------


def test_namespace_selector_on_1_20_uses_our_label_only() -> None:
    selector = configurations.namespace_selector(("kube-system", "multinic-ipam"), (1, 20))
    assert selector == {
        "matchExpressions": [{"key": "multinic-ipam.io/webhook", "operator": "NotIn", "values": ["ignore"]}]
    }


def test_namespace_selector_from_1_21_also_uses_the_name_label() -> None:
    selector = configurations.namespace_selector(("kube-system", "multinic-ipam"), (1, 21))
    expressions = selector["matchExpressions"]
    assert {"key": "kubernetes.io/metadata.name", "operator": "NotIn",
            "values": ["kube-system", "multinic-ipam"]} in expressions
    assert expressions[0]["key"] == "multinic-ipam.io/webhook"


@pytest.mark.parametrize("version", [(1, 20), (1, 27)])
def test_no_match_conditions_before_1_28(version: tuple[int, int]) -> None:
    for build in (configurations.validating_configuration, configurations.mutating_configuration):
        assert "matchConditions" not in _hook(build(target=URL, ca_bundle=CA, version=version))


@pytest.mark.parametrize("version", [(1, 28), (1, 31), (2, 0)])
def test_match_conditions_from_1_28(version: tuple[int, int]) -> None:
    for build in (configurations.validating_configuration, configurations.mutating_configuration):
        conditions = _hook(build(target=URL, ca_bundle=CA, version=version))["matchConditions"]
        assert [c["name"] for c in conditions] == ["multinic-ipam-annotations"]
        assert conditions[0]["expression"] == configurations.pod_match_expression()


@pytest.mark.parametrize("version", [(1, 28), (1, 31)])
def test_all_pods_drops_match_conditions_for_a_default_ovn_subnet(version: tuple[int, int]) -> None:
    for build in (configurations.validating_configuration, configurations.mutating_configuration):
        hook = _hook(build(target=URL, ca_bundle=CA, version=version, all_pods=True))
        assert "matchConditions" not in hook
        assert hook["namespaceSelector"] == _hook(build(target=URL, ca_bundle=CA, version=version))[
            "namespaceSelector"
        ]
    assert "--all-pods, so every pod" in configurations.describe_scope(version, URL, all_pods=True)


# -- the match expression, evaluated as CEL ----------------------------------------------------------

PROGRAM = celpy.Environment().program(celpy.Environment().compile(configurations.pod_match_expression()))


def _matches(resource: str, operation: str, obj: Any, old: Any = None) -> bool:
    activation = {
        "request": {"operation": operation, "resource": {"group": "", "resource": resource}},
        "object": obj,
        "oldObject": old,
    }
    return bool(PROGRAM.evaluate(celpy.json_to_cel(activation)))


def _pod(annotations: dict[str, str] | None) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": "p"}
    if annotations is not None:
        metadata["annotations"] = annotations
    return {"metadata": metadata, "spec": {}}


@pytest.mark.parametrize(
    "annotations",
    [
        {"k8s.v1.cni.cncf.io/networks": "default/macvlan"},
        {"v1.multus-cni.io/default-network": "default/macvlan"},
        {"macvlan.default.kubernetes.io/ip_address": "172.17.0.100"},
        {"ovn.kubernetes.io/mac_address": "00:00:00:53:6B:B6"},
        {"macvlan.default.kubernetes.io/ip_pool": "172.17.0.200"},
        {"macvlan.default.kubernetes.io/logical_switch": "macvlan"},
        {"attachnet.default.ovn.kubernetes.io/routes": "[]"},
        {"multinic-ipam.io/reservation": "abc"},
        {"app": "x", "macvlan.default.kubernetes.io/allocated": "true"},
    ],
)
def test_pods_with_our_annotations_reach_the_webhooks(annotations: dict[str, str]) -> None:
    assert _matches("pods", "CREATE", _pod(annotations))


@pytest.mark.parametrize(
    "annotations",
    [None, {}, {"app": "web"}, {"example.com/ip_address": "1.2.3.4"}, {"kubernetes.io/ip_address_x": "1"}],
)
def test_unrelated_pods_skip_the_webhooks(annotations: dict[str, str] | None) -> None:
    assert not _matches("pods", "CREATE", _pod(annotations))


def test_removing_our_annotations_on_update_is_still_reviewed() -> None:
    old = _pod({"macvlan.default.kubernetes.io/ip_address": "172.17.0.100"})
    assert _matches("pods", "UPDATE", _pod({}), old)
    assert not _matches("pods", "UPDATE", _pod({"app": "x"}), _pod({"app": "y"}))


@pytest.mark.parametrize("resource", ["deployments", "replicasets", "statefulsets", "daemonsets", "jobs"])
def test_workloads_match_by_template_annotations(resource: str) -> None:
    ours = {"spec": {"template": {"metadata": {"annotations": {"k8s.v1.cni.cncf.io/networks": "macvlan"}}}}}
    plain = {"spec": {"template": {"metadata": {"labels": {"app": "x"}}}}}
    assert _matches(resource, "CREATE", ours)
    assert not _matches(resource, "CREATE", plain)
    assert not _matches(resource, "UPDATE", {"spec": {}}, plain)


def test_cronjobs_match_by_job_template_annotations() -> None:
    ours = {"spec": {"jobTemplate": {"spec": {"template": {"metadata": {
        "annotations": {"macvlan.default.kubernetes.io/ip_pool": "172.17.0.200"}}}}}}}
    assert _matches("cronjobs", "CREATE", ours)
    assert not _matches("cronjobs", "CREATE", {"spec": {"jobTemplate": {"spec": {"template": {}}}}})


@pytest.mark.parametrize(("resource", "operation"), [("subnets", "DELETE"), ("ippools", "CREATE"),
                                                     ("network-attachment-definitions", "UPDATE")])
def test_other_kinds_always_match(resource: str, operation: str) -> None:
    obj = None if operation == "DELETE" else {"spec": {}}
    assert _matches(resource, operation, obj, {"spec": {}})


# -- the configurations --------------------------------------------------------------------------


def test_validating_configuration() -> None:
    config = configurations.validating_configuration(target=SERVICE, ca_bundle=CA, version=(1, 20))
    assert config["kind"] == "ValidatingWebhookConfiguration"
    assert config["metadata"]["name"] == "multinic-ipam"
    hook = _hook(config)
    assert hook["name"] == "validate.multinic-ipam.io"
    assert hook["clientConfig"]["service"]["path"] == "/validate"
    assert base64.b64decode(hook["clientConfig"]["caBundle"]) == CA
    assert hook["admissionReviewVersions"] == ["v1"]
    assert (hook["failurePolicy"], hook["sideEffects"]) == ("Fail", "None")
    assert 1 <= hook["timeoutSeconds"] <= 30
    assert "reinvocationPolicy" not in hook
    create_update, with_delete = {"CREATE", "UPDATE"}, {"CREATE", "UPDATE", "DELETE"}
    assert _operations(config) == {
        ("k8s.cni.cncf.io", "network-attachment-definitions"): create_update,
        ("kubeovn.io", "subnets"): with_delete,
        ("kubeovn.io", "ippools"): with_delete,
        ("", "pods"): create_update,
        ("apps", "deployments"): create_update,
        ("apps", "replicasets"): create_update,
        ("apps", "statefulsets"): create_update,
        ("apps", "daemonsets"): create_update,
        ("batch", "jobs"): create_update,
        ("batch", "cronjobs"): create_update,
    }


def test_mutating_configuration() -> None:
    config = configurations.mutating_configuration(target=URL, ca_bundle=CA, version=(1, 20))
    assert config["kind"] == "MutatingWebhookConfiguration"
    assert config["metadata"]["name"] == "multinic-ipam"
    hook = _hook(config)
    assert hook["name"] == "mutate.multinic-ipam.io"
    assert hook["clientConfig"]["url"] == "https://127.0.0.1:8443/mutate"
    assert (hook["failurePolicy"], hook["sideEffects"], hook["reinvocationPolicy"]) == (
        "Fail", "NoneOnDryRun", "Never",
    )
    assert hook["admissionReviewVersions"] == ["v1"]
    assert _operations(config) == {("", "pods"): {"CREATE"}}


def test_configurations_share_the_namespace_exclusions() -> None:
    for build in (configurations.validating_configuration, configurations.mutating_configuration):
        hook = _hook(build(target=SERVICE, ca_bundle=CA, version=(1, 29)))
        values = {e["key"]: e["values"] for e in hook["namespaceSelector"]["matchExpressions"]}
        assert values == {
            "multinic-ipam.io/webhook": ["ignore"],
            "kubernetes.io/metadata.name": ["kube-system", "multinic-ipam"],
        }


# -- helpers -------------------------------------------------------------------------------------


def test_read_ca_bundle(tmp_path: Path) -> None:
    with pytest.raises(configurations.InstallError, match=r"cannot read .*ca\.crt.*--cert-dir"):
        configurations.read_ca_bundle(tmp_path)
    (tmp_path / "ca.crt").write_text("not a certificate")
    with pytest.raises(configurations.InstallError, match="is not a PEM certificate"):
        configurations.read_ca_bundle(tmp_path)
    (tmp_path / "ca.crt").write_bytes(CA)
    assert configurations.read_ca_bundle(tmp_path) == CA


def test_crds_are_shipped_with_kube_ovn_names() -> None:
    crds = {crd["metadata"]["name"]: crd for crd in configurations.load_crds()}
    assert set(crds) == {
        "subnets.kubeovn.io", "ips.kubeovn.io", "ippools.kubeovn.io",
        "network-attachment-definitions.k8s.cni.cncf.io",
    }
    for name in ("subnets.kubeovn.io", "ips.kubeovn.io", "ippools.kubeovn.io"):
        assert crds[name]["spec"]["scope"] == "Cluster"
        assert crds[name]["apiVersion"] == "apiextensions.k8s.io/v1"
    assert crds["network-attachment-definitions.k8s.cni.cncf.io"]["spec"]["scope"] == "Namespaced"
    assert crds["ips.kubeovn.io"]["spec"]["names"]["shortNames"] == ["ip"]
    subnet = crds["subnets.kubeovn.io"]["spec"]["versions"][0]
    spec_schema = subnet["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert spec_schema["properties"]["protocol"]["enum"] == ["IPv4", "IPv6", "Dual"]
    assert spec_schema["x-kubernetes-preserve-unknown-fields"] is True
    assert [c["name"] for c in subnet["additionalPrinterColumns"]] == [
        "Provider", "CIDR", "Protocol", "V4Used", "V4Available", "V6Used", "V6Available",
    ]
    assert subnet["subresources"] == {"status": {}}
    status = subnet["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]
    assert status["v6availableIPs"]["type"] == "number"


def test_describe_scope_tells_what_reaches_the_webhooks() -> None:
    old = configurations.describe_scope((1, 20), SERVICE)
    assert old.startswith("API server 1.20: no matchConditions before 1.28")
    assert "kube-system, multinic-ipam" in old
    new = configurations.describe_scope((1, 30), URL)
    assert "matchConditions" in new and new.endswith("kube-system never do")


# -- the command, without a cluster ---------------------------------------------------------------


def _cert_dir(tmp_path: Path) -> Path:
    (tmp_path / "ca.crt").write_bytes(CA)
    return tmp_path


def test_command_refuses_a_missing_kubeconfig(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from webhook import cli

    code = cli.main(["install", "--kubeconfig", str(tmp_path / "nope"), "--url", "https://127.0.0.1:9443",
                     "--cert-dir", str(_cert_dir(tmp_path))])
    assert code == 2
    assert f"--kubeconfig {tmp_path / 'nope'} does not exist" in capsys.readouterr().err


def test_command_names_an_unreachable_api_server(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from webhook import cli

    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "clusters: [{name: c, cluster: {server: 'https://127.0.0.1:1', insecure-skip-tls-verify: true}}]\n"
        "users: [{name: u, user: {token: t}}]\ncontexts: [{name: c, context: {cluster: c, user: u}}]\n"
    )
    code = cli.main(["install", "--kubeconfig", str(kubeconfig), "--service", "ns/hook",
                     "--cert-dir", str(_cert_dir(tmp_path))])
    assert code == 1
    assert "cannot reach the API server at https://127.0.0.1:1" in capsys.readouterr().err
