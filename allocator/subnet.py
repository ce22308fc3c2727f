"""Subnets: the validated Kube-OVN Subnet spec and the mutable allocation state of one subnet.

``SubnetSpec.parse`` is what the validating webhook runs on ``kubeovn.io/v1`` Subnets, so each
rejection is one sentence naming the field, the offending value and what would be accepted.

``Subnet`` keeps, per address family, only ints: the never-used free addresses as an
``IPRangeSet``, a FIFO of released addresses (reused only once the never-used ones are gone, so a
just-freed address is not handed to the next pod while stale routes or ARP entries still point at
it), and the held addresses with their owners. Memory grows with held addresses and ranges, never
with the subnet size; a /8 or an IPv6 /64 behaves like a /24.

Usable addresses are network+1 .. last-1 for both families (the whole block for /31 and /127).
IPv6 has no broadcast, but like Kube-OVN (``util.LastIP``) the all-ones address is kept out too, so
both families follow one rule. The gateway is never handed out nor claimable; excluded addresses are
never handed out sequentially but may be claimed as fixed addresses, as Kube-OVN allows.

A ``Subnet`` is not thread-safe: the store serialises access to it.
"""

from __future__ import annotations

import random
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import netaddr

from allocator.addresses import Address, family_name, format_ip, parse_ip, to_ipaddress
from allocator.errors import (
    AddressConflict,
    AllocatorError,
    InvalidAddress,
    InvalidCIDR,
    OutOfRange,
    ParseError,
    SubnetExhausted,
)
from allocator.mac import format_mac, mac_to_int, random_mac_value
from allocator.ranges import IPRangeSet

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


def usable_bounds(cidr: netaddr.IPNetwork) -> tuple[int, int]:
    """First and last address that may be handed out: network+1 .. last-1, whole /31 and /127."""
    first, last = cidr.first, cidr.last
    if cidr.prefixlen == _MAX_PREFIX[cidr.version] - 1:
        return first, last
    return first + 1, last - 1


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


_Owned = int | tuple[int, ...]


class _Family:
    """The state of one address family of a subnet; plain ints only."""

    __slots__ = (
        "allocatable",
        "cidr",
        "excluded",
        "first",
        "free",
        "gateway",
        "held",
        "high",
        "last",
        "low",
        "owners",
        "released",
        "version",
    )

    def __init__(self, cidr: netaddr.IPNetwork, gateway: netaddr.IPAddress) -> None:
        self.version: int = cidr.version
        self.cidr = cidr
        self.first: int = cidr.first
        self.last: int = cidr.last
        self.low, self.high = usable_bounds(cidr)
        self.gateway = int(gateway)
        self.excluded = IPRangeSet()
        self.free = IPRangeSet()
        self.free.add(self.low, self.high)
        self.free.discard(self.gateway)
        self.released: OrderedDict[int, None] = OrderedDict()
        self.held: dict[int, str] = {}
        self.owners: dict[str, _Owned] = {}
        self.allocatable = 0

    def exclude(self, low: int, high: int) -> None:
        self.excluded.add(low, high)
        self.free.remove(low, high)

    def is_allocatable(self, value: int) -> bool:
        """Whether sequential allocation may hand this address out (once free)."""
        return self.low <= value <= self.high and value != self.gateway and value not in self.excluded


class Subnet:
    """The mutable allocation state of one subnet: held addresses, free ranges, reuse queue, MACs."""

    def __init__(self, spec: SubnetSpec, *, rng: random.Random | None = None) -> None:
        self.spec = spec
        self.name = spec.name
        pairs = zip(spec.cidrs, spec.gateways, strict=True)
        self._families: dict[int, _Family] = {cidr.version: _Family(cidr, gateway) for cidr, gateway in pairs}
        for low, high in spec.excludes:
            self._families[low.version].exclude(int(low), int(high))
        for family in self._families.values():
            family.allocatable = family.free.size
        self._macs: dict[int, str] = {}
        self._mac_owners: dict[str, _Owned] = {}
        self._rng = rng or random.Random()

    def __repr__(self) -> str:
        return f"Subnet({self.name!r}, {self.spec.cidr_block}, held={self.held_count})"

    # -- addresses -----------------------------------------------------------------------------
    def allocate(self, owner: str, family: int) -> netaddr.IPAddress:
        """The owner's address of ``family``: the one it holds, else the lowest never-used free one,
        else the longest-released one."""
        state = self._family(family)
        owned = state.owners.get(owner)
        if owned is not None:
            return to_ipaddress(state.version, _first(owned))
        value = state.free.pop_first()
        if value is None:
            if not state.released:
                raise SubnetExhausted(
                    f"subnet {self.name} has no free {family_name(state.version)} address left: all "
                    f"{state.allocatable:,} allocatable addresses of {state.cidr} are held; release "
                    "some or give the subnet a larger cidrBlock"
                )
            value, _ = state.released.popitem(last=False)
        self._record(state, value, owner)
        return to_ipaddress(state.version, value)

    def allocate_all(self, owner: str, fixed: Sequence[Address] = ()) -> tuple[netaddr.IPAddress, ...]:
        """One address per family of the subnet (IPv4 first): ``fixed`` ones claimed, the other
        families allocated. All or nothing: on any error nothing changes. ``fixed`` may also be the
        annotation text itself (``"v4"`` or ``"v4,v6"``)."""
        if isinstance(fixed, str):
            fixed = [part for part in fixed.split(",") if part.strip()]
        claims: dict[int, tuple[_Family, int]] = {}
        for address in fixed:
            state, value, _ = self._check(owner, address)
            if state.version in claims:
                raise InvalidAddress(
                    f"fixed addresses {', '.join(str(a) for a in fixed)} name two "
                    f"{family_name(state.version)} addresses; give at most one per family"
                )
            claims[state.version] = (state, value)
        taken: list[tuple[_Family, int, bool]] = []
        try:
            for version, state in self._families.items():
                if version in claims or state.owners.get(owner) is not None:
                    continue
                from_free = state.free.first() is not None
                taken.append((state, self.allocate(owner, version).value, from_free))
        except AllocatorError:
            for state, value, from_free in taken:
                self._undo_allocate(state, value, from_free)
            raise
        for state, value in claims.values():
            if state.held.get(value) != owner:
                self._take(state, value, owner)
        return tuple(
            to_ipaddress(version, claims[version][1] if version in claims else _first(state.owners[owner]))
            for version, state in self._families.items()
        )

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
        """Free an address; return its former owner (None if it was not held). Allocatable
        addresses join the back of the reuse queue."""
        version, value = parse_ip(address)
        state = self._families.get(version)
        if state is None or value not in state.held:
            return None
        return self._release(state, value)

    def release_owner(self, owner: str) -> list[netaddr.IPAddress]:
        """Free every address and MAC of an owner that is gone; return the addresses."""
        released = []
        for state in self._families.values():
            for value in _values(state.owners.get(owner)):
                self._release(state, value)
                released.append(to_ipaddress(state.version, value))
        for mac in _values(self._mac_owners.pop(owner, None)):
            del self._macs[mac]
        return released

    def holder(self, address: Address) -> str | None:
        """The owner holding ``address``, if any."""
        version, value = parse_ip(address)
        state = self._families.get(version)
        return None if state is None else state.held.get(value)

    def addresses_of(self, owner: str) -> tuple[netaddr.IPAddress, ...]:
        """Every address the owner holds, IPv4 first."""
        return tuple(
            to_ipaddress(state.version, value)
            for state in self._families.values()
            for value in _values(state.owners.get(owner))
        )

    @property
    def held_count(self) -> int:
        """How many addresses are held, all families together."""
        return sum(len(state.held) for state in self._families.values())

    def usage(self) -> Usage:
        """Exact counts per family; available excludes gateway, excluded, network and last addresses."""
        counts = {version: state.free.size + len(state.released) for version, state in self._families.items()}
        return Usage(
            v4_available=counts.get(4, 0),
            v4_using=len(self._families[4].held) if 4 in self._families else 0,
            v6_available=counts.get(6, 0),
            v6_using=len(self._families[6].held) if 6 in self._families else 0,
        )

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
    def _family(self, version: int) -> _Family:
        state = self._families.get(version)
        if state is None:
            kind = family_name(version) if version in (4, 6) else f"IP version {version!r}"
            raise OutOfRange(
                f"subnet {self.name} has no {kind} block in its cidrBlock {self.spec.cidr_block}"
            )
        return state

    def _locate(self, address: Address) -> tuple[_Family, int]:
        version, value = parse_ip(address)
        state = self._families.get(version)
        if state is None or not state.first <= value <= state.last:
            raise OutOfRange(
                f"{address} is outside subnet {self.name} ({self.spec.cidr_block}); "
                "choose an address inside it"
            )
        return state, value

    def _check(self, owner: str, address: Address) -> tuple[_Family, int, bool]:
        """Validate a fixed claim; return the family, the value and whether the owner holds it."""
        state, value = self._locate(address)
        if not state.low <= value <= state.high:
            what = "network" if value == state.first else "broadcast" if state.version == 4 else "last"
            raise OutOfRange(
                f"{address} is the {what} address of subnet {self.name} ({state.cidr}); choose one from "
                f"{to_ipaddress(state.version, state.low)} to {to_ipaddress(state.version, state.high)}"
            )
        if value == state.gateway:
            raise AddressConflict(
                f"{address} is the gateway of subnet {self.name}; choose another address in {state.cidr}"
            )
        holder = state.held.get(value)
        if holder is not None and holder != owner:
            raise self._conflict(address, holder)
        return state, value, holder == owner

    def _conflict(self, address: Address, holder: str) -> AddressConflict:
        return AddressConflict(
            f"{address} is held by {holder} in subnet {self.name}; choose another address", holder=holder
        )

    def _record(self, state: _Family, value: int, owner: str) -> None:
        state.held[value] = owner
        _append(state.owners, owner, value)

    def _take(self, state: _Family, value: int, owner: str) -> None:
        """Hold a specific address, taking it out of the free ranges or the reuse queue."""
        if not state.free.discard(value):
            state.released.pop(value, None)
        self._record(state, value, owner)

    def _undo_allocate(self, state: _Family, value: int, from_free: bool) -> None:
        """Put back an address taken by ``allocate`` exactly where it came from."""
        owner = state.held.pop(value)
        _discard(state.owners, owner, value)
        if from_free:
            state.free.add(value, value)
        else:
            state.released[value] = None
            state.released.move_to_end(value, last=False)

    def _release(self, state: _Family, value: int) -> str:
        owner = state.held.pop(value)
        _discard(state.owners, owner, value)
        if state.is_allocatable(value):
            state.released[value] = None
        return owner

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
def _values(owned: _Owned | None) -> tuple[int, ...]:
    if owned is None:
        return ()
    return (owned,) if isinstance(owned, int) else owned


def _first(owned: _Owned) -> int:
    return owned if isinstance(owned, int) else owned[0]


def _append(mapping: dict[str, _Owned], owner: str, value: int) -> None:
    owned = mapping.get(owner)
    mapping[owner] = value if owned is None else (*_values(owned), value)


def _discard(mapping: dict[str, _Owned], owner: str, value: int) -> None:
    owned = mapping.get(owner)
    if owned == value:
        del mapping[owner]
        return
    rest = tuple(item for item in _values(owned) if item != value)
    if not rest:
        mapping.pop(owner, None)
    else:
        mapping[owner] = rest[0] if len(rest) == 1 else rest
