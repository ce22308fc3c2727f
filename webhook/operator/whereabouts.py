"""Whereabouts' own records of who holds which address, read as `Record`s (pure; no client).

`whereabouts.cni.cncf.io/v1alpha1` (k8snetworkplumbingwg/whereabouts, `pkg/api/…/v1alpha1`):
- `IPPool`: `spec.range` (a CIDR; Whereabouts counts offsets from the address as written, which
  is what Go's `net.ParseCIDR` returns first) and `spec.allocations`, a map from that decimal
  offset to `{"id": container ID, "podref": "namespace/name", "ifname": …}`.
- `OverlappingRangeIPReservation`: one per address, named after it (IPv6 with `:` written `-`,
  and a trailing `:` completed with `0`; prefixed `<network-name>-` for a named network), with
  `spec.podref`, `spec.containerid`, `spec.ifname` (and `spec.podUID` in some forks).

They live here, not in `allocator/`, because they are the shapes of another project's Kubernetes
objects; `multinic-ipam adopt` reads them for pods whose network-status annotation is missing.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from allocator import annotations
from allocator.errors import ParseError

GROUP = "whereabouts.cni.cncf.io"
VERSION = "v1alpha1"


class WhereaboutsError(ParseError):
    """A Whereabouts object whose fields cannot be read as Whereabouts writes them."""


@dataclass(frozen=True)
class Record:
    """One address Whereabouts has handed to a pod's interface."""

    address: str
    namespace: str  # of the pod; "" when the record names no pod (written before podref existed)
    pod: str
    interface: str  # "" when not recorded
    container_id: str
    source: str  # "IPPool kube-system/10.1.1.0-24"
    pod_uid: str = ""

    @property
    def pod_ref(self) -> str:
        return f"{self.namespace}/{self.pod}" if self.pod else ""


def ippool_records(pool: Mapping[str, Any]) -> list[Record]:
    """The allocations of one IPPool, in offset order; raises `WhereaboutsError` when malformed."""
    source = f"IPPool {_where(pool)}"
    spec = _spec(pool, source)
    text = spec.get("range")
    if not isinstance(text, str) or "/" not in text:
        raise WhereaboutsError(
            f"{source} has spec.range {annotations.shorten(text)}, not a CIDR such as 10.1.1.0/24"
        )
    try:
        base = ipaddress.ip_address(text.strip().partition("/")[0])
        network = ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        raise WhereaboutsError(
            f"{source} has spec.range {annotations.quote(text)}, which is not a CIDR"
        ) from None
    allocations = spec.get("allocations") or {}
    if not isinstance(allocations, Mapping):
        raise WhereaboutsError(f"{source} has spec.allocations that is not a map from offset to allocation")
    found = []
    for offset, allocation in allocations.items():
        label = f"allocation {annotations.quote(str(offset))} of {source}"
        if not isinstance(offset, str) or not offset.isdigit():
            raise WhereaboutsError(f"{label} is not keyed by a decimal offset into spec.range {text}")
        address = _offset(base, int(offset), network)
        if address is None:
            raise WhereaboutsError(f"{label} lies beyond spec.range {text}")
        entry = _fields(allocation, label, {"id": "id", "podref": "podref", "ifname": "ifname"})
        found.append((int(offset), _record(str(address), entry, label, source, container_id=entry["id"])))
    return [record for _, record in sorted(found, key=lambda pair: pair[0])]


def reservation_record(reservation: Mapping[str, Any]) -> Record:
    """The address and pod of one OverlappingRangeIPReservation; raises `WhereaboutsError`."""
    source = f"OverlappingRangeIPReservation {_where(reservation)}"
    spec = _spec(reservation, source)
    name = str((reservation.get("metadata") or {}).get("name") or "")
    address = address_from_name(name)
    if address is None:
        raise WhereaboutsError(
            f"{source} is not named after an address (Whereabouts writes 10.1.1.5 or fd00--5)"
        )
    entry = _fields(spec, source, {"containerid": "containerid", "podref": "podref", "ifname": "ifname",
                                   "podUID": "podUID"})
    return _record(address, entry, source, source, container_id=entry["containerid"], pod_uid=entry["podUID"])


def address_from_name(name: str) -> str | None:
    """The address an OverlappingRangeIPReservation is named after, with or without a network-name
    prefix (`-`-separated, so the longest suffix that is an address wins); None when none is.

    IPv6 names have `-` for `:` (`fd00--5`, or all eight groups in newer versions). A network name
    whose last part looks like hex (`net-a-fd00--1`) is ambiguous; IPPool records, read first, win.
    """
    parts = name.split("-")
    for start in range(len(parts)):
        tail = "-".join(parts[start:])
        text = tail if "." in tail else tail.replace("-", ":")
        try:
            return str(ipaddress.ip_address(text))
        except ValueError:
            continue
    return None


def _record(address: str, entry: dict[str, str], label: str, source: str, *, container_id: str,
            pod_uid: str = "") -> Record:
    namespace, pod = "", ""
    ref = entry["podref"]
    if ref:
        namespace, slash, pod = ref.partition("/")
        if not slash or not namespace or not pod or "/" in pod:
            raise WhereaboutsError(f"{label} has podref {annotations.quote(ref)}, not namespace/name")
    return Record(address=address, namespace=namespace, pod=pod, interface=entry["ifname"],
                  container_id=container_id, source=source, pod_uid=pod_uid)


def _fields(value: Any, label: str, keys: dict[str, str]) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise WhereaboutsError(f"{label} is {annotations.shorten(value)}, not an object")
    out = {}
    for key in keys:
        text = value.get(key, "")
        if text is None:
            text = ""
        if not isinstance(text, str):
            raise WhereaboutsError(f"{label} has {key} {annotations.shorten(text)}, which is not a string")
        out[key] = text.strip()
    return out


def _offset(base: Any, offset: int, network: Any) -> Any:
    """`base + offset` when it stays inside `network` (Whereabouts never writes beyond its range)."""
    value = int(base) + offset
    if value > int(network.broadcast_address):
        return None
    return ipaddress.ip_address(value) if base.version == 4 else ipaddress.IPv6Address(value)


def _spec(obj: Mapping[str, Any], source: str) -> Mapping[str, Any]:
    spec = obj.get("spec")
    if not isinstance(spec, Mapping):
        raise WhereaboutsError(f"{source} has no spec object")
    return spec


def _where(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    return f"{meta.get('namespace', '')}/{meta.get('name', '')}"
