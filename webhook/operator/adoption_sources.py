"""`multinic-ipam adopt`: where the addresses a live pod uses come from, per attachment.

Multus's network-status annotation (the CNI result, so the truth), else Whereabouts' IPPool
allocations, else its OverlappingRangeIPReservations, per interface. Which attachment: the ones the
webhooks' own resolver (`webhook.admission.attachments.resolve`) finds in the pod's annotations. A
NAD that still uses another IPAM (Whereabouts, host-local) is read as it will be once it uses
kube-ovn (`as_migrated`), when a Subnet with its provider `<nad>.<ns>` exists: the operator creates
the Subnets, adopts, then switches the NADs.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable
from dataclasses import dataclass

from allocator import annotations as keys
from allocator import errors, nad
from allocator.network_status import NetworkStatus, NetworkStatusError, parse_network_status
from webhook.admission.attachments import Attachment, AttachmentError, resolve
from webhook.cluster.cache import Object
from webhook.cluster.store import Store
from webhook.operator.adoption_plan import CONFLICT, SKIP, Plan, Row, meta_of, notes_of, pod_ref
from webhook.operator.whereabouts import Record

NETWORK_STATUS = "network-status"


@dataclass(frozen=True)
class Seen:
    """An address a pod uses on an attachment, as read from `source`."""

    pod: Object
    attachment: Attachment
    address: str
    source: str
    mac: str | None


def as_migrated(nad_object: Object, providers: Iterable[str]) -> Object | None:
    """`nad_object` as it will read once its IPAM is kube-ovn, when a Subnet with its provider
    `<nad>.<ns>` exists and it does not use kube-ovn yet; else None (read it as it is)."""
    meta = nad_object.get("metadata") or {}
    namespace, name = meta.get("namespace") or "", meta.get("name") or ""
    provider = keys.provider_for(name, namespace, ovn_type=False)
    if provider not in set(providers):
        return None
    try:
        if nad.parse_nad(namespace, name, nad_object.get("spec")).uses_kube_ovn:
            return None
        config = json.loads(nad_object["spec"]["config"])
    except (errors.AllocatorError, KeyError, TypeError, ValueError):
        return None
    plugins = config.get("plugins") if isinstance(config.get("plugins"), list) else [config]
    with_ipam = next((p for p in plugins if isinstance(p, dict) and isinstance(p.get("ipam"), dict)), None)
    if with_ipam is None:
        return None  # no IPAM at all: its interfaces have no addresses to adopt
    with_ipam["ipam"] = {"type": nad.KUBE_OVN, "provider": provider,
                         "server_socket": nad.DEFAULT_SERVER_SOCKET}
    migrated = copy.deepcopy(nad_object)
    migrated["spec"]["config"] = json.dumps(config)
    return migrated


def pod_addresses(view: Store, pod: Object, records: list[Record], out: Plan) -> list[Seen]:
    """Every address `pod` uses on an attachment this IPAM serves; other addresses become skip rows."""
    ref, notes = pod_ref(pod), notes_of(pod)
    statuses: tuple[NetworkStatus, ...] = ()
    if keys.NETWORK_STATUS in notes:
        try:
            statuses = parse_network_status(notes[keys.NETWORK_STATUS])
        except NetworkStatusError as error:
            out.problems.append(
                f"pod {ref} cannot be read: {error}; fix or remove the annotation and adopt again"
            )
    used = [s for s in statuses if s.ips and not s.default] + [s for s in statuses if s.ips and s.default]
    if not used and not records:
        return []
    try:
        found = resolve(view, notes, meta_of(pod).get("namespace", ""))
    except AttachmentError as error:
        out.problems.append(f"pod {ref} is not adopted: {error}")
        unread = [(s.interface, a, NETWORK_STATUS) for s in used if not s.default for a in s.ips]
        unread += [(r.interface, r.address, r.source) for r in records]
        out.rows += [Row(ref, interface, address, "", CONFLICT, source, "its networks cannot be resolved")
                     for interface, address, source in unread]
        return []
    seen: list[Seen] = []
    claimed_status: set[int] = set()
    claimed_records: set[int] = set()
    for attachment in found:
        matches = status_for(attachment, statuses)
        claimed_status.update(id(s) for s in matches)
        mine = [r for r in records
                if r.interface == attachment.interface or (not r.interface and len(found) == 1)]
        if matches:
            seen += [Seen(pod, attachment, a, NETWORK_STATUS, s.mac) for s in matches for a in s.ips]
            reported = {a for s in matches for a in s.ips}
            claimed_records.update(id(r) for r in mine)
            out.rows += [Row(ref, r.interface, r.address, "", SKIP, r.source,
                             "stale: network-status reports another address on this interface")
                         for r in mine if r.address not in reported]
            continue
        pools = [r for r in mine if r.source.startswith("IPPool")]
        chosen = pools or mine  # reservations only when no IPPool speaks for this interface
        claimed_records.update(id(r) for r in mine)
        seen += [Seen(pod, attachment, r.address, r.source, None) for r in _unique(chosen)]
    for s in used:
        if id(s) not in claimed_status and not s.default:
            for address in s.ips:
                out.rows.append(Row(ref, s.interface, address, "", SKIP, NETWORK_STATUS,
                                    f"{s.name} is not served by a Subnet"))
    for r in records:
        if id(r) not in claimed_records:
            out.rows.append(Row(ref, r.interface, r.address, "", SKIP, r.source,
                                "no attachment of the pod on this interface is served by a Subnet"))
    return seen


def status_for(attachment: Attachment, statuses: tuple[NetworkStatus, ...]) -> list[NetworkStatus]:
    """The network-status entries of `attachment`: by NAD and interface (the default network's for
    the primary attachment); an entry without an interface matches when it is its NAD's only one."""
    if attachment.selection is None:
        return [s for s in statuses if s.default and s.ips][:1]
    wanted = (attachment.selection.namespace, attachment.selection.name)
    of_nad = [s for s in statuses if s.nad == wanted and s.ips]
    exact = [s for s in of_nad if s.interface == attachment.interface]
    if exact:
        return exact[:1]
    return of_nad if len(of_nad) == 1 and not of_nad[0].interface else []


def _unique(records: list[Record]) -> list[Record]:
    seen: dict[str, Record] = {}
    for record in records:
        seen.setdefault(record.address, record)
    return list(seen.values())
