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

Leader election is `webhook.leader.lease`, the writes (binds, confirmed releases, from a few threads
at once) `webhook.leader.actions`, the Subnet status counters `webhook.leader.status`.

Every replica remembers the reservation tokens of pods its cache saw deleted (`DeletedPods`), so
whichever replica leads releases a reservation whose pod was deleted before it was bound at once,
not after the grace period. A pod event the leader's cache never saw (it started after the pod was
gone, or a relist skipped both events) leaves that reservation to the grace period.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from webhook import metrics
from webhook.cluster import objects
from webhook.cluster.cache import Object
from webhook.cluster.ipobjects import token_of
from webhook.cluster.store import Store
from webhook.leader import decisions, status
from webhook.leader.actions import Actions, Outcome
from webhook.leader.changes import Changes
from webhook.leader.lease import LEASE_NAME, LeaderLease
from webhook.settings import DEFAULT_LEASE_NAMESPACE

log = logging.getLogger(__name__)

MIN_GAP = 0.5  # seconds between two passes at least
DELETED_LIMIT = 20_000  # tokens of deleted pods remembered at most (~2 MB); the oldest go first
FULL_INTERVAL = 30.0  # seconds between two full passes at most (the incremental ones decide the rest)


@dataclass
class Pass:
    """What one reconcile pass did (for logs and tests)."""

    bound: int = 0
    released: int = 0
    kept: int = 0  # of the objects decided (every one in a full pass, only the changed ones otherwise)
    full: bool = False


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
        self.lease = LeaderLease(self.api, identity=identity, namespace=self.namespace, name=lease_name,
                                 seconds=lease_seconds, clock=clock)
        self.interval = interval
        self.status_interval = status_interval
        self.grace_override = grace  # None: each reservation's own grace period decides
        self.grace = store.grace if grace is None else grace
        self.clock = clock
        self._last_status = 0.0
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self.full_interval = full_interval
        self._last_full: float | None = None  # None: the next pass is a full one
        self.deleted = DeletedPods(keep=self.grace, clock=clock)
        self.actions = Actions(store, clock=clock, grace=grace, default_grace=self.grace,
                               deleted=self.deleted.tokens)
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
        self.actions.shutdown()
        if self.leader:
            self.lease.give_up()

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

    @property
    def leader(self) -> bool:
        """Whether this process held the Lease at its last `acquire`."""
        return self.lease.leader

    def acquire(self) -> bool:
        """Create, renew or take over the Lease; True while this process is the leader."""
        return self.lease.acquire()

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
            ips = self.store.each_ip_object()
            self._last_full = now
        else:
            ips = (ip for ip in map(self.store.ip_object, sorted(changed)) if ip is not None)
        try:
            planned, decided = self._decide_scheduling(ips)
            outcomes = self.act(planned)
        except BaseException:
            self._last_full = None  # what was taken is not lost: the next pass decides over all
            raise
        self.changes.again(o.planned.ip_name for o in outcomes if o.done is None)
        bound = sum(isinstance(o.done, decisions.Bind) for o in outcomes)
        released = sum(isinstance(o.done, decisions.Release) for o in outcomes)
        return Pass(bound=bound, released=released, kept=decided - bound - released, full=full)

    def _decide_scheduling(self, ips: Iterable[Object]) -> tuple[list[decisions.Decision], int]:
        """The decisions `ips` call for, and how many were decided over. Each object is decided
        and dropped before the next is read (a full pass reads thousands, each unpacked anew);
        the grace deadline of one left as it is gets scheduled on the way."""
        planned: list[decisions.Decision] = []
        decided, decide_one = 0, functools.partial(decisions.decide_one, **self._rules())
        for ip in ips:
            decided += 1
            decision = decide_one(ip)
            if decision is None:
                self.changes.scheduled((ip,))
            else:
                planned.append(decision)
        return planned, decided

    def _grace_ends(self, ip: Object) -> float | None:
        return decisions.grace_ends(ip, grace=self.grace_override, default_grace=self.grace)

    def decide(self, ips: list[Object] | None = None) -> list[decisions.Decision]:
        """What the cache calls for now (`ips`: the cached IP objects unless given); writes nothing."""
        return decisions.decide(self.store.each_ip_object() if ips is None else ips, **self._rules())

    def _rules(self) -> dict[str, Any]:
        """What `decisions` decides by besides the objects: the cache, the time now, this
        Lifecycle's grace periods and the tokens of the pods seen deleted so far."""
        return {"facts": self.store, "now": self.clock(), "grace": self.grace_override,
                "default_grace": self.grace, "deleted": self.deleted.tokens()}

    def act(self, planned: list[decisions.Decision]) -> list[Outcome]:
        """Carry out `planned` (`webhook.leader.actions`): binds as decided, releases once confirmed live."""
        return self.actions.act(planned)

    def write_status(self) -> int:
        """Write the usage counters of every Subnet whose cached status differs; return how many."""
        return status.write_status(self.store, self.api)
