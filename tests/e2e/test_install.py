"""`multinic-ipam install` against the real API server: idempotent, and the configurations it
writes are the ones the API server enforces (a webhook that is down refuses what it guards)."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

import pytest

from certs import generate
from devtools.controlplane import ControlPlane, free_port
from tests.fixtures.controlplane import WEBHOOK_CONFIGURATION_KINDS
from webhook.operator import configurations, install

REPO = Path(__file__).resolve().parents[2]
SERVICE_NAMESPACE = "multinic-ipam-e2e"
GUIDE_NAD = """\
apiVersion: "k8s.cni.cncf.io/v1"
kind: NetworkAttachmentDefinition
metadata:
  name: macvlan
  namespace: {namespace}
spec:
  config: '{{"cniVersion": "0.3.0", "type": "macvlan", "master": "eth0", "mode": "bridge",
    "ipam": {{"type": "kube-ovn", "server_socket": "/run/openvswitch/kube-ovn-daemon.sock",
    "provider": "macvlan.{namespace}"}}}}'
"""
SUBNET = """\
apiVersion: kubeovn.io/v1
kind: Subnet
metadata:
  name: install-e2e
spec:
  protocol: IPv4
  provider: macvlan.default
  cidrBlock: 172.31.0.0/16
"""


def pod(namespace: str) -> str:
    return json.dumps({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "samplepod", "namespace": namespace,
                     "annotations": {"k8s.v1.cni.cncf.io/networks": "default/macvlan"}},
        "spec": {"containers": [{"name": "c", "image": "alpine"}]},
    })


def run_install(plane: ControlPlane, *args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "webhook.cli", "install", "--kubeconfig", str(plane.kubeconfig), *args]
    return subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.both_apiservers
def test_install_twice_changes_nothing_the_second_time(
    control_plane: ControlPlane, kubectl, k8s_api, no_webhooks: None, tmp_path: Path
) -> None:
    version = install.server_version(k8s_api)
    paths = generate.write_certificates(tmp_path, [f"hook.{SERVICE_NAMESPACE}.svc"])
    args = ("--service", f"{SERVICE_NAMESPACE}/hook", "--cert-dir", str(tmp_path))

    first = run_install(control_plane, *args)
    assert first.returncode == 0, first.stderr
    lines = first.stdout.splitlines()
    assert "ValidatingWebhookConfiguration multinic-ipam created" in lines
    assert "MutatingWebhookConfiguration multinic-ipam created" in lines
    assert "CustomResourceDefinition subnets.kubeovn.io unchanged" in lines  # the session applied it

    second = run_install(control_plane, *args)
    assert second.returncode == 0, second.stderr
    header, *changes, summary = second.stdout.splitlines()
    if version < (1, 28):
        assert header.startswith(f"API server 1.{version[1]}: no matchConditions before 1.28")
    else:
        assert header.startswith(f"API server 1.{version[1]}: only pods and workloads carrying Multus")
    assert changes and all(line.endswith(" unchanged") for line in changes)
    assert summary == "nothing to change: already installed"

    ca = paths.ca_cert.read_bytes()
    for kind, name, path, side_effects in (
        ("validatingwebhookconfiguration", "validate.multinic-ipam.io", "/validate", "None"),
        ("mutatingwebhookconfiguration", "mutate.multinic-ipam.io", "/mutate", "NoneOnDryRun"),
    ):
        config = json.loads(kubectl("get", kind, "multinic-ipam", "-o", "json").stdout)
        (hook,) = config["webhooks"]
        assert hook["name"] == name
        assert base64.b64decode(hook["clientConfig"]["caBundle"]) == ca
        assert hook["clientConfig"]["service"] == {
            "namespace": SERVICE_NAMESPACE, "name": "hook", "path": path, "port": 443,
        }
        assert hook["sideEffects"] == side_effects
        assert hook["failurePolicy"] == "Fail"
        # The server keeps exactly the CEL it was given (it compiled it, or install would have failed).
        assert hook.get("matchConditions") == configurations.match_conditions(version)
    for namespace in ("kube-system", SERVICE_NAMESPACE):
        labels = kubectl("get", "namespace", namespace, "-o", "jsonpath={.metadata.labels}").stdout
        assert json.loads(labels)["multinic-ipam.io/webhook"] == "ignore"


@pytest.mark.both_apiservers
def test_installed_webhooks_guard_what_they_should_and_skip_excluded_namespaces(
    control_plane: ControlPlane, kubectl, no_webhooks: None, namespace: str, tmp_path: Path
) -> None:
    # Nothing listens on this port: with failurePolicy Fail every guarded request is refused.
    generate.write_certificates(tmp_path, ["127.0.0.1"])
    down = f"https://127.0.0.1:{free_port()}"
    result = run_install(control_plane, "--url", down, "--cert-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr

    refused = kubectl("apply", "-f", "-", input=GUIDE_NAD.format(namespace=namespace), check=False)
    assert refused.returncode != 0
    assert 'failed calling webhook "validate.multinic-ipam.io"' in refused.stderr

    refused = kubectl("apply", "-f", "-", input=SUBNET, check=False)
    assert 'failed calling webhook "validate.multinic-ipam.io"' in refused.stderr

    refused = kubectl("create", "--dry-run=server", "-f", "-", input=pod(namespace), check=False)
    assert 'failed calling webhook "mutate.multinic-ipam.io"' in refused.stderr

    allowed = kubectl("create", "--dry-run=server", "-o", "name", "-f", "-", input=pod("kube-system"))
    assert allowed.stdout.strip() == "pod/samplepod"
    # Objects no rule covers are never sent to the webhook.
    kubectl("create", "configmap", "plain", "-n", namespace)


def test_a_new_ca_updates_the_configurations(
    control_plane: ControlPlane, kubectl, no_webhooks: None, tmp_path: Path
) -> None:
    url = f"https://127.0.0.1:{free_port()}"
    generate.write_certificates(tmp_path / "one", ["127.0.0.1"])
    generate.write_certificates(tmp_path / "two", ["127.0.0.1"])
    assert run_install(control_plane, "--url", url, "--cert-dir", str(tmp_path / "one")).returncode == 0
    again = run_install(control_plane, "--url", url, "--cert-dir", str(tmp_path / "two"))
    assert "ValidatingWebhookConfiguration multinic-ipam updated" in again.stdout.splitlines()
    assert "MutatingWebhookConfiguration multinic-ipam updated" in again.stdout.splitlines()
    jsonpath = "jsonpath={.webhooks[0].clientConfig.caBundle}"
    bundle = kubectl("get", "mutatingwebhookconfiguration", "multinic-ipam", "-o", jsonpath).stdout
    assert base64.b64decode(bundle) == (tmp_path / "two" / "ca.crt").read_bytes()


def test_install_applies_server_side_and_a_second_run_writes_nothing(
    control_plane: ControlPlane, kubectl, no_webhooks: None, tmp_path: Path
) -> None:
    generate.write_certificates(tmp_path, ["127.0.0.1"])
    args = ("--url", f"https://127.0.0.1:{free_port()}", "--cert-dir", str(tmp_path))
    assert run_install(control_plane, *args).returncode == 0

    def live(kind: str, name: str) -> dict:
        return json.loads(kubectl("get", kind, name, "--show-managed-fields", "-o", "json").stdout)

    objects = [(kind, "multinic-ipam") for kind in WEBHOOK_CONFIGURATION_KINDS]
    objects += [("customresourcedefinition", "subnets.kubeovn.io"), ("namespace", "kube-system")]
    before = {obj: live(*obj) for obj in objects}
    again = run_install(control_plane, *args)
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines()[-1] == "nothing to change: already installed"
    for obj, first in before.items():
        after = live(*obj)
        assert after["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"], obj
        managers = {(f["manager"], f["operation"]) for f in after["metadata"]["managedFields"]}
        assert ("multinic-ipam", "Apply") in managers, obj


def test_bad_input_is_refused_and_changes_nothing(
    control_plane: ControlPlane, kubectl, no_webhooks: None, tmp_path: Path
) -> None:
    result = run_install(control_plane, "--url", "http://127.0.0.1:1", "--cert-dir", str(tmp_path))
    assert result.returncode == 2
    assert "--url 'http://127.0.0.1:1' is not accepted" in result.stderr
    result = run_install(control_plane, "--service", "ns/hook", "--cert-dir", str(tmp_path / "none"))
    assert result.returncode == 2
    assert "ca.crt" in result.stderr and "--cert-dir" in result.stderr
    for kind in WEBHOOK_CONFIGURATION_KINDS:
        assert kubectl("get", kind, "multinic-ipam", check=False).returncode != 0
