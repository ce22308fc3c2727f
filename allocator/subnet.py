"""A subnet's allocation state (``Subnet``): which addresses and MACs are held, and by whom.

``Subnet`` keeps, per address family (``allocator.family``), only ints: per pool the never-used
free addresses as an ``IPRangeSet`` and a FIFO of released addresses (reused only once the
never-used ones are gone, so a just-freed address is not handed to the next pod while stale routes
or ARP entries still point at it), and the held addresses with their owners. Memory grows with held
addresses and ranges, never with the subnet size; a /8 or an IPv6 /64 behaves like a /24.

The spec it allocates in is ``allocator.subnet_spec.SubnetSpec``; its MACs are an
``allocator.mac_table.MacTable``; its counts are ``allocator.usage``'s.

A ``Subnet`` is not thread-safe: the store serialises access to it.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import netaddr

from allocator.addresses import Address, family_name, parse_ip, to_ipaddress
from allocator.errors import (
    AddressConflict,
    AllocatorError,
    InvalidAddress,
    OutOfRange,
    PoolExhausted,
    SubnetExhausted,
)
from allocator.family import SUBNET_BUCKET, Family, PoolDef
from allocator.mac_table import MacTable
from allocator.owned import add_owned, drop_owned, first_owned
from allocator.ranges import IPRangeSet
from allocator.subnet_spec import SubnetSpec
from allocator.usage import Usage, held_count, usage_of


class Subnet:
    """The mutable allocation state of one subnet: held addresses, free ranges per pool, reuse
    queues, MACs."""

    def __init__(self, spec: SubnetSpec, *, rng: random.Random | None = None) -> None:
        self.spec = spec
        self.name = spec.name
        self._families: dict[int, Family] = {version: Family(rule) for version, rule in spec.rules.items()}
        self._pools: dict[str, PoolDef] = {}
        self._macs = MacTable(spec.name, rng or random.Random())

    def __repr__(self) -> str:
        return f"Subnet({self.name!r}, {self.spec.cidr_block}, held={self.held_count})"

    # -- IPPools -------------------------------------------------------------------------------
    def set_pools(self, pools: Sequence[PoolDef]) -> None:
        """Make ``pools`` the subnet's IPPools: their addresses go only to pods that use them."""
        self._pools = {pool.name: pool for pool in pools}
        for version, state in self._families.items():
            members: dict[str, IPRangeSet] = {}
            for pool in pools:
                ranges = IPRangeSet()
                for family, low, high in pool.ranges:
                    if family == version:
                        ranges.add(low, high)
                members[pool.name] = ranges
            state.set_pools(members)

    def pools_for_namespace(self, namespace: str) -> tuple[str, ...]:
        """The IPPools bound to ``namespace`` by their ``spec.namespaces``, by name."""
        return tuple(sorted(name for name, pool in self._pools.items() if namespace in pool.namespaces))

    def has_pool(self, name: str) -> bool:
        return name in self._pools

    # -- addresses -----------------------------------------------------------------------------
    def allocate(self, owner: str, family: int, pool: str = SUBNET_BUCKET) -> netaddr.IPAddress:
        """The owner's address of ``family``: the one it holds, else the lowest never-used free one
        of ``pool`` (the subnet outside every IPPool by default), else its longest-released one."""
        state = self._family(family)
        mine = state.owners.get(owner)
        if mine is not None:
            return to_ipaddress(state.version, first_owned(mine))
        value = self._pop(state, pool)[0]
        self._record(state, value, owner)
        return to_ipaddress(state.version, value)

    def allocate_all(
        self,
        owner: str,
        fixed: Sequence[Address] = (),
        *,
        families: Sequence[int] | None = None,
        pool: str = SUBNET_BUCKET,
    ) -> tuple[netaddr.IPAddress, ...]:
        """One address per family asked for (all of the subnet's by default; IPv4 first): ``fixed``
        ones claimed, the other families allocated from ``pool``, as Kube-OVN fills the missing
        family of a single-family fixed address on a dual-stack subnet. All or nothing: on any error
        nothing changes. ``fixed`` may also be the annotation text itself (``"v4"`` or ``"v4,v6"``)."""
        if isinstance(fixed, str):
            fixed = [part for part in fixed.split(",") if part.strip()]
        wanted = self.families(families)
        claims: dict[int, tuple[Family, int]] = {}
        for address in fixed:
            state, value, _ = self._check(owner, address)
            if state.version in claims:
                raise InvalidAddress(
                    f"fixed addresses {', '.join(str(a) for a in fixed)} name two "
                    f"{family_name(state.version)} addresses; give at most one per family"
                )
            if state.version not in wanted:
                raise InvalidAddress(
                    f"fixed address {address} is {family_name(state.version)}, but only "
                    f"{' and '.join(family_name(v) for v in wanted)} is asked for; drop it or ask for "
                    f"{family_name(state.version)} too"
                )
            claims[state.version] = (state, value)
        taken: list[tuple[Family, int, str, bool]] = []
        try:
            for version in wanted:
                state = self._families[version]
                if version in claims or state.owners.get(owner) is not None:
                    continue
                value, from_free = self._pop(state, pool)
                self._record(state, value, owner)
                taken.append((state, value, pool, from_free))
        except AllocatorError:
            for state, value, bucket, from_free in taken:
                self._forget(state, value)
                state.buckets[bucket].put_back(value, from_free)
            raise
        for state, value in claims.values():
            if state.held.get(value) != owner:
                self._take(state, value, owner)
        return tuple(
            to_ipaddress(version, claims[version][1])
            if version in claims
            else to_ipaddress(version, first_owned(self._families[version].owners[owner]))
            for version in wanted
        )

    def families(self, asked: Sequence[int] | None = None) -> tuple[int, ...]:
        """The families a pod gets (``SubnetSpec.families_for``)."""
        return self.spec.families_for(asked)

    def claim(self, owner: str, address: Address) -> netaddr.IPAddress:
        """Hold a fixed address for ``owner`` (idempotent); excluded addresses may be claimed.

        An owner may hold several addresses of a family this way; ``allocate`` returns its first."""
        state, value, mine = self._check(owner, address)
        if not mine:
            self._take(state, value, owner)
        return to_ipaddress(state.version, value)

    def check_claim(self, owner: str, address: Address) -> netaddr.IPAddress:
        """Raise what ``claim`` would raise, changing nothing."""
        state, value, _ = self._check(owner, address)
        return to_ipaddress(state.version, value)

    def mark_held(self, owner: str, address: Address) -> None:
        """Record an address already held elsewhere (an IP object), even an excluded one or the
        gateway; only a different holder or an address outside the subnet is refused."""
        state, value = self._locate(address)
        holder = state.held.get(value)
        if holder == owner:
            return
        if holder is not None:
            raise self._conflict(address, holder)
        self._take(state, value, owner)

    def release(self, address: Address) -> str | None:
        """Free an address; return its former owner (None if it was not held). Usable addresses
        join the back of their pool's reuse queue."""
        version, value = parse_ip(address)
        state = self._families.get(version)
        if state is None or value not in state.held:
            return None
        owner = self._forget(state, value)
        state.free_again(value)
        return owner

    def next_never_used(self, version: int, count: int, pool: str = SUBNET_BUCKET) -> list[int]:
        """The ``count`` lowest never-used free addresses of ``pool`` (what ``allocate`` hands out
        next, in that order), as integers; none taken. Empty for a family the subnet lacks."""
        state = self._families.get(version)
        bucket = None if state is None else state.buckets.get(pool)
        return [] if bucket is None else bucket.free.lowest(count)

    def is_free(self, version: int, value: int, pool: str = SUBNET_BUCKET) -> bool:
        """Whether ``pool`` could hand out this address now: usable, of that pool, not held."""
        state = self._families.get(version)
        return (
            state is not None
            and state.rule.usable(value)
            and value not in state.held
            and state.bucket_of(value) == pool
        )

    def held_by(self, owner: str, family: int) -> netaddr.IPAddress | None:
        """The first address of ``family`` the owner holds, if any."""
        mine = self._family(family).owners.get(owner)
        return None if mine is None else to_ipaddress(family, first_owned(mine))

    def holder(self, address: Address) -> str | None:
        """The owner holding ``address``, if any."""
        version, value = parse_ip(address)
        state = self._families.get(version)
        return None if state is None else state.held.get(value)

    @property
    def held_count(self) -> int:
        """How many addresses are held, all families together."""
        return held_count(self._families)

    def usage(self) -> Usage:
        """Exact counts per family; available excludes gateway, excluded, network and last addresses."""
        return usage_of(self._families)

    def available(self, family: int, pool: str = SUBNET_BUCKET) -> int:
        """How many addresses of ``family`` the pool (or the subnet outside its pools) has left."""
        bucket = self._family(family).buckets.get(pool)
        return 0 if bucket is None else bucket.available

    # -- MACs (``MacTable``) ------------------------------------------------------------------
    def allocate_mac(self, owner: str) -> str:
        """The owner's MAC: the one it holds, else a new random locally administered unicast one."""
        return self._macs.allocate(owner)

    def claim_mac(self, owner: str, mac: str) -> str:
        """Hold a fixed MAC for ``owner`` (idempotent); return it normalised."""
        return self._macs.claim(owner, mac)

    def check_mac(self, owner: str, mac: str) -> str:
        """Raise what ``claim_mac`` would raise, changing nothing; return the normalised MAC."""
        return self._macs.check(owner, mac)

    def mark_mac_held(self, owner: str, mac: str) -> None:
        """Record a MAC already held elsewhere (an IP object)."""
        self._macs.claim(owner, mac)

    def release_mac(self, mac: str) -> str | None:
        """Free a MAC; return its former owner (None if it was not held)."""
        return self._macs.release(mac)

    def mac_of(self, owner: str) -> str | None:
        """The MAC the owner holds, if any."""
        return self._macs.of(owner)

    # -- internals -----------------------------------------------------------------------------
    def _family(self, version: int) -> Family:
        state = self._families.get(version)
        if state is None:
            kind = family_name(version) if version in (4, 6) else f"IP version {version!r}"
            raise OutOfRange(
                f"subnet {self.name} has no {kind} block in its cidrBlock {self.spec.cidr_block}"
            )
        return state

    def _pop(self, state: Family, pool: str) -> tuple[int, bool]:
        """Take the next free address of ``pool`` out of it, or raise the exhaustion sentence."""
        bucket = state.buckets.get(pool)
        popped = None if bucket is None else bucket.pop()
        if popped is not None:
            return popped
        raise _exhausted(self.name, state, pool, has_pools=bool(self._pools), known=pool in self._pools)

    def _locate(self, address: Address) -> tuple[Family, int]:
        version, value = parse_ip(address)
        state = self._families.get(version)
        if state is None or not state.rule.contains(value):
            raise OutOfRange(
                f"{address} is outside subnet {self.name} ({self.spec.cidr_block}); "
                "choose an address inside it"
            )
        return state, value

    def _check(self, owner: str, address: Address) -> tuple[Family, int, bool]:
        """Validate a fixed claim; return the family, the value and whether the owner holds it."""
        state, value = self._locate(address)
        reason = state.rule.why_not(value, fixed=True)
        if value == state.rule.gateway:
            raise AddressConflict(
                f"{address} is {reason}; choose another address in {state.rule.cidr}"
            )
        if reason:
            low, high = state.rule.bounds
            raise OutOfRange(
                f"{address} is {reason}; choose one from "
                f"{to_ipaddress(state.version, low)} to {to_ipaddress(state.version, high)}"
            )
        holder = state.held.get(value)
        if holder is not None and holder != owner:
            raise self._conflict(address, holder)
        return state, value, holder == owner

    def _conflict(self, address: Address, holder: str) -> AddressConflict:
        return AddressConflict(
            f"{address} is held by {holder} in subnet {self.name}; choose another address", holder=holder
        )

    def _record(self, state: Family, value: int, owner: str) -> None:
        state.held[value] = owner
        add_owned(state.owners, owner, value)

    def _forget(self, state: Family, value: int) -> str:
        owner = state.held.pop(value)
        drop_owned(state.owners, owner, value)
        return owner

    def _take(self, state: Family, value: int, owner: str) -> None:
        """Hold a specific address, taking it out of its bucket's free ranges or reuse queue."""
        state.take(value)
        self._record(state, value, owner)


def _exhausted(subnet: str, state: Family, pool: str, *, has_pools: bool, known: bool) -> PoolExhausted:
    """The sentence for a pool (or the subnet outside its pools) with no free address of a family."""
    kind = family_name(state.version)
    bucket = state.buckets.get(pool)
    if pool != SUBNET_BUCKET:
        if not known:
            return PoolExhausted(f"IPPool {pool} is not a pool of subnet {subnet}; name one of its IPPools")
        size = 0 if bucket is None else bucket.usable
        return PoolExhausted(
            f"IPPool {pool} of subnet {subnet} has no free {kind} address left: "
            + (f"all {size:,} usable addresses of the pool are held; " if size else
               f"it lists no usable {kind} address of {state.rule.cidr}; ")
            + "add addresses to the pool or free some"
        )
    usable = state.buckets[SUBNET_BUCKET].usable if bucket is not None else 0
    outside = " outside its IPPools" if has_pools else ""
    return SubnetExhausted(
        f"subnet {subnet} has no free {kind} address left{outside}: all {usable:,} allocatable "
        f"addresses of {state.rule.cidr}{outside} are held; release some or give the subnet a "
        "larger cidrBlock"
    )
