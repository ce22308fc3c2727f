"""Multus network selection annotations → `NetworkSelection`s.

Follows the network plumbing working group's multi-network spec (section 4.1.2) and Multus's
own parser (`parsePodNetworkAnnotation`), but rejects what Multus lets through only to fail
later at CNI time on a node: empty items and names, names that cannot be objects, impossible
interface names, values of the wrong JSON type and unknown keys (usually typos such as
`default_route`). Rejecting at admission keeps the pod from being created half-wired.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from allocator import annotations
from allocator.errors import NetworkSelectionError

_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", re.ASCII)
_IFNAMSIZ = 16
_INTERFACE_FORBIDDEN = frozenset("/:") | frozenset(" \t\n\v\f\r")
_HEX_PAIR = "[0-9A-Fa-f]{2}"
_HEX_QUAD = "[0-9A-Fa-f]{4}"

# The keys of Multus's NetworkSelectionElement; `interfaceRequest` is its deprecated spelling.
_KEYS = (
    "name",
    "namespace",
    "interface",
    "interfaceRequest",
    "ips",
    "mac",
    "infiniband-guid",
    "default-route",
    "cni-args",
    "portMappings",
    "bandwidth",
    "ipam-claim-reference",
    "deviceID",
)
_q = annotations.quote

_BANDWIDTH_KEYS = ("ingressRate", "ingressBurst", "egressRate", "egressBurst")
_PORT_MAPPING_KEYS = ("hostPort", "containerPort", "protocol", "hostIP")


@dataclass(frozen=True)
class NetworkSelection:
    """One attachment a pod asks for: which NAD, and what it requests for the interface."""

    name: str
    namespace: str
    interface: str | None = None
    ips: tuple[str, ...] = ()
    mac: str | None = None
    default_route: tuple[str, ...] = ()
    cni_args: Mapping[str, Any] | None = field(default=None, hash=False)
    raw: Mapping[str, Any] | None = field(default=None, hash=False, compare=False)

    @property
    def key(self) -> str:
        """`ns/name`, or `ns/name@interface` when an interface is asked for."""
        base = f"{self.namespace}/{self.name}"
        return f"{base}@{self.interface}" if self.interface else base


def parse_networks(value: str, *, pod_namespace: str) -> list[NetworkSelection]:
    """The `k8s.v1.cni.cncf.io/networks` annotation; bare names resolve in the pod's namespace.

    An empty value selects nothing, as in Multus. Interface names must not collide: Multus names
    an attachment without one `net<position>`, and eth0 belongs to the default network.
    """
    selections = _parse(value, annotation=annotations.NETWORKS, default_namespace=pod_namespace)
    seen: dict[str, int] = {}
    for index, selection in enumerate(selections, start=1):
        label = f"item {index} of {annotations.NETWORKS}, {_q(selection.key)},"
        if selection.interface == "eth0":
            raise NetworkSelectionError(
                f'{label} asks for interface "eth0", which is the default network\'s; use e.g. net{index}'
            )
        name = selection.interface or f"net{index}"
        first = seen.setdefault(name, index)
        if first != index:
            how = "asks for interface" if selection.interface else "gets the automatic interface name"
            raise NetworkSelectionError(
                f"{label} {how} {_q(name)}, which item {first} already has; "
                "give each attachment its own interface name"
            )
    return selections


def parse_default_network(value: str, *, multus_namespace: str = "kube-system") -> NetworkSelection:
    """The `v1.multus-cni.io/default-network` annotation: exactly one selection, which becomes eth0.

    Multus looks bare names up in its own namespace, not the pod's.
    """
    where = annotations.DEFAULT_NETWORK
    selections = _parse(value, annotation=where, default_namespace=multus_namespace)
    if not selections:
        raise NetworkSelectionError(
            f"{where} is empty; write the namespace/name of one NetworkAttachmentDefinition"
        )
    if len(selections) > 1:
        raise NetworkSelectionError(
            f"{where} names {len(selections)} networks ({', '.join(s.key for s in selections)}); "
            "a pod has exactly one default network"
        )
    selection = selections[0]
    if selection.interface not in (None, "eth0"):
        raise NetworkSelectionError(
            f"{where} asks for interface {_q(selection.interface)}, but the default network is always eth0; "
            "remove the interface"
        )
    return selection


def _parse(value: Any, *, annotation: str, default_namespace: str) -> list[NetworkSelection]:
    if not isinstance(value, str):
        raise NetworkSelectionError(f"{annotation} is {type(value).__name__}, not a string; quote it")
    if not value.strip():
        return []
    # Multus decides the same way: any bracket, brace or quote means the JSON form.
    if any(char in value for char in '[{"'):
        return _parse_json(value, annotation=annotation, default_namespace=default_namespace)
    return [
        _parse_item(item, label=f"item {index} of {annotation}", default_namespace=default_namespace)
        for index, item in enumerate(value.split(","), start=1)
    ]


def _parse_item(text: str, *, label: str, default_namespace: str) -> NetworkSelection:
    """One `[namespace/]name[@interface]` item of the comma form."""
    item = text.strip()
    shown = annotations.quote(item)
    if not item:
        raise NetworkSelectionError(
            f"{label} is empty; remove the extra comma or write [namespace/]name[@interface]"
        )
    namespace_part, slash, rest = item.rpartition("/") if "/" in item else ("", "", item)
    if slash and "/" in namespace_part:
        raise NetworkSelectionError(f"{label}, {shown}, has more than one '/'; write namespace/name")
    if "@" in namespace_part:
        raise NetworkSelectionError(f"{label}, {shown}, has '@' before '/'; write namespace/name@interface")
    name, at, interface = rest.partition("@")
    if "@" in interface:
        raise NetworkSelectionError(f"{label}, {shown}, has more than one '@'; write name@interface")
    name, interface, namespace = name.strip(), interface.strip(), namespace_part.strip()
    if slash and not namespace:
        raise NetworkSelectionError(f"{label}, {shown}, has an empty namespace; write namespace/name or name")
    if not name:
        raise NetworkSelectionError(f"{label}, {shown}, has an empty name; write namespace/name")
    if at and not interface:
        raise NetworkSelectionError(
            f"{label}, {shown}, has an empty interface after '@'; write name@net1 or drop the '@'"
        )
    _check_label(name, what="name", label=label, shown=shown)
    if namespace:
        _check_label(namespace, what="namespace", label=label, shown=shown)
    if interface:
        _check_interface(interface, label=label, shown=shown)
    return NetworkSelection(name=name, namespace=namespace or default_namespace, interface=interface or None)


def _parse_json(value: str, *, annotation: str, default_namespace: str) -> list[NetworkSelection]:
    try:
        items = json.loads(value)
    except (ValueError, RecursionError) as error:
        raise NetworkSelectionError(
            f"{annotation} {annotations.quote(value)} is not valid JSON ({annotations.json_reason(error)}); "
            'write a list such as [{"name": "macvlan", "namespace": "default"}] or namespace/name'
        ) from None
    if isinstance(items, dict):
        raise NetworkSelectionError(
            f"{annotation} is a JSON object, {annotations.shorten(items)}, but Multus reads a list; "
            "wrap it in [ ]"
        )
    if not isinstance(items, list):
        raise NetworkSelectionError(
            f"{annotation} is {annotations.shorten(items)}, not a list; "
            'write a list such as [{"name": "macvlan"}] or namespace/name'
        )
    return [
        _parse_element(item, label=f"item {index} of {annotation}", default_namespace=default_namespace)
        for index, item in enumerate(items, start=1)
    ]


def _parse_element(item: Any, *, label: str, default_namespace: str) -> NetworkSelection:
    """One element of the JSON form (a NetworkSelectionElement)."""
    shown = annotations.shorten(item)
    if not isinstance(item, dict):
        raise NetworkSelectionError(f'{label}, {shown}, is not an object; write {{"name": "…"}}')
    unknown = sorted(set(item) - set(_KEYS))
    if unknown:
        raise NetworkSelectionError(
            f"{label}, {shown}, has unknown key {annotations.quote(unknown[0])}; "
            f"the keys are {', '.join(_KEYS)}"
        )
    # A JSON null is an absent key, as in Go's decoding which Multus relies on.
    fields = {k: v for k, v in item.items() if v is not None}
    text = _StringFields(fields, label=label, shown=shown)

    name = text.get("name")
    if not name:
        raise NetworkSelectionError(f'{label}, {shown}, has an empty name; write {{"name": "<nad>"}}')
    _check_label(name, what="name", label=label, shown=shown)
    namespace = text.get("namespace")
    if namespace:
        _check_label(namespace, what="namespace", label=label, shown=shown)

    interface = text.get("interface") or None
    deprecated = text.get("interfaceRequest") or None
    if interface and deprecated and interface != deprecated:
        raise NetworkSelectionError(
            f"{label}, {shown}, asks for interface {_q(interface)} and interfaceRequest {_q(deprecated)}; "
            "keep only interface"
        )
    interface = interface or deprecated
    if interface:
        _check_interface(interface, label=label, shown=shown)

    mac = text.get("mac") or None
    if mac and not _is_hardware_address(mac, octets=(6,)):
        raise NetworkSelectionError(
            f"{label}, {shown}, has mac {_q(mac)}, which is not a MAC address; write e.g. 00:00:00:53:6B:BB"
        )
    guid = text.get("infiniband-guid")
    if guid and not _is_hardware_address(guid, octets=(8, 20)):
        raise NetworkSelectionError(
            f"{label}, {shown}, has infiniband-guid {_q(guid)}, which is not a GUID; "
            "write 8 or 20 hex octets separated by ':'"
        )
    text.get("ipam-claim-reference")  # read for its type check only: passed through in raw
    text.get("deviceID")

    requested = _string_list(fields, "ips", label, shown)
    ips = tuple(_ip_or_cidr(entry, label=label, shown=shown) for entry in requested)
    if len(set(ips)) != len(ips):
        raise NetworkSelectionError(f"{label}, {shown}, lists an address twice in ips; list each once")
    default_route = _gateways(_string_list(fields, "default-route", label, shown), label=label, shown=shown)

    cni_args = fields.get("cni-args")
    if cni_args is not None and not isinstance(cni_args, dict):
        raise NetworkSelectionError(
            f'{label}, {shown}, has cni-args that are not an object; write {{"key": value}}'
        )
    _check_port_mappings(fields.get("portMappings"), label=label, shown=shown)
    _check_bandwidth(fields.get("bandwidth"), label=label, shown=shown)

    return NetworkSelection(
        name=name,
        namespace=namespace or default_namespace,
        interface=interface,
        ips=ips,
        mac=mac,
        default_route=default_route,
        cni_args=cni_args,
        raw=item,
    )


class _StringFields:
    """Reads keys that must hold a JSON string, with one message for every wrong type."""

    def __init__(self, fields: Mapping[str, Any], *, label: str, shown: str) -> None:
        self.fields, self.label, self.shown = fields, label, shown

    def get(self, name: str) -> str:
        value = self.fields.get(name, "")
        if not isinstance(value, str):
            raise NetworkSelectionError(
                f"{self.label}, {self.shown}, has {name} {annotations.shorten(value)}, "
                "which is not a string; quote it"
            )
        return value


def _string_list(fields: Mapping[str, Any], name: str, label: str, shown: str) -> list[str]:
    value = fields.get(name, [])
    if not isinstance(value, list) or not all(isinstance(entry, str) for entry in value):
        raise NetworkSelectionError(
            f"{label}, {shown}, has {name} {annotations.shorten(value)}, which is not a list of strings; "
            f'write e.g. "{name}": ["172.17.0.1"]'
        )
    return value


def _ip_or_cidr(text: str, *, label: str, shown: str) -> str:
    """An address or address/prefix (Multus takes both), written canonically."""
    try:
        if "/" in text:
            network = annotations.parse_interface(text)
            return f"{network.ip}/{network.prefixlen}"
        return str(annotations.parse_address(text))
    except ValueError:
        raise NetworkSelectionError(
            f"{label}, {shown}, has ips entry {_q(text)}, which is not an IP address or CIDR; "
            'write e.g. "172.17.0.100" or "172.17.0.100/16"'
        ) from None


def _gateways(texts: list[str], *, label: str, shown: str) -> tuple[str, ...]:
    """`default-route` gateways: plain addresses, at most one per family."""
    gateways: dict[int, str] = {}
    for text in texts:
        try:
            gateway = annotations.parse_address(text)
        except ValueError:
            raise NetworkSelectionError(
                f"{label}, {shown}, has default-route entry {_q(text)}, which is not an IP address; "
                'write the gateway, e.g. "default-route": ["172.17.0.1"]'
            ) from None
        if gateway.version in gateways:
            raise NetworkSelectionError(
                f"{label}, {shown}, has two IPv{gateway.version} default-route gateways "
                f"({gateways[gateway.version]} and {gateway}); a pod has one default route per family"
            )
        gateways[gateway.version] = str(gateway)
    return tuple(gateways.values())


def _check_label(text: str, *, what: str, label: str, shown: str) -> None:
    if not _DNS_LABEL.fullmatch(text):
        raise NetworkSelectionError(
            f"{label}, {shown}, has {what} {_q(text)}, which is not a DNS-1123 label; use at most 63 "
            "lower-case letters, digits and '-', starting and ending with a letter or digit"
        )


def _check_interface(text: str, *, label: str, shown: str) -> None:
    """The kernel's rule for link names (`dev_valid_name`: 1-15 bytes, no '/', ':' or spaces), in ASCII."""
    if (
        len(text) >= _IFNAMSIZ
        or text in (".", "..")
        or any(char in _INTERFACE_FORBIDDEN for char in text)
        or not (text.isascii() and text.isprintable())
    ):
        raise NetworkSelectionError(
            f"{label}, {shown}, has interface {_q(text)}, which is not a Linux interface name; "
            "use at most 15 printable ASCII characters without '/', ':' or spaces, e.g. net1"
        )


def _is_hardware_address(text: str, *, octets: tuple[int, ...]) -> bool:
    """The notations Go's net.ParseMAC accepts: `aa:bb:…`, `aa-bb-…` or `aabb.ccdd.…`."""
    for count in octets:
        colons = f"{_HEX_PAIR}(:{_HEX_PAIR}){{{count - 1}}}"
        dashes = f"{_HEX_PAIR}(-{_HEX_PAIR}){{{count - 1}}}"
        dots = rf"{_HEX_QUAD}(\.{_HEX_QUAD}){{{count // 2 - 1}}}"
        if any(re.fullmatch(pattern, text, re.ASCII) for pattern in (colons, dashes, dots)):
            return True
    return False


def _check_port_mappings(value: Any, *, label: str, shown: str) -> None:
    if value is None:
        return
    ok = isinstance(value, list) and all(
        isinstance(entry, dict)
        and set(entry) <= set(_PORT_MAPPING_KEYS)
        and all(_is_port(entry.get(key)) for key in ("hostPort", "containerPort"))
        and isinstance(entry.get("protocol", ""), str)
        and isinstance(entry.get("hostIP", ""), str)
        for entry in value
    )
    if not ok:
        raise NetworkSelectionError(
            f"{label}, {shown}, has portMappings that are not a list of "
            '{"hostPort": 1-65535, "containerPort": 1-65535, "protocol": "tcp"} objects; '
            "fix them or remove them"
        )


def _check_bandwidth(value: Any, *, label: str, shown: str) -> None:
    if value is None:
        return
    ok = isinstance(value, dict) and all(
        key in _BANDWIDTH_KEYS and _is_count(amount) for key, amount in value.items()
    )
    if not ok:
        raise NetworkSelectionError(
            f"{label}, {shown}, has bandwidth that is not an object of non-negative integers "
            f"({', '.join(_BANDWIDTH_KEYS)}); fix it or remove it"
        )


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_port(value: Any) -> bool:
    return _is_count(value) and 1 <= value <= 65535
