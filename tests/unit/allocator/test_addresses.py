"""Address parsing is strict, and handed-out addresses format exactly like netaddr."""

from __future__ import annotations

import netaddr
import pytest
from hypothesis import given
from hypothesis import strategies as st

from allocator.addresses import format_ip, parse_ip, to_ipaddress
from allocator.errors import InvalidAddress


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("172.17.0.100", (4, 0xAC110064)),
        ("FD00::1", (6, (0xFD00 << 112) | 1)),
        ("::ffff:10.0.0.1", (6, 0xFFFF0A000001)),
        (netaddr.IPAddress("10.0.0.1"), (4, 0x0A000001)),
    ],
)
def test_parse_ip(text: object, expected: tuple[int, int]) -> None:
    assert parse_ip(text) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize("text", ["10.1", "010.0.0.1", "10.0.0.256", "fe80::1%eth0", "10.0.0.0/8", "", "x"])
def test_parse_ip_is_strict(text: str) -> None:
    with pytest.raises(InvalidAddress, match="is not an IPv4 or IPv6 address"):
        parse_ip(text)


def test_parse_ip_refuses_non_text() -> None:
    with pytest.raises(InvalidAddress, match="17 is not an IP address"):
        parse_ip(17)  # type: ignore[arg-type]


@given(st.integers(min_value=0, max_value=2**128 - 1))
def test_ipv6_text_matches_netaddr(value: int) -> None:
    ours = to_ipaddress(6, value)
    theirs = netaddr.IPAddress(value, 6)
    assert str(ours) == str(theirs) == format_ip(6, value)
    assert ours == theirs and hash(ours) == hash(theirs)
    assert isinstance(ours, netaddr.IPAddress)


@given(st.integers(min_value=0, max_value=2**32 - 1))
def test_ipv4_text_matches_netaddr(value: int) -> None:
    assert str(to_ipaddress(4, value)) == str(netaddr.IPAddress(value, 4)) == format_ip(4, value)


def test_repr_looks_like_netaddr() -> None:
    assert repr(to_ipaddress(4, 1)) == "IPAddress('0.0.0.1')"
