"""SubnetSpec validation and Subnet allocation rules, IPv4 and IPv6 sharing one table."""

from __future__ import annotations

import random
import tracemalloc

import netaddr
import pytest

from allocator.errors import (
    AddressConflict,
    AllocatorError,
    InvalidAddress,
    InvalidCIDR,
    InvalidMAC,
    OutOfRange,
    ParseError,
    SubnetExhausted,
)
from allocator.mac import format_mac, random_mac_value
from allocator.subnet import Subnet
from allocator.subnet_spec import SubnetSpec
from allocator.usage import Usage

GUIDE_SPEC = {
    "protocol": "IPv4",
    "provider": "macvlan.default",
    "cidrBlock": "172.17.0.0/16",
    "gateway": "172.17.0.1",
    "excludeIps": ["172.17.0.0..172.17.0.10"],
}
FAMILY = [pytest.param(4, "172.17.0.0/16", id="ipv4"), pytest.param(6, "fd00:17::/64", id="ipv6")]
SMALL = [pytest.param(4, "10.9.0.0/29", id="ipv4"), pytest.param(6, "fd00:9::/125", id="ipv6")]


def at(cidr: str, offset: int) -> str:
    """The address ``offset`` places into ``cidr`` (negative: from the end)."""
    network = netaddr.IPNetwork(cidr)
    base = network.first if offset >= 0 else network.last + 1
    return str(netaddr.IPAddress(base + offset, network.version))


def subnet(cidr: str, **spec: object) -> Subnet:
    return Subnet(SubnetSpec.parse("net", {"cidrBlock": cidr, **spec}))


# -- SubnetSpec.parse ----------------------------------------------------------------------------
def test_guide_subnet_parses_unchanged() -> None:
    spec = SubnetSpec.parse("macvlan", GUIDE_SPEC)
    assert spec.cidrs == (netaddr.IPNetwork("172.17.0.0/16"),)
    assert spec.gateways == (netaddr.IPAddress("172.17.0.1"),)
    assert spec.protocol == "IPv4"
    assert spec.provider == "macvlan.default"
    assert spec.excludes == ((netaddr.IPAddress("172.17.0.0"), netaddr.IPAddress("172.17.0.10")),)
    assert (spec.namespaces, spec.default) == ((), False)


def test_dual_stack_is_ordered_ipv4_first_with_inferred_protocol_and_gateways() -> None:
    spec = SubnetSpec.parse("dual", {"cidrBlock": "fd00:10::/64, 10.16.0.0/16", "namespaces": ["a"]})
    assert [str(c) for c in spec.cidrs] == ["10.16.0.0/16", "fd00:10::/64"]
    assert [str(g) for g in spec.gateways] == ["10.16.0.1", "fd00:10::1"]
    assert spec.protocol == "Dual"
    assert spec.provider == "ovn"
    assert spec.namespaces == ("a",)
    assert spec.cidr_block == "10.16.0.0/16,fd00:10::/64"


def test_dual_stack_gateways_may_be_given_in_any_order() -> None:
    spec = SubnetSpec.parse(
        "dual", {"cidrBlock": "10.16.0.0/16,fd00:10::/64", "gateway": "fd00:10::9,10.16.0.9"}
    )
    assert [str(g) for g in spec.gateways] == ["10.16.0.9", "fd00:10::9"]


def test_spec_helpers_answer_per_family() -> None:
    spec = SubnetSpec.parse("dual", {"cidrBlock": "10.16.0.0/16,fd00:10::/64"})
    assert spec.contains("10.16.3.4") and spec.contains("fd00:10::abcd")
    assert not spec.contains("10.17.0.1") and not spec.contains("fd00:11::1")
    assert spec.family_cidr(6) == netaddr.IPNetwork("fd00:10::/64")
    assert spec.family_gateway(4) == netaddr.IPAddress("10.16.0.1")
    assert (spec.prefix_of("10.16.3.4"), spec.prefix_of("fd00:10::1")) == (16, 64)
    with pytest.raises(OutOfRange, match=r"10\.17\.0\.1 is outside subnet dual"):
        spec.prefix_of("10.17.0.1")
    assert SubnetSpec.parse("v4", {"cidrBlock": "10.0.0.0/8"}).family_cidr(6) is None


@pytest.mark.parametrize(
    ("spec", "error", "message"),
    [
        ({"cidrBlock": "172.17.0.1/16"}, InvalidCIDR, "has host bits set; write 172.17.0.0/16"),
        ({"cidrBlock": "fd00::1/64"}, InvalidCIDR, "has host bits set; write fd00::/64"),
        ({"cidrBlock": "172.17.0.5/32"}, InvalidCIDR, "single address with nothing to hand out; use a /31"),
        ({"cidrBlock": "fd00::5/128"}, InvalidCIDR, "use a /127 or shorter prefix"),
        ({"cidrBlock": "224.1.0.0/16"}, InvalidCIDR, "overlaps the multicast block 224.0.0.0/4"),
        ({"cidrBlock": "ff02::/16"}, InvalidCIDR, "overlaps the multicast block ff00::/8"),
        ({"cidrBlock": "127.0.0.0/8"}, InvalidCIDR, "overlaps the loopback block"),
        ({"cidrBlock": "169.254.0.0/16"}, InvalidCIDR, "overlaps the link-local block"),
        ({"cidrBlock": "fe80::/64"}, InvalidCIDR, "overlaps the link-local block fe80::/10"),
        ({"cidrBlock": "0.0.0.0/0"}, InvalidCIDR, "overlaps the unspecified block"),
        ({"cidrBlock": "::/64"}, InvalidCIDR, "overlaps the unspecified block"),
        ({}, InvalidCIDR, "subnet bad needs a cidrBlock"),
        ({"cidrBlock": 5}, InvalidCIDR, "not 5"),
        ({"cidrBlock": "172.17.0.0"}, InvalidCIDR, "172.17.0.0 of subnet bad has no prefix length"),
        ({"cidrBlock": "172.17.0.0/33"}, InvalidCIDR, "prefix is a number from 0 to 31"),
        ({"cidrBlock": "172.17.0.0/x"}, InvalidCIDR, "has an invalid prefix length"),
        ({"cidrBlock": "172.17.0/16"}, InvalidCIDR, "does not start with an IP address"),
        ({"cidrBlock": "10.0.0.0/8,10.1.0.0/16"}, InvalidCIDR, "has two IPv4 blocks"),
        ({"cidrBlock": "10.0.0.0/8,fd00::/64,fd01::/64"}, InvalidCIDR, "one block or an IPv4 and an IPv6"),
        ({"cidrBlock": "10.0.0.0/8,"}, InvalidCIDR, "one block or an IPv4 and an IPv6"),
        ({"cidrBlock": "10.0.0.0/8", "protocol": "IPv6"}, InvalidCIDR, "set protocol to IPv4 or omit it"),
        ({"cidrBlock": "10.0.0.0/8", "protocol": "Dual"}, InvalidCIDR, "which is IPv4"),
        ({"cidrBlock": "10.0.0.0/8", "protocol": "ipv4"}, InvalidCIDR, "not one of IPv4, IPv6 or Dual"),
        ({"cidrBlock": "10.0.0.0/8", "gateway": "10.0.0.0"}, InvalidAddress, "is the network address"),
        (
            {"cidrBlock": "10.0.0.0/8", "gateway": "10.255.255.255"},
            InvalidAddress,
            "is the broadcast address",
        ),
        (
            {"cidrBlock": "fd00::/64", "gateway": "fd00::ffff:ffff:ffff:ffff"},
            InvalidAddress,
            "is the last address",
        ),
        ({"cidrBlock": "10.0.0.0/8", "gateway": "11.0.0.1"}, InvalidAddress, "outside its block 10.0.0.0/8"),
        ({"cidrBlock": "10.0.0.0/8", "gateway": "fd00::1"}, InvalidAddress, "one address per block"),
        ({"cidrBlock": "10.0.0.0/8,fd00::/64", "gateway": "10.0.0.1"}, InvalidAddress, "10.0.0.1,fd00::1"),
        ({"cidrBlock": "10.0.0.0/8", "gateway": "10.0.0.300"}, InvalidAddress, "'10.0.0.300' of subnet bad"),
        ({"cidrBlock": "10.0.0.0/8", "gateway": 7}, InvalidAddress, "must be text such as 10.0.0.1"),
        ({"cidrBlock": "10.0.0.0/8", "excludeIps": ["10.0.0.9..10.0.0.1"]}, InvalidAddress, "runs backwards"),
        ({"cidrBlock": "10.0.0.0/8", "excludeIps": ["10.0.0.1..fd00::1"]}, InvalidAddress, "mixes IPv4"),
        ({"cidrBlock": "10.0.0.0/8", "excludeIps": ["11.0.0.1"]}, InvalidAddress, "is not inside cidrBlock"),
        ({"cidrBlock": "10.0.0.0/8", "excludeIps": ["fd00::1"]}, InvalidAddress, "is not inside cidrBlock"),
        ({"cidrBlock": "10.0.0.0/8", "excludeIps": "10.0.0.1"}, InvalidAddress, "must be a list"),
        (
            {"cidrBlock": "10.0.0.0/8", "excludeIps": ["1..2..3"]},
            InvalidAddress,
            "is not an address or a range",
        ),
        ({"cidrBlock": "10.0.0.0/8", "excludeIps": ["10.0.0.x"]}, InvalidAddress, "'10.0.0.x' of subnet bad"),
        (
            {"cidrBlock": "10.0.0.0/8", "excludeIps": [5]},
            InvalidAddress,
            "entry 5 of subnet bad must be text",
        ),
        ({"cidrBlock": "10.0.0.0/8", "provider": 3}, ParseError, "provider 3 of subnet bad"),
        ({"cidrBlock": "10.0.0.0/8", "namespaces": "default"}, ParseError, "must be a list of namespace"),
        ({"cidrBlock": "10.0.0.0/8", "default": "yes"}, ParseError, "must be true or false, not 'yes'"),
    ],
)
def test_bad_specs_are_refused_with_one_sentence(spec, error, message) -> None:
    with pytest.raises(error) as caught:
        SubnetSpec.parse("bad", spec)
    text = str(caught.value)
    assert message in text
    assert "\n" not in text
    assert isinstance(caught.value, AllocatorError)


def test_spec_that_is_not_a_mapping_is_refused() -> None:
    with pytest.raises(InvalidCIDR, match="subnet bad has no spec"):
        SubnetSpec.parse("bad", None)  # type: ignore[arg-type]


def test_spec_built_directly_infers_protocol_and_gateways() -> None:
    spec = SubnetSpec(name="x", cidrs=("fd00::/64", "10.0.0.0/24"))  # type: ignore[arg-type]
    assert spec.protocol == "Dual"
    assert [str(g) for g in spec.gateways] == ["10.0.0.1", "fd00::1"]


# -- sequential allocation -----------------------------------------------------------------------
def test_guide_subnet_starts_after_the_excluded_range() -> None:
    macvlan = Subnet(SubnetSpec.parse("macvlan", GUIDE_SPEC))
    assert str(macvlan.allocate("a", 4)) == "172.17.0.11"
    assert str(macvlan.allocate("b", 4)) == "172.17.0.12"
    assert macvlan.usage() == Usage(v4_available=65534 - 10 - 2, v4_using=2, v6_available=0, v6_using=0)


@pytest.mark.parametrize(("family", "cidr"), FAMILY)
def test_allocation_is_sequential_and_skips_network_and_gateway(family: int, cidr: str) -> None:
    net = subnet(cidr)
    got = [str(net.allocate(f"pod-{i}", family)) for i in range(3)]
    assert got == [at(cidr, 2), at(cidr, 3), at(cidr, 4)]
    assert net.holder(at(cidr, 3)) == "pod-1"
    assert net.held_count == 3


@pytest.mark.parametrize(("family", "cidr"), FAMILY)
def test_allocation_is_idempotent_per_owner(family: int, cidr: str) -> None:
    net = subnet(cidr)
    first = net.allocate("pod", family)
    assert net.allocate("pod", family) == first
    assert (net.held_by("pod", family), net.holder(first)) == (first, "pod")
    assert net.held_count == 1


@pytest.mark.parametrize(("family", "cidr"), FAMILY)
def test_excluded_addresses_are_skipped(family: int, cidr: str) -> None:
    net = subnet(cidr, excludeIps=[f"{at(cidr, 2)}..{at(cidr, 5)}", at(cidr, 7)])
    got = [str(net.allocate(f"pod-{i}", family)) for i in range(3)]
    assert got == [at(cidr, 6), at(cidr, 8), at(cidr, 9)]


@pytest.mark.parametrize(("family", "cidr"), SMALL)
def test_released_addresses_are_reused_only_after_never_used_ones(family: int, cidr: str) -> None:
    net = subnet(cidr)  # usable offsets 1..6, gateway at 1: five to hand out
    got = [str(net.allocate(f"pod-{i}", family)) for i in range(3)]
    assert net.release(got[1]) == "pod-1"
    assert net.release(got[0]) == "pod-0"
    later = [str(net.allocate(f"new-{i}", family)) for i in range(4)]
    assert later == [at(cidr, 5), at(cidr, 6), got[1], got[0]]
    with pytest.raises(SubnetExhausted) as caught:
        net.allocate("one-too-many", family)
    text = str(caught.value)
    assert f"subnet net has no free IPv{family} address left" in text
    assert "all 5 allocatable addresses" in text


@pytest.mark.parametrize(("family", "cidr"), SMALL)
def test_exhaustion_changes_nothing(family: int, cidr: str) -> None:
    net = subnet(cidr)
    for i in range(5):
        net.allocate(f"pod-{i}", family)
    before = net.usage()
    with pytest.raises(SubnetExhausted):
        net.allocate("late", family)
    assert net.usage() == before
    assert net.held_by("late", family) is None


@pytest.mark.parametrize(
    ("cidr", "family", "expected"),
    [
        pytest.param("10.0.0.0/31", 4, "10.0.0.1", id="ipv4-31"),
        pytest.param("fd00::/127", 6, "fd00::1", id="ipv6-127"),
    ],
)
def test_point_to_point_blocks_use_both_addresses(cidr: str, family: int, expected: str) -> None:
    net = subnet(cidr)
    assert str(net.spec.gateways[0]) == at(cidr, 0)
    assert str(net.allocate("pod", family)) == expected
    with pytest.raises(SubnetExhausted):
        net.allocate("other", family)


def test_a_family_the_subnet_lacks_is_out_of_range() -> None:
    with pytest.raises(OutOfRange, match=r"subnet net has no IPv6 block in its cidrBlock 10\.0\.0\.0/24"):
        subnet("10.0.0.0/24").allocate("pod", 6)


# -- fixed claims --------------------------------------------------------------------------------
@pytest.mark.parametrize(("family", "cidr"), FAMILY)
def test_claimed_address_is_held_and_never_handed_out(family: int, cidr: str) -> None:
    net = subnet(cidr)
    assert str(net.claim("static", at(cidr, 2))) == at(cidr, 2)
    assert str(net.claim("static", at(cidr, 2))) == at(cidr, 2)
    assert str(net.allocate("pod", family)) == at(cidr, 3)
    assert net.holder(at(cidr, 2)) == "static"


@pytest.mark.parametrize(("family", "cidr"), FAMILY)
def test_claim_conflicts_name_the_holder(family: int, cidr: str) -> None:
    net = subnet(cidr)
    net.claim("default/static-ip", at(cidr, 100))
    with pytest.raises(AddressConflict) as caught:
        net.claim("default/other", at(cidr, 100))
    assert caught.value.holder == "default/static-ip"
    assert f"{at(cidr, 100)} is held by default/static-ip in subnet net" in str(caught.value)
    assert net.holder(at(cidr, 100)) == "default/static-ip"


@pytest.mark.parametrize(("family", "cidr"), FAMILY)
def test_gateway_cannot_be_claimed(family: int, cidr: str) -> None:
    net = subnet(cidr)
    with pytest.raises(AddressConflict, match=f"{at(cidr, 1)} is the gateway of subnet net") as caught:
        net.claim("pod", at(cidr, 1))
    assert caught.value.holder is None
    assert net.held_count == 0


@pytest.mark.parametrize(("family", "cidr"), FAMILY)
def test_network_and_last_address_cannot_be_claimed(family: int, cidr: str) -> None:
    net = subnet(cidr)
    with pytest.raises(OutOfRange, match="is the network address"):
        net.claim("pod", at(cidr, 0))
    with pytest.raises(OutOfRange, match=r"is the (broadcast|last) address"):
        net.claim("pod", at(cidr, -1))


def test_claim_outside_the_subnet_names_it() -> None:
    macvlan = Subnet(SubnetSpec.parse("macvlan", GUIDE_SPEC))
    with pytest.raises(OutOfRange, match=(
        r"^172\.18\.0\.5 is outside subnet macvlan \(172\.17\.0\.0/16\); choose an address inside it$"
    )):
        macvlan.claim("pod", "172.18.0.5")
    with pytest.raises(OutOfRange, match="is outside subnet macvlan"):
        macvlan.claim("pod", "fd00::5")
    with pytest.raises(InvalidAddress, match="is not an IPv4 or IPv6 address"):
        macvlan.claim("pod", "172.17.0.300")


@pytest.mark.parametrize(("family", "cidr"), FAMILY)
def test_excluded_address_may_be_claimed_and_is_not_recycled(family: int, cidr: str) -> None:
    net = subnet(cidr, excludeIps=[f"{at(cidr, 2)}..{at(cidr, 9)}"])
    available = net.usage()
    assert str(net.claim("static", at(cidr, 5))) == at(cidr, 5)
    assert net.usage() == _using(available, family, 1)
    assert net.release(at(cidr, 5)) == "static"
    assert net.usage() == available
    assert str(net.allocate("pod", family)) == at(cidr, 10)


@pytest.mark.parametrize(("family", "cidr"), SMALL)
def test_claiming_a_released_address_takes_it_out_of_the_reuse_queue(family: int, cidr: str) -> None:
    net = subnet(cidr)
    got = [str(net.allocate(f"pod-{i}", family)) for i in range(5)]
    net.release(got[0])
    net.release(got[1])
    net.claim("static", got[0])
    assert str(net.allocate("next", family)) == got[1]
    with pytest.raises(SubnetExhausted):
        net.allocate("late", family)


@pytest.mark.parametrize(("family", "cidr"), FAMILY)
def test_check_claim_validates_without_changing_anything(family: int, cidr: str) -> None:
    net = subnet(cidr)
    net.claim("holder", at(cidr, 7))
    before = net.usage()
    assert str(net.check_claim("pod", at(cidr, 8))) == at(cidr, 8)
    assert str(net.check_claim("holder", at(cidr, 7))) == at(cidr, 7)
    with pytest.raises(AddressConflict):
        net.check_claim("pod", at(cidr, 7))
    assert net.usage() == before
    assert net.holder(at(cidr, 8)) is None


@pytest.mark.parametrize(("family", "cidr"), FAMILY)
def test_mark_held_records_even_excluded_and_gateway(family: int, cidr: str) -> None:
    net = subnet(cidr, excludeIps=[at(cidr, 9)])
    net.mark_held("a", at(cidr, 9))
    net.mark_held("b", at(cidr, 1))
    net.mark_held("c", at(cidr, 2))
    net.mark_held("c", at(cidr, 2))
    assert (net.holder(at(cidr, 9)), net.holder(at(cidr, 1)), net.holder(at(cidr, 2))) == ("a", "b", "c")
    with pytest.raises(AddressConflict) as caught:
        net.mark_held("d", at(cidr, 2))
    assert caught.value.holder == "c"
    with pytest.raises(OutOfRange):
        net.mark_held("d", "192.0.2.1" if family == 6 else "10.200.0.1")
    assert str(net.allocate("pod", family)) == at(cidr, 3)
    assert net.release(at(cidr, 1)) == "b"
    assert str(net.allocate("pod2", family)) == at(cidr, 4)


# -- release -------------------------------------------------------------------------------------
@pytest.mark.parametrize(("family", "cidr"), FAMILY)
def test_release_reports_the_former_owner_once(family: int, cidr: str) -> None:
    net = subnet(cidr)
    address = net.allocate("pod", family)
    assert net.release(address) == "pod"
    assert net.release(str(address)) is None
    assert net.release("192.0.2.1") is None
    assert net.held_by("pod", family) is None
    assert net.held_count == 0


def test_owner_holding_several_addresses_keeps_the_rest_on_release() -> None:
    net = subnet("10.0.0.0/24")
    net.claim("pod", "10.0.0.50")
    net.claim("pod", "10.0.0.60")
    assert (net.holder("10.0.0.50"), net.holder("10.0.0.60"), net.held_count) == ("pod", "pod", 2)
    assert str(net.held_by("pod", 4)) == "10.0.0.50"
    assert str(net.allocate("pod", 4)) == "10.0.0.50"
    net.release("10.0.0.50")
    assert (net.holder("10.0.0.50"), net.holder("10.0.0.60"), net.held_count) == (None, "pod", 1)
    assert str(net.held_by("pod", 4)) == "10.0.0.60"


# -- allocate_all --------------------------------------------------------------------------------
def test_allocate_all_gives_one_address_per_family() -> None:
    net = subnet("10.0.0.0/24,fd00::/64")
    got = net.allocate_all("pod")
    assert [str(a) for a in got] == ["10.0.0.2", "fd00::2"]
    assert net.allocate_all("pod") == got
    assert net.usage() == Usage(v4_available=253 - 1, v4_using=1, v6_available=2**64 - 3 - 1, v6_using=1)


@pytest.mark.parametrize(
    ("fixed", "expected"),
    [
        pytest.param(["10.0.0.100"], ["10.0.0.100", "fd00::2"], id="v4-fixed"),
        pytest.param(["fd00::100"], ["10.0.0.2", "fd00::100"], id="v6-fixed"),
        pytest.param(["fd00::100", "10.0.0.100"], ["10.0.0.100", "fd00::100"], id="both-fixed"),
    ],
)
def test_allocate_all_claims_fixed_and_allocates_the_other_family(fixed, expected) -> None:
    net = subnet("10.0.0.0/24,fd00::/64")
    assert [str(a) for a in net.allocate_all("pod", fixed)] == expected
    assert [str(net.held_by("pod", family)) for family in (4, 6)] == expected
    assert [net.holder(address) for address in expected] == ["pod", "pod"]
    assert net.held_count == 2


def test_allocate_all_accepts_the_annotation_text() -> None:
    net = subnet("10.0.0.0/24,fd00::/64")
    assert [str(a) for a in net.allocate_all("pod", "fd00::7, 10.0.0.7")] == ["10.0.0.7", "fd00::7"]
    assert [str(a) for a in net.allocate_all("other", "10.0.0.8")] == ["10.0.0.8", "fd00::2"]


def test_allocate_all_is_all_or_nothing_when_a_family_is_exhausted() -> None:
    net = subnet("10.0.0.0/24,fd00::/126")  # IPv6 usable 1..2, gateway 1: one to hand out
    net.allocate("first", 6)
    before = net.usage()
    with pytest.raises(SubnetExhausted, match="no free IPv6 address"):
        net.allocate_all("pod")
    with pytest.raises(SubnetExhausted):
        net.allocate_all("pod", ["10.0.0.77"])
    assert net.usage() == before
    assert (net.held_by("pod", 4), net.held_by("pod", 6)) == (None, None)
    assert net.holder("10.0.0.77") is None
    assert str(net.allocate("other", 4)) == "10.0.0.2"


def test_allocate_all_rollback_restores_the_reuse_order() -> None:
    net = subnet("10.9.0.0/29,fd00::/126")
    v4 = [str(net.allocate(f"p{i}", 4)) for i in range(5)]
    net.allocate("v6", 6)
    net.release(v4[3])
    net.release(v4[1])
    with pytest.raises(SubnetExhausted):
        net.allocate_all("pod")
    assert [str(net.allocate(f"n{i}", 4)) for i in range(2)] == [v4[3], v4[1]]


def test_allocate_all_refuses_bad_fixed_addresses_without_changes() -> None:
    net = subnet("10.0.0.0/24,fd00::/64")
    net.claim("other", "10.0.0.5")
    with pytest.raises(AddressConflict):
        net.allocate_all("pod", ["10.0.0.5"])
    with pytest.raises(InvalidAddress, match="name two IPv4 addresses; give at most one per family"):
        net.allocate_all("pod", ["10.0.0.6", "10.0.0.7"])
    with pytest.raises(OutOfRange):
        net.allocate_all("pod", ["10.1.0.6"])
    assert net.held_count == 1


def test_allocate_all_single_stack() -> None:
    net = subnet("fd00::/64")
    assert [str(a) for a in net.allocate_all("pod", ["fd00::9"])] == ["fd00::9"]
    with pytest.raises(OutOfRange, match=r"10\.0\.0\.1 is outside subnet net"):
        net.allocate_all("other", ["10.0.0.1"])


# -- usage and scale ------------------------------------------------------------------------------
@pytest.mark.parametrize(("family", "cidr"), FAMILY)
def test_usage_is_exact(family: int, cidr: str) -> None:
    net = subnet(cidr, excludeIps=[f"{at(cidr, 10)}..{at(cidr, 19)}"])
    size = 2 ** (32 - 16) if family == 4 else 2**64
    usable = size - 2 - 1 - 10
    assert _available(net.usage(), family) == usable
    net.allocate("a", family)
    net.claim("b", at(cidr, 15))
    usage = net.usage()
    assert _available(usage, family) == usable - 1
    assert getattr(usage, f"v{family}_using") == 2
    assert isinstance(_available(usage, family), int)


@pytest.mark.parametrize(
    ("cidr", "family", "size"),
    [
        pytest.param("10.0.0.0/8", 4, 2**24, id="ipv4-slash8"),
        pytest.param("fd00:8::/64", 6, 2**64, id="ipv6-slash64"),
    ],
)
def test_huge_blocks_behave_like_small_ones(cidr: str, family: int, size: int) -> None:
    net = subnet(cidr)
    got = [net.allocate(f"pod-{i}", family) for i in range(3000)]
    first = netaddr.IPNetwork(cidr).first
    assert [int(a) - first for a in got] == list(range(2, 3002))
    for address in got[::2]:
        net.release(address)
    assert net.usage() == _with(family, available=size - 3 - 1500, using=1500)
    assert int(net.allocate("late", family)) - first == 3002


def test_building_huge_subnets_costs_no_per_address_memory() -> None:
    tracemalloc.start()
    try:
        net = subnet(
            "10.0.0.0/8,fd00:8::/64", excludeIps=["10.1.0.0..10.200.0.0", "fd00:8::1:0..fd00:8::ffff:0"]
        )
        built = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert built < 100_000, built
    assert net.usage().v4_available == 2**24 - 2 - 1 - (200 << 16) + (1 << 16) - 1


# -- MACs ----------------------------------------------------------------------------------------
def test_allocate_mac_is_random_local_unicast_unique_and_idempotent() -> None:
    net = subnet("10.0.0.0/16")
    macs = {net.allocate_mac(f"pod-{i}") for i in range(2000)}
    assert len(macs) == 2000
    for mac in macs:
        first = int(mac[:2], 16)
        assert first & 0x02 and not first & 0x01
        assert mac == mac.lower()
    assert net.allocate_mac("pod-7") == net.allocate_mac("pod-7") == net.mac_of("pod-7")


def test_allocate_mac_skips_a_mac_already_held() -> None:
    net = Subnet(SubnetSpec.parse("net", {"cidrBlock": "10.0.0.0/24"}), rng=random.Random(5))
    taken = format_mac(random_mac_value(random.Random(5)))
    net.claim_mac("static", taken)
    assert net.allocate_mac("pod") != taken


def test_fixed_mac_from_the_guide_is_normalised_and_held() -> None:
    net = subnet("172.17.0.0/16")
    assert net.claim_mac("default/static-ip", "00:00:00:53:6B:BB") == "00:00:00:53:6b:bb"
    assert net.claim_mac("default/static-ip", "00-00-00-53-6b-bb") == "00:00:00:53:6b:bb"
    with pytest.raises(AddressConflict) as caught:
        net.claim_mac("default/other", "00:00:00:53:6b:bb")
    assert caught.value.holder == "default/static-ip"
    assert "MAC 00:00:00:53:6b:bb is held by default/static-ip in subnet net" in str(caught.value)
    with pytest.raises(AddressConflict):
        net.check_mac("default/other", "00:00:00:53:6B:BB")
    assert net.check_mac("default/static-ip", "00:00:00:53:6B:BB") == "00:00:00:53:6b:bb"
    assert net.release_mac("00:00:00:53:6B:BB") == "default/static-ip"
    assert net.check_mac("default/other", "00:00:00:53:6B:BB") == "00:00:00:53:6b:bb"
    assert net.mac_of("default/other") is None


def test_bad_fixed_macs_are_refused() -> None:
    net = subnet("172.17.0.0/16")
    with pytest.raises(InvalidMAC, match="multicast"):
        net.claim_mac("pod", "01:00:5e:00:00:01")
    with pytest.raises(InvalidMAC, match="is not a MAC address"):
        net.claim_mac("pod", "00:00:00:53:6B")
    assert net.mac_of("pod") is None


def test_mark_mac_held_is_idempotent_and_conflicts_with_others() -> None:
    net = subnet("172.17.0.0/16")
    net.mark_mac_held("a", "02:00:00:00:00:01")
    net.mark_mac_held("a", "02:00:00:00:00:01")
    with pytest.raises(AddressConflict):
        net.mark_mac_held("b", "02:00:00:00:00:01")
    assert net.allocate_mac("a") == "02:00:00:00:00:01"


# -- helpers -------------------------------------------------------------------------------------
def _available(usage: Usage, family: int) -> int:
    return getattr(usage, f"v{family}_available")


def _using(usage: Usage, family: int, extra: int) -> Usage:
    """``usage`` after ``extra`` more addresses are held outside the allocatable ones."""
    key = f"v{family}_using"
    return Usage(**{**usage.__dict__, key: getattr(usage, key) + extra})


def _with(family: int, *, available: int, using: int) -> Usage:
    return Usage(
        **{
            "v4_available": 0,
            "v4_using": 0,
            "v6_available": 0,
            "v6_using": 0,
            f"v{family}_available": available,
            f"v{family}_using": using,
        }
    )


# -- next_never_used: what allocate would hand out next, read without taking -----------------------
def test_next_never_used_lists_what_allocate_hands_out_next_and_takes_nothing() -> None:
    alloc = Subnet(SubnetSpec.parse("macvlan", GUIDE_SPEC))
    ahead = alloc.next_never_used(4, 3)
    assert [str(netaddr.IPAddress(v)) for v in ahead] == ["172.17.0.11", "172.17.0.12", "172.17.0.13"]
    assert [int(alloc.allocate(f"o{i}", 4)) for i in range(3)] == ahead


def test_next_never_used_skips_held_and_released_addresses_and_unknown_families() -> None:
    alloc = Subnet(SubnetSpec.parse("macvlan", GUIDE_SPEC))
    alloc.claim("fixed", "172.17.0.12")
    alloc.allocate("a", 4)
    alloc.release("172.17.0.11")  # released: reused only once the never-used ones are gone
    assert [str(netaddr.IPAddress(v)) for v in alloc.next_never_used(4, 2)] == ["172.17.0.13", "172.17.0.14"]
    assert alloc.next_never_used(6, 2) == []
