"""The MACs held in one subnet: random ones handed out, fixed ones claimed, each with its owner.

A MAC is unique within its subnet (Kube-OVN's ``IPAM.GetStaticAddress`` refuses a MAC another pod
of the subnet holds); ``allocator.mac`` parses and formats them.
"""

from __future__ import annotations

import random

from allocator.errors import AddressConflict, SubnetExhausted
from allocator.mac import format_mac, mac_to_int, random_mac_value
from allocator.owned import Owned, add_owned, drop_owned, first_owned

_ATTEMPTS = 64


class MacTable:
    """Held MACs (as 48-bit ints) → owner, and owner → its MACs."""

    __slots__ = ("_holders", "_owners", "_rng", "subnet")

    def __init__(self, subnet: str, rng: random.Random) -> None:
        self.subnet = subnet
        self._holders: dict[int, str] = {}
        self._owners: dict[str, Owned] = {}
        self._rng = rng

    def allocate(self, owner: str) -> str:
        """The owner's MAC: the one it holds, else a new random locally administered unicast one."""
        mine = self._owners.get(owner)
        if mine is not None:
            return format_mac(first_owned(mine))
        for _ in range(_ATTEMPTS):
            value = random_mac_value(self._rng)
            if value not in self._holders:
                self._record(value, owner)
                return format_mac(value)
        raise SubnetExhausted(f"subnet {self.subnet} found no unused random MAC in {_ATTEMPTS} attempts")

    def claim(self, owner: str, mac: str) -> str:
        """Hold a fixed MAC for ``owner`` (idempotent); return it normalised."""
        value = self._check(owner, mac)
        if value not in self._holders:
            self._record(value, owner)
        return format_mac(value)

    def check(self, owner: str, mac: str) -> str:
        """Raise what ``claim`` would raise, changing nothing; return the normalised MAC."""
        return format_mac(self._check(owner, mac))

    def release(self, mac: str) -> str | None:
        """Free a MAC; return its former owner (None if it was not held)."""
        value = mac_to_int(mac)
        holder = self._holders.pop(value, None)
        if holder is not None:
            drop_owned(self._owners, holder, value)
        return holder

    def of(self, owner: str) -> str | None:
        """The MAC the owner holds, if any."""
        mine = self._owners.get(owner)
        return None if mine is None else format_mac(first_owned(mine))

    def _check(self, owner: str, mac: str) -> int:
        value = mac_to_int(mac)
        holder = self._holders.get(value)
        if holder is not None and holder != owner:
            raise AddressConflict(
                f"MAC {format_mac(value)} is held by {holder} in subnet {self.subnet}; choose another MAC "
                "or omit it to get a random one",
                holder=holder,
            )
        return value

    def _record(self, value: int, owner: str) -> None:
        self._holders[value] = owner
        add_owned(self._owners, owner, value)
