"""Keep an `ObjectCache` in step with the API server: list, then watch from the list's resourceVersion.

One thread per kind, over the one `transport.Transport`. Objects are stored as the plain JSON
dicts the API server sends (camelCase, like `kubectl get -o json`), which is what validation and
mutation read. A watch that reports 410 Gone (history compacted) triggers a paged relist; any other
failure (the API server restarting, a dropped connection) reconnects with exponential backoff and
resumes from the last resourceVersion. A kind whose API does not exist yet (its CRD not installed:
404) holds no objects, counts as synced, and is polled until it appears.

`kubernetes.informer.SharedInformer` was considered: it expects typed list functions (`resp.items`,
model objects), has no "synced" signal and cannot interrupt a quiet watch on stop. The node
daemon (`cni.podwatch`) uses these informers too, with a field selector.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from webhook import metrics
from webhook.cluster import objects
from webhook.cluster.cache import Object, ObjectCache
from webhook.cluster.errors import Gone, NotFound
from webhook.cluster.packing import SharedStrings
from webhook.cluster.routes import ROUTES, Route
from webhook.cluster.transport import Transport, Watch

log = logging.getLogger(__name__)

# The kinds the webhook caches, and where each is listed and watched (`Route.path`).
ALL: tuple[str, ...] = (objects.SUBNETS, objects.IPS, objects.IPPOOLS, objects.NADS, objects.PODS,
                        objects.STATEFULSETS)
RESOURCES: dict[str, Route] = {kind: ROUTES[kind] for kind in ALL}

WATCH_SECONDS = 240  # the server ends each watch after this; we then resume from the last version
LIST_TIMEOUT = 60.0  # seconds to wait for one page of a list
ABSENT_POLL_SECONDS = 1.0  # how often a kind without an API (CRD not installed) is retried


class Informers:
    """List + watch threads that fill `cache` for `kinds`, with a readiness signal."""

    def __init__(
        self,
        cache: ObjectCache,
        api_client: Any,
        kinds: Iterable[str] = ALL,
        *,
        watch_seconds: int = WATCH_SECONDS,
        backoff: tuple[float, float] = (0.2, 10.0),
        field_selector: str = "",
    ) -> None:
        """`api_client`: a `ClusterAccess` (`connection.connect`), a library `ApiClient` or a
        `Transport`; `field_selector` narrows every kind's list and watch (the node daemon:
        `spec.nodeName=<node>`)."""
        unknown = [kind for kind in kinds if kind not in RESOURCES]
        if unknown:
            raise ValueError(f"unknown kinds {unknown}; known kinds are {', '.join(ALL)}")
        self.cache = cache
        transport = Transport.for_client(api_client, timeout=LIST_TIMEOUT)
        query = {"fieldSelector": field_selector} if field_selector else {}
        self._watchers = [
            _Watcher(kind, cache, transport, query, watch_seconds=watch_seconds, backoff=backoff)
            for kind in kinds
        ]

    def start(self) -> None:
        for watcher in self._watchers:
            if not watcher.is_alive():
                watcher.start()

    def stop(self, timeout: float = 5.0) -> None:
        for watcher in self._watchers:
            watcher.stop()
        deadline = time.monotonic() + timeout
        for watcher in self._watchers:
            if watcher.is_alive():
                watcher.join(max(0.0, deadline - time.monotonic()))

    @property
    def synced(self) -> bool:
        return all(watcher.synced.is_set() for watcher in self._watchers)

    def unsynced_kinds(self) -> list[str]:
        return [watcher.kind for watcher in self._watchers if not watcher.synced.is_set()]

    def wait_synced(self, timeout: float | None = None) -> bool:
        """Block until every kind has been listed once; False when `timeout` passed first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for watcher in self._watchers:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not watcher.synced.wait(remaining):
                return False
        return True


class _Watcher(threading.Thread):
    """List and watch one kind forever (until stopped)."""

    def __init__(
        self,
        kind: str,
        cache: ObjectCache,
        transport: Transport,
        query: dict[str, str],
        *,
        watch_seconds: int,
        backoff: tuple[float, float],
    ) -> None:
        super().__init__(name=f"informer-{kind}", daemon=True)
        self.kind = kind
        self.resource = RESOURCES[kind]
        self.cache = cache
        self.transport = transport
        self.query = query
        self.watch_seconds = watch_seconds
        self.backoff_first, self.backoff_max = backoff
        self.synced = threading.Event()
        self._stopping = threading.Event()
        self._response: Watch | None = None
        self._response_lock = threading.Lock()

    def stop(self) -> None:
        self._stopping.set()
        with self._response_lock:
            response = self._response
        if response is not None:
            response.close()  # unblocks the read of a quiet watch at once

    def run(self) -> None:
        version: str | None = None
        delay = self.backoff_first
        while not self._stopping.is_set():
            try:
                if version is None:
                    version = self._relist()
                version = self._watch(version)
                delay = self.backoff_first
            except Gone:
                log.info("watch of %s expired (410 Gone); relisting", self.kind)
                metrics.INFORMER_RESTARTS.labels(self.kind, "gone").inc()
                version = None
            except NotFound:
                if not self.synced.is_set():
                    log.warning("%s are not served by the API server (CRD not installed?); "
                                "treating them as none until they appear", self.kind)
                self.cache.replace(self.kind, [])
                self.synced.set()
                version = None
                self._stopping.wait(ABSENT_POLL_SECONDS)
            except Exception as error:  # any failure means: back off and reconnect
                if self._stopping.is_set():
                    break
                log.warning("list/watch of %s failed (%s); retrying in %.1fs", self.kind, error, delay)
                metrics.INFORMER_RESTARTS.labels(self.kind, "error").inc()
                self._stopping.wait(delay)
                delay = min(delay * 2, self.backoff_max)

    def _relist(self) -> str:
        """Replace the cached objects of this kind by a fresh (paged) list; its resourceVersion."""
        items, version = self.transport.list(self.resource.path, self.query)
        for item in items:
            item.setdefault("apiVersion", self.resource.api_version)
            item.setdefault("kind", self.resource.kind)
        self._update(self.cache.replace, items)
        self.synced.set()
        return version or "0"

    def _watch(self, version: str) -> str:
        """Apply watch events from `version` until the server ends the watch; the last version."""
        query = {**self.query, "resourceVersion": version, "allowWatchBookmarks": "true",
                 "timeoutSeconds": self.watch_seconds}
        response = self.transport.watch(self.resource.path, query, timeout=self.watch_seconds + 30.0)
        with self._response_lock:
            self._response = response
        try:
            if self._stopping.is_set():  # stop() ran before there was a response to interrupt
                return version
            for event in response.events():
                if self._stopping.is_set():
                    break
                version = self._apply(event, version)
        finally:
            with self._response_lock:
                self._response = None
            response.close()
        return version

    def _apply(self, event: dict[str, Any], version: str) -> str:
        kind, obj = event.get("type"), event.get("object") or {}
        if kind in ("ADDED", "MODIFIED"):
            self._update(self.cache.put, obj)  # the cache ignores a version it holds or has outgrown
        elif kind == "DELETED":
            self._update(self.cache.delete, obj)
        return str((obj.get("metadata") or {}).get("resourceVersion") or version)

    def _update(self, change: Callable[[str, Any], None], arg: Any) -> None:
        """Apply one change to the cache. The cache stores before it calls its subscribers, so a
        subscriber that raises is logged and passed over: retrying the watch would only replay
        the same event into the same failure and stall this kind for good."""
        try:
            change(self.kind, arg)
        except Exception:
            log.exception("a subscriber of %s failed on a change; the cache holds it regardless", self.kind)


# What is read of these kinds besides `metadata` (pods: `decisions.terminated`; StatefulSets:
# `decisions.keeps`); the rest of their spec and status (containers, volumes, the pod template,
# conditions …) is not kept. Validation reads the object under review from the request, never these.
KEPT_FIELDS: dict[str, dict[str, tuple[str, ...]]] = {
    objects.PODS: {"spec": ("restartPolicy",), "status": ("phase",)},
    objects.STATEFULSETS: {"spec": ("replicas",)},
}
# Never read, and `kubectl apply` makes it a second copy of the whole object.
UNREAD_ANNOTATIONS = ("kubectl.kubernetes.io/last-applied-configuration",)
SHARED_MAX = 64  # strings up to this length are shared: kinds, namespaces, subnets, providers …
_recent = SharedStrings()  # for values (keys, a bounded set, are interned)
# Held by the thousand (a pod and an IP object per address), so kept packed (`webhook.cluster.packing`).
PACKED: tuple[str, ...] = (objects.PODS, objects.IPS)


def server_cache() -> ObjectCache:
    """The cache as the webhook server holds it: every object compacted, pods and IP objects packed."""
    return ObjectCache(transform=compact, packed=PACKED)


def compact(kind: str, obj: Object) -> Object:
    """What the cache keeps of `obj` (the server's `ObjectCache` transform): no `managedFields`
    (often half an object, read by nobody), only the `KEPT_FIELDS` of pods and StatefulSets, and
    every key interned and every short string shared (`SharedStrings`), so ten thousand pods share
    one "metadata", one namespace and one Subnet name rather than holding a copy each, and a pod
    its name, addresses and token with its IP objects. A new object: `obj` is left as it was."""
    kept = KEPT_FIELDS.get(kind)
    out: Object = {}
    for key, value in obj.items():
        if key == "metadata" and isinstance(value, dict):
            out["metadata"] = _compact_meta(value)
        elif kept is None or key in ("apiVersion", "kind"):
            out[sys.intern(key)] = _shared(value)
        elif key in kept and isinstance(value, dict):
            out[sys.intern(key)] = {sys.intern(k): _shared(value[k]) for k in kept[key] if k in value}
    return out


def _compact_meta(meta: Object) -> Object:
    out: Object = {}
    for key, value in meta.items():
        if key == "managedFields":
            continue
        if key == "annotations" and isinstance(value, dict):
            out["annotations"] = {
                sys.intern(k): _shared(v) for k, v in value.items() if k not in UNREAD_ANNOTATIONS
            }
        else:
            out[sys.intern(key)] = _shared(value)
    return out


def _shared(value: Any) -> Any:
    """`value` rebuilt with interned keys and shared short strings (JSON: dicts, lists, scalars)."""
    if isinstance(value, str):
        return _recent(value) if len(value) <= SHARED_MAX else value
    if isinstance(value, dict):
        return {sys.intern(k): _shared(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shared(v) for v in value]
    return value
