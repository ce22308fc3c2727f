"""Subnet rules: spec validity, provider shape, overlaps, and changes that would strand addresses."""

from __future__ import annotations

import pytest

from . import guide
from .world import World, subnet

V4 = {
    "cidr": "172.17.0.0/16",
    "gw": "172.17.0.1",
    "held": "172.17.0.100",
    "inner": "172.17.0.0/24",
    "other": "10.20.0.0/16",
    "bad": "172.17.0.1/16",
}
V6 = {
    "cidr": "fd00:10::/64",
    "gw": "fd00:10::1",
    "held": "fd00:10::100",
    "inner": "fd00:10::/118",
    "other": "fd00:20::/64",
    "bad": "fd00:10::1/64",
}
FAMILIES = pytest.mark.parametrize("f", [V4, V6], ids=["ipv4", "ipv6"])


@FAMILIES
def test_valid_subnet_is_allowed_and_a_cidr_with_host_bits_is_refused(f: dict[str, str]) -> None:
    world = World()
    assert world.review(subnet("net", provider="macvlan.default", cidrBlock=f["cidr"])).allowed
    verdict = world.review(subnet("net", provider="macvlan.default", cidrBlock=f["bad"]))
    assert not verdict.allowed
    assert verdict.code == 422
    assert f"has host bits set; write {f['cidr']}" in verdict.message


def test_gateway_outside_the_block_is_refused() -> None:
    verdict = World().review(subnet("net", cidrBlock="172.17.0.0/16", gateway="172.18.0.1"))
    assert not verdict.allowed
    assert "gateway 172.18.0.1 of subnet net is outside its block 172.17.0.0/16" in verdict.message


@pytest.mark.parametrize("provider", ["ovn", "macvlan.default", "attachnet.default.ovn", "a-1.ns-2"])
def test_provider_ovn_or_nad_dot_namespace_is_allowed(provider: str) -> None:
    assert World().review(subnet("net", provider=provider, cidrBlock="172.17.0.0/16")).allowed


@pytest.mark.parametrize("provider", ["macvlan", "Macvlan.default", "macvlan.default.ovn.x", "a_b.default"])
def test_provider_that_cannot_name_a_nad_is_refused(provider: str) -> None:
    verdict = World().review(subnet("net", provider=provider, cidrBlock="172.17.0.0/16"))
    assert not verdict.allowed
    assert f'provider "{provider}" of Subnet net is not ovn, <nad>.<namespace> or <nad>.<namespace>.ovn' in (
        verdict.message
    )


def test_provider_that_does_not_match_the_nads_declared_provider_warns() -> None:
    world = World()
    world.example("nad-attachnet.yaml")  # a kube-ovn type NAD: its provider ends in .ovn
    verdict = world.review(subnet("net", provider="attachnet.default", cidrBlock="172.17.0.0/16"))
    assert verdict.allowed
    assert any("declares provider attachnet.default.ovn" in w for w in verdict.warnings)


@FAMILIES
def test_overlap_with_a_subnet_of_the_same_provider_is_refused_naming_it(f: dict[str, str]) -> None:
    world = World()
    world.subnet("first", provider="macvlan.default", cidrBlock=f["cidr"])
    verdict = world.review(subnet("second", provider="macvlan.default", cidrBlock=f["inner"]))
    assert not verdict.allowed
    assert verdict.code == 409
    assert f"cidrBlock {f['inner']} of Subnet second overlaps {f['cidr']} of Subnet first" in verdict.message
    assert world.review(subnet("second", provider="macvlan.default", cidrBlock=f["other"])).allowed


def test_same_block_under_another_provider_is_allowed() -> None:
    world = World()
    world.subnet("macvlan", provider="macvlan.default", cidrBlock="172.17.0.0/16")
    verdict = world.review(subnet("attachnet", provider="attachnet.default.ovn", cidrBlock="172.17.0.0/16"))
    assert verdict.allowed
    assert not any("overlaps" in w for w in verdict.warnings)


def test_overlapping_provider_ovn_subnets_warn_in_one_vpc_only() -> None:
    """The guide's two provider-ovn Subnets (macvlan, attachnet) share 172.17.0.0/16."""
    world = World()
    world.example("subnet-macvlan-provider-ovn.yaml")
    verdict = world.review(guide.load("subnet-attachnet-provider-ovn.yaml"))
    assert verdict.allowed
    assert verdict.warnings == (
        "cidrBlock 172.17.0.0/16 of Subnet attachnet overlaps 172.17.0.0/16 of Subnet macvlan, also provider "
        "ovn in VPC ovn-cluster: pods of both may get the same address, which is only safe when they attach "
        "different networks",
    )
    other_vpc = world.review(subnet("elsewhere", provider="ovn", cidrBlock="172.17.0.0/16", vpc="vpc-b"))
    assert other_vpc.allowed
    assert other_vpc.warnings == ()


def test_gateway_private_and_nat_outgoing_on_an_attachment_network_only_warn() -> None:
    body = {"provider": "macvlan.default", "cidrBlock": "172.17.0.0/16", "gateway": "172.17.0.1"}
    verdict = World().review(subnet("net", **body, private=True, natOutgoing=True))
    assert verdict.allowed
    assert (
        "Subnet net sets gateway, private, natOutgoing, which the guide says are only valid for provider "
        "ovn; with provider macvlan.default, the gateway is only kept out of allocation and reported to the "
        "CNI plugin and private and natOutgoing have no effect"
    ) in verdict.warnings
    assert World().review(subnet("net", **{**body, "provider": "ovn"}, natOutgoing=True)).warnings == ()


# -- UPDATE and DELETE with held addresses ----------------------------------------------------------
def _held_world(f: dict[str, str], **spec: object) -> tuple[World, dict]:
    world = World()
    old = world.subnet("net", provider="macvlan.default", cidrBlock=f["cidr"], **spec)
    world.hold("net", f["held"], pod="static-ip")
    return world, old


@FAMILIES
def test_cidr_change_that_strands_a_held_address_is_refused_with_count_and_holder(f: dict[str, str]) -> None:
    world, old = _held_world(f)
    world.hold("net", f["held"].replace("100", "101"), pod="other")
    verdict = world.review(
        subnet("net", provider="macvlan.default", cidrBlock=f["other"]), operation="UPDATE", old=old
    )
    assert not verdict.allowed
    assert "would leave 2 held addresses, e.g. " in verdict.message
    assert "held by pod default/" in verdict.message
    keeps = world.review(
        subnet("net", provider="macvlan.default", cidrBlock=f["inner"]), operation="UPDATE", old=old
    )
    assert keeps.allowed, keeps.message


@FAMILIES
def test_provider_change_is_refused_while_held_and_allowed_once_free(f: dict[str, str]) -> None:
    world, old = _held_world(f)
    new = subnet("net", provider="ovn", cidrBlock=f["cidr"])
    verdict = world.review(new, operation="UPDATE", old=old)
    assert not verdict.allowed
    assert (
        f"Subnet net cannot change provider from macvlan.default to ovn while it has 1 held address, "
        f"e.g. {f['held']} held by pod default/static-ip" in verdict.message
    )
    free = World()
    free.put(old)
    assert free.review(new, operation="UPDATE", old=old).allowed


@FAMILIES
def test_gateway_moved_onto_a_held_address_is_refused(f: dict[str, str]) -> None:
    world, old = _held_world(f)
    verdict = world.review(
        subnet("net", provider="macvlan.default", cidrBlock=f["cidr"], gateway=f["held"]),
        operation="UPDATE",
        old=old,
    )
    assert not verdict.allowed
    assert "held by pod default/static-ip; choose a free address as the gateway" in verdict.message
    other_gw = f["held"].replace("100", "102")
    assert world.review(
        subnet("net", provider="macvlan.default", cidrBlock=f["cidr"], gateway=other_gw),
        operation="UPDATE",
        old=old,
    ).allowed


@FAMILIES
def test_exclude_ips_newly_covering_a_held_address_is_refused(f: dict[str, str]) -> None:
    world, old = _held_world(f)
    covering = [f"{f['held']}..{f['held'].replace('100', '110')}"]
    verdict = world.review(
        subnet("net", provider="macvlan.default", cidrBlock=f["cidr"], excludeIps=covering),
        operation="UPDATE",
        old=old,
    )
    assert not verdict.allowed
    assert "excludeIps of Subnet net would newly exclude 1 held address" in verdict.message
    # an exclusion that already covered the (fixed) address before is not new
    world2, old2 = _held_world(f, excludeIps=covering)
    widened = [*covering, f["held"].replace("100", "120")]
    assert world2.review(
        subnet("net", provider="macvlan.default", cidrBlock=f["cidr"], excludeIps=widened),
        operation="UPDATE",
        old=old2,
    ).allowed


def test_delete_is_refused_while_addresses_are_held_and_allowed_after() -> None:
    world, old = _held_world(V4)
    world.hold("net", "172.17.0.11", generate_name="web-7d4f-", pod="")
    verdict = world.review(None, operation="DELETE", old=old)
    assert not verdict.allowed
    assert verdict.message.startswith("Subnet net still has 2 held addresses, e.g. ")
    empty = World()
    empty.put(old)
    assert empty.review(None, operation="DELETE", old=old).allowed


def test_metadata_only_update_of_a_subnet_is_not_revalidated() -> None:
    world, old = _held_world(V4)
    labelled = subnet("net", provider="macvlan.default", cidrBlock=V4["cidr"])
    labelled["metadata"]["labels"] = {"team": "net"}
    assert world.review(labelled, operation="UPDATE", old=old).allowed


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"cidrBlock": "172.17.0.0/16", "protocol": "IPv6"}, "protocol IPv6 of subnet net does not match"),
        ({"cidrBlock": "172.17.0.5/32"}, "is a single address with nothing to hand out"),
        ({"cidrBlock": "fd00:10::5/128"}, "is a single address with nothing to hand out"),
        ({"cidrBlock": "224.0.0.0/24"}, "overlaps the multicast block"),
        ({"cidrBlock": "fe80::/64"}, "overlaps the link-local block"),
        ({"cidrBlock": "172.17.0.0/16", "gateway": "172.17.0.0"}, "is the network address of 172.17.0.0/16"),
        ({"cidrBlock": "172.17.0.0/16", "excludeIps": ["172.17.0.20..172.17.0.10"]}, "runs backwards"),
        ({"cidrBlock": "172.17.0.0/16", "excludeIps": ["10.0.0.1"]}, "is not inside cidrBlock 172.17.0.0/16"),
        ({"cidrBlock": "172.17.0.0/16,172.18.0.0/16"}, "has two IPv4 blocks"),
    ],
)
def test_spec_problems_are_refused_with_the_allocators_sentence(spec: dict, expected: str) -> None:
    verdict = World().review(subnet("net", provider="macvlan.default", **spec))
    assert not verdict.allowed
    assert verdict.code == 422
    assert expected in verdict.message


def test_dual_stack_subnet_is_allowed() -> None:
    verdict = World().review(
        subnet("net", provider="macvlan.default", cidrBlock="172.17.0.0/16,fd00:10::/64", protocol="Dual")
    )
    assert verdict.allowed, verdict.message


def test_a_default_provider_ovn_subnet_warns_that_unannotated_pods_need_install_all_pods() -> None:
    world = World()
    body = {"provider": "ovn", "cidrBlock": "10.16.0.0/16", "default": True}
    expected = (
        "Subnet ovn-default is the default for provider ovn, so pods without any annotation take their "
        "address from it; on API servers 1.28 and later such pods reach the mutating webhook only when "
        "it was installed with multinic-ipam install --all-pods"
    )
    created = world.review(subnet("ovn-default", **body))
    assert created.allowed and created.warnings == (expected,)
    old = subnet("ovn-default", **{**body, "default": False})
    new = subnet("ovn-default", **body, excludeIps=["10.16.0.2"])
    updated = world.review(new, operation="UPDATE", old=old)
    assert updated.allowed and updated.warnings == (expected,)


@pytest.mark.parametrize(
    "body",
    [{"provider": "ovn", "default": False}, {"provider": "ovn"},
     {"provider": "macvlan.default", "default": True}],
    ids=["ovn-not-default", "ovn-default-unset", "attachment-default"],
)
def test_only_a_default_provider_ovn_subnet_gets_the_all_pods_warning(body: dict) -> None:
    verdict = World().review(subnet("net", cidrBlock="10.16.0.0/16", **body))
    assert verdict.allowed
    assert not any("--all-pods" in w for w in verdict.warnings)
