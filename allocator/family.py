"""The allocation state of one address family of a subnet: ints only.

Like Kube-OVN's ``Subnet.IPPools`` (the default pool ``""`` plus one per ``IPPool``), the usable
addresses are split into buckets: each named IPPool's addresses form its own bucket, everything
else is the subnet's own bucket ``""``. Ordinary pods draw from ``""`` only, so a pool's addresses
go only to pods of that pool. Each bucket keeps never-used addresses as an ``IPRangeSet`` and a
FIFO of released ones, reused only once the never-used ones are gone.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass

from allocator.owned import Owned
from allocator.ranges import IPRangeSet
from allocator.usable import FamilyRule

SUBNET_BUCKET = ""  # the addresses of no IPPool


@dataclass(frozen=True)
class PoolDef:
    """A named IPPool of a subnet: its addresses (``(version, low, high)`` ranges) and the
    namespaces whose pods draw from it without naming it."""

    name: str
    ranges: tuple[tuple[int, int, int], ...]
    namespaces: tuple[str, ...] = ()


class Bucket:
    """Free addresses of one pool (or of the subnet outside every pool)."""

    __slots__ = ("free", "released", "usable")

    def __init__(self, free: IPRangeSet) -> None:
        self.free = free
        self.released: OrderedDict[int, None] = OrderedDict()
        self.usable = free.size  # how many addresses it can ever hold, for exhaustion messages

    @property
    def available(self) -> int:
        return self.free.size + len(self.released)

    def pop(self) -> tuple[int, bool] | None:
        """The lowest never-used address, else the longest-released one; with where it came from."""
        value = self.free.pop_first()
        if value is not None:
            return value, True
        if self.released:
            return self.released.popitem(last=False)[0], False
        return None

    def take(self, value: int) -> None:
        if not self.free.discard(value):
            self.released.pop(value, None)

    def put_back(self, value: int, from_free: bool) -> None:
        """Undo ``pop`` exactly: the address goes back where it came from."""
        if from_free:
            self.free.add(value, value)
        else:
            self.released[value] = None
            self.released.move_to_end(value, last=False)


class Family:
    """One family of a subnet: its rule, buckets, held addresses and their owners."""

    __slots__ = ("buckets", "held", "members", "owners", "rule")

    def __init__(self, rule: FamilyRule) -> None:
        self.rule = rule
        self.members: dict[str, IPRangeSet] = {}  # IPPool name → its addresses in this block
        self.buckets: dict[str, Bucket] = {SUBNET_BUCKET: Bucket(rule.free_ranges())}
        self.held: dict[int, str] = {}
        self.owners: dict[str, Owned] = {}

    @property
    def version(self) -> int:
        return self.rule.version

    def bucket_of(self, value: int) -> str:
        """The IPPool whose addresses include ``value``, or ``""``."""
        for name, members in self.members.items():
            if value in members:
                return name
        return SUBNET_BUCKET

    def set_pools(self, pools: Mapping[str, IPRangeSet]) -> None:
        """Split the usable addresses anew among ``pools`` (name → addresses; the first name in
        sorted order keeps an address two pools list). Released addresses keep their order."""
        first, last = self.rule.block
        claimed = IPRangeSet()
        members: dict[str, IPRangeSet] = {}
        for name in sorted(pools):
            own = IPRangeSet()
            for start, end in pools[name].intervals():
                low, high = max(start, first), min(end, last)
                if low <= high:
                    own.add(low, high)
            for low, high in claimed.intervals():
                own.remove(low, high)
            if own:
                members[name] = own
                for low, high in own.intervals():
                    claimed.add(low, high)
        released = [value for bucket in self.buckets.values() for value in bucket.released]
        self.members = members
        subnet_free = self.rule.free_ranges()
        self.buckets = {}
        for name, own in members.items():
            free = _intersect(subnet_free, own)
            self.buckets[name] = Bucket(free)
        for low, high in claimed.intervals():
            subnet_free.remove(low, high)
        self.buckets[SUBNET_BUCKET] = Bucket(subnet_free)
        for bucket in self.buckets.values():
            bucket.usable = bucket.free.size
        for value in self.held:
            self.buckets[self.bucket_of(value)].free.discard(value)
        for value in released:
            if value not in self.held and self.rule.usable(value):
                bucket = self.buckets[self.bucket_of(value)]
                bucket.free.discard(value)
                bucket.released[value] = None

    def take(self, value: int) -> None:
        """Remove a specific address from its bucket (it is being held)."""
        self.buckets[self.bucket_of(value)].take(value)

    def free_again(self, value: int) -> None:
        """An address no longer held: usable ones join the back of their bucket's reuse queue."""
        if self.rule.usable(value):
            self.buckets[self.bucket_of(value)].released[value] = None

    @property
    def available(self) -> int:
        return sum(bucket.available for bucket in self.buckets.values())


def _intersect(ranges: IPRangeSet, other: IPRangeSet) -> IPRangeSet:
    result = IPRangeSet()
    for low, high in other.intervals():
        for start, end in ranges.intervals():
            if end < low or start > high:
                continue
            result.add(max(low, start), min(high, end))
    return result
