"""The control plane every end-to-end test runs on: it serves, kubectl works, the CRDs are there."""

from __future__ import annotations

import json
import re

import pytest
from kubernetes import client

from devtools.controlplane import ControlPlane, KubectlError
from tests.fixtures.controlplane import chosen_apiserver

# The guide's first provider Subnet, as the page shows it (its indentation restored).
GUIDE_SUBNET = """\
apiVersion: kubeovn.io/v1
kind: Subnet
metadata:
  name: macvlan
spec:
  protocol: IPv4
  provider: macvlan.default
  cidrBlock: 172.17.0.0/16
  gateway: 172.17.0.1
  excludeIps:
  - 172.17.0.0..172.17.0.10
"""

GUIDE_NAD = """\
apiVersion: "k8s.cni.cncf.io/v1"
kind: NetworkAttachmentDefinition
metadata:
  name: macvlan
  namespace: {namespace}
spec:
  config: '{{
      "cniVersion": "0.3.0",
      "type": "macvlan",
      "master": "eth0",
      "mode": "bridge",
      "ipam": {{
        "type": "kube-ovn",
        "server_socket": "/run/openvswitch/kube-ovn-daemon.sock",
        "provider": "macvlan.{namespace}"
      }}
    }}'
"""


@pytest.mark.both_apiservers
def test_api_server_is_the_chosen_version_and_ready(control_plane: ControlPlane, k8s_api: object) -> None:
    version = client.VersionApi(k8s_api).get_code()
    assert f"{version.major}.{version.minor}" == chosen_apiserver()
    assert control_plane.running()
    assert re.fullmatch(r"https://127\.0\.0\.1:\d+", control_plane.server)


def test_kubectl_reaches_the_server_as_admin(kubectl) -> None:
    namespaces = kubectl("get", "namespaces", "-o", "name").stdout.split()
    assert "namespace/kube-system" in namespaces
    assert kubectl("auth", "can-i", "*", "*").stdout.strip() == "yes"


def test_kubectl_failure_carries_stderr(kubectl) -> None:
    with pytest.raises(KubectlError) as failure:
        kubectl("get", "subnet", "no-such-subnet")
    assert "no-such-subnet" in str(failure.value)
    assert kubectl("get", "subnet", "no-such-subnet", check=False).returncode != 0


@pytest.mark.parametrize("resource", ["subnets", "ips", "ippools", "network-attachment-definitions"])
def test_crds_are_served(kubectl, resource: str) -> None:
    listed = json.loads(kubectl("get", resource, "-A", "-o", "json").stdout)
    assert listed["kind"] == "List"


def test_short_names_resolve(kubectl) -> None:
    resources = kubectl("api-resources", "--api-group=kubeovn.io", "-o", "wide").stdout
    assert re.search(r"^ips\s+ip\s+kubeovn\.io/v1\s+false\s+IP\b", resources, re.MULTILINE)
    nad = kubectl("api-resources", "--api-group=k8s.cni.cncf.io").stdout
    assert "net-attach-def" in nad


def test_guide_subnet_and_nad_apply_without_webhook(kubectl, namespace: str, no_webhooks: None) -> None:
    subnet = GUIDE_SUBNET.replace("name: macvlan", f"name: {namespace}")
    subnet = subnet.replace("172.17.", "172.30.")
    try:
        out = kubectl("apply", "-f", "-", input=subnet).stdout
        assert f"subnet.kubeovn.io/{namespace} created" in out
        table = kubectl("get", "subnet", namespace).stdout
        header, row = table.splitlines()[:2]
        assert header.split()[:4] == ["NAME", "PROVIDER", "CIDR", "PROTOCOL"]
        assert row.split()[:4] == [namespace, "macvlan.default", "172.30.0.0/16", "IPv4"]
        again = kubectl("apply", "-f", "-", input=subnet).stdout
        assert "unchanged" in again
    finally:
        kubectl("delete", "subnet", namespace, "--ignore-not-found")
    out = kubectl("apply", "-f", "-", input=GUIDE_NAD.format(namespace=namespace)).stdout
    assert "networkattachmentdefinition.k8s.cni.cncf.io/macvlan created" in out
    config = kubectl("get", "net-attach-def", "macvlan", "-n", namespace, "-o", "jsonpath={.spec.config}")
    assert json.loads(config.stdout)["ipam"]["provider"] == f"macvlan.{namespace}"


def test_subnet_protocol_outside_the_enum_is_refused_by_the_schema(kubectl, no_webhooks: None) -> None:
    bad = GUIDE_SUBNET.replace("protocol: IPv4", "protocol: IPv5").replace("name: macvlan", "name: bad-proto")
    result = kubectl("apply", "-f", "-", input=bad, check=False)
    assert result.returncode != 0
    assert "IPv5" in result.stderr and "IPv4" in result.stderr


def test_subnet_status_holds_ipv6_counts_beyond_int64(kubectl, no_webhooks: None) -> None:
    body = GUIDE_SUBNET.replace("name: macvlan", "name: v6-status")
    kubectl("apply", "-f", "-", input=body)
    try:
        huge = 2**64 - 3
        patch = json.dumps({"status": {"v6availableIPs": huge, "v6usingIPs": 0}})
        kubectl("patch", "subnet", "v6-status", "--subresource=status", "--type=merge", "-p", patch)
        status = json.loads(kubectl("get", "subnet", "v6-status", "-o", "json").stdout)["status"]
        assert float(status["v6availableIPs"]) == pytest.approx(float(huge))
    finally:
        kubectl("delete", "subnet", "v6-status", "--ignore-not-found")


def test_workload_controllers_create_pods(kubectl, namespace: str) -> None:
    deployment = f"""\
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web, namespace: {namespace}}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec: {{containers: [{{name: web, image: nginx}}]}}
"""
    kubectl("apply", "-f", "-", input=deployment)
    kubectl("wait", "--for=jsonpath={.status.replicas}=2", "deployment/web", "-n", namespace, "--timeout=60s")
    pods = kubectl("get", "pods", "-n", namespace, "-l", "app=web", "-o", "name").stdout.split()
    assert len(pods) == 2
