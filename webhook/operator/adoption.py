"""`multinic-ipam adopt`, the deciding half: what each live pod already uses, and what to do about it.

Nothing here writes. `plan` reads a view (the `Store` over one list of each kind) and answers,
for every address a live pod uses on an attachment this IPAM serves, one `Row` (pod, interface,
address, Subnet, action) and, where something is wrong, one sentence naming the pods and the fix.
`webhook.operator.adopter` carries the plan out; `--dry-run` prints it.

Where the addresses come from: Multus's network-status annotation (the CNI result, so the truth),
else Whereabouts' IPPool allocations, else its OverlappingRangeIPReservations, per interface.
Which Subnet: the one the webhooks' own resolver (`webhook.admission.attachments.resolve`) picks for the
pod's annotations. A NAD that still uses another IPAM (Whereabouts, host-local) is read as it will
be once it uses kube-ovn (`as_migrated`), when a Subnet with its provider `<nad>.<ns>` exists: the
operator creates the Subnets, adopts, then switches the NADs.

Contested addresses are held for the oldest pod (creation time, then name), so no new pod is
given one while the operator resolves the conflict. Pods that are gone are not adopted.
"""

from __future__ import annotations

import copy
import json
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from allocator import annotations as keys
from allocator import errors, nad
from allocator.addresses import parse_ip
from allocator.network_status import NetworkStatus, NetworkStatusError, parse_network_status
from allocator.subnet import SubnetSpec, usable_bounds
from webhook.admission.attachments import Attachment, AttachmentError, resolve
from webhook.cluster.cache import Object
from webhook.cluster.ipobjects import holder_text, token_of
from webhook.cluster.store import Store
from webhook.leader import decisions
from webhook.operator.whereabouts import Record

HOLD = "hold"  # create the IP object (and annotate, bind)
HELD = "already held"  # nothing to do
BIND = "bind"  # our IP object exists for this pod but is not tied to its UID yet
ANNOTATE = "annotate"  # held, but the pod lacks our output annotations
CONFLICT = "conflict"  # not held by this pod; a sentence says why and what to do
SKIP = "skip"  # not ours to hold (pod gone, NAD not served)

NETWORK_STATUS = "network-status"


@dataclass(frozen=True)
class Row:
    """One address of one pod's interface and what adopt does with it."""

    pod: str  # namespace/name
    interface: str
    address: str
    subnet: str  # "" when none
    action: str
    source: str  # network-status, IPPool ns/name, OverlappingRangeIPReservation ns/name
    note: str = ""

    def as_dict(self) -> dict[str, str]:
        return dict(self.__dict__)


@dataclass
class AttachmentPlan:
    """What to do for one attachment of one pod."""

    attachment: Attachment
    hold: list[str] = field(default_factory=list)  # addresses to lock with new IP objects
    held: list[str] = field(default_factory=list)  # addresses this pod's IP objects already hold
    unbound: list[str] = field(default_factory=list)  # names of those not bound to its UID yet
    mac: str | None = None  # as Multus reported it

    def missing_annotations(self, notes: Mapping[str, str]) -> bool:
        return any(self.attachment.key(f) not in notes for f in keys.OUTPUT_FIELDS)


@dataclass
class PodPlan:
    pod: Object
    attachments: list[AttachmentPlan] = field(default_factory=list)

    @property
    def ref(self) -> str:
        return _ref(self.pod)

    def needs_writes(self) -> bool:
        notes = _notes(self.pod)
        return any(a.hold or a.unbound or (a.held and a.missing_annotations(notes)) for a in self.attachments)


@dataclass
class Plan:
    rows: list[Row] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    pods: list[PodPlan] = field(default_factory=list)

    @property
    def changes(self) -> bool:
        return any(p.needs_writes() for p in self.pods)


@dataclass(frozen=True)
class _Seen:
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


def plan(view: Store, pods: Iterable[Object], records: Iterable[Record] = ()) -> Plan:
    """What adopting `pods` (with Whereabouts `records` of their namespaces) takes; writes nothing."""
    out = Plan()
    everyone = {(_meta(p).get("namespace", ""), _meta(p).get("name", "")): p for p in pods}
    by_pod: dict[tuple[str, str], list[Record]] = defaultdict(list)
    for record in records:
        pod = everyone.get((record.namespace, record.pod))
        if not record.pod:
            out.rows.append(Row("-", record.interface, record.address, "", SKIP, record.source,
                                "the record names no pod"))
        elif pod is None or decisions.terminated(pod) or (record.pod_uid and record.pod_uid != _uid(pod)):
            out.rows.append(Row(record.pod_ref, record.interface, record.address, "", SKIP, record.source,
                                "its pod is gone"))
        else:
            by_pod[(record.namespace, record.pod)].append(record)
    seen: list[_Seen] = []
    for pod in sorted(everyone.values(), key=_age):
        if decisions.terminated(pod):
            continue
        key = (_meta(pod).get("namespace", ""), _meta(pod).get("name", ""))
        seen += _pod_addresses(view, pod, by_pod.get(key, []), out)
    plans: dict[str, PodPlan] = {}
    by_address: dict[tuple[str, str], list[_Seen]] = defaultdict(list)
    for item in seen:
        problem = _misfit(view, item)
        if problem is not None:
            out.rows.append(_row(item, CONFLICT, problem[0]))
            out.problems.append(problem[1])
            continue
        by_address[(item.attachment.subnet_name, item.address)].append(item)
    for (subnet, address), users in by_address.items():
        _decide_address(view, subnet, address, users, plans=plans, out=out)
    out.pods = sorted(plans.values(), key=lambda p: _age(p.pod))
    out.rows.sort(key=lambda r: (r.pod, r.interface, r.address))
    return out


def _pod_addresses(view: Store, pod: Object, records: list[Record], out: Plan) -> list[_Seen]:
    """Every address `pod` uses on an attachment this IPAM serves; other addresses become skip rows."""
    ref, notes = _ref(pod), _notes(pod)
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
        found = resolve(view, notes, _meta(pod).get("namespace", ""))
    except AttachmentError as error:
        out.problems.append(f"pod {ref} is not adopted: {error}")
        unread = [(s.interface, a, NETWORK_STATUS) for s in used if not s.default for a in s.ips]
        unread += [(r.interface, r.address, r.source) for r in records]
        out.rows += [Row(ref, interface, address, "", CONFLICT, source, "its networks cannot be resolved")
                     for interface, address, source in unread]
        return []
    seen: list[_Seen] = []
    claimed_status: set[int] = set()
    claimed_records: set[int] = set()
    for attachment in found:
        matches = _status_for(attachment, statuses)
        claimed_status.update(id(s) for s in matches)
        mine = [r for r in records
                if r.interface == attachment.interface or (not r.interface and len(found) == 1)]
        if matches:
            seen += [_Seen(pod, attachment, a, NETWORK_STATUS, s.mac) for s in matches for a in s.ips]
            reported = {a for s in matches for a in s.ips}
            claimed_records.update(id(r) for r in mine)
            out.rows += [Row(ref, r.interface, r.address, "", SKIP, r.source,
                             "stale: network-status reports another address on this interface")
                         for r in mine if r.address not in reported]
            continue
        pools = [r for r in mine if r.source.startswith("IPPool")]
        chosen = pools or mine  # reservations only when no IPPool speaks for this interface
        claimed_records.update(id(r) for r in mine)
        seen += [_Seen(pod, attachment, r.address, r.source, None) for r in _unique(chosen)]
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


def _status_for(attachment: Attachment, statuses: tuple[NetworkStatus, ...]) -> list[NetworkStatus]:
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


def _misfit(view: Store, item: _Seen) -> tuple[str, str] | None:
    """(row note, sentence) when the Subnet cannot hold `item.address` for its pod at all."""
    subnet, address, ref = item.attachment.subnet_name, item.address, _ref(item.pod)
    try:
        spec: SubnetSpec = view.spec_of(subnet)
    except errors.AllocatorError as error:
        return "unusable Subnet", f"pod {ref} uses {address}, but Subnet {subnet} cannot be used: {error}"
    where = f"pod {ref} uses {address} on {item.attachment.interface} ({item.attachment.label})"
    if not spec.contains(address):
        return "outside the Subnet", (
            f"{where}, outside Subnet {subnet} ({spec.cidr_block}) that provider {item.attachment.provider} "
            f"selects; widen the Subnet's cidrBlock, or recreate the pod so that it gets an address inside it"
        )
    version, value = parse_ip(address)
    cidr = spec.family_cidr(version)
    low, high = usable_bounds(cidr)
    if not low <= value <= high:
        what = "network" if value == cidr.first else "broadcast"
        return f"the {what} address", (
            f"{where}, the {what} address of Subnet {subnet} ({cidr}), which no pod may hold; "
            "recreate the pod so that it gets a usable address"
        )
    gateway = spec.family_gateway(version)
    if gateway is not None and int(gateway) == value:
        return "the gateway", (
            f"{where}, the gateway of Subnet {subnet}; set the Subnet's spec.gateway to the router's real "
            "address, or recreate the pod so that it gets another address"
        )
    return None


def _excluded(view: Store, subnet: str, address: str) -> bool:
    version, value = parse_ip(address)
    return any(a.version == version and int(a) <= value <= int(b) for a, b in view.spec_of(subnet).excludes)


def _decide_address(
    view: Store, subnet: str, address: str, users: list[_Seen], *, plans: dict[str, PodPlan], out: Plan
) -> None:
    """Hold `address` for its one user, or for the oldest of several; say what is wrong otherwise."""
    users = _distinct(users)
    holder = view.holder(subnet, address)
    owner = next((u for u in users if holder is not None and _mine(holder, u.pod)), None)
    if holder is not None and owner is None and not any(_earlier_self(holder, u.pod) for u in users):
        shown = holder_text(holder)
        alive = _holder_alive(view, holder)
        for user in users:
            out.rows.append(_row(user, CONFLICT, f"held by {shown}"))
        users_text = " and ".join(_user_text(u) for u in users)
        if alive:
            out.problems.append(
                f"{address} in Subnet {subnet} is used by {users_text} but held by {shown} "
                f"(IP object {holder['metadata']['name']}); delete the pod that should not have it, and "
                "its controller recreates it with a free address"
            )
        else:
            out.problems.append(
                f"{address} in Subnet {subnet} is used by {users_text} but still held by IP object "
                f"{holder['metadata']['name']} of {shown}, which is gone; run `multinic-ipam gc` (or wait "
                "for the webhook's leader to release it) and adopt again"
            )
        return
    keeper = owner or users[0]  # users are oldest first
    spec = (holder.get("spec") or {}) if holder is not None else {}
    attachment_plan = _attachment_plan(plans, keeper)
    excluded = _excluded(view, subnet, address)
    note = "excluded by the Subnet" if excluded else ""
    if owner is not None:
        attachment_plan.held.append(address)
        if not spec.get("podUID"):
            attachment_plan.unbound.append(holder["metadata"]["name"])
            out.rows.append(_row(keeper, BIND, note))
        elif attachment_plan.missing_annotations(_notes(keeper.pod)):
            out.rows.append(_row(keeper, ANNOTATE, note or "the pod lacks its output annotations"))
        else:
            out.rows.append(_row(keeper, HELD, note))
    else:
        attachment_plan.hold.append(address)
        attachment_plan.mac = attachment_plan.mac or keeper.mac
        out.rows.append(_row(keeper, HOLD, note))
    if excluded and owner is None:
        out.problems.append(
            f"{_user_text(keeper)} uses {address}, which Subnet {subnet} excludes (excludeIps); it is held "
            "for the pod anyway so that nothing else gets it, but remove it from excludeIps or recreate "
            "the pod"
        )
    others = [u for u in users if u is not keeper]
    for other in others:
        out.rows.append(_row(other, CONFLICT, f"held for the older pod {_ref(keeper.pod)}"))
    if others:
        shown = ", ".join(_user_text(u) for u in others)
        out.problems.append(
            f"{address} in Subnet {subnet} is used by {_user_text(keeper)} and by {shown}; it is held for "
            f"{_ref(keeper.pod)}, the oldest; delete {', '.join(_ref(u.pod) for u in others)} (a controller "
            "recreates it with a free address) or give it another address"
        )


def _distinct(users: list[_Seen]) -> list[_Seen]:
    """One entry per (pod, interface), oldest pod first (the order they were gathered in)."""
    seen: dict[tuple[str, str], _Seen] = {}
    for user in users:
        seen.setdefault((_uid(user.pod), user.attachment.interface), user)
    return list(seen.values())


def _attachment_plan(plans: dict[str, PodPlan], user: _Seen) -> AttachmentPlan:
    pod_plan = plans.setdefault(_uid(user.pod), PodPlan(user.pod))
    for existing in pod_plan.attachments:
        if existing.attachment.key_provider == user.attachment.key_provider:
            return existing
    made = AttachmentPlan(user.attachment)
    pod_plan.attachments.append(made)
    return made


def _mine(holder: Object, pod: Object) -> bool:
    """The IP object stands for this very pod: bound to its UID, or reserved with its token."""
    spec = holder.get("spec") or {}
    if spec.get("namespace") != _meta(pod).get("namespace"):
        return False
    if spec.get("podUID"):
        return spec["podUID"] == _uid(pod)
    token = token_of(holder)
    return bool(token) and token == token_of(pod)


def _earlier_self(holder: Object, pod: Object) -> bool:
    """Held for an earlier pod of the same name: the store's reserve takes such an object over."""
    spec = holder.get("spec") or {}
    meta = _meta(pod)
    return (spec.get("namespace"), spec.get("podName")) == (meta.get("namespace"), meta.get("name"))


def _holder_alive(view: Store, holder: Object) -> bool:
    spec = holder.get("spec") or {}
    if spec.get("podName"):
        pod = view.pod(spec.get("namespace", ""), spec["podName"])
        return pod is not None and (not spec.get("podUID") or spec["podUID"] == _uid(pod))
    return view.pod_for_token(token_of(holder)) is not None


def _row(item: _Seen, action: str, note: str = "") -> Row:
    return Row(_ref(item.pod), item.attachment.interface, item.address, item.attachment.subnet_name, action,
               item.source, note)


def _user_text(item: _Seen) -> str:
    return f"pod {_ref(item.pod)} ({item.attachment.interface})"


def _age(pod: Object) -> tuple[str, str, str]:
    meta = _meta(pod)
    return meta.get("creationTimestamp") or "", meta.get("namespace") or "", meta.get("name") or ""


def _meta(obj: Object) -> Mapping:
    return obj.get("metadata") or {}


def _notes(pod: Object) -> Mapping[str, str]:
    return _meta(pod).get("annotations") or {}


def _uid(pod: Object) -> str:
    return _meta(pod).get("uid") or ""


def _ref(pod: Object) -> str:
    meta = _meta(pod)
    return f"{meta.get('namespace', '')}/{meta.get('name', '')}"
