"""IPPool rules: the Subnet exists, the pool stays inside it, pools of one Subnet do not share."""

from __future__ import annotations

import pytest

from .world import LiveReads, World, subnet


def _pool(name: str, subnet_name: str, ips: object) -> dict:
    return {
        "apiVersion": "kubeovn.io/v1",
        "kind": "IPPool",
        "metadata": {"name": name},
        "spec": {"subnet": subnet_name, "ips": ips},
    }


def _world() -> World:
    world = World()
    world.subnet("macvlan", provider="macvlan.default", cidrBlock="172.17.0.0/16,fd00:10::/64")
    return world


@pytest.mark.parametrize(
    "ips",
    [
        ["172.17.0.201", "172.17.0.208/29", "172.17.0.220..172.17.0.230"],
        ["fd00:10::201", "fd00:10::200/124", "fd00:10::a0..fd00:10::af"],
    ],
    ids=["ipv4", "ipv6"],
)
def test_ips_cidrs_and_ranges_inside_the_subnet_are_allowed(ips: list[str]) -> None:
    verdict = _world().review(_pool("pool-1", "macvlan", ips))
    assert verdict.allowed, verdict.message
    assert verdict.warnings == ()


def test_missing_subnet_is_refused_naming_the_existing_ones() -> None:
    verdict = _world().review(_pool("pool-1", "macvlan2", ["172.17.0.201"]))
    assert not verdict.allowed
    assert 'names Subnet "macvlan2" in spec.subnet, which does not exist' in verdict.message
    assert "(macvlan)" in verdict.message


@pytest.mark.parametrize(
    ("entry", "first_outside"),
    [
        ("172.18.0.1", "172.18.0.1"),
        ("172.17.255.250..172.18.0.3", "172.18.0.0"),
        ("fd00:11::/64", "fd00:11::"),
    ],
)
def test_ips_reaching_outside_the_subnet_are_refused(entry: str, first_outside: str) -> None:
    verdict = _world().review(_pool("pool-1", "macvlan", [entry]))
    assert not verdict.allowed
    assert f"reaches {first_outside}, outside Subnet macvlan (172.17.0.0/16,fd00:10::/64)" in verdict.message


@pytest.mark.parametrize(
    ("entry", "reason"),
    [
        ("172.17.0.30..172.17.0.20", "starts after it ends"),
        ("172.17.0.20..fd00:10::1", "mixes IPv4 and IPv6"),
        ("172.17.0.1/24", "host bits set; the network is 172.17.0.0/24"),
        ("172.17.0", ""),
    ],
)
def test_malformed_entries_are_refused_with_the_reason(entry: str, reason: str) -> None:
    verdict = _world().review(_pool("pool-1", "macvlan", [entry]))
    assert not verdict.allowed
    assert verdict.code == 422
    assert (
        f'spec.ips entry "{entry}" of IPPool pool-1 is not a usable IP, CIDR or a..b range' in verdict.message
    )
    assert reason in verdict.message


def test_overlap_with_another_pool_of_the_same_subnet_is_refused_naming_it() -> None:
    world = _world()
    world.ippool("pool-1", "macvlan", ["172.17.0.200..172.17.0.210"])
    verdict = world.review(_pool("pool-2", "macvlan", ["172.17.0.208/29"]))
    assert not verdict.allowed
    assert verdict.code == 409
    assert "IPPool pool-2 shares 172.17.0.208 with IPPool pool-1 of Subnet macvlan" in verdict.message
    assert world.review(_pool("pool-2", "macvlan", ["172.17.0.216/29"])).allowed
    # updating pool-1 itself is not an overlap with itself
    assert world.review(
        _pool("pool-1", "macvlan", ["172.17.0.200..172.17.0.220"]),
        operation="UPDATE",
        old=world.view.ippool("pool-1"),
    ).allowed


def test_pool_named_like_an_ip_address_is_refused() -> None:
    verdict = _world().review(_pool("172.17.0.1", "macvlan", ["172.17.0.201"]))
    assert not verdict.allowed
    assert 'IPPool name "172.17.0.1" is an IP address' in verdict.message


def test_empty_pool_and_a_pool_covering_the_gateway_warn() -> None:
    world = _world()
    assert any("has no ips" in w for w in world.review(_pool("pool-1", "macvlan", [])).warnings)
    verdict = world.review(_pool("pool-1", "macvlan", ["172.17.0.0/29"]))
    assert verdict.allowed
    assert any("covers 172.17.0.0, the network address of subnet macvlan" in w for w in verdict.warnings)
    verdict = world.review(_pool("pool-1", "macvlan", ["172.17.0.1..172.17.0.5"]))
    assert verdict.allowed
    assert any("covers 172.17.0.1, the gateway of subnet macvlan" in w for w in verdict.warnings)


def test_ips_that_are_not_a_list_are_refused() -> None:
    verdict = _world().review(_pool("pool-1", "macvlan", "172.17.0.201"))
    assert not verdict.allowed
    assert "spec.ips of IPPool pool-1 is not a list" in verdict.message


def test_subnet_applied_in_the_same_file_is_read_live_and_the_pool_allowed() -> None:
    """`kubectl apply -f` of a Subnet and its IPPool: the pool's review may come before the watch."""
    live = LiveReads(subnets=(subnet("macvlan2", provider="macvlan.default", cidrBlock="172.19.0.0/16"),))
    verdict = _world().review(_pool("pool-1", "macvlan2", ["172.19.0.201"]), live=live)
    assert verdict.allowed, verdict.message
    assert live.asked == ["subnet macvlan2"]
    refused = _world().review(_pool("pool-1", "macvlan2", ["172.19.0.201"]), live=LiveReads())
    assert not refused.allowed
    assert "names Subnet \"macvlan2\" in spec.subnet, which does not exist" in refused.message
