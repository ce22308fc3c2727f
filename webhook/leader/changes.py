"""Which IP objects the Lifecycle's next pass must decide again: those whose decision may have moved.

A decision (`webhook.leader.decisions.decide_one`) reads the IP object, the pod it names or whose
reservation token it carries, its StatefulSet, the time (an unbound reservation's grace period)
and the tokens of deleted pods. `Changes` is fed by the cache's events of each (IP objects and
StatefulSets by its own subscriptions, pods by the Lifecycle's, which records a deleted pod's token
before telling it), keeps indexes from those pods and StatefulSets to the IP objects that look them
up (`decisions.looked_up`), and a heap of grace deadlines. `take` hands over what changed since the
last call, so a pass costs what changed, not what is held.
"""

from __future__ import annotations

import heapq
import threading
from collections.abc import Callable, Iterable

from webhook.cluster import objects
from webhook.cluster.cache import Names, Object, ObjectCache
from webhook.cluster.ipobjects import token_of
from webhook.leader import decisions

STALE_SLACK = 1024  # deadlines no longer current kept in the heap at most beyond twice the current
Deadline = Callable[[Object], float | None]  # when an object's grace period ends, if it has one


class Changes:
    """IP object names to decide again, from cache events and due grace deadlines; thread-safe."""

    def __init__(self, cache: ObjectCache, *, deadline: Deadline) -> None:
        self.cache = cache
        self._deadline = deadline
        self._lock = threading.Lock()
        self._ips: set[str] = set()  # changed IP objects
        self._pods: set[tuple[str, str]] = set()  # changed pods by (namespace, name)
        self._tokens: set[str] = set()  # ... and by their reservation tokens
        self._sets: set[tuple[str, str]] = set()  # changed StatefulSets
        self._by_pod = Names()  # (namespace, pod name) → IP objects naming it
        self._by_token = Names()  # reservation token → IP objects carrying it
        self._by_set = Names()  # (namespace, StatefulSet) → its pods' IP objects
        self._looked_up: dict[str, tuple[tuple[str, str] | None, str, tuple[str, str] | None]] = {}
        self._due: list[tuple[float, str]] = []  # (deadline, IP object name), a heap
        self._deadlines: dict[str, float] = {}  # the deadline in `_due` that is current, per name
        cache.subscribe(objects.IPS, self._on_ip)
        cache.subscribe(objects.STATEFULSETS, self._on_statefulset)

    def _on_ip(self, event: str, ip: Object) -> None:
        name = (ip.get("metadata") or {}).get("name", "")
        with self._lock:  # handlers may run out of order: index what the cache holds now
            current = self.cache.current(objects.IPS, ip)
            old = self._looked_up.pop(name, None)
            if old is not None:
                self._index(old, name, add=False)
            if current is not None:
                self._looked_up[name] = new = decisions.looked_up(current)
                self._index(new, name, add=True)
            self._schedule(name, current)
            self._ips.add(name)

    def _index(self, looked_up: tuple, name: str, *, add: bool) -> None:
        pod, token, statefulset = looked_up
        for names, key in ((self._by_pod, pod), (self._by_token, token), (self._by_set, statefulset)):
            if key:
                (names.add if add else names.discard)(key, name)

    def _on_statefulset(self, event: str, statefulset: Object) -> None:
        with self._lock:
            self._sets.add(decisions.namespaced_name(statefulset))

    def pod_changed(self, pod: Object) -> None:
        """A pod event: the IP objects naming the pod, or carrying its token, are decided again."""
        token = token_of(pod)
        with self._lock:
            self._pods.add(decisions.namespaced_name(pod))
            if token:
                self._tokens.add(token)

    def again(self, names: Iterable[str]) -> None:
        """Decide these IP objects again next time (a decision that was not carried out)."""
        with self._lock:
            self._ips.update(names)

    def scheduled(self, ips: Iterable[Object]) -> None:
        """Make sure the grace deadline of each of these is waited for (after a pass took it)."""
        with self._lock:
            for ip in ips:
                self._schedule(ip["metadata"]["name"], ip)

    def _schedule(self, name: str, ip: Object | None) -> None:
        deadline = None if ip is None else self._deadline(ip)
        if deadline is None:
            self._deadlines.pop(name, None)  # an entry left in the heap is skipped when it comes due
        elif self._deadlines.get(name) != deadline:
            self._deadlines[name] = deadline
            heapq.heappush(self._due, (deadline, name))

    def take(self, now: float) -> set[str]:
        """The IP object names to decide again: changed since the last call, or due at `now`."""
        with self._lock:
            names, self._ips = self._ips, set()
            pods, self._pods = self._pods, set()
            tokens, self._tokens = self._tokens, set()
            sets, self._sets = self._sets, set()
            for pod in pods:
                names.update(self._by_pod.get(pod))
            for token in tokens:
                names.update(self._by_token.get(token))
            for statefulset in sets:
                names.update(self._by_set.get(statefulset))
            while self._due and self._due[0][0] <= now:
                deadline, name = heapq.heappop(self._due)
                if self._deadlines.get(name) == deadline:
                    del self._deadlines[name]
                    names.add(name)
            if len(self._due) > 2 * len(self._deadlines) + STALE_SLACK:  # mostly bound since: rebuild
                self._due = [(deadline, name) for name, deadline in self._deadlines.items()]
                heapq.heapify(self._due)
        return names

    def size(self) -> dict[str, int]:
        """How much is held (for tests and benchmarks)."""
        with self._lock:
            return {"indexed": len(self._looked_up), "due": len(self._due), "changed": len(self._ips)}
