"""Promises of issue 4's body that its "Done when" list does not name, end to end through kubectl
with the session's webhook server: a NAD attached twice, user-written output annotations,
namespace-bound Subnets, dual stack, an exhausted `ip_pool`, and release of finished pods."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.ipam_helpers import (
    Kubectl,
    annotations,
    eventually,
    get_json,
    nad_yaml,
    subnet_ips,
)
from tests.fixtures.webhook import WebhookServer
from webhook.cluster import objects

NETWORKS = "k8s.v1.cni.cncf.io/networks"


def _pod(name: str, namespace: str, notes: dict[str, str], restart: str = "Always") -> str:
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "annotations": notes},
            "spec": {
                "restartPolicy": restart,
                "containers": [{"name": "c", "image": "docker.io/library/alpine:edge"}],
            },
        }
    )


def _subnet(name: str, cidr: str, provider: str, **spec: Any) -> str:
    return json.dumps(
        {
            "apiVersion": "kubeovn.io/v1",
            "kind": "Subnet",
            "metadata": {"name": name},
            "spec": {"cidrBlock": cidr, "provider": provider, **spec},
        }
    )


def _create(kubectl: Kubectl, manifest: str) -> None:
    """`kubectl apply`, admitted at the first try: a NAD or Subnet applied a moment before, which the
    webhook's caches may not have yet, is read live."""
    kubectl("apply", "-f", "-", input=manifest)


class Net:
    """NAD `net` in the test namespace (provider `net.<ns>`) and Subnet `x-<ns>` on 10.<n>.0.0/24."""

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self.provider = f"net.{namespace}"
        self.subnet = f"x-{namespace}"
        self.octet = 100 + secrets.randbelow(100)  # other sessions' tests use fixed 10.2xx blocks
        self.prefix = f"10.{self.octet}.0"
        self.subnets = [self.subnet]

    def key(self, field: str, interface: str = "") -> str:
        provider = f"{self.provider}.{interface}" if interface else self.provider
        return f"{provider}.kubernetes.io/{field}"


@pytest.fixture
def net(webhook_server: WebhookServer, kubectl: Kubectl, namespace: str) -> Iterator[Net]:
    net = Net(namespace)
    kubectl("apply", "-f", "-", input=nad_yaml("net", namespace, net.provider))
    _create(kubectl, _subnet(net.subnet, f"{net.prefix}.0/24", net.provider))
    try:
        yield net
    finally:
        kubectl("delete", "pods", "--all", "-n", namespace, "--grace-period=0", "--force", check=False)
        for name in net.subnets:
            kubectl("delete", "ips.kubeovn.io", "-l", f"{objects.LABEL_SUBNET}={name}", check=False)
            kubectl("delete", "subnets.kubeovn.io", name, "--ignore-not-found", check=False)


def test_a_nad_attached_twice_gets_two_addresses_keyed_by_interface(net: Net, kubectl: Kubectl) -> None:
    _create(kubectl, _pod("twice", net.namespace, {NETWORKS: "net@a,net@b"}))
    notes = annotations(kubectl, "twice", net.namespace)
    first, second = notes[net.key("ip_address", "a")], notes[net.key("ip_address", "b")]
    assert first != second and first.startswith(f"{net.prefix}.") and second.startswith(f"{net.prefix}.")
    assert net.key("ip_address") not in notes
    held = {ip["spec"]["ipAddress"]: ip["spec"]["interface"] for ip in subnet_ips(kubectl, net.subnet)}
    assert held == {first: "a", second: "b"}


def test_output_annotations_a_user_wrote_are_overwritten(net: Net, kubectl: Kubectl) -> None:
    forged = {net.key("cidr"): "192.0.2.0/24", net.key("gateway"): "192.0.2.1", net.key("allocated"): "false"}
    _create(kubectl, _pod("forged", net.namespace, {NETWORKS: "net", **forged}))
    notes = annotations(kubectl, "forged", net.namespace)
    assert notes[net.key("cidr")] == f"{net.prefix}.0/24"
    assert notes[net.key("gateway")] == f"{net.prefix}.1"
    assert notes[net.key("allocated")] == "true"
    assert notes[net.key("ip_address")].startswith(f"{net.prefix}.")


def test_a_subnet_bound_to_a_namespace_serves_that_namespace(net: Net, kubectl: Kubectl) -> None:
    bound = f"{net.subnet}-bound"
    net.subnets.append(bound)
    _create(kubectl, _subnet(bound, f"10.{net.octet}.1.0/24", net.provider, namespaces=[net.namespace]))
    other = f"{net.namespace[:40]}-o"
    kubectl("create", "namespace", other)
    try:
        _create(kubectl, _pod("inside", net.namespace, {NETWORKS: "net"}))
        _create(kubectl, _pod("outside", other, {NETWORKS: f"{net.namespace}/net"}))
        inside = annotations(kubectl, "inside", net.namespace)
        outside = annotations(kubectl, "outside", other)
        assert inside[net.key("logical_switch")] == bound
        assert inside[net.key("ip_address")].startswith(f"10.{net.octet}.1.")
        assert outside[net.key("logical_switch")] == net.subnet
        assert outside[net.key("ip_address")].startswith(f"{net.prefix}.")
    finally:
        kubectl("delete", "pods", "--all", "-n", other, "--grace-period=0", "--force", check=False)
        kubectl("delete", "namespace", other, "--wait=false", check=False)


def test_dual_stack_takes_one_address_of_each_family(net: Net, kubectl: Kubectl) -> None:
    dual = f"{net.subnet}-dual"
    net.subnets.append(dual)
    kubectl("apply", "-f", "-", input=nad_yaml("dual", net.namespace, f"dual.{net.namespace}"))
    cidr = f"10.{net.octet}.2.0/24,fd00:{net.octet}::/120"
    _create(kubectl, _subnet(dual, cidr, f"dual.{net.namespace}", protocol="Dual"))
    _create(kubectl, _pod("both", net.namespace, {NETWORKS: "dual"}))
    key = f"dual.{net.namespace}.kubernetes.io/ip_address"
    v4, v6 = annotations(kubectl, "both", net.namespace)[key].split(",")
    assert v4.startswith(f"10.{net.octet}.2.") and v6.startswith(f"fd00:{net.octet}::")
    assert sorted(ip["spec"]["ipAddress"] for ip in subnet_ips(kubectl, dual)) == sorted([v4, v6])


def test_an_exhausted_ip_pool_is_refused_and_leaks_nothing(net: Net, kubectl: Kubectl) -> None:
    pool = {NETWORKS: "net", net.key("ip_pool"): f"{net.prefix}.200"}
    _create(kubectl, _pod("first", net.namespace, pool))
    assert annotations(kubectl, "first", net.namespace)[net.key("ip_address")] == f"{net.prefix}.200"
    refused = kubectl("apply", "-f", "-", input=_pod("second", net.namespace, pool), check=False)
    assert refused.returncode != 0
    assert 'admission webhook "mutate.multinic-ipam.io" denied the request: ' in refused.stderr
    assert f"the only address of ip_pool {net.prefix}.200 is held; add entries or free it" in refused.stderr
    assert [ip["spec"]["podName"] for ip in subnet_ips(kubectl, net.subnet)] == ["first"]


def _phase(kubectl: Kubectl, namespace: str, pod: str, phase: str) -> None:
    patch = json.dumps({"status": {"phase": phase}})
    kubectl("patch", "pod", pod, "-n", namespace, "--subresource=status", "--type=merge", "-p", patch)


def test_finished_pods_release_their_addresses(net: Net, kubectl: Kubectl) -> None:
    ns = net.namespace
    for name, restart in (("done", "Never"), ("failed", "Never"), ("restarts", "Always")):
        _create(kubectl, _pod(name, ns, {NETWORKS: "net"}, restart=restart))

    def bound() -> bool:
        held = subnet_ips(kubectl, net.subnet)
        return len(held) == 3 and all(ip["spec"].get("podUID") for ip in held)

    eventually(bound, what="three addresses bound to their pods")
    _phase(kubectl, ns, "done", "Succeeded")
    _phase(kubectl, ns, "failed", "Failed")
    _phase(kubectl, ns, "restarts", "Failed")  # restartPolicy Always: it runs again and keeps its address
    eventually(
        lambda: [ip["spec"]["podName"] for ip in subnet_ips(kubectl, net.subnet)] == ["restarts"],
        what="the finished pods' addresses released",
    )
    assert get_json(kubectl, "pod", "done", "-n", ns)["status"]["phase"] == "Succeeded"


def test_one_file_with_nad_subnet_ippool_and_pod_is_admitted_at_the_first_apply(
    net: Net, kubectl: Kubectl
) -> None:
    """`kubectl apply -f` of everything at once: each object's review may come before the webhook's
    watch has delivered the ones above it, so what a review needs and the cache lacks is read live."""
    ns, provider = net.namespace, f"onefile.{net.namespace}"
    name = f"{net.subnet}-onefile"
    net.subnets.append(name)
    pool = {"apiVersion": "kubeovn.io/v1", "kind": "IPPool", "metadata": {"name": name},
            "spec": {"subnet": name, "ips": [f"10.{net.octet}.3.50..10.{net.octet}.3.59"]}}
    items = [json.loads(nad_yaml("onefile", ns, provider)),
             json.loads(_subnet(name, f"10.{net.octet}.3.0/24", provider)), pool,
             json.loads(_pod("first", ns, {NETWORKS: "onefile", f"{provider}.kubernetes.io/ip_pool": name}))]
    try:
        kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
        notes = annotations(kubectl, "first", ns)
        assert notes[f"{provider}.kubernetes.io/ip_address"] == f"10.{net.octet}.3.50"
        assert notes[f"{provider}.kubernetes.io/logical_switch"] == name
    finally:
        kubectl("delete", "pods", "--all", "-n", ns, "--grace-period=0", "--force", check=False)
        kubectl("delete", "ippools.kubeovn.io", name, "--ignore-not-found", check=False)
