"""Which IP objects to release or bind: the Lifecycle's rules as a pure function.

`decide` reads only what it is given (IP objects, a `Facts` view of pods and StatefulSets, the
time), so the leader loop, `multinic-ipam gc --dry-run` and the unit tests ask the same question
and get the same answer; carrying a decision out (guarded writes, live confirmation) is the
Lifecycle's `act`. The same rules run again on live reads to confirm a release, which is why the
view is a protocol: the informer cache, a `Snapshot` of lists, or live reads all answer it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Protocol

from allocator import pools
from webhook.cluster.cache import Object
from webhook.cluster.ipobjects import GRACE_ANNOTATION, RESERVED_AT_ANNOTATION, token_of
from webhook.settings import DEFAULT_GRACE


@dataclass(frozen=True)
class Release:
    """Delete IP object `ip_name` (the address becomes free), because of `reason`."""

    ip_name: str
    reason: str
    resource_version: str = ""  # the version decided on; a newer object is decided again


@dataclass(frozen=True)
class Bind:
    """Tie reservation `ip_name` to the pod that now carries it."""

    ip_name: str
    pod_name: str
    pod_uid: str
    resource_version: str = ""


Decision = Release | Bind

# Starts like the bound case's reason, so both count as `pod_gone` in the release metric.
DELETED_UNBOUND = "its pod is gone (deleted before its address was bound to it)"


class Facts(Protocol):
    """What the rules look up; `webhook.cluster.store.Store` answers from its cache."""

    def pod(self, namespace: str, name: str) -> Object | None: ...

    def pod_for_token(self, token: str) -> Object | None: ...

    def statefulset(self, namespace: str, name: str) -> Object | None: ...


class Snapshot:
    """`Facts` from plain lists of pods and StatefulSets."""

    def __init__(self, pods: Iterable[Object] = (), statefulsets: Iterable[Object] = ()) -> None:
        self._pods = {namespaced_name(p): p for p in pods}
        self._tokens = {token_of(p): p for p in self._pods.values() if token_of(p)}
        self._statefulsets = {namespaced_name(s): s for s in statefulsets}

    def pod(self, namespace: str, name: str) -> Object | None:
        return self._pods.get((namespace, name))

    def pod_for_token(self, token: str) -> Object | None:
        return self._tokens.get(token)

    def statefulset(self, namespace: str, name: str) -> Object | None:
        return self._statefulsets.get((namespace, name))


def decide(
    ips: Iterable[Object],
    facts: Facts,
    *,
    now: float,
    grace: float | None = None,
    default_grace: float = DEFAULT_GRACE,
    deleted: Collection[str] = frozenset(),
) -> list[Decision]:
    """The releases and binds `ips` call for. `grace` overrides every reservation's own grace
    period (annotated by the process that made it, else `default_grace`); `deleted` holds the
    reservation tokens of pods seen deleted, whose unbound reservations need no grace period."""
    found = (decide_one(ip, facts, now=now, grace=grace, default_grace=default_grace, deleted=deleted)
             for ip in ips)
    return [decision for decision in found if decision is not None]


def decide_one(
    ip: Object,
    facts: Facts,
    *,
    now: float,
    grace: float | None = None,
    default_grace: float = DEFAULT_GRACE,
    deleted: Collection[str] = frozenset(),
) -> Decision | None:
    """The decision for one IP object, or None to keep it as it is."""
    spec = ip.get("spec") or {}
    if _is_statefulset(spec):
        return _statefulset(ip, facts)
    if spec.get("podUID"):
        return _bound(ip, facts)
    return _unbound(ip, facts, expired=_unbound_expired(ip, now, grace, default_grace), deleted=deleted)


@dataclass(frozen=True)
class Lookups:
    """Every pod (by namespace and name, or by reservation token) and StatefulSet the rules may ask
    `Facts` about for some IP objects: what a live list must keep to confirm their decisions."""

    pods: frozenset[tuple[str, str]]
    tokens: frozenset[str]
    statefulsets: frozenset[tuple[str, str]]


def lookups(ips: Iterable[Object]) -> Lookups:
    pods, tokens, statefulsets = set(), set(), set()
    for ip in ips:
        pod, token, statefulset = looked_up(ip)
        if pod:
            pods.add(pod)
        if token:
            tokens.add(token)
        if statefulset:
            statefulsets.add(statefulset)
    return Lookups(frozenset(pods), frozenset(tokens), frozenset(statefulsets))


def looked_up(ip: Object) -> tuple[tuple[str, str] | None, str, tuple[str, str] | None]:
    """What the rules may ask `Facts` about for one IP object: its pod by (namespace, name) (None
    without a name), by reservation token ("" without one), its StatefulSet (None if not one's).
    A decision can only change when one of these, the object itself or the time does."""
    spec = ip.get("spec") or {}
    pod = (spec.get("namespace", ""), spec["podName"]) if spec.get("podName") else None
    return pod, token_of(ip), _owner(spec) if _is_statefulset(spec) else None


def grace_ends(
    ip: Object, *, grace: float | None = None, default_grace: float = DEFAULT_GRACE
) -> float | None:
    """When an unbound reservation's grace period ends (a pass after it may release it); None for
    objects no grace period applies to (bound, or a StatefulSet's)."""
    spec = ip.get("spec") or {}
    if _is_statefulset(spec) or spec.get("podUID"):
        return None
    reserved, period = _grace(ip, grace, default_grace)
    return reserved + period


def _is_statefulset(spec: Object) -> bool:
    return spec.get("podType") == "StatefulSet" and bool(spec.get("podName"))


def _owner(spec: Object) -> tuple[str, str]:
    """(namespace, StatefulSet name) of a StatefulSet pod's IP object: the pod name minus `-<ordinal>`."""
    return spec.get("namespace", ""), spec["podName"].rpartition("-")[0]


def _bound(ip: Object, facts: Facts) -> Decision | None:
    """A pod's address: released once the pod is gone (UID changed) or has finished for good."""
    spec = ip.get("spec") or {}
    pod = facts.pod(spec.get("namespace", ""), spec.get("podName", ""))
    if pod is None or _uid(pod) != spec.get("podUID"):
        return _release(ip, "its pod is gone")
    if terminated(pod):
        return _release(ip, f"its pod has {pod['status']['phase'].lower()} for good")
    return None


def _unbound(ip: Object, facts: Facts, *, expired: bool, deleted: Collection[str]) -> Decision | None:
    """A reservation not yet tied to a pod: bind it, wait, or release it after the grace period.

    A named pod is looked up by name (its token must match); a generateName pod only by token.
    The grace period covers a pod that may still be on its way (its create is in flight, or was
    refused after mutation); a pod seen deleted with this token existed and is gone, so its
    reservation goes at once."""
    spec = ip.get("spec") or {}
    token = token_of(ip)
    if spec.get("podName"):
        pod = facts.pod(spec.get("namespace", ""), spec["podName"])
    else:
        pod = facts.pod_for_token(token) if token else None
    if pod is not None and token and token_of(pod) == token and not terminated(pod):
        return _bind(ip, pod)
    if token and token in deleted:
        return _release(ip, DELETED_UNBOUND)
    if not expired:
        return None
    return _release(ip, "its pod never came to exist")


def _statefulset(ip: Object, facts: Facts) -> Decision | None:
    """StatefulSet pods keep addresses while the set exists (same UID) and ordinal < replicas; a
    recreated pod of the set is bound to the address its predecessor held."""
    spec = ip.get("spec") or {}
    name = spec["podName"]
    namespace, owner = _owner(spec)
    if not keeps(facts.statefulset(namespace, owner), spec, pools.statefulset_ordinal(name)):
        return _release(ip, f"StatefulSet {namespace}/{owner} no longer has a pod {name}")
    pod = facts.pod(namespace, name)
    if pod is not None and token_of(pod) == token_of(ip) and _uid(pod) != spec.get("podUID"):
        return _bind(ip, pod)
    return None


def keeps(statefulset: Object | None, spec: Object, ordinal: int | None) -> bool:
    """True while `statefulset` (the one that made the address: same UID) still has that ordinal."""
    if statefulset is None or ordinal is None:
        return False
    if spec.get("ownerUID") and _uid(statefulset) != spec["ownerUID"]:
        return False
    replicas = (statefulset.get("spec") or {}).get("replicas", 1)
    return ordinal < replicas


def terminated(pod: Object) -> bool:
    """Succeeded, or Failed with restartPolicy Never: the pod will not run again."""
    phase = (pod.get("status") or {}).get("phase")
    if phase == "Succeeded":
        return True
    return phase == "Failed" and (pod.get("spec") or {}).get("restartPolicy") == "Never"


def _unbound_expired(ip: Object, now: float, grace: float | None, default_grace: float) -> bool:
    reserved, period = _grace(ip, grace, default_grace)
    return now - reserved > period


def _grace(ip: Object, grace: float | None, default_grace: float) -> tuple[float, float]:
    """(when the reservation was made, its grace period in seconds)."""
    meta = ip.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    stamp = annotations.get(RESERVED_AT_ANNOTATION)
    try:
        reserved = float(stamp) if stamp else _parse_time(meta.get("creationTimestamp", ""))
    except ValueError:
        reserved = 0.0
    if grace is None:
        try:
            grace = float(annotations.get(GRACE_ANNOTATION) or default_grace)
        except ValueError:
            grace = default_grace
    return reserved, grace


def _release(ip: Object, reason: str) -> Release:
    meta = ip["metadata"]
    return Release(meta["name"], reason, meta.get("resourceVersion", ""))


def _bind(ip: Object, pod: Object) -> Bind:
    meta = pod.get("metadata") or {}
    return Bind(ip["metadata"]["name"], meta.get("name", ""), meta.get("uid", ""),
                ip["metadata"].get("resourceVersion", ""))


def _uid(obj: Object) -> str:
    return (obj.get("metadata") or {}).get("uid", "")


def namespaced_name(obj: Object) -> tuple[str, str]:
    """(namespace, name) of a pod or StatefulSet, as the rules look them up."""
    meta = obj.get("metadata") or {}
    return meta.get("namespace", ""), meta.get("name", "")


def _parse_time(text: str) -> float:
    if not text:
        return 0.0
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
