"""Subnets: the validated Kube-OVN Subnet spec and the mutable allocation state of one subnet.

``SubnetSpec.parse`` is what the validating webhook runs on ``kubeovn.io/v1`` Subnets, so each
rejection is one sentence naming the field, the offending value and what would be accepted.

``Subnet`` keeps, per address family (``allocator.family``), only ints: per pool the never-used
free addresses as an ``IPRangeSet`` and a FIFO of released addresses (reused only once the
never-used ones are gone, so a just-freed address is not handed to the next pod while stale routes
or ARP entries still point at it), and the held addresses with their owners. Memory grows with held
addresses and ranges, never with the subnet size; a /8 or an IPv6 /64 behaves like a /24.

Which addresses may be handed out is ``allocator.usable``'s rule, reached through
``SubnetSpec.rules`` and ``SubnetSpec.why_unusable``: nothing else re-derives it.

A ``Subnet`` is not thread-safe: the store serialises access to it.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property

import netaddr

from allocator.addresses import Address, family_name, format_ip, parse_ip, to_ipaddress
from allocator.errors import (
    AddressConflict,
    AllocatorError,
    InvalidAddress,
    InvalidCIDR,
    OutOfRange,
    ParseError,
    PoolExhausted,
    SubnetExhausted,
)
from allocator.family import SUBNET_BUCKET, Family, Owned
from allocator.mac import format_mac, mac_to_int, random_mac_value
from allocator.ranges import IPRangeSet
from allocator.usable import FamilyRule, usable_bounds

PROTOCOLS = ("IPv4", "IPv6", "Dual")
DEFAULT_PROVIDER = "ovn"
_MAX_PREFIX = {4: 32, 6: 128}
_RESERVED = {
    4: (
        (netaddr.IPNetwork("0.0.0.0/8"), "unspecified"),
        (netaddr.IPNetwork("127.0.0.0/8"), "loopback"),
        (netaddr.IPNetwork("169.254.0.0/16"), "link-local"),
        (netaddr.IPNetwork("224.0.0.0/4"), "multicast"),
    ),
    6: (
        (netaddr.IPNetwork("::/128"), "unspecified"),
        (netaddr.IPNetwork("::1/128"), "loopback"),
        (netaddr.IPNetwork("fe80::/10"), "link-local"),
        (netaddr.IPNetwork("ff00::/8"), "multicast"),
    ),
}
_EXAMPLE = {4: "172.17.0.0/16", 6: "fd00:10::/64"}
_MAC_ATTEMPTS = 64


@dataclass(frozen=True)
class SubnetSpec:
    """A validated, normalised Kube-OVN Subnet spec (families ordered IPv4 first)."""

    name: str
    cidrs: tuple[netaddr.IPNetwork, ...]
    gateways: tuple[netaddr.IPAddress, ...] = ()
    protocol: str = ""
    provider: str = DEFAULT_PROVIDER
    excludes: tuple[tuple[netaddr.IPAddress, netaddr.IPAddress], ...] = ()
    namespaces: tuple[str, ...] = ()
    default: bool = False

    def __post_init__(self) -> None:
        """Let tests and callers build a spec directly: text blocks become networks, IPv4 first, and an
        empty protocol or gateway list is inferred as ``parse`` would. Use ``parse`` to validate."""
        cidrs = tuple(sorted((netaddr.IPNetwork(c) for c in self.cidrs), key=lambda cidr: cidr.version))
        object.__setattr__(self, "cidrs", cidrs)
        if not self.protocol:
            object.__setattr__(self, "protocol", "Dual" if len(cidrs) == 2 else family_name(cidrs[0].version))
        gateways = tuple(netaddr.IPAddress(g) for g in self.gateways) or tuple(
            to_ipaddress(cidr.version, usable_bounds(cidr)[0]) for cidr in cidrs
        )
        object.__setattr__(self, "gateways", tuple(sorted(gateways, key=lambda gw: gw.version)))

    @classmethod
    def parse(cls, name: str, spec: Mapping) -> SubnetSpec:
        """Validate a ``kubeovn.io/v1`` Subnet ``spec``; raise an ``AllocatorError`` sentence if bad.

        CIDR problems raise ``InvalidCIDR``, gateway and excludeIps problems ``InvalidAddress``,
        and malformed provider, namespaces or default fields ``ParseError``.
        """
        if not isinstance(spec, Mapping):
            raise InvalidCIDR(f"subnet {name} has no spec; give at least a cidrBlock such as 172.17.0.0/16")
        cidrs = _parse_cidr_block(name, spec.get("cidrBlock"))
        protocol = _parse_protocol(name, spec.get("protocol"), cidrs)
        return cls(
            name=name,
            cidrs=cidrs,
            gateways=_parse_gateways(name, spec.get("gateway"), cidrs),
            protocol=protocol,
            provider=_parse_provider(name, spec.get("provider")),
            excludes=_parse_excludes(name, spec.get("excludeIps"), cidrs),
            namespaces=_parse_namespaces(name, spec.get("namespaces")),
            default=_parse_default(name, spec.get("default")),
        )

    @property
    def cidr_block(self) -> str:
        """The normalised ``cidrBlock`` text (``v4/n,v6/m``)."""
        return ",".join(str(cidr) for cidr in self.cidrs)

    def family_cidr(self, version: int) -> netaddr.IPNetwork | None:
        """The block of one family (4 or 6), or None when the subnet has none."""
        return next((cidr for cidr in self.cidrs if cidr.version == version), None)

    def family_gateway(self, version: int) -> netaddr.IPAddress | None:
        """The gateway of one family (4 or 6), or None when the subnet has none."""
        return next((gw for gw in self.gateways if gw.version == version), None)

    def contains(self, address: Address) -> bool:
        """Whether an address lies inside one of the subnet's blocks."""
        version, value = parse_ip(address)
        cidr = self.family_cidr(version)
        return cidr is not None and cidr.first <= value <= cidr.last

    def prefix_of(self, address: Address) -> int:
        """The prefix length of the block holding ``address`` (for ``172.17.0.12/16`` results)."""
        version, value = parse_ip(address)
        cidr = self.family_cidr(version)
        if cidr is None or not cidr.first <= value <= cidr.last:
            raise OutOfRange(
                f"{address} is outside subnet {self.name} ({self.cidr_block}); choose an address inside it"
            )
        return cidr.prefixlen

    @cached_property
    def rules(self) -> dict[int, FamilyRule]:
        """The handing-out rule of each family block (IPv4 first)."""
        rules = {}
        for cidr, gateway in zip(self.cidrs, self.gateways, strict=True):
            excluded = IPRangeSet()
            for low, high in self.excludes:
                if low.version == cidr.version:
                    excluded.add(int(low), int(high))
            rules[cidr.version] = FamilyRule(self.name, cidr, int(gateway), excluded)
        return rules

    def families_for(self, asked: Sequence[int] | None = None) -> tuple[int, ...]:
        """The families a pod gets: ``asked`` (``ip_family``), which the subnet's blocks must have,
        or every family of the subnet; IPv4 first."""
        mine = tuple(self.rules)
        if asked is None:
            return mine
        missing = [version for version in asked if version not in self.rules]
        if missing:
            protocol = "dual" if self.protocol == "Dual" else self.protocol
            raise OutOfRange(
                f"ip_family asks for {family_name(missing[0])}, but subnet {self.name} has only "
                f"{' and '.join(family_name(v) for v in mine)} ({self.cidr_block}); ask for {protocol} "
                "or attach a subnet that has it"
            )
        return tuple(version for version in mine if version in asked)

    def why_unusable(self, address: Address, *, fixed: bool = False) -> str:
        """Why ``address`` can not be handed out by this subnet ("" when it can): outside it, its
        network, broadcast or last address, its gateway, or (unless ``fixed``) in ``excludeIps``."""
        version, value = parse_ip(address)
        rule = self.rules.get(version)
        if rule is None:
            return f"outside subnet {self.name} ({self.cidr_block})"
        return rule.why_not(value, fixed=fixed)


# -- spec parsing ------------------------------------------------------------------------------
def _parse_cidr_block(name: str, value: object) -> tuple[netaddr.IPNetwork, ...]:
    if not isinstance(value, str) or not value.strip():
        raise InvalidCIDR(
            f"subnet {name} needs a cidrBlock such as 172.17.0.0/16 or 172.17.0.0/16,fd00:10::/64, "
            f"not {value!r}"
        )
    parts = [part.strip() for part in value.split(",")]
    if len(parts) > 2 or not all(parts):
        raise InvalidCIDR(
            f"cidrBlock {value!r} of subnet {name} must be one block or an IPv4 and an IPv6 block "
            "separated by a comma, such as 172.17.0.0/16,fd00:10::/64"
        )
    cidrs = sorted((_parse_cidr(name, part) for part in parts), key=lambda cidr: cidr.version)
    if len(cidrs) == 2 and cidrs[0].version == cidrs[1].version:
        raise InvalidCIDR(
            f"cidrBlock {value} of subnet {name} has two {family_name(cidrs[0].version)} blocks; "
            "a dual-stack cidrBlock is one IPv4 and one IPv6 block such as 172.17.0.0/16,fd00:10::/64"
        )
    return tuple(cidrs)


def _parse_cidr(name: str, text: str) -> netaddr.IPNetwork:
    address, slash, prefix = text.partition("/")
    if not slash:
        raise InvalidCIDR(
            f"cidrBlock entry {text} of subnet {name} has no prefix length; write it like 172.17.0.0/16"
        )
    try:
        version, value = parse_ip(address)
    except InvalidAddress:
        raise InvalidCIDR(
            f"cidrBlock entry {text} of subnet {name} does not start with an IP address; "
            "write it like 172.17.0.0/16 or fd00:10::/64"
        ) from None
    top = _MAX_PREFIX[version]
    if not (prefix.isascii() and prefix.isdigit()) or int(prefix) > top:
        raise InvalidCIDR(
            f"cidrBlock entry {text} of subnet {name} has an invalid prefix length; "
            f"an {family_name(version)} prefix is a number from 0 to {top - 1}"
        )
    length = int(prefix)
    if length == top:
        raise InvalidCIDR(
            f"cidrBlock entry {text} of subnet {name} is a single address with nothing to hand out; "
            f"use a /{top - 1} or shorter prefix"
        )
    cidr = netaddr.IPNetwork(f"{format_ip(version, value)}/{length}")
    if cidr.first != value:
        raise InvalidCIDR(f"cidrBlock entry {text} of subnet {name} has host bits set; write {cidr.cidr}")
    cidr = cidr.cidr
    for reserved, kind in _RESERVED[version]:
        if cidr.first <= reserved.last and reserved.first <= cidr.last:
            raise InvalidCIDR(
                f"cidrBlock entry {text} of subnet {name} overlaps the {kind} block {reserved}; "
                f"choose a unicast range such as {_EXAMPLE[version]}"
            )
    return cidr


def _parse_protocol(name: str, value: object, cidrs: tuple[netaddr.IPNetwork, ...]) -> str:
    actual = "Dual" if len(cidrs) == 2 else family_name(cidrs[0].version)
    if value is None or value == "":
        return actual
    if value not in PROTOCOLS:
        raise InvalidCIDR(f"protocol {value!r} of subnet {name} is not one of IPv4, IPv6 or Dual")
    if value != actual:
        block = ",".join(str(cidr) for cidr in cidrs)
        raise InvalidCIDR(
            f"protocol {value} of subnet {name} does not match cidrBlock {block}, which is {actual}; "
            f"set protocol to {actual} or omit it"
        )
    return actual


def _parse_gateways(
    name: str, value: object, cidrs: tuple[netaddr.IPNetwork, ...]
) -> tuple[netaddr.IPAddress, ...]:
    if value is None or value == "":
        return tuple(to_ipaddress(cidr.version, usable_bounds(cidr)[0]) for cidr in cidrs)
    block = ",".join(str(cidr) for cidr in cidrs)
    example = ",".join(str(to_ipaddress(cidr.version, usable_bounds(cidr)[0])) for cidr in cidrs)
    if not isinstance(value, str):
        raise InvalidAddress(f"gateway {value!r} of subnet {name} must be text such as {example}")
    parts = [part.strip() for part in value.split(",")]
    if len(parts) != len(cidrs):
        raise InvalidAddress(
            f"gateway {value} of subnet {name} must give one address per block of cidrBlock {block}, "
            f"such as {example}"
        )
    gateways: dict[int, netaddr.IPAddress] = {}
    for part in parts:
        version, address = _parse_member(name, "gateway", part)
        cidr = next((cidr for cidr in cidrs if cidr.version == version), None)
        if cidr is None or version in gateways:
            raise InvalidAddress(
                f"gateway {value} of subnet {name} must give one address per block of cidrBlock "
                f"{block}, such as {example}"
            )
        low, high = usable_bounds(cidr)
        if not cidr.first <= address <= cidr.last:
            raise InvalidAddress(
                f"gateway {part} of subnet {name} is outside its block {cidr}; "
                f"choose an address inside it such as {to_ipaddress(version, low)}"
            )
        if not low <= address <= high:
            what = "network" if address == cidr.first else "broadcast" if version == 4 else "last"
            raise InvalidAddress(
                f"gateway {part} of subnet {name} is the {what} address of {cidr}; choose one from "
                f"{to_ipaddress(version, low)} to {to_ipaddress(version, high)}"
            )
        gateways[version] = to_ipaddress(version, address)
    return tuple(gateways[cidr.version] for cidr in cidrs)


def _parse_excludes(
    name: str, value: object, cidrs: tuple[netaddr.IPNetwork, ...]
) -> tuple[tuple[netaddr.IPAddress, netaddr.IPAddress], ...]:
    if value is None:
        return ()
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise InvalidAddress(
            f"excludeIps of subnet {name} must be a list of addresses or ranges such as "
            f'["172.17.0.1", "172.17.0.100..172.17.0.200"], not {value!r}'
        )
    excludes = []
    for entry in value:
        if not isinstance(entry, str):
            raise InvalidAddress(
                f"excludeIps entry {entry!r} of subnet {name} must be text like 172.17.0.5 "
                "or 172.17.0.100..172.17.0.200"
            )
        ends = [part.strip() for part in entry.split("..")]
        if len(ends) > 2:
            raise InvalidAddress(
                f"excludeIps entry {entry} of subnet {name} is not an address or a range; "
                "write 172.17.0.5 or 172.17.0.100..172.17.0.200"
            )
        (low_version, low), (high_version, high) = (
            _parse_member(name, "excludeIps entry", part) for part in (ends[0], ends[-1])
        )
        if low_version != high_version:
            raise InvalidAddress(
                f"excludeIps entry {entry} of subnet {name} mixes IPv4 and IPv6; "
                "both ends of a range must be of one family"
            )
        if low > high:
            raise InvalidAddress(
                f"excludeIps entry {entry} of subnet {name} runs backwards; "
                f"write the lower address first: {ends[1]}..{ends[0]}"
            )
        cidr = next((cidr for cidr in cidrs if cidr.version == low_version), None)
        if cidr is None or not (cidr.first <= low and high <= cidr.last):
            block = ",".join(str(cidr) for cidr in cidrs)
            raise InvalidAddress(
                f"excludeIps entry {entry} of subnet {name} is not inside cidrBlock {block}; "
                "exclude only addresses of the subnet"
            )
        excludes.append((to_ipaddress(low_version, low), to_ipaddress(low_version, high)))
    return tuple(excludes)


def _parse_member(name: str, field: str, text: str) -> tuple[int, int]:
    try:
        return parse_ip(text)
    except InvalidAddress:
        raise InvalidAddress(
            f"{field} {text!r} of subnet {name} is not an IP address; write one like 172.17.0.1 or fd00:10::1"
        ) from None


def _parse_provider(name: str, value: object) -> str:
    if value is None or value == "":
        return DEFAULT_PROVIDER
    if not isinstance(value, str) or value != value.strip():
        raise ParseError(
            f"provider {value!r} of subnet {name} must be text such as ovn or macvlan.default, without spaces"
        )
    return value


def _parse_namespaces(name: str, value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    if (
        isinstance(value, str)
        or not isinstance(value, Sequence)
        or not all(isinstance(item, str) and item for item in value)
    ):
        raise ParseError(f'namespaces of subnet {name} must be a list of namespace names such as ["default"]')
    return tuple(value)


def _parse_default(name: str, value: object) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        raise ParseError(f"default of subnet {name} must be true or false, not {value!r}")
    return value


# -- allocation state --------------------------------------------------------------------------
@dataclass(frozen=True)
class Usage:
    """Exact per-family counts: addresses left to hand out, and addresses held."""

    v4_available: int
    v4_using: int
    v6_available: int
    v6_using: int


@dataclass(frozen=True)
class PoolDef:
    """A named IPPool of this subnet: its addresses (``(version, low, high)`` ranges) and the
    namespaces whose pods draw from it without naming it."""

    name: str
    ranges: tuple[tuple[int, int, int], ...]
    namespaces: tuple[str, ...] = ()


class Subnet:
    """The mutable allocation state of one subnet: held addresses, free ranges per pool, reuse
    queues, MACs."""

    def __init__(self, spec: SubnetSpec, *, rng: random.Random | None = None) -> None:
        self.spec = spec
        self.name = spec.name
        self._families: dict[int, Family] = {version: Family(rule) for version, rule in spec.rules.items()}
        self._pools: dict[str, PoolDef] = {}
        self._macs: dict[int, str] = {}
        self._mac_owners: dict[str, Owned] = {}
        self._rng = rng or random.Random()

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

    def pool_of(self, address: Address) -> str:
        """The IPPool whose addresses include ``address`` ("" for none)."""
        state, value = self._locate(address)
        return state.bucket_of(value)

    # -- addresses -----------------------------------------------------------------------------
    def allocate(self, owner: str, family: int, pool: str = SUBNET_BUCKET) -> netaddr.IPAddress:
        """The owner's address of ``family``: the one it holds, else the lowest never-used free one
        of ``pool`` (the subnet outside every IPPool by default), else its longest-released one."""
        state = self._family(family)
        owned = state.owners.get(owner)
        if owned is not None:
            return to_ipaddress(state.version, _first(owned))
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
            else to_ipaddress(version, _first(self._families[version].owners[owner]))
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

    def release_owner(self, owner: str) -> list[netaddr.IPAddress]:
        """Free every address and MAC of an owner that is gone; return the addresses."""
        released = [address for address in self.addresses_of(owner) if self.release(address) is not None]
        for mac in _values(self._mac_owners.pop(owner, None)):
            del self._macs[mac]
        return released

    def addresses_of(self, owner: str) -> tuple[netaddr.IPAddress, ...]:
        """Every address the owner holds, IPv4 first."""
        return tuple(
            to_ipaddress(state.version, value)
            for state in self._families.values()
            for value in _values(state.owners.get(owner))
        )

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
        owned = self._family(family).owners.get(owner)
        return None if owned is None else to_ipaddress(family, _first(owned))

    def holder(self, address: Address) -> str | None:
        """The owner holding ``address``, if any."""
        version, value = parse_ip(address)
        state = self._families.get(version)
        return None if state is None else state.held.get(value)

    @property
    def held_count(self) -> int:
        """How many addresses are held, all families together."""
        return sum(len(state.held) for state in self._families.values())

    def usage(self) -> Usage:
        """Exact counts per family; available excludes gateway, excluded, network and last addresses."""
        counts = {version: state.available for version, state in self._families.items()}
        return Usage(
            v4_available=counts.get(4, 0),
            v4_using=len(self._families[4].held) if 4 in self._families else 0,
            v6_available=counts.get(6, 0),
            v6_using=len(self._families[6].held) if 6 in self._families else 0,
        )

    def available(self, family: int, pool: str = SUBNET_BUCKET) -> int:
        """How many addresses of ``family`` the pool (or the subnet outside its pools) has left."""
        bucket = self._family(family).buckets.get(pool)
        return 0 if bucket is None else bucket.available

    # -- MACs ----------------------------------------------------------------------------------
    def allocate_mac(self, owner: str) -> str:
        """The owner's MAC: the one it holds, else a new random locally administered unicast one."""
        owned = self._mac_owners.get(owner)
        if owned is not None:
            return format_mac(_first(owned))
        for _ in range(_MAC_ATTEMPTS):
            value = random_mac_value(self._rng)
            if value not in self._macs:
                self._record_mac(value, owner)
                return format_mac(value)
        raise SubnetExhausted(f"subnet {self.name} found no unused random MAC in {_MAC_ATTEMPTS} attempts")

    def claim_mac(self, owner: str, mac: str) -> str:
        """Hold a fixed MAC for ``owner`` (idempotent); return it normalised."""
        value = self._check_mac(owner, mac)
        if value not in self._macs:
            self._record_mac(value, owner)
        return format_mac(value)

    def check_mac(self, owner: str, mac: str) -> str:
        """Raise what ``claim_mac`` would raise, changing nothing; return the normalised MAC."""
        return format_mac(self._check_mac(owner, mac))

    def mark_mac_held(self, owner: str, mac: str) -> None:
        """Record a MAC already held elsewhere (an IP object)."""
        self.claim_mac(owner, mac)

    def release_mac(self, mac: str) -> str | None:
        """Free a MAC; return its former owner (None if it was not held)."""
        value = mac_to_int(mac)
        owner = self._macs.pop(value, None)
        if owner is not None:
            _discard(self._mac_owners, owner, value)
        return owner

    def mac_of(self, owner: str) -> str | None:
        """The MAC the owner holds, if any."""
        owned = self._mac_owners.get(owner)
        return None if owned is None else format_mac(_first(owned))

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
        kind = family_name(state.version)
        if pool != SUBNET_BUCKET:
            if pool not in self._pools:
                raise PoolExhausted(
                    f"IPPool {pool} is not a pool of subnet {self.name}; name one of its IPPools"
                )
            size = 0 if bucket is None else bucket.usable
            raise PoolExhausted(
                f"IPPool {pool} of subnet {self.name} has no free {kind} address left: "
                + (f"all {size:,} usable addresses of the pool are held; " if size else
                   f"it lists no usable {kind} address of {state.rule.cidr}; ")
                + "add addresses to the pool or free some"
            )
        usable = state.buckets[SUBNET_BUCKET].usable if bucket is not None else 0
        outside = " outside its IPPools" if self._pools else ""
        raise SubnetExhausted(
            f"subnet {self.name} has no free {kind} address left{outside}: all {usable:,} allocatable "
            f"addresses of {state.rule.cidr}{outside} are held; release some or give the subnet a "
            "larger cidrBlock"
        )

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
        _append(state.owners, owner, value)

    def _forget(self, state: Family, value: int) -> str:
        owner = state.held.pop(value)
        _discard(state.owners, owner, value)
        return owner

    def _take(self, state: Family, value: int, owner: str) -> None:
        """Hold a specific address, taking it out of its bucket's free ranges or reuse queue."""
        state.take(value)
        self._record(state, value, owner)

    def _check_mac(self, owner: str, mac: str) -> int:
        value = mac_to_int(mac)
        holder = self._macs.get(value)
        if holder is not None and holder != owner:
            raise AddressConflict(
                f"MAC {format_mac(value)} is held by {holder} in subnet {self.name}; choose another MAC "
                "or omit it to get a random one",
                holder=holder,
            )
        return value

    def _record_mac(self, value: int, owner: str) -> None:
        self._macs[value] = owner
        _append(self._mac_owners, owner, value)


# -- owner → values maps: one int for the usual single value, a tuple otherwise ----------------
def _values(owned: Owned | None) -> tuple[int, ...]:
    if owned is None:
        return ()
    return (owned,) if isinstance(owned, int) else owned


def _first(owned: Owned) -> int:
    return owned if isinstance(owned, int) else owned[0]


def _append(mapping: dict[str, Owned], owner: str, value: int) -> None:
    owned = mapping.get(owner)
    mapping[owner] = value if owned is None else (*_values(owned), value)


def _discard(mapping: dict[str, Owned], owner: str, value: int) -> None:
    owned = mapping.get(owner)
    if owned == value:
        del mapping[owner]
        return
    rest = tuple(item for item in _values(owned) if item != value)
    if not rest:
        mapping.pop(owner, None)
    else:
        mapping[owner] = rest[0] if len(rest) == 1 else rest
