"""A Subnet's spec: the validated, normalised ``kubeovn.io/v1`` Subnet spec (``SubnetSpec``).

``SubnetSpec.parse`` is what the validating webhook runs on Subnets, so each rejection is one
sentence naming the field, the offending value and what would be accepted. Which addresses of the
spec may be handed out is ``allocator.usable``'s rule, reached through ``SubnetSpec.rules`` and
``SubnetSpec.why_unusable``: nothing else re-derives it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property

import netaddr

from allocator.addresses import Address, family_name, format_ip, parse_ip, to_ipaddress
from allocator.errors import InvalidAddress, InvalidCIDR, OutOfRange, ParseError
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
