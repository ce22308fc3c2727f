"""Both webhooks resolve a pod's attachments through `webhook.admission.attachments`, so they must agree:
for every pod and cluster below, validation allows the pod exactly when mutation allocates it,
from the same Subnet, and a refusal of the resolver reads the same from both."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from allocator import annotations as keys
from tests.unit.webhook.rules import world as rules_world
from tests.unit.webhook.rules.world import kube_ovn_config, macvlan_config, nad, pod, subnet
from tests.unit.webhook.world import World
from webhook import mutate, validate
from webhook.admission import attachments
from webhook.admission.reviews import Verdict
from webhook.cluster import objects

NETWORKS = keys.NETWORKS
DEFAULT_NETWORK = keys.DEFAULT_NETWORK
MACVLAN = "macvlan.default"
ATTACHNET = "attachnet.default.ovn"

MACVLAN_NAD = nad("macvlan", macvlan_config())
ATTACHNET_NAD = nad("attachnet", kube_ovn_config())
MACVLAN_SUBNET = subnet("macvlan", provider=MACVLAN, cidrBlock="172.17.0.0/16", gateway="172.17.0.1")
ATTACHNET_SUBNET = subnet("attachnet", provider=ATTACHNET, cidrBlock="172.18.0.0/16")
OVN_SUBNET = subnet("macvlan-ovn", provider="ovn", cidrBlock="172.30.0.0/16")
DEFAULT_OVN = subnet("ovn-default", provider="ovn", cidrBlock="10.16.0.0/16", default=True)
# the brief's example: A and B share a provider; A serves namespace x only
SUBNET_A = subnet("a", provider=MACVLAN, cidrBlock="10.1.0.0/16", namespaces=["x"])
SUBNET_B = subnet("b", provider=MACVLAN, cidrBlock="10.2.0.0/16")


@dataclass(frozen=True)
class Case:
    """A cluster, a pod's annotations and namespace, and what both webhooks must conclude:
    `subnets` (key provider → Subnet) when allowed, else a part of the refusal both give."""

    id: str
    cluster: tuple[dict[str, Any], ...]
    notes: dict[str, str]
    namespace: str = "default"
    subnets: dict[str, str] = field(default_factory=dict)
    refusal: str = ""
    same_sentence: bool = True  # refused by the resolver itself, not by a later check


def _switch(provider: str) -> str:
    return keys.key(provider, keys.LOGICAL_SWITCH)


CASES = [
    Case("bound-subnet-serves-its-namespace", (MACVLAN_NAD, SUBNET_A, SUBNET_B),
         {NETWORKS: "default/macvlan"}, namespace="x", subnets={MACVLAN: "a"}),
    Case("unrestricted-subnet-serves-other-namespaces", (MACVLAN_NAD, SUBNET_A, SUBNET_B),
         {NETWORKS: "default/macvlan"}, namespace="y", subnets={MACVLAN: "b"}),
    Case("every-subnet-reserved-elsewhere", (MACVLAN_NAD, SUBNET_A),
         {NETWORKS: "default/macvlan"}, namespace="y",
         refusal="every Subnet with provider macvlan.default is reserved for other namespaces (a for x)"),
    Case("no-subnet-for-the-provider", (MACVLAN_NAD,), {NETWORKS: "default/macvlan"},
         refusal="no Subnet has provider macvlan.default"),
    Case("first-unrestricted-subnet-by-name", (MACVLAN_NAD, MACVLAN_SUBNET, SUBNET_B),
         {NETWORKS: "default/macvlan"}, subnets={MACVLAN: "b"}),
    Case("logical-switch-wins", (MACVLAN_NAD, MACVLAN_SUBNET, SUBNET_B),
         {NETWORKS: "default/macvlan", _switch(MACVLAN): "macvlan"}, subnets={MACVLAN: "macvlan"}),
    Case("logical-switch-an-ovn-subnet-for-a-second-nic", (MACVLAN_NAD, OVN_SUBNET),
         {NETWORKS: "default/macvlan", _switch(MACVLAN): "macvlan-ovn"}, subnets={MACVLAN: "macvlan-ovn"}),
    Case("logical-switch-a-subnet-of-another-provider", (MACVLAN_NAD, MACVLAN_SUBNET, ATTACHNET_SUBNET),
         {NETWORKS: "default/macvlan", _switch(MACVLAN): "attachnet"},
         refusal="has provider attachnet.default.ovn; name a Subnet with provider macvlan.default or ovn"),
    Case("logical-switch-a-missing-subnet", (MACVLAN_NAD, MACVLAN_SUBNET),
         {NETWORKS: "default/macvlan", _switch(MACVLAN): "nope"},
         refusal='Subnet "nope", named by macvlan.default.kubernetes.io/logical_switch, does not exist'),
    Case("logical-switch-a-subnet-reserved-elsewhere", (MACVLAN_NAD, MACVLAN_SUBNET, SUBNET_A),
         {NETWORKS: "default/macvlan", _switch(MACVLAN): "a"}, namespace="y",
         refusal="Subnet a, named by macvlan.default.kubernetes.io/logical_switch, is reserved for "
                 "namespaces x"),
    Case("main-nic-of-an-ipam-only-nad-from-an-ovn-subnet", (MACVLAN_NAD, OVN_SUBNET),
         {DEFAULT_NETWORK: "default/macvlan", _switch(MACVLAN): "macvlan-ovn"},
         refusal="the main NIC from NetworkAttachmentDefinition default/macvlan cannot take its address"),
    Case("main-nic-of-a-kube-ovn-type-nad-from-an-ovn-subnet", (ATTACHNET_NAD, OVN_SUBNET),
         {DEFAULT_NETWORK: "default/attachnet", _switch(ATTACHNET): "macvlan-ovn"},
         subnets={ATTACHNET: "macvlan-ovn"}),
    Case("main-nic-from-its-own-subnet", (MACVLAN_NAD, MACVLAN_SUBNET, DEFAULT_OVN),
         {DEFAULT_NETWORK: "default/macvlan"}, subnets={MACVLAN: "macvlan"}),
    Case("primary-ovn-from-the-default-subnet", (MACVLAN_NAD, MACVLAN_SUBNET, DEFAULT_OVN),
         {NETWORKS: "default/macvlan", "ovn.kubernetes.io/ip_address": "10.16.0.15"},
         subnets={"ovn": "ovn-default", MACVLAN: "macvlan"}),
    Case("primary-ovn-from-a-subnet-bound-to-the-namespace",
         (DEFAULT_OVN, subnet("team-ovn", provider="ovn", cidrBlock="10.17.0.0/16", namespaces=["team"])),
         {}, namespace="team", subnets={"ovn": "team-ovn"}),
    Case("primary-ovn-address-outside-its-subnet", (DEFAULT_OVN,),
         {"ovn.kubernetes.io/ip_address": "10.99.0.15"}, refusal="10.99.0.15", same_sentence=False),
    Case("primary-left-alone-without-a-default-ovn-subnet", (MACVLAN_NAD, MACVLAN_SUBNET, OVN_SUBNET),
         {NETWORKS: "default/macvlan", "ovn.kubernetes.io/ip_address": "10.16.0.15"},
         subnets={MACVLAN: "macvlan"}),
    Case("same-nad-twice", (MACVLAN_NAD, MACVLAN_SUBNET), {NETWORKS: "macvlan@a,macvlan"},
         subnets={"macvlan.default.a": "macvlan", "macvlan.default.net2": "macvlan"}),
    Case("same-nad-twice-each-with-its-own-logical-switch", (MACVLAN_NAD, MACVLAN_SUBNET, OVN_SUBNET),
         {NETWORKS: "macvlan@a,macvlan@b", _switch("macvlan.default.b"): "macvlan-ovn"},
         subnets={"macvlan.default.a": "macvlan", "macvlan.default.b": "macvlan-ovn"}),
    Case("same-nad-twice-with-an-address-outside", (MACVLAN_NAD, MACVLAN_SUBNET),
         {NETWORKS: "macvlan@a,macvlan@b", "macvlan.default.b.kubernetes.io/ip_address": "10.0.0.1"},
         refusal="10.0.0.1", same_sentence=False),
    Case("missing-nad", (MACVLAN_NAD, MACVLAN_SUBNET), {NETWORKS: "default/macvlan,other/vlan"},
         refusal="NetworkAttachmentDefinition other/vlan, named in k8s.v1.cni.cncf.io/networks, "
                 "does not exist"),
    Case("empty-spec-nad-is-someone-elses", (MACVLAN_NAD, MACVLAN_SUBNET, nad("conf2", None, "kube-system")),
         {NETWORKS: "kube-system/conf2,default/macvlan"}, subnets={MACVLAN: "macvlan"}),
    Case("nad-without-kube-ovn-is-someone-elses",
         (nad("plain", {"cniVersion": "0.3.1", "type": "macvlan", "ipam": {"type": "host-local"}}),),
         {NETWORKS: "plain"}),
    Case("nad-with-a-wrong-provider", (nad("macvlan", macvlan_config(provider="wrong.default")),),
         {NETWORKS: "default/macvlan"},
         refusal="cannot be used: NetworkAttachmentDefinition default/macvlan"),
    Case("networks-that-do-not-parse", (MACVLAN_NAD, MACVLAN_SUBNET), {NETWORKS: "default/macvlan,"},
         refusal="item 2 of k8s.v1.cni.cncf.io/networks"),
    Case("multus-ips-with-the-wrong-prefix", (MACVLAN_NAD, MACVLAN_SUBNET),
         {NETWORKS: json.dumps([{"name": "macvlan", "ips": ["172.17.0.100/24"]}])},
         refusal="172.17.0.100/16", same_sentence=False),
]


def _mutate_world(case: Case) -> World:
    world = World()
    kinds = {"NetworkAttachmentDefinition": objects.NADS, "Subnet": objects.SUBNETS}
    for obj in case.cluster:
        world.add(kinds[obj["kind"]], json.loads(json.dumps(obj)))
    return world


def _validate_world(case: Case) -> rules_world.World:
    world = rules_world.World()
    for obj in case.cluster:
        world.put(json.loads(json.dumps(obj)))
    return world


def _patched(obj: dict[str, Any], verdict: Verdict) -> dict[str, Any]:
    """The pod as the validating webhook sees it: after the mutating webhook's patch."""
    notes = dict(obj["metadata"].get("annotations") or {})
    for op in verdict.patch or []:
        if op["path"] == "/metadata/annotations":
            notes.update(op["value"])
        else:
            key = op["path"].removeprefix("/metadata/annotations/").replace("~1", "/").replace("~0", "~")
            notes[key] = op["value"]
    return {**obj, "metadata": {**obj["metadata"], "annotations": notes}}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_validation_allows_exactly_what_mutation_allocates(case: Case) -> None:
    obj = pod(case.notes, namespace=case.namespace)
    store_world = _mutate_world(case)
    mutated = mutate.review(rules_world.request(obj), store=store_world.store)
    before = _validate_world(case).review(obj)  # the pod alone, as a plain cache sees it
    after = validate.review(  # after mutation, over the mutating process's own cache
        rules_world.request(_patched(obj, mutated) if mutated.allowed else obj),
        view=store_world.store, system_users=frozenset(),
    )
    assert mutated.allowed is before.allowed is after.allowed is not bool(case.refusal), (
        mutated.message, before.message, after.message
    )
    if case.refusal:
        assert case.refusal in mutated.message and case.refusal in before.message
        assert store_world.api.ips == {}
        if case.same_sentence:
            assert mutated.message == before.message and mutated.code == before.code
        return
    written = _patched(obj, mutated)["metadata"]["annotations"]
    chosen = {key.removesuffix("/logical_switch").removesuffix(".kubernetes.io"): value
              for key, value in written.items() if key.endswith(".kubernetes.io/logical_switch")
              and written.get(key.replace("logical_switch", "allocated")) == "true"}
    assert chosen == case.subnets
    found = attachments.resolve(store_world.store, case.notes, case.namespace)
    assert {a.key_provider: a.subnet_name for a in found} == case.subnets


def test_a_logical_switch_subnet_the_cache_has_not_seen_is_read_live_by_mutation() -> None:
    """A Subnet created a moment before the pod: the mutating side reads it from the API server."""
    world = World()
    world.add(objects.NADS, MACVLAN_NAD)
    world.api.watchers.remove(world.cache)  # the watch lags behind the next write
    world.add(objects.SUBNETS, json.loads(json.dumps(SUBNET_B)))
    notes = {NETWORKS: "default/macvlan", _switch(MACVLAN): "b"}
    assert world.store.subnet("b") is None
    found = attachments.resolve(world.store, notes, "default", live=world.store)
    assert [a.subnet_name for a in found] == ["b"]
    cache_only = _validate_world(Case("", (MACVLAN_NAD,), {}))
    with pytest.raises(attachments.AttachmentError, match='Subnet "b", named by'):
        attachments.resolve(cache_only.view, notes, "default")  # a cache alone, without it


def test_empty_spec_nad_warns_through_the_callback_and_is_skipped() -> None:
    world = _validate_world(Case("", (nad("conf2", None, "kube-system"),), {}))
    warnings: list[str] = []
    found = attachments.resolve(world.view, {NETWORKS: "kube-system/conf2"}, "default", warn=warnings.append)
    assert found == []
    assert warnings == [
        "NetworkAttachmentDefinition kube-system/conf2 has no spec.config, so its addresses come from a CNI "
        "config file on each node, not from this IPAM"
    ]


def test_interfaces_are_named_by_position_among_all_networks() -> None:
    """Multus names unnamed interfaces net<position>, counting NADs this IPAM does not serve."""
    plain = nad("plain", {"cniVersion": "0.3.1", "type": "macvlan", "ipam": {"type": "host-local"}})
    world = _validate_world(Case("", (plain, MACVLAN_NAD, MACVLAN_SUBNET), {}))
    found = attachments.resolve(world.view, {NETWORKS: "plain,macvlan,macvlan@x"}, "default")
    assert [(a.interface, a.key_provider, a.main, a.ipam_only) for a in found] == [
        ("net2", "macvlan.default.net2", False, True),
        ("x", "macvlan.default.x", False, True),
    ]


DAEMON_CASES = [
    ("same-nad-twice", {NETWORKS: "macvlan@a,macvlan"}),
    ("main-nic-and-a-second-nic-of-one-nad", {DEFAULT_NETWORK: "default/macvlan", NETWORKS: "macvlan"}),
    ("default-route-on-one-of-two",
     {NETWORKS: json.dumps([{"name": "macvlan"}, {"name": "macvlan", "default-route": ["172.17.0.1"]}])}),
    ("default-route-on-the-second-nic-of-the-main-nad",
     {DEFAULT_NETWORK: "default/macvlan",
      NETWORKS: json.dumps([{"name": "macvlan", "interface": "m", "default-route": ["172.17.0.254"]}])}),
    ("primary-and-two-nads", {NETWORKS: "macvlan,attachnet"}),
]


@pytest.mark.parametrize("notes", [n for _, n in DAEMON_CASES], ids=[i for i, _ in DAEMON_CASES])
def test_the_node_daemon_finds_each_attachment_under_the_key_mutation_wrote(notes: dict[str, str]) -> None:
    """`cni.allocation` looks up `<provider>.<ifname>` then `<provider>`, and picks the selection
    that carries a default route by the same interface naming: each NIC gets its own address, and
    a default route exactly when its own selection (or the default network) asks for one."""
    from cni import allocation

    cluster = (MACVLAN_NAD, ATTACHNET_NAD, MACVLAN_SUBNET, ATTACHNET_SUBNET, DEFAULT_OVN)
    world = _mutate_world(Case("", cluster, notes))
    obj = pod(notes)
    mutated = mutate.review(rules_world.request(obj), store=world.store)
    patched = _patched(obj, mutated)
    found = attachments.resolve(world.store, notes, "default")
    assert len(found) >= 2
    for attachment in found:
        request = allocation.Request("default", "p", attachment.provider, attachment.interface)
        answer = allocation.answer(patched, request)
        written = patched["metadata"]["annotations"][attachment.key(keys.IP_ADDRESS)]
        assert [ip["address"].partition("/")[0] for ip in answer["ips"]] == [written]
        selection = attachment.selection
        asked = bool(selection and selection.default_route)
        wants_default = (attachment.main and selection is not None) or asked
        assert answer["default_route"] is wants_default, attachment
        if wants_default and selection is not None:
            expected = selection.default_route[0] if selection.default_route else "172.17.0.1"
            assert answer["ips"][0].get("gateway") == expected, attachment
