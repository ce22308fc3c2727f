"""Which addresses of a subnet may be handed out, and why not the others: the one place of that rule.

Kube-OVN's ``NewSubnet`` builds each family's free list from ``FirstIP..LastIP`` (network+1 ..
broadcast-1, and IPv6's all-ones address kept out alike) minus ``excludeIps``, where the controller
has put the gateway. The same here: a ``FamilyRule`` per block answers "usable?" for the hot path
with ints, and "why not?" with the phrase every refusal uses (``10.0.0.1 is the gateway of subnet
net``). Fixed claims (``ip_address``) may take an excluded address, as Kube-OVN's
``GetStaticAddress`` allows; nothing else may.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import netaddr

from allocator.ranges import IPRangeSet

_MAX_PREFIX = {4: 32, 6: 128}


def usable_bounds(cidr: netaddr.IPNetwork) -> tuple[int, int]:
    """First and last address that may be handed out: network+1 .. last-1, whole /31 and /127."""
    first, last = cidr.first, cidr.last
    if cidr.prefixlen == _MAX_PREFIX[cidr.version] - 1:
        return first, last
    return first + 1, last - 1


@dataclass(frozen=True, eq=False)
class FamilyRule:
    """The handing-out rule of one family block of a subnet (ints, for the allocator's hot path)."""

    subnet: str
    cidr: netaddr.IPNetwork
    gateway: int
    excluded: IPRangeSet
    bounds: tuple[int, int] = field(init=False)  # the lowest and highest address ever handed out
    block: tuple[int, int] = field(init=False)  # the first and last address of the CIDR
    version: int = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "bounds", usable_bounds(self.cidr))
        object.__setattr__(self, "block", (self.cidr.first, self.cidr.last))
        object.__setattr__(self, "version", self.cidr.version)

    def contains(self, value: int) -> bool:
        """Whether ``value`` lies inside the CIDR block."""
        return self.block[0] <= value <= self.block[1]

    def usable(self, value: int) -> bool:
        """Whether a pod may be given ``value`` by sequential or pool allocation."""
        low, high = self.bounds
        return low <= value <= high and value != self.gateway and value not in self.excluded

    def why_not(self, value: int, *, fixed: bool = False) -> str:
        """Why ``value`` can not be handed out ("" when it can); ``fixed`` allows excluded addresses."""
        cidr, low, high = self.cidr, *self.bounds
        if not self.contains(value):
            return f"outside subnet {self.subnet} ({cidr})"
        if value < low:
            return f"the network address of subnet {self.subnet} ({cidr})"
        if value > high:
            what = "broadcast" if cidr.version == 4 else "last"
            return f"the {what} address of subnet {self.subnet} ({cidr})"
        if value == self.gateway:
            return f"the gateway of subnet {self.subnet}"
        if not fixed and value in self.excluded:
            return f"in excludeIps of subnet {self.subnet}"
        return ""

    def first_unusable(self, low: int, high: int) -> int | None:
        """The lowest address of ``[low, high]`` inside the block that may not be handed out."""
        bottom, top = self.bounds
        candidates = [self.block[0]] if low < bottom else []
        if high > top:
            candidates.append(max(low, top + 1))
        if low <= self.gateway <= high:
            candidates.append(self.gateway)
        candidates += [
            max(start, low) for start, end in self.excluded.intervals() if start <= high and end >= low
        ]
        inside = [c for c in candidates if low <= c <= high and self.contains(c)]
        return min(inside, default=None)

    def free_ranges(self) -> IPRangeSet:
        """Every usable address as ranges: the bounds minus the gateway and the excluded ranges."""
        free = IPRangeSet()
        free.add(*self.bounds)
        free.discard(self.gateway)
        for low, high in self.excluded.intervals():
            free.remove(low, high)
        return free
