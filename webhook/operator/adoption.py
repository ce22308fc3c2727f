"""`multinic-ipam adopt`, the deciding half: what each live pod already uses, and what to do about it.

Nothing here writes. `plan` reads a view (the `Store` over one list of each kind) and answers,
for every address a live pod uses on an attachment this IPAM serves, one `Row` (pod, interface,
address, Subnet, action) and, where something is wrong, one sentence naming the pods and the fix.
`webhook.operator.adopter` carries the plan out; `--dry-run` prints it.

Where the addresses come from is `webhook.operator.adoption_sources` (network-status, else
Whereabouts' records); the plan's rows and steps are `webhook.operator.adoption_plan`. Which Subnet:
the one the webhooks' own resolver (`webhook.admission.attachments.resolve`) picks for the pod's
annotations.

Contested addresses are held for the oldest pod (creation time, then name), so no new pod is
given one while the operator resolves the conflict. Pods that are gone are not adopted.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from allocator import errors
from allocator.addresses import parse_ip
from allocator.subnet_spec import SubnetSpec
from allocator.usable import usable_bounds
from webhook.cluster.cache import Object
from webhook.cluster.ipobjects import holder_text, token_of
from webhook.cluster.store import Store
from webhook.leader import decisions
from webhook.operator.adoption_plan import (
    ANNOTATE,
    BIND,
    CONFLICT,
    HELD,
    HOLD,
    SKIP,
    AttachmentPlan,
    Plan,
    PodPlan,
    Row,
    age_of,
    meta_of,
    notes_of,
    pod_ref,
    uid_of,
)
from webhook.operator.adoption_sources import Seen, pod_addresses
from webhook.operator.whereabouts import Record


def plan(view: Store, pods: Iterable[Object], records: Iterable[Record] = ()) -> Plan:
    """What adopting `pods` (with Whereabouts `records` of their namespaces) takes; writes nothing."""
    out = Plan()
    everyone = {(meta_of(p).get("namespace", ""), meta_of(p).get("name", "")): p for p in pods}
    by_pod: dict[tuple[str, str], list[Record]] = defaultdict(list)
    for record in records:
        pod = everyone.get((record.namespace, record.pod))
        if not record.pod:
            out.rows.append(Row("-", record.interface, record.address, "", SKIP, record.source,
                                "the record names no pod"))
        elif pod is None or decisions.terminated(pod) or (record.pod_uid and record.pod_uid != uid_of(pod)):
            out.rows.append(Row(record.pod_ref, record.interface, record.address, "", SKIP, record.source,
                                "its pod is gone"))
        else:
            by_pod[(record.namespace, record.pod)].append(record)
    seen: list[Seen] = []
    for pod in sorted(everyone.values(), key=age_of):
        if decisions.terminated(pod):
            continue
        key = (meta_of(pod).get("namespace", ""), meta_of(pod).get("name", ""))
        seen += pod_addresses(view, pod, by_pod.get(key, []), out)
    plans: dict[str, PodPlan] = {}
    by_address: dict[tuple[str, str], list[Seen]] = defaultdict(list)
    for item in seen:
        problem = _misfit(view, item)
        if problem is not None:
            out.rows.append(_row(item, CONFLICT, problem[0]))
            out.problems.append(problem[1])
            continue
        by_address[(item.attachment.subnet_name, item.address)].append(item)
    for (subnet, address), users in by_address.items():
        _decide_address(view, subnet, address, users, plans=plans, out=out)
    out.pods = sorted(plans.values(), key=lambda p: age_of(p.pod))
    out.rows.sort(key=lambda r: (r.pod, r.interface, r.address))
    return out


def _misfit(view: Store, item: Seen) -> tuple[str, str] | None:
    """(row note, sentence) when the Subnet cannot hold `item.address` for its pod at all."""
    subnet, address, ref = item.attachment.subnet_name, item.address, pod_ref(item.pod)
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
    view: Store, subnet: str, address: str, users: list[Seen], *, plans: dict[str, PodPlan], out: Plan
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
        elif attachment_plan.missing_annotations(notes_of(keeper.pod)):
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
        out.rows.append(_row(other, CONFLICT, f"held for the older pod {pod_ref(keeper.pod)}"))
    if others:
        shown = ", ".join(_user_text(u) for u in others)
        out.problems.append(
            f"{address} in Subnet {subnet} is used by {_user_text(keeper)} and by {shown}; it is held for "
            f"{pod_ref(keeper.pod)}, the oldest; delete {', '.join(pod_ref(u.pod) for u in others)} "
            "(a controller recreates it with a free address) or give it another address"
        )


def _distinct(users: list[Seen]) -> list[Seen]:
    """One entry per (pod, interface), oldest pod first (the order they were gathered in)."""
    seen: dict[tuple[str, str], Seen] = {}
    for user in users:
        seen.setdefault((uid_of(user.pod), user.attachment.interface), user)
    return list(seen.values())


def _attachment_plan(plans: dict[str, PodPlan], user: Seen) -> AttachmentPlan:
    pod_plan = plans.setdefault(uid_of(user.pod), PodPlan(user.pod))
    for existing in pod_plan.attachments:
        if existing.attachment.key_provider == user.attachment.key_provider:
            return existing
    made = AttachmentPlan(user.attachment)
    pod_plan.attachments.append(made)
    return made


def _mine(holder: Object, pod: Object) -> bool:
    """The IP object stands for this very pod: bound to its UID, or reserved with its token."""
    spec = holder.get("spec") or {}
    if spec.get("namespace") != meta_of(pod).get("namespace"):
        return False
    if spec.get("podUID"):
        return spec["podUID"] == uid_of(pod)
    token = token_of(holder)
    return bool(token) and token == token_of(pod)


def _earlier_self(holder: Object, pod: Object) -> bool:
    """Held for an earlier pod of the same name: the store's reserve takes such an object over."""
    spec = holder.get("spec") or {}
    meta = meta_of(pod)
    return (spec.get("namespace"), spec.get("podName")) == (meta.get("namespace"), meta.get("name"))


def _holder_alive(view: Store, holder: Object) -> bool:
    spec = holder.get("spec") or {}
    if spec.get("podName"):
        pod = view.pod(spec.get("namespace", ""), spec["podName"])
        return pod is not None and (not spec.get("podUID") or spec["podUID"] == uid_of(pod))
    return view.pod_for_token(token_of(holder)) is not None


def _row(item: Seen, action: str, note: str = "") -> Row:
    return Row(pod_ref(item.pod), item.attachment.interface, item.address, item.attachment.subnet_name,
               action, item.source, note)


def _user_text(item: Seen) -> str:
    return f"pod {pod_ref(item.pod)} ({item.attachment.interface})"
