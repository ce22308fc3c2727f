"""ip_pool values: address lists, dual-stack pairs, IPPool names, and StatefulSet ordinals."""

from __future__ import annotations

import pytest

from allocator.errors import PoolExhausted, PoolSpecError
from allocator.pools import PoolSpec, choose_entry, format_entries, parse_ip_pool, statefulset_ordinal


def USABLE(address: str) -> str:  # noqa: N802 - a rule that refuses nothing
    return ""


@pytest.mark.parametrize(
    ("value", "entries"),
    [
        pytest.param(
            "172.17.0.200,172.17.0.201,172.17.0.202",
            (("172.17.0.200",), ("172.17.0.201",), ("172.17.0.202",)),
            id="guide-macvlan",
        ),
        pytest.param(
            "10.16.0.15,10.16.0.16,10.16.0.17",
            (("10.16.0.15",), ("10.16.0.16",), ("10.16.0.17",)),
            id="guide-ovn",
        ),
        pytest.param("10.16.0.15", (("10.16.0.15",),), id="single-address"),
        pytest.param(" 10.0.0.1 , FD00::A ", (("10.0.0.1", "fd00::a"),), id="spaces-and-case"),
        # Kube-OVN's acquireAddress: exactly two addresses of different families are one entry
        pytest.param("10.0.0.30,fd00::30", (("10.0.0.30", "fd00::30"),), id="dual-pair-without-semicolon"),
        pytest.param("10.0.0.30,10.0.0.31", (("10.0.0.30",), ("10.0.0.31",)), id="two-v4-are-two-entries"),
        pytest.param(
            "10.16.0.15,fd00::f;10.16.0.16,fd00::10",
            (("10.16.0.15", "fd00::f"), ("10.16.0.16", "fd00::10")),
            id="dual-pairs",
        ),
        pytest.param(
            "fd00::f,10.16.0.15;10.16.0.16", (("10.16.0.15", "fd00::f"), ("10.16.0.16",)), id="pair-v4-first"
        ),
        pytest.param("10.0.0.1;10.0.0.2", (("10.0.0.1",), ("10.0.0.2",)), id="semicolon-singles"),
    ],
)
def test_address_lists(value: str, entries: tuple[tuple[str, ...], ...]) -> None:
    assert parse_ip_pool(value) == PoolSpec(entries=entries)


@pytest.mark.parametrize("name", ["my-pool", "pool1", "pools.example"])
def test_single_non_address_token_names_an_ippool(name: str) -> None:
    assert parse_ip_pool(name) == PoolSpec(ippool_name=name)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("10.0.0.1,foo", "ip_pool entry 'foo' is not an IP address"),
        ("10.0.0.1,10.0.0.300", "ip_pool entry '10.0.0.300' is not an IP address"),
        ("10.0.0.300", "ip_pool entry '10.0.0.300' is not an IP address"),
        ("10.0.0.1..10.0.0.5", "ranges and CIDRs go in an IPPool's spec.ips"),
        ("10.0.0.0/24", "ranges and CIDRs go in an IPPool's spec.ips"),
        ("10.0.0.1,", "has an empty entry"),
        ("10.0.0.1;;10.0.0.2", "has an empty entry"),
        ("10.0.0.1,10.0.0.1", "lists 10.0.0.1 twice"),
        ("10.0.0.1,fd00::1;10.0.0.1", "lists 10.0.0.1 twice"),
        ("10.0.0.1,10.0.0.2;10.0.0.3", "pairs two IPv4 addresses"),
        ("10.0.0.1,fd00::1,10.0.0.2;10.0.0.3", "one address or an IPv4,IPv6 pair"),
        ("My_Pool", "'My_Pool' is neither an IP address nor an IPPool name"),
        ("", "is empty"),
        ("  ", "is empty"),
    ],
)
def test_bad_values_name_the_offending_token(value: str, message: str) -> None:
    with pytest.raises(PoolSpecError) as caught:
        parse_ip_pool(value)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("name", "ordinal"),
    [
        ("web-0", 0),
        ("web-12", 12),
        ("my-app-db-7", 7),
        ("web", None),
        ("web-", None),
        ("-3", None),
        ("web-1a", None),
        ("web-\u0663", None),
        ("", None),
    ],
)
def test_statefulset_ordinal(name: str, ordinal: int | None) -> None:
    assert statefulset_ordinal(name) == ordinal


ENTRIES = (("172.17.0.200",), ("172.17.0.201",), ("172.17.0.202",))


def test_statefulset_pod_takes_its_ordinal_entry() -> None:
    got = choose_entry(ENTRIES, ordinal=2, is_free=lambda entry: True, why_unusable=USABLE)
    assert got == ("172.17.0.202",)


def test_statefulset_pod_beyond_the_pool_is_refused() -> None:
    with pytest.raises(PoolExhausted, match="has 3 entries, so StatefulSet pod ordinal 3 has no address"):
        choose_entry(ENTRIES, ordinal=3, is_free=lambda entry: True, why_unusable=USABLE)


def test_statefulset_pod_whose_entry_is_taken_does_not_take_another() -> None:
    held = {("172.17.0.201",)}
    with pytest.raises(PoolExhausted, match=r"entry 172\.17\.0\.201 for StatefulSet pod ordinal 1 is held"):
        choose_entry(ENTRIES, ordinal=1, is_free=lambda entry: entry not in held, why_unusable=USABLE)


def test_other_pods_take_the_first_free_entry_in_order() -> None:
    held = {("172.17.0.200",), ("172.17.0.202",)}
    got = choose_entry(ENTRIES, ordinal=None, is_free=lambda entry: entry not in held, why_unusable=USABLE)
    assert got == ("172.17.0.201",)


def test_a_full_pool_names_itself() -> None:
    with pytest.raises(PoolExhausted) as caught:
        choose_entry(ENTRIES, ordinal=None, is_free=lambda entry: False, why_unusable=USABLE)
    assert str(caught.value).startswith(
        "all 3 addresses of ip_pool 172.17.0.200,172.17.0.201,172.17.0.202 are held"
    )


def test_a_full_dual_stack_pool_counts_entries() -> None:
    pairs = (("10.0.0.1", "fd00::1"), ("10.0.0.2", "fd00::2"))
    with pytest.raises(PoolExhausted) as caught:
        choose_entry(pairs, ordinal=None, is_free=lambda entry: False, why_unusable=USABLE)
    assert "all 2 entries of ip_pool 10.0.0.1,fd00::1;10.0.0.2,fd00::2 are held" in str(caught.value)
    assert format_entries(pairs) == "10.0.0.1,fd00::1;10.0.0.2,fd00::2"


def test_a_one_address_pool_that_is_held_says_so_in_the_singular() -> None:
    with pytest.raises(PoolExhausted, match=r"^the only address of ip_pool 172\.17\.0\.200 is held; "):
        choose_entry((("172.17.0.200",),), ordinal=None, is_free=lambda entry: False, why_unusable=USABLE)
