"""Multus's `k8s.v1.cni.cncf.io/network-status` annotation → `NetworkStatus` entries.

Multus writes it after CNI ran: one object per interface with the network's `name` (the cluster
network's own name for the default network, `namespace/nad` for an attachment), the `interface`,
the addresses of the CNI result (`ips`, bare addresses, no prefix), `mac` and `default`. It is the
truth about the addresses a running pod uses, which is what `multinic-ipam adopt` holds.

This sits beside `networks.py` because it is the same kind of thing: Multus annotation text, pure
parsing with no Kubernetes client. Keys Multus also writes (`dns`, `gateway`, `mtu`,
`device-info`) are accepted and ignored; wrong types and unusable addresses are refused with one
sentence, since an address read wrongly would be held for the wrong pod.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from allocator import annotations
from allocator.addresses import format_ip, parse_ip
from allocator.errors import InvalidAddress, ParseError
from allocator.mac import normalise_mac

WHERE = annotations.NETWORK_STATUS


class NetworkStatusError(ParseError):
    """A network-status annotation that does not parse."""


@dataclass(frozen=True)
class NetworkStatus:
    """One interface Multus reports for a pod."""

    name: str  # "namespace/nad", or the default network's name
    interface: str = ""  # "" when Multus wrote none (old versions, for the default network)
    ips: tuple[str, ...] = ()  # canonical text, in the order written
    mac: str | None = None  # lowercase colon form
    default: bool = False

    @property
    def nad(self) -> tuple[str, str] | None:
        """(namespace, name) of the NetworkAttachmentDefinition, or None for a name without one '/'."""
        namespace, slash, name = self.name.partition("/")
        if not slash or not namespace or not name or "/" in name:
            return None
        return namespace, name


def parse_network_status(value: Any) -> tuple[NetworkStatus, ...]:
    """The annotation's entries; raises `NetworkStatusError` (one sentence) when it is malformed."""
    if not isinstance(value, str):
        raise NetworkStatusError(f"{WHERE} is {type(value).__name__}, not a string")
    try:
        items = json.loads(value)
    except (ValueError, RecursionError) as error:
        raise NetworkStatusError(
            f"{WHERE} {annotations.quote(value)} is not valid JSON ({annotations.json_reason(error)}); "
            "Multus writes a list of objects there"
        ) from None
    if not isinstance(items, list):
        raise NetworkStatusError(
            f"{WHERE} is {annotations.shorten(items)}, not a list; Multus writes a list of objects there"
        )
    return tuple(_entry(item, label=f"entry {index} of {WHERE}") for index, item in enumerate(items, start=1))


def _entry(item: Any, *, label: str) -> NetworkStatus:
    shown = annotations.shorten(item)
    if not isinstance(item, dict):
        raise NetworkStatusError(f'{label}, {shown}, is not an object; Multus writes {{"name": …, "ips": …}}')
    name = item.get("name")
    if not isinstance(name, str) or not name.strip():
        raise NetworkStatusError(f'{label}, {shown}, has no "name"; Multus names each network')
    interface = item.get("interface", "")
    if not isinstance(interface, str):
        raise NetworkStatusError(f'{label}, {shown}, has an "interface" that is not a string')
    default = item.get("default", False)
    if not isinstance(default, bool):
        raise NetworkStatusError(f'{label}, {shown}, has a "default" that is not true or false')
    return NetworkStatus(
        name=name.strip(),
        interface=interface.strip(),
        ips=_ips(item.get("ips"), label=label, shown=shown),
        mac=_mac(item.get("mac"), label=label, shown=shown),
        default=default,
    )


def _ips(value: Any, *, label: str, shown: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise NetworkStatusError(f'{label}, {shown}, has "ips" that is not a list of addresses')
    found: list[str] = []
    for text in value:
        if not isinstance(text, str):
            raise NetworkStatusError(
                f"{label}, {shown}, lists {annotations.shorten(text)} in ips, which is not an address string"
            )
        address = text.strip()
        if "/" in address:  # Multus writes bare addresses; a prefix means someone else wrote this
            raise NetworkStatusError(
                f"{label}, {shown}, lists {annotations.quote(text)} in ips with a prefix length; "
                "Multus writes bare addresses such as 10.1.1.5"
            )
        try:
            canonical = format_ip(*parse_ip(address))
        except InvalidAddress:
            raise NetworkStatusError(
                f"{label}, {shown}, lists {annotations.quote(text)} in ips, which is not an IP address"
            ) from None
        if canonical not in found:
            found.append(canonical)
    return tuple(found)


def _mac(value: Any, *, label: str, shown: str) -> str | None:
    if value is None or value == "":
        return None
    try:
        return normalise_mac(value)
    except InvalidAddress as error:  # InvalidMAC
        raise NetworkStatusError(f'{label}, {shown}, has an unusable "mac": {error}') from None
