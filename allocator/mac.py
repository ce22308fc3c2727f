"""MAC addresses: random locally administered unicast ones, and strict parsing of fixed ones.

Random MACs set the locally administered bit so they can never collide with a vendor-assigned
address, and clear the multicast bit because a NIC cannot own a group address. Fixed MACs
from annotations (``00:00:00:53:6B:BB`` in the guide) may be universally administered, but
never multicast or all zeros.
"""

from __future__ import annotations

import random
import re

from allocator.errors import InvalidMAC

_LOCAL = 0x02 << 40
_MULTICAST = 0x01 << 40
_MAC = re.compile(r"[0-9A-Fa-f]{2}([:-])[0-9A-Fa-f]{2}(?:\1[0-9A-Fa-f]{2}){4}")


def random_mac_value(rng: random.Random | None = None) -> int:
    """The 48-bit integer of a random, locally administered, unicast MAC."""
    return ((rng or random).getrandbits(48) | _LOCAL) & ~_MULTICAST


def mac_to_int(text: str) -> int:
    """Parse and validate a MAC (``aa:bb:…`` or ``aa-bb-…``) into a 48-bit integer."""
    if not isinstance(text, str) or not _MAC.fullmatch(text.strip()):
        raise InvalidMAC(f"{text!r} is not a MAC address; write six hex pairs like 00:00:00:53:6b:bb")
    value = int(re.sub(r"[:-]", "", text.strip()), 16)
    if value & _MULTICAST:
        raise InvalidMAC(
            f"{text} is a multicast MAC address (lowest bit of the first octet set); "
            "a NIC needs a unicast one such as 02:00:00:53:6b:bb"
        )
    if value == 0:
        raise InvalidMAC(f"{text} is the all-zero MAC address; choose a unicast one like 02:00:00:53:6b:bb")
    return value


def format_mac(value: int) -> str:
    """Lowercase colon form of a 48-bit integer."""
    raw = f"{value:012x}"
    return ":".join(raw[i : i + 2] for i in range(0, 12, 2))


def normalise_mac(text: str) -> str:
    """Validate a MAC and return it in lowercase colon form (`text` itself when it is in that form:
    indexes keyed by the normal form then share the string their objects hold)."""
    normal = format_mac(mac_to_int(text))
    return text if text == normal else normal
