"""Kube-OVN's IPAM semantics for pools, dual stack and ip_family, end to end through `kubectl apply`
with the session's webhook server (issue 9's reproduced bugs, each asserting exact addresses or the
refusal sentence). The Kube-OVN code each case follows is named in docs/kube-ovn-compatibility.md."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.ipam_helpers import Kubectl, annotations, eventually, nad_yaml
from tests.fixtures.webhook import WebhookServer
from webhook.cluster import objects

NETWORKS = "k8s.v1.cni.cncf.io/networks"
pytestmark = pytest.mark.both_apiservers  # Kube-OVN parity on the 1.36 API server too


class Lab:
    """NAD `p` in the test namespace (provider `p.<ns>`), one Subnet per test, IPPools and pods."""

    def __init__(self, kubectl: Kubectl, namespace: str) -> None:
        self.kubectl = kubectl
        self.namespace = namespace
        self.provider = f"p.{namespace}"
        self.subnet = f"k-{namespace}"
        octet = 100 + secrets.randbelow(100)
        self.v4 = f"10.{octet}.7"
        self.v6 = f"fd00:{octet}:7::"
        self.pools: list[str] = []
        self.namespaces: list[str] = []

    def key(self, field: str) -> str:
        return f"{self.provider}.kubernetes.io/{field}"

    def make_subnet(self, cidr: str, **spec: Any) -> None:
        body = {"cidrBlock": cidr, "provider": self.provider, **spec}
        self.apply({"apiVersion": "kubeovn.io/v1", "kind": "Subnet", "metadata": {"name": self.subnet},
                    "spec": body})

    def make_ippool(self, name: str, ips: list[str], namespaces: list[str] | None = None) -> str:
        full = f"{self.subnet}-{name}"
        spec: dict[str, Any] = {"subnet": self.subnet, "ips": ips}
        if namespaces:
            spec["namespaces"] = namespaces
        body = {"apiVersion": "kubeovn.io/v1", "kind": "IPPool", "metadata": {"name": full}, "spec": spec}
        self.apply(body)
        self.pools.append(full)
        return full

    def pod(self, name: str, notes: dict[str, str], namespace: str = "") -> str:
        """Create the pod (retried while the webhook's caches catch up); its `ip_address` output."""
        namespace = namespace or self.namespace
        self.apply(_pod_body(name, namespace, {NETWORKS: f"{self.namespace}/p", **notes}))
        return annotations(self.kubectl, name, namespace)[self.key("ip_address")]

    def refused(self, name: str, notes: dict[str, str]) -> str:
        """Create a pod that must be refused; the denial as kubectl prints it."""
        body = _pod_body(name, self.namespace, {NETWORKS: "p", **notes})
        result = self.kubectl("apply", "-f", "-", input=json.dumps(body), check=False)
        assert result.returncode != 0, f"pod {name} was admitted"
        return result.stderr

    def apply(self, body: dict) -> None:
        eventually(
            lambda: self.kubectl("apply", "-f", "-", input=json.dumps(body), check=False).returncode == 0,
            timeout=20,
            what=f"{body['kind']} {body['metadata']['name']} admitted",
        )


def _pod_body(name: str, namespace: str, notes: dict[str, str]) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "annotations": notes},
        "spec": {"containers": [{"name": "c", "image": "docker.io/library/alpine:edge"}]},
    }


@pytest.fixture
def lab(webhook_server: WebhookServer, kubectl: Kubectl, namespace: str) -> Iterator[Lab]:
    lab = Lab(kubectl, namespace)
    kubectl("apply", "-f", "-", input=nad_yaml("p", namespace, lab.provider))
    try:
        yield lab
    finally:
        for ns in (namespace, *lab.namespaces):
            kubectl("delete", "pods", "--all", "-n", ns, "--grace-period=0", "--force", check=False)
        kubectl("delete", "ips.kubeovn.io", "-l", f"{objects.LABEL_SUBNET}={lab.subnet}", check=False)
        for pool in lab.pools:
            kubectl("delete", "ippools.kubeovn.io", pool, "--ignore-not-found", check=False)
        kubectl("delete", "subnets.kubeovn.io", lab.subnet, "--ignore-not-found", check=False)
        for ns in lab.namespaces:
            kubectl("delete", "namespace", ns, "--wait=false", check=False)


def test_ippool_addresses_go_only_to_pods_of_the_pool(lab: Lab) -> None:
    """Item 1: ordinary pods skip the pool's addresses, so the pool is never found exhausted."""
    lab.make_subnet(f"{lab.v4}.0/29")  # usable .2-.6 (gateway .1)
    pool = lab.make_ippool("p", [f"{lab.v4}.2", f"{lab.v4}.3"])
    assert lab.pod("pooled-a", {lab.key("ip_pool"): pool}) == f"{lab.v4}.2"
    assert lab.pod("plain-a", {}) == f"{lab.v4}.4"
    assert lab.pod("plain-b", {}) == f"{lab.v4}.5"
    assert lab.pod("pooled-b", {lab.key("ip_pool"): pool}) == f"{lab.v4}.3"
    assert lab.pod("plain-c", {}) == f"{lab.v4}.6"
    denial = lab.refused("plain-d", {})
    assert f"subnet {lab.subnet} has no free IPv4 address left outside its IPPools" in denial


def test_a_named_ippool_on_a_dual_stack_subnet_gives_one_address_per_family(lab: Lab) -> None:
    """Item 2: each pod of the pool gets an IPv4 and an IPv6 address of it."""
    lab.make_subnet(f"{lab.v4}.0/24,{lab.v6}/120", protocol="Dual")
    v4, v6 = lab.v4, lab.v6
    pool = lab.make_ippool("dual", [f"{v4}.50", f"{v6}50", f"{v4}.51", f"{v6}51"])
    assert lab.pod("a", {lab.key("ip_pool"): pool}) == f"{v4}.50,{v6}50"
    assert lab.pod("b", {lab.key("ip_pool"): pool}) == f"{v4}.51,{v6}51"
    denial = lab.refused("c", {lab.key("ip_pool"): pool})
    assert f"IPPool {pool} of subnet {lab.subnet} has no free IPv4 address left" in denial


def test_excluded_addresses_are_never_handed_out_through_an_ippool(lab: Lab) -> None:
    """Item 3: excludeIps win over every pool."""
    lab.make_subnet(f"{lab.v4}.0/24", excludeIps=[f"{lab.v4}.50"])
    pool = lab.make_ippool("ex", [f"{lab.v4}.50..{lab.v4}.51"])
    assert lab.pod("a", {lab.key("ip_pool"): pool}) == f"{lab.v4}.51"
    denial = lab.refused("b", {lab.key("ip_pool"): pool})
    assert (
        f"IPPool {pool} of subnet {lab.subnet} has no free IPv4 address left: all 1 usable addresses of the "
        "pool are held; add addresses to the pool or free some"
    ) in denial


def test_an_ippool_covering_the_gateway_and_network_still_serves_its_usable_addresses(
    lab: Lab, kubectl: Kubectl
) -> None:
    """Item 4: entries the Subnet never hands out are skipped (with a warning at apply), never
    blocking a usable one; the same for a literal ip_pool list."""
    lab.make_subnet(f"{lab.v4}.0/24")
    body = {"apiVersion": "kubeovn.io/v1", "kind": "IPPool", "metadata": {"name": f"{lab.subnet}-gw"},
            "spec": {"subnet": lab.subnet, "ips": [f"{lab.v4}.0/30"]}}
    applied = kubectl("apply", "-f", "-", input=json.dumps(body))
    lab.pools.append(f"{lab.subnet}-gw")
    assert (
        f"Warning: IPPool {lab.subnet}-gw covers {lab.v4}.0, the network address of subnet {lab.subnet} "
        f"({lab.v4}.0/24), which is never handed out; its other addresses are"
    ) in applied.stderr
    pool = f"{lab.subnet}-gw"
    assert lab.pod("a", {lab.key("ip_pool"): pool}) == f"{lab.v4}.2"
    assert lab.pod("b", {lab.key("ip_pool"): pool}) == f"{lab.v4}.3"
    literal = {lab.key("ip_pool"): f"{lab.v4}.1,{lab.v4}.0,{lab.v4}.20"}
    manifest = json.dumps(_pod_body("c", lab.namespace, {NETWORKS: "p", **literal}))
    listed = kubectl("apply", "-f", "-", input=manifest)
    assert (
        f"Warning: {lab.key('ip_pool')} entry {lab.v4}.1 is the gateway of subnet {lab.subnet}, so 2 of its "
        "3 entries are never handed out"
    ) in listed.stderr
    assert annotations(kubectl, "c", lab.namespace)[lab.key("ip_address")] == f"{lab.v4}.20"
    denial = lab.refused("d", {lab.key("ip_pool"): f"{lab.v4}.1,{lab.v4}.255"})
    assert (
        f"no entry of ip_pool {lab.v4}.1,{lab.v4}.255 can be handed out: {lab.v4}.1 is the gateway of subnet "
        f"{lab.subnet}; list usable addresses of the subnet"
    ) in denial


def test_a_literal_pair_of_two_families_is_one_dual_stack_entry(lab: Lab) -> None:
    """Item 5: `ip_pool: "v4,v6"` is one entry in Kube-OVN; lists of pairs with `;` likewise."""
    lab.make_subnet(f"{lab.v4}.0/24,{lab.v6}/120", protocol="Dual")
    v4, v6 = lab.v4, lab.v6
    assert lab.pod("pair", {lab.key("ip_pool"): f"{v4}.30,{v6}30"}) == f"{v4}.30,{v6}30"
    pairs = {lab.key("ip_pool"): f"{v4}.30,{v6}30;{v4}.31,{v6}31"}
    assert lab.pod("pairs", pairs) == f"{v4}.31,{v6}31"


def test_ip_family_selects_families_and_refuses_one_the_subnet_lacks(lab: Lab) -> None:
    """Item 6: `<provider>.kubernetes.io/ip_family`."""
    lab.make_subnet(f"{lab.v4}.0/24,{lab.v6}/120", protocol="Dual")
    assert lab.pod("v6", {lab.key("ip_family"): "IPv6"}) == f"{lab.v6}2"
    assert lab.pod("v4", {lab.key("ip_family"): "ipv4"}) == f"{lab.v4}.2"
    assert lab.pod("both", {lab.key("ip_family"): "dual"}) == f"{lab.v4}.3,{lab.v6}3"
    denial = lab.refused("typo", {lab.key("ip_family"): "IPv5"})
    assert f"{lab.key('ip_family')} is not usable: ip_family \"IPv5\" is not IPv4, IPv6 or dual" in denial


def test_ip_family_the_single_stack_subnet_lacks_is_refused(lab: Lab) -> None:
    lab.make_subnet(f"{lab.v4}.0/24")
    denial = lab.refused("v6", {lab.key("ip_family"): "IPv6"})
    assert (
        f"{lab.key('ip_family')} is not usable: ip_family asks for IPv6, but subnet {lab.subnet} has only "
        f"IPv4 ({lab.v4}.0/24); ask for IPv4 or attach a subnet that has it"
    ) in denial


def test_a_single_family_fixed_address_on_a_dual_stack_subnet_gets_the_other_family(lab: Lab) -> None:
    """Item 7: Kube-OVN keeps the fixed address and gives the other family its next free address."""
    lab.make_subnet(f"{lab.v4}.0/24,{lab.v6}/120", protocol="Dual")
    assert lab.pod("fixed4", {lab.key("ip_address"): f"{lab.v4}.9"}) == f"{lab.v4}.9,{lab.v6}2"
    assert lab.pod("fixed6", {lab.key("ip_address"): f"{lab.v6}9"}) == f"{lab.v4}.2,{lab.v6}9"


def test_an_ippool_bound_to_namespaces_serves_their_pods_without_being_named(
    lab: Lab, kubectl: Kubectl
) -> None:
    """Item 8: pods of `spec.namespaces` draw from the pool; others and fixed addresses do not."""
    lab.make_subnet(f"{lab.v4}.0/24")
    pool = lab.make_ippool("ns", [f"{lab.v4}.100..{lab.v4}.101"], namespaces=[lab.namespace])
    # named once first, so the webhook's cache has the pool before the unnamed pods arrive
    assert lab.pod("named", {lab.key("ip_pool"): pool}) == f"{lab.v4}.100"
    assert lab.pod("bound", {}) == f"{lab.v4}.101"
    other = f"{lab.namespace[:40]}-o"
    kubectl("create", "namespace", other)
    lab.namespaces.append(other)
    assert lab.pod("elsewhere", {}, namespace=other) == f"{lab.v4}.2"
    assert lab.pod("fixed", {lab.key("ip_address"): f"{lab.v4}.50"}) == f"{lab.v4}.50"
    denial = lab.refused("full", {})
    assert f"IPPool {pool} of subnet {lab.subnet} has no free IPv4 address left" in denial


def test_upper_case_ipv6_in_a_subnet_is_accepted_and_written_back_in_lower_case(
    lab: Lab, kubectl: Kubectl
) -> None:
    """Item 12, decided: accepted and normalised (a row of docs/kube-ovn-compatibility.md)."""
    upper = lab.v6.upper()
    lab.make_subnet(f"{lab.v4}.0/24,{upper}/120", protocol="Dual", excludeIps=[f"{upper}2"])
    assert lab.pod("a", {}) == f"{lab.v4}.2,{lab.v6}3"
    notes = annotations(kubectl, "a", lab.namespace)
    assert notes[lab.key("cidr")] == f"{lab.v4}.0/24,{lab.v6}/120"
    assert notes[lab.key("gateway")] == f"{lab.v4}.1,{lab.v6}1"
