"""`multinic-ipam adopt`, the acting half: read the cluster once, then carry out `adoption.plan`.

Each address is locked the way the mutating webhook locks one: `Store.reserve` with the address
as a fixed claim (an IP object create; the same body, name and labels), so a webhook replica
allocating at the same moment can never be given it. Then the pod gets the output annotations it
lacks (the ones mutation writes, `mutate.output_annotations`) and the reservation token, in one
merge patch guarded by its UID; then the IP objects are bound to that UID with the Lifecycle's own
bind, so the leader releases them when the pod goes, like any other. When the pod cannot be
annotated (it went away meanwhile), what was created for it is deleted again.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import time
from typing import Any

from allocator import errors
from webhook import mutate
from webhook.cluster import objects
from webhook.cluster.cache import Object
from webhook.cluster.claims import Claim, Held
from webhook.cluster.ipobjects import token_of
from webhook.cluster.kubeapi import ApiError, NotFound
from webhook.cluster.store import Store
from webhook.leader import decisions
from webhook.leader.lifecycle import Lifecycle
from webhook.operator import adoption_plan, ops
from webhook.operator.adoption_sources import as_migrated
from webhook.operator.whereabouts import Record, WhereaboutsError, ippool_records, reservation_record
from webhook.settings import DEFAULT_GRACE

KINDS = (objects.SUBNETS, objects.IPS, objects.IPPOOLS, objects.NADS, objects.PODS)
WHEREABOUTS_KINDS = (objects.WHEREABOUTS_IPPOOLS, objects.WHEREABOUTS_RESERVATIONS)

RETRY_PAUSE = 0.25  # seconds between tries of a pod patch the validating webhook denied
DONE = {adoption_plan.HOLD: "held", adoption_plan.BIND: "bound", adoption_plan.ANNOTATE: "annotated"}


@dataclasses.dataclass
class Snapshot:
    """One read of the cluster: the Store over it, the pods in scope and Whereabouts' records."""

    store: Store
    pods: list[Object]
    records: list[Record]
    problems: list[str]


def load(api_client: Any, *, namespace: str | None = None, grace: float = DEFAULT_GRACE) -> Snapshot:
    """List every kind once (Whereabouts' when its CRDs exist); NADs with a Subnet for their
    provider are read as they will be once they use kube-ovn (`adoption_sources.as_migrated`)."""
    store = ops.load(api_client, KINDS, grace=grace)
    read_as_migrated(store)
    pods = [p for p in store.cache.list(objects.PODS) if namespace in (None, _namespace(p))]
    records: list[Record] = []
    problems: list[str] = []
    for kind in WHEREABOUTS_KINDS:
        try:
            store.cache.replace(kind, store.api.list(kind))
        except NotFound:
            pass  # Whereabouts is not installed
        except ApiError as error:  # e.g. forbidden: say so, and adopt from network-status alone
            problems.append(f"cannot list {kind} ({error}); addresses only Whereabouts records know are not "
                            "adopted")
    readers = ((objects.WHEREABOUTS_IPPOOLS, ippool_records),
               (objects.WHEREABOUTS_RESERVATIONS, lambda obj: [reservation_record(obj)]))
    for kind, read in readers:
        for obj in store.cache.list(kind):
            try:
                found = read(obj)
            except WhereaboutsError as error:
                problems.append(f"{error}; its addresses are not adopted")
                continue
            records += [r for r in found if namespace in (None, r.namespace)]
    return Snapshot(store, pods, records, problems)


def read_as_migrated(store: Store) -> None:
    """Replace, in this snapshot only, each NAD a Subnet waits for by its kube-ovn reading."""
    providers = {(s.get("spec") or {}).get("provider", "ovn") for s in store.subnets()}
    for nad in store.cache.list(objects.NADS):
        migrated = as_migrated(nad, providers)
        if migrated is not None:
            store.cache.put(objects.NADS, migrated, force=True)  # same version, another reading


def apply(store: Store, plan: adoption_plan.Plan, *, clock: Any = time.time) -> list[adoption_plan.Row]:
    """Carry out `plan`; the rows say what was done, and failures are added to `plan.problems`."""
    outcome: dict[tuple[str, str, str], str] = {}
    lifecycle = Lifecycle(store=store, identity="multinic-ipam-adopt", clock=clock)
    for pod_plan in plan.pods:
        if pod_plan.needs_writes():
            outcome.update(_adopt_pod(store, lifecycle, pod_plan, plan.problems, clock()))
    rows = []
    for row in plan.rows:
        done = outcome.get((row.pod, row.interface, row.address))
        if done is None and row.action in DONE:
            done = DONE[row.action]
        rows.append(dataclasses.replace(row, action=done) if done else row)
    return rows


def _adopt_pod(
    store: Store, lifecycle: Lifecycle, pod_plan: adoption_plan.PodPlan, problems: list[str], now: float
) -> dict[tuple[str, str, str], str]:
    pod = pod_plan.pod
    meta = pod["metadata"]
    ref = pod_plan.ref
    token = token_of(pod)
    who = dataclasses.replace(mutate.identity(pod, meta["namespace"]), **({"token": token} if token else {}))
    notes = meta.get("annotations") or {}
    failed: dict[tuple[str, str, str], str] = {}
    made: list[Held] = []
    wanted: dict[str, str] = {}
    for step in pod_plan.attachments:
        attachment = step.attachment
        addresses = list(step.held)
        mac = _reported_mac(store, step, pod) or _held_mac(store, attachment.subnet_name, step.held)
        if step.hold:
            # only the families the pod has: a dual-stack Subnet must not add the one it lacks
            families = tuple(sorted({ipaddress.ip_address(a).version for a in step.hold}))
            claim = Claim(subnet=attachment.subnet_name, provider=attachment.provider,
                          interface=attachment.interface, fixed=tuple(step.hold), mac=mac, families=families)
            try:
                held = store.reserve(who, claim)
            except errors.AllocatorError as error:
                problems.append(
                    f"{', '.join(step.hold)} of pod {ref} ({attachment.interface}) was not held: {error}"
                )
                failed.update({(ref, attachment.interface, a): "failed" for a in step.hold})
            else:
                made.append(held)
                addresses += list(held.addresses)
                mac = held.mac
        if addresses:
            shown = Held(attachment.subnet_name, attachment.provider, attachment.interface,
                         _one_per_family(addresses), mac or "")
            out = mutate.output_annotations(attachment.key_provider, shown, store)
            wanted.update({key: value for key, value in out.items() if key not in notes})
    if not token and (made or wanted):
        wanted[objects.RESERVATION_ANNOTATION] = who.token
    current = pod
    if wanted:
        try:
            current = _annotate(store, meta, wanted)
        except ApiError as error:
            for held in made:
                store.release(held)
            why = "it is gone" if isinstance(error, NotFound) else str(error)
            problems.append(f"pod {ref} was not adopted: its annotations could not be written ({why})")
            return {(ref, s.attachment.interface, a): "failed" for s in pod_plan.attachments
                    for a in (*s.hold, *s.held)}
    names = [n for held in made for n in held.names] + [n for s in pod_plan.attachments for n in s.unbound]
    facts = decisions.Snapshot([current])
    binds = []
    for name in names:
        ip = store.ip_object(name)
        decision = decisions.decide_one(ip, facts, now=now) if ip is not None else None
        if isinstance(decision, decisions.Bind):
            binds.append(decision)
    for outcome in lifecycle.act(binds):
        if outcome.done is None and not _bound_to(store, outcome.planned.ip_name, meta.get("uid")):
            problems.append(f"IP object {outcome.planned.ip_name} of pod {ref} changed while it was being "
                            "bound; adopt again (or let the webhook's leader bind it)")
    return failed


def _annotate(store: Store, meta: Object, wanted: dict[str, str], *, tries: int = 20) -> Object:
    """Add `wanted` to the pod (refused for a recreated pod: the UID is immutable). The validating
    webhook allows these additions once its cache has our new IP objects; until then it denies
    them, so a denial is retried for a few seconds."""
    patch = {"metadata": {"uid": meta.get("uid"), "annotations": wanted}}
    for _ in range(tries - 1):
        try:
            return store.api.patch_pod(meta["namespace"], meta["name"], patch)
        except ApiError as error:
            if "denied the request" not in str(error):
                raise
        time.sleep(RETRY_PAUSE)
    return store.api.patch_pod(meta["namespace"], meta["name"], patch)


def _bound_to(store: Store, name: str, uid: str | None) -> bool:
    """Did someone else (the webhook's leader, seeing the pod's new reservation) bind it first?"""
    try:
        ip = store.api.read(objects.IPS, name)
    except ApiError:
        return False
    return bool(uid) and ((ip or {}).get("spec") or {}).get("podUID") == uid


def _reported_mac(store: Store, step: adoption_plan.AttachmentPlan, pod: Object) -> str | None:
    """The MAC Multus reported, unless another pod holds it in the Subnet: ipvlan interfaces all
    share their master's MAC, which an IP object records once; those pods get a MAC of their own."""
    if not step.mac:
        return None
    meta = pod["metadata"]
    for holder in store.mac_holders(step.attachment.subnet_name, step.mac):
        spec = holder.get("spec") or {}
        if (spec.get("namespace"), spec.get("podName")) != (meta.get("namespace"), meta.get("name")):
            return None
    return step.mac


def _held_mac(store: Store, subnet: str, addresses: list[str]) -> str | None:
    for address in addresses:
        holder = store.holder(subnet, address)
        mac = ((holder or {}).get("spec") or {}).get("macAddress")
        if mac:
            return mac
    return None


def _one_per_family(addresses: list[str]) -> tuple[str, ...]:
    """IPv4 first, then IPv6, the first of each (the annotation holds one address per family)."""
    first: dict[int, str] = {}
    for address in addresses:
        first.setdefault(ipaddress.ip_address(address).version, address)
    return tuple(first[v] for v in sorted(first))


def _namespace(obj: Object) -> str:
    return (obj.get("metadata") or {}).get("namespace") or ""
