"""MACs: random ones are locally administered unicast; fixed ones are validated and normalised."""

from __future__ import annotations

import random
import re

import pytest

from allocator.errors import InvalidAddress, InvalidMAC
from allocator.mac import format_mac, mac_to_int, normalise_mac, random_mac_value

COLON_FORM = re.compile(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}")


@pytest.mark.parametrize("seed", range(50))
def test_random_mac_is_locally_administered_unicast(seed: int) -> None:
    mac = format_mac(random_mac_value(random.Random(seed)))
    assert COLON_FORM.fullmatch(mac)
    first = int(mac[:2], 16)
    assert first & 0x02, mac
    assert not first & 0x01, mac


def test_random_mac_follows_the_generator() -> None:
    assert random_mac_value(random.Random(9)) == random_mac_value(random.Random(9))
    assert len({random_mac_value() for _ in range(500)}) == 500


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("00:00:00:53:6B:BB", "00:00:00:53:6b:bb"),
        ("00:00:00:53:6B:B6", "00:00:00:53:6b:b6"),
        ("02-AB-cd-00-00-01", "02:ab:cd:00:00:01"),
        (" 0a:00:00:00:00:01 ", "0a:00:00:00:00:01"),
    ],
)
def test_normalise_mac_accepts_the_guide_and_dash_forms(text: str, expected: str) -> None:
    assert normalise_mac(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("01:00:5e:00:00:01", "is a multicast MAC address"),
        ("ff:ff:ff:ff:ff:ff", "is a multicast MAC address"),
        ("00:00:00:00:00:00", "is the all-zero MAC address"),
        ("00:00:00:53:6B", "is not a MAC address"),
        ("00:00:00:53:6B:BB:01", "is not a MAC address"),
        ("zz:00:00:53:6b:bb", "is not a MAC address"),
        ("00:00-00:53:6b:bb", "is not a MAC address"),
        ("0000.0053.6bbb", "is not a MAC address"),
        ("", "is not a MAC address"),
        (42, "42 is not a MAC address"),
    ],
)
def test_bad_macs_are_refused_naming_the_value(text: object, message: str) -> None:
    with pytest.raises(InvalidMAC) as caught:
        normalise_mac(text)  # type: ignore[arg-type]
    assert message in str(caught.value)
    assert str(text).strip() in str(caught.value)
    assert isinstance(caught.value, InvalidAddress)


def test_integer_round_trip() -> None:
    assert mac_to_int("00:00:00:53:6b:bb") == 0x536BBB
    assert format_mac(0x536BBB) == "00:00:00:53:6b:bb"


def test_a_mac_already_in_normal_form_is_returned_as_it_is() -> None:
    held = "".join(["02:00:00:53:6b:bb"])
    assert normalise_mac(held) is held  # indexes share the string their objects hold
    assert normalise_mac("02-00-00-53-6B-BB") == held
