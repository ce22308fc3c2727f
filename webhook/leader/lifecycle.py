"""The leader's chores: bind reservations to pods, release what pods no longer need, keep Subnet status.

Every webhook process runs a `Lifecycle`; a `coordination.k8s.io` Lease makes exactly one of them
act. Each pass decides from the cache (`webhook.leader.decisions`, pure) and then acts: releases are
deletes guarded by the resourceVersion decided on, made only once the same rules agree on live
reads, so a late release can never take an address from a pod that was just given it (a recreated
StatefulSet pod relabels its objects first, which moves the version).

Passes are incremental: one decides only the IP objects `webhook.leader.changes.Changes` names (changed
since the last pass, or whose pod, StatefulSet or grace deadline did), so its cost follows what
changed, not how many addresses are held. A full pass over every IP object runs on taking the
Lease, after a failed pass and every `FULL_INTERVAL` seconds, as a safety net.

A pass with many releases (a scale-down) confirms them all against one paged live list of pods (and
of StatefulSets when some are theirs) instead of a read per address, and writes from a few threads
at once, so a thousand released pods free their addresses in seconds, not minutes.

Every replica remembers the reservation tokens of pods its cache saw deleted (`DeletedPods`), so
whichever replica leads releases a reservation whose pod was deleted before it was bound at once,
not after the grace period. A pod event the leader's cache never saw (it started after the pod was
gone, or a relist skipped both events) leaves that reservation to the grace period.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from allocator.errors import AllocatorError
from webhook import metrics
from webhook.cluster import objects
from webhook.cluster.cache import Object
from webhook.cluster.kubeapi import AlreadyExists, Api, ApiError, Conflict, NotFound
from webhook.cluster.store import Store, address_of, token_of
from webhook.leader import decisions
from webhook.leader.changes import Changes
from webhook.settings import DEFAULT_LEASE_NAMESPACE

log = logging.getLogger(__name__)

LEASE_NAME = "multinic-ipam-lifecycle"
MIN_GAP = 0.5  # seconds between two passes at least
DELETED_LIMIT = 20_000  # tokens of deleted pods remembered at most (~2 MB); the oldest go first
# From this many releases in one pass on, one live list of every pod is cheaper for the API server
# than a read per address (and a read plus a delete each, one after another, bounded a scale-down).
CONFIRM_BY_LIST_AT = 8
WRITERS = 8  # binds and deletes of one pass in flight at once, each thread on its own connection
FULL_INTERVAL = 30.0  # seconds between two full passes at most (the incremental ones decide the rest)


class _Unsure(Exception):  # noqa: N818 (a reason to wait, not an error)
    """A live read failed: keep the object until a later pass can tell."""


@dataclass
class Pass:
    """What one reconcile pass did (for logs and tests)."""

    bound: int = 0
    released: int = 0
    kept: int = 0  # of the objects decided (every one in a full pass, only the changed ones otherwise)
    full: bool = False


@dataclass(frozen=True)
class Outcome:
    """A planned decision and what was done: itself, what live reads turned it into (a release
    whose pod turned up is a bind), or None when the object was kept."""

    planned: decisions.Decision
    done: decisions.Decision | None


class DeletedPods:
    """Reservation tokens of pods this process saw deleted, oldest first: proof that a reservation's
    pod existed and is gone. Bounded in age (`keep` seconds: by then the grace period releases the
    reservation anyway) and count (`limit`). Not forgotten on release: another IP object of the same
    pod may reach this cache after the pod's deletion, and a stale token matches nothing (tokens are
    random per admission). Informer threads add, the Lifecycle's thread reads: one lock."""

    def __init__(self, *, keep: float, clock: Callable[[], float], limit: int = DELETED_LIMIT) -> None:
        self.keep = keep
        self.limit = limit
        self.clock = clock
        self._seen: OrderedDict[str, float] = OrderedDict()  # token → when its pod's deletion was seen
        self._lock = threading.Lock()

    def add(self, token: str) -> None:
        with self._lock:
            self._seen[token] = self.clock()
            self._seen.move_to_end(token)
            self._trim()

    def tokens(self) -> frozenset[str]:
        """The tokens remembered now (a copy: decisions read it without the lock)."""
        with self._lock:
            self._trim()
            return frozenset(self._seen)

    def _trim(self) -> None:
        oldest = self.clock() - self.keep
        while self._seen and (len(self._seen) > self.limit or next(iter(self._seen.values())) < oldest):
            self._seen.popitem(last=False)


class Lifecycle:
    """Lease-elected loop over the IP objects: bind, release, garbage-collect; batch Subnet status."""

    def __init__(
        self,
        *,
        store: Store,
        identity: str,
        namespace: str = DEFAULT_LEASE_NAMESPACE,
        lease_name: str = LEASE_NAME,
        lease_seconds: int = 10,
        interval: float = 2.0,
        status_interval: float = 3.0,
        grace: float | None = None,
        clock: Callable[[], float] = time.time,
        full_interval: float = FULL_INTERVAL,
    ) -> None:
        self.store = store
        self.api = store.api
        self.identity = identity
        self.namespace = namespace
        self.lease_name = lease_name
        self.lease_seconds = lease_seconds
        self.interval = interval
        self.status_interval = status_interval
        self.grace_override = grace  # None: each reservation's own grace period decides
        self.grace = store.grace if grace is None else grace
        self.clock = clock
        self.leader = False
        self._observed: tuple[str, str] | None = None  # (holder, renewTime) last seen
        self._observed_at = 0.0
        self._last_status = 0.0
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._writers: ThreadPoolExecutor | None = None
        self.full_interval = full_interval
        self._last_full: float | None = None  # None: the next pass is a full one
        self.deleted = DeletedPods(keep=self.grace, clock=clock)
        self.changes = Changes(store.cache, deadline=self._grace_ends)
        store.cache.subscribe(objects.PODS, self._on_pod)

    # ---- running ----------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="multinic-ipam-lifecycle", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the loop and hand the Lease back so another replica takes over at once."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        if self._writers is not None:
            self._writers.shutdown(wait=True)
            self._writers = None
        if self.leader:
            self._give_up()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.step()
            except Exception:  # the loop must outlive any one bad pass
                log.exception("lifecycle pass failed")
            # Pod events wake the loop early, but passes stay at least MIN_GAP apart: a burst of
            # pod events must not turn into a pass (over every IP object) per event.
            self._stop.wait(MIN_GAP)
            self._wake.wait(max(self.interval - MIN_GAP, 0))
            self._wake.clear()

    def step(self) -> Pass | None:
        """One round: keep or take the Lease; as leader, reconcile and maybe write Subnet status."""
        if not self.acquire():
            self._last_full = None  # whoever leads decides over everything first
            self.changes.take(self.clock())  # nothing piles up while another replica leads
            return None
        result = self.reconcile()
        if self.clock() - self._last_status >= self.status_interval:
            self.write_status()
            self._last_status = self.clock()
        return result

    def _on_pod(self, event: str, pod: Object) -> None:
        if event == "DELETED":
            token = ((pod.get("metadata") or {}).get("annotations") or {}).get(objects.RESERVATION_ANNOTATION)
            if token:
                self.deleted.add(token)  # every replica: whichever leads next may release at once
        self.changes.pod_changed(pod)  # after `deleted` has its token: the pass that decides sees it
        if event == "DELETED" or (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            self._wake.set()
        elif token_of(pod) and self.leader:
            self._wake.set()  # a pod with a reservation appeared: bind it soon

    # ---- the Lease --------------------------------------------------------------------------

    def acquire(self) -> bool:
        """Create, renew or take over the Lease; True while this process is the leader."""
        now = self.clock()
        try:
            lease = self.api.read_lease(self.namespace, self.lease_name)
            if lease is None:
                self.api.create_lease(self.namespace, self._lease_body(None, now, transitions=0))
                return self._set_leader(True)
            spec = lease.get("spec") or {}
            holder = spec.get("holderIdentity") or ""
            observed = (holder, spec.get("renewTime") or "")
            if observed != self._observed:
                self._observed, self._observed_at = observed, now
            duration = spec.get("leaseDurationSeconds") or self.lease_seconds
            expired = not holder or now - self._observed_at > duration
            if holder != self.identity and not expired:
                return self._set_leader(False)
            transitions = (spec.get("leaseTransitions") or 0) + (0 if holder == self.identity else 1)
            self.api.replace_lease(self.namespace, self._lease_body(lease, now, transitions=transitions))
            return self._set_leader(True)
        except (AlreadyExists, Conflict):
            return self._set_leader(False)
        except ApiError as error:
            log.warning("lease %s/%s: %s", self.namespace, self.lease_name, error)
            return self._set_leader(False)

    def _lease_body(self, lease: Object | None, now: float, *, transitions: int) -> Object:
        stamp = _micro_time(now)
        spec = dict((lease or {}).get("spec") or {})
        if spec.get("holderIdentity") != self.identity:
            spec["acquireTime"] = stamp
        spec.update(
            holderIdentity=self.identity,
            leaseDurationSeconds=self.lease_seconds,
            renewTime=stamp,
            leaseTransitions=transitions,
        )
        metadata = {"name": self.lease_name, "namespace": self.namespace}
        if lease is not None:
            metadata["resourceVersion"] = lease["metadata"]["resourceVersion"]
        return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": metadata, "spec": spec}

    def _set_leader(self, leader: bool) -> bool:
        if leader != self.leader:
            log.info("%s %s the lifecycle lease", self.identity, "holds" if leader else "does not hold")
        self.leader = leader
        return leader

    def _give_up(self) -> None:
        try:
            lease = self.api.read_lease(self.namespace, self.lease_name)
            if lease and (lease.get("spec") or {}).get("holderIdentity") == self.identity:
                lease["spec"]["holderIdentity"] = ""
                self.api.replace_lease(self.namespace, lease)
        except ApiError:
            pass
        self.leader = False

    # ---- binding and releasing --------------------------------------------------------------

    @metrics.timed_gc_pass
    def reconcile(self, *, full: bool | None = None) -> Pass:
        """One pass: decide over the IP objects that changed (`full`: over every one; None: when
        one is due), then act. Decisions not carried out are decided again next pass."""
        now = self.clock()
        if full is None:
            full = self._last_full is None or now - self._last_full >= self.full_interval
        changed = self.changes.take(now)
        if full:
            ips = self.store.ip_objects()
            self._last_full = now
        else:
            ips = [ip for ip in map(self.store.ip_object, sorted(changed)) if ip is not None]
        try:
            planned = self.decide(ips)
            outcomes = self.act(planned)
        except BaseException:
            self._last_full = None  # what was taken is not lost: the next pass decides over all
            raise
        self.changes.again(o.planned.ip_name for o in outcomes if o.done is None)
        decided = {d.ip_name for d in planned}
        self.changes.scheduled(ip for ip in ips if ip["metadata"]["name"] not in decided)
        bound = sum(isinstance(o.done, decisions.Bind) for o in outcomes)
        released = sum(isinstance(o.done, decisions.Release) for o in outcomes)
        return Pass(bound=bound, released=released, kept=len(ips) - bound - released, full=full)

    def _grace_ends(self, ip: Object) -> float | None:
        return decisions.grace_ends(ip, grace=self.grace_override, default_grace=self.grace)

    def decide(self, ips: list[Object] | None = None) -> list[decisions.Decision]:
        """What the cache calls for now (`ips`: the cached IP objects unless given); writes nothing."""
        return decisions.decide(
            self.store.ip_objects() if ips is None else ips, self.store,
            now=self.clock(), grace=self.grace_override, default_grace=self.grace,
            deleted=self.deleted.tokens(),
        )

    def act(self, planned: list[decisions.Decision]) -> list[Outcome]:
        """Carry out `planned`: binds as decided; each release only once the same rules agree on live
        data (a read per address, or one list for many), up to `WRITERS` writes at once."""
        live = self._live_facts(planned)
        deleted = self.deleted.tokens()

        def one(decision: decisions.Decision) -> Outcome:
            if isinstance(live, _Unreadable) and isinstance(decision, decisions.Release):
                return Outcome(decision, None)  # kept for a later pass (logged once, not per address)
            return self._act_one(decision, live, deleted)

        if len(planned) < 2:
            return [one(decision) for decision in planned]
        if self._writers is None:
            self._writers = ThreadPoolExecutor(WRITERS, thread_name_prefix="multinic-ipam-lifecycle-write")
        return list(self._writers.map(one, planned))

    def _live_facts(self, planned: list[decisions.Decision]) -> decisions.Facts:
        """Live reads for a few releases; for many, one list of pods (and of StatefulSets when a
        release is a StatefulSet's), kept to the pods and sets those releases ask about."""
        ips = [ip for d in planned if isinstance(d, decisions.Release)
               if (ip := self.store.ip_object(d.ip_name)) is not None]
        if len(ips) < CONFIRM_BY_LIST_AT:
            return _LiveFacts(self.api)
        wanted = decisions.lookups(ips)
        try:
            live_pods = [p for p in self.api.list(objects.PODS)
                         if decisions.namespaced_name(p) in wanted.pods or token_of(p) in wanted.tokens]
            sets = [s for s in self.api.list(objects.STATEFULSETS)
                    if decisions.namespaced_name(s) in wanted.statefulsets] if wanted.statefulsets else []
        except ApiError as error:
            log.warning("kept %d releases for now: the live list to confirm them failed: %s", len(ips), error)
            return _Unreadable(str(error))
        return decisions.Snapshot(live_pods, sets)

    def _act_one(self, planned: decisions.Decision, live: decisions.Facts,
                 deleted: frozenset[str]) -> Outcome:
        ip = self.store.ip_object(planned.ip_name)
        if ip is None or ip["metadata"].get("resourceVersion", "") != planned.resource_version:
            return Outcome(planned, None)  # changed since it was decided: the next pass decides again
        decision: decisions.Decision | None = planned
        try:
            if isinstance(planned, decisions.Release):
                # The cache may lag: the same rules on live reads must agree (or find the pod).
                decision = decisions.decide_one(ip, live, now=self.clock(), grace=self.grace_override,
                                                default_grace=self.grace, deleted=deleted)
        except _Unsure as error:
            log.warning("kept %s for now: %s", planned.ip_name, error)
            return Outcome(planned, None)
        if isinstance(decision, decisions.Release):
            return Outcome(planned, decision if self._release(ip, decision.reason) else None)
        if isinstance(decision, decisions.Bind):
            return Outcome(planned, decision if self._bind(ip, decision) else None)
        return Outcome(planned, None)

    def _bind(self, ip: Object, bind: decisions.Bind) -> bool:
        patch = {
            "metadata": {"resourceVersion": ip["metadata"].get("resourceVersion")},
            "spec": {"podName": bind.pod_name, "podUID": bind.pod_uid},
        }
        try:
            updated = self.api.patch_ip(ip["metadata"]["name"], patch)
        except (Conflict, NotFound):
            return False  # changed meanwhile; the next pass sees the new state
        self.store.cache.put(objects.IPS, updated)
        return True

    def _release(self, ip: Object, why: str) -> bool:
        meta = ip["metadata"]
        if not self.store.delete(meta["name"], resource_version=meta.get("resourceVersion")):
            return False
        log.info("released %s (%s): %s", address_of(ip), meta["name"], why)
        metrics.RELEASES.labels(metrics.release_reason(why)).inc()
        return True

    # ---- Subnet status ----------------------------------------------------------------------

    def write_status(self) -> int:
        """Write the usage counters of every Subnet whose cached status differs; return how many."""
        written = 0
        for subnet in self.store.subnets():
            name = subnet["metadata"]["name"]
            status = subnet_status(self.store, name)
            if status is None:
                continue
            current = subnet.get("status") or {}
            if all(current.get(k) == v for k, v in status.items()):
                continue
            try:
                self.api.patch_subnet_status(name, status)
                written += 1
            except ApiError as error:
                log.warning("status of subnet %s: %s", name, error)
        return written


def subnet_status(store: Store, name: str) -> dict[str, int] | None:
    """The usage counters Subnet `name`'s status should carry, from the allocator over its IP
    objects; None when its spec cannot be used (or it is gone), which leaves it without counters."""
    try:
        state = store.state(name)
    except AllocatorError as error:
        log.debug("no status for Subnet %s: %s", name, error)
        return None
    with state.lock:
        usage = state.allocator.usage()
    return {
        "v4availableIPs": usage.v4_available,
        "v4usingIPs": usage.v4_using,
        "v6availableIPs": usage.v6_available,
        "v6usingIPs": usage.v6_using,
    }


class _LiveFacts:
    """`decisions.Facts` from live reads; an API failure raises `_Unsure`, so nothing is released
    on a guess. Pods found by token come from one live list (generateName pods cannot be read),
    made by whichever writer thread asks first."""

    def __init__(self, api: Api) -> None:
        self.api = api
        self._by_token: dict[str, Object] | None = None
        self._listing = threading.Lock()

    def pod(self, namespace: str, name: str) -> Object | None:
        return self._read(objects.PODS, name, namespace)

    def statefulset(self, namespace: str, name: str) -> Object | None:
        return self._read(objects.STATEFULSETS, name, namespace)

    def pod_for_token(self, token: str) -> Object | None:
        with self._listing:
            if self._by_token is None:
                try:
                    self._by_token = {token_of(p): p for p in self.api.list(objects.PODS) if token_of(p)}
                except ApiError as error:
                    raise _Unsure(str(error)) from None
        return self._by_token.get(token)

    def _read(self, kind: str, name: str, namespace: str) -> Object | None:
        try:
            return self.api.read(kind, name, namespace)
        except ApiError as error:
            raise _Unsure(str(error)) from None


class _Unreadable:
    """`decisions.Facts` when the live list failed: every lookup is `_Unsure`, so all are kept."""

    def __init__(self, why: str) -> None:
        self.why = why

    def pod(self, namespace: str, name: str) -> Object | None:
        raise _Unsure(self.why)

    def statefulset(self, namespace: str, name: str) -> Object | None:
        raise _Unsure(self.why)

    def pod_for_token(self, token: str) -> Object | None:
        raise _Unsure(self.why)


def _micro_time(now: float) -> str:
    return dt.datetime.fromtimestamp(now, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
