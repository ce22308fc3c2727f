"""Annotation keys of the Kube-OVN API and parsing of the `routes` annotation.

Per-attachment annotations are `<provider>.kubernetes.io/<field>`, where the provider is
`<nad>.<namespace>` (IPAM-only NAD), `<nad>.<namespace>.ovn` (kube-ovn type NAD) or `ovn`
(the primary network). Every component builds keys here so that none spells them differently.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import netaddr

from allocator.errors import ParseError, RoutesError

NETWORKS = "k8s.v1.cni.cncf.io/networks"
DEFAULT_NETWORK = "v1.multus-cni.io/default-network"
NETWORK_STATUS = "k8s.v1.cni.cncf.io/network-status"

PRIMARY_PROVIDER = "ovn"

IP_ADDRESS = "ip_address"
MAC_ADDRESS = "mac_address"
IP_POOL = "ip_pool"
LOGICAL_SWITCH = "logical_switch"
ROUTES = "routes"
IP_FAMILY = "ip_family"
CIDR = "cidr"
GATEWAY = "gateway"
ALLOCATED = "allocated"

INPUT_FIELDS = (IP_ADDRESS, MAC_ADDRESS, IP_POOL, IP_FAMILY, LOGICAL_SWITCH, ROUTES)
OUTPUT_FIELDS = (IP_ADDRESS, MAC_ADDRESS, CIDR, GATEWAY, LOGICAL_SWITCH, ALLOCATED)

_SUFFIX = ".kubernetes.io/"
_PREFIX_LENGTH = re.compile(r"0|[1-9][0-9]{0,2}", re.ASCII)
_ROUTE_KEYS = ("dst", "gw")


def key(provider: str, field: str) -> str:
    """The annotation key of `field` for `provider`, e.g. `macvlan.default.kubernetes.io/ip_address`."""
    return f"{provider}{_SUFFIX}{field}"


def provider_for(nad_name: str, nad_namespace: str, *, ovn_type: bool) -> str:
    """The provider a NAD must declare: `<nad>.<ns>`, with `.ovn` appended for a kube-ovn type NAD."""
    provider = f"{nad_name}.{nad_namespace}"
    return f"{provider}.ovn" if ovn_type else provider


def provider_annotations(annotations: Mapping[str, str] | None, provider: str) -> dict[str, str]:
    """The `<provider>.kubernetes.io/<field>` annotations of one provider, keyed by field."""
    prefix = f"{provider}{_SUFFIX}"
    return {
        name[len(prefix) :]: value
        for name, value in (annotations or {}).items()
        if name.startswith(prefix) and len(name) > len(prefix)
    }


def split_dual(value: str) -> tuple[str, ...]:
    """Split a dual-stack value `"v4,v6"` (or a single value) into its stripped parts.

    Only the text is checked here (one or two non-empty parts); the allocator checks the families.
    """
    parts = tuple(part.strip() for part in value.split(","))
    if len(parts) > 2 or any(not part for part in parts):
        raise ParseError(
            f'{quote(value)} is not one value or a dual-stack pair; write "ipv4", "ipv6" or "ipv4,ipv6"'
        )
    return parts


_IP_FAMILIES = {"ipv4": (4,), "ipv6": (6,), "dual": (4, 6)}


def parse_ip_family(value: str) -> tuple[int, ...]:
    """`ip_family` (`IPv4`, `IPv6` or `dual`, any case) as the IP versions asked for."""
    families = _IP_FAMILIES.get(value.strip().lower()) if isinstance(value, str) else None
    if families is None:
        raise ParseError(f"ip_family {quote(value)} is not IPv4, IPv6 or dual; write one of those")
    return families


def parse_address(text: str) -> netaddr.IPAddress:
    """An IPv4 or IPv6 address in its usual notation; nothing lenient (no `127.1`, no spaces).

    Raises ValueError so that each caller can name the field the text came from.
    """
    if not isinstance(text, str) or "/" in text:
        raise ValueError(text)
    try:
        return netaddr.IPAddress(text)
    except (netaddr.AddrFormatError, ValueError, TypeError) as error:
        raise ValueError(text) from error


def parse_interface(text: str) -> netaddr.IPNetwork:
    """`address/prefix` with a decimal prefix length; host bits are kept (`192.168.0.101/24`).

    netaddr alone would also take netmasks and spaces (`1.2.3.4/ 24`); annotations never mean those.
    Raises ValueError.
    """
    if not isinstance(text, str):
        raise ValueError(text)
    address, slash, prefix = text.partition("/")
    if not slash or not _PREFIX_LENGTH.fullmatch(prefix):
        raise ValueError(text)
    ip = parse_address(address)
    length = int(prefix)
    if length > (32 if ip.version == 4 else 128):
        raise ValueError(text)
    return netaddr.IPNetwork(f"{ip}/{length}")


@dataclass(frozen=True)
class Route:
    """One route of a pod interface; `dst` None is the default route of `gw`'s family."""

    dst: netaddr.IPNetwork | None
    gw: netaddr.IPAddress | None

    @property
    def is_default(self) -> bool:
        return self.dst is None or self.dst.prefixlen == 0

    @property
    def family(self) -> int | None:
        """4 or 6; None only for a route that names neither a destination nor a gateway."""
        if self.dst is not None:
            return self.dst.version
        return self.gw.version if self.gw is not None else None

    def to_json(self) -> dict[str, str]:
        """The annotation/CNI form; absent parts are left out (`{"gw": …}` is a default route)."""
        out: dict[str, str] = {}
        if self.dst is not None:
            out["dst"] = str(self.dst)
        if self.gw is not None:
            out["gw"] = str(self.gw)
        return out


def parse_routes(value: str) -> tuple[Route, ...]:
    """The `P.kubernetes.io/routes` annotation: a JSON list of `{"dst", "gw"}` objects.

    A missing or empty `dst` is the default route; a `dst` with host bits set is normalised to
    its network (Kube-OVN's guide writes `192.168.0.101/24`).
    """
    where = "the routes annotation"
    try:
        items = json.loads(value)
    except (ValueError, TypeError, RecursionError) as error:
        raise RoutesError(
            f"{where} {quote(value)} is not JSON ({json_reason(error)}); "
            'write a list such as [{"dst": "192.168.0.0/24", "gw": "172.17.0.254"}]'
        ) from None
    return route_list(items, where=where, dst_required=False)


def route_list(items: Any, *, where: str, dst_required: bool) -> tuple[Route, ...]:
    """Routes from already decoded JSON; shared with the NAD's `ipam.routes` (where CNI needs `dst`)."""
    if not isinstance(items, list):
        raise RoutesError(f'{where} is {shorten(items)}, not a list; write a list of {{"dst", "gw"}} objects')
    routes: list[Route] = []
    seen: dict[tuple[int | None, str], int] = {}
    for index, item in enumerate(items, start=1):
        route = _route(item, label=f"route {index} of {where}", dst_required=dst_required)
        destination = "default" if route.is_default else str(route.dst)
        first = seen.setdefault((route.family, destination), index)
        if first != index:
            raise RoutesError(
                f"route {index} of {where}, {shorten(item)}, repeats the {destination} destination "
                f"of route {first}; keep one route per destination"
            )
        routes.append(route)
    return tuple(routes)


def _route(item: Any, *, label: str, dst_required: bool) -> Route:
    shown = shorten(item)
    if not isinstance(item, dict):
        raise RoutesError(f'{label}, {shown}, is not an object; write {{"dst": "cidr", "gw": "ip"}}')
    unknown = sorted(set(item) - set(_ROUTE_KEYS))
    if unknown:
        raise RoutesError(
            f'{label}, {shown}, has unknown key {quote(unknown[0])}; the keys are "dst" and "gw"'
        )
    dst_text, gw_text = item.get("dst"), item.get("gw")
    for name, text in (("dst", dst_text), ("gw", gw_text)):
        if text is not None and not isinstance(text, str):
            raise RoutesError(f"{label}, {shown}, has a {name} that is not a string; quote it")
    dst = gw = None
    if dst_text:
        try:
            dst = parse_interface(dst_text).cidr
        except ValueError:
            raise RoutesError(
                f"{label}, {shown}, has dst {quote(dst_text)}, which is not a CIDR; "
                'write e.g. "192.168.0.0/24"'
            ) from None
    elif dst_required:
        raise RoutesError(f'{label}, {shown}, has no dst; CNI routes need one, e.g. "0.0.0.0/0"')
    if gw_text:
        try:
            gw = parse_address(gw_text)
        except ValueError:
            raise RoutesError(
                f"{label}, {shown}, has gw {quote(gw_text)}, which is not an IP address; "
                'write e.g. "172.17.0.254"'
            ) from None
    if dst is None and gw is None:
        raise RoutesError(f"{label}, {shown}, names neither dst nor gw; a default route needs a gw")
    if dst is not None and gw is not None and dst.version != gw.version:
        raise RoutesError(
            f"{label}, {shown}, mixes IPv{dst.version} dst {dst} with IPv{gw.version} gw {gw}; "
            "use a gateway of the same family"
        )
    return Route(dst=dst, gw=gw)


def json_reason(error: Exception) -> str:
    """Where JSON decoding failed, for a message: line, column and character position."""
    if isinstance(error, json.JSONDecodeError):
        return f"{error.msg} at line {error.lineno} column {error.colno} (char {error.pos})"
    if isinstance(error, RecursionError):
        return "nested too deeply"
    return str(error) or type(error).__name__


def shorten(value: Any, limit: int = 80) -> str:
    """Decoded JSON written back compactly for a message, cut so that one sentence stays readable."""
    try:
        text = json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
    except (ValueError, TypeError, RecursionError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def quote(text: str, limit: int = 80) -> str:
    """A raw string quoted for a message (JSON-style, so control characters stay visible)."""
    return shorten(text, limit)
