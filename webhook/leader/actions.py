"""The leader's writes: carry out planned binds and releases, each release only once the same
rules agree on live data (a read per address, or one list of pods for many), from a few writer
threads at once, so a thousand released pods free their addresses in seconds, not minutes.

Releases are deletes guarded by the resourceVersion decided on, so a late release can never take
an address from a pod that was just given it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from webhook import metrics
from webhook.cluster import objects
from webhook.cluster.cache import Object
from webhook.cluster.ipobjects import address_of, token_of
from webhook.cluster.kubeapi import Api, ApiError, Conflict, NotFound
from webhook.cluster.store import Store
from webhook.leader import decisions

log = logging.getLogger(__name__)

# From this many releases in one pass on, one live list of every pod is cheaper for the API server
# than a read per address (and a read plus a delete each, one after another, bounded a scale-down).
CONFIRM_BY_LIST_AT = 8
WRITERS = 8  # binds and deletes of one pass in flight at once, each thread on its own connection
WRITER_THREADS = "multinic-ipam-lifecycle-write"
REFUSALS_LOGGED = 3  # refused writes of one pass named in the log; the rest are counted


@dataclass(frozen=True)
class Outcome:
    """A planned decision and what was done: itself, what live reads turned it into (a release
    whose pod turned up is a bind), or None when the object was kept."""

    planned: decisions.Decision
    done: decisions.Decision | None


def list_pods(api: Api) -> list[Object]:
    """Every pod, live: the one list a pass with many releases confirms them against."""
    return api.list(objects.PODS)


class Actions:
    """Binds and releases of the leader's passes, against `store`'s API and cache."""

    def __init__(
        self, store: Store, *, clock: Callable[[], float], grace: float | None, default_grace: float,
        deleted: Callable[[], frozenset[str]],
    ) -> None:
        self.store = store
        self.api = store.api
        self.clock = clock
        self.grace = grace  # None: each reservation's own grace period decides
        self.default_grace = default_grace
        self.deleted = deleted  # the reservation tokens of pods seen deleted, now
        self._writers: ThreadPoolExecutor | None = None
        self._refused: list[str] = []  # this pass's refused writes, as log lines (appends are atomic)

    def shutdown(self) -> None:
        """Stop the writer threads (started again by the next `act`)."""
        if self._writers is not None:
            self._writers.shutdown(wait=True)
            self._writers = None

    def act(self, planned: list[decisions.Decision]) -> list[Outcome]:
        """Carry out `planned`: binds as decided; each release only once the same rules agree on live
        data (a read per address, or one list for many), up to `WRITERS` writes at once."""
        live = self._live_facts(planned)
        deleted = self.deleted()

        def one(decision: decisions.Decision) -> Outcome:
            if isinstance(live, _Unreadable) and isinstance(decision, decisions.Release):
                return Outcome(decision, None)  # kept for a later pass (logged once, not per address)
            return self._act_one(decision, live, deleted)

        self._refused.clear()
        if len(planned) < 2:
            outcomes = [one(decision) for decision in planned]
        else:
            if self._writers is None:
                self._writers = ThreadPoolExecutor(WRITERS, thread_name_prefix=WRITER_THREADS)
            outcomes = list(self._writers.map(one, planned))
        self._log_refused()
        return outcomes

    def _log_refused(self) -> None:
        """The writes the API server refused this pass: the first few named, the rest counted (an
        API server that is down refuses every one, and a line per address would bury the log)."""
        refused = list(self._refused)
        for line in refused[:REFUSALS_LOGGED]:
            log.warning("%s", line)
        if len(refused) > REFUSALS_LOGGED:
            log.warning("and %d more writes refused this pass; all are decided again next pass",
                        len(refused) - REFUSALS_LOGGED)

    def _live_facts(self, planned: list[decisions.Decision]) -> decisions.Facts:
        """Live reads for a few releases; for many, one list of pods (and of StatefulSets when a
        release is a StatefulSet's), kept to the pods and sets those releases ask about."""
        ips = [ip for d in planned if isinstance(d, decisions.Release)
               if (ip := self.store.ip_object(d.ip_name)) is not None]
        if len(ips) < CONFIRM_BY_LIST_AT:
            return _LiveFacts(self.api)
        wanted = decisions.lookups(ips)
        try:
            live_pods = [p for p in list_pods(self.api)
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
                decision = decisions.decide_one(ip, live, now=self.clock(), grace=self.grace,
                                                default_grace=self.default_grace, deleted=deleted)
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
        except ApiError as error:
            return self._kept("bind", ip, error)
        self.store.cache.put(objects.IPS, updated)
        return True

    def _kept(self, action: str, ip: Object, error: ApiError) -> bool:
        """One write the API server refused: noted and decided again next pass. The other objects of
        the pass go on: one object the server will not take must not stall every bind and release."""
        name = ip["metadata"]["name"]
        self._refused.append(f"could not {action} {address_of(ip)} ({name}) for now: {error}")
        return False

    def _release(self, ip: Object, why: str) -> bool:
        meta = ip["metadata"]
        try:
            if not self.store.delete(meta["name"], resource_version=meta.get("resourceVersion")):
                return False
        except ApiError as error:
            return self._kept("release", ip, error)
        log.info("released %s (%s): %s", address_of(ip), meta["name"], why)
        metrics.RELEASES.labels(metrics.release_reason(why)).inc()
        return True


class _Unsure(Exception):  # noqa: N818 (a reason to wait, not an error)
    """A live read failed: keep the object until a later pass can tell."""


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
                    self._by_token = {token_of(p): p for p in list_pods(self.api) if token_of(p)}
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
