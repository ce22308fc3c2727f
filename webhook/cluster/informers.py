"""Keep an `ObjectCache` in step with the API server: list, then watch from the list's resourceVersion.

One thread per kind. Objects are stored as the plain JSON dicts the API server sends (camelCase,
like `kubectl get -o json`), which is what validation and mutation read. A watch that reports
410 Gone (history compacted) triggers a relist; any other failure (the API server restarting, a
dropped connection) reconnects with exponential backoff and resumes from the last resourceVersion.
A kind whose API does not exist yet (its CRD not installed: 404) holds no objects, counts as
synced, and is polled until it appears.

`kubernetes.informer.SharedInformer` was considered: it expects typed list functions (`resp.items`,
model objects), has no "synced" signal and cannot interrupt a quiet watch on stop, so this module
drives the same list/watch protocol over `ApiClient` directly with `_preload_content`-style raw
responses.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from webhook import metrics
from webhook.cluster import objects
from webhook.cluster.cache import Object, ObjectCache

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Resource:
    """Where a cache kind is listed and watched (all namespaces), and what its items are called."""

    path: str
    api_version: str
    kind: str


RESOURCES: dict[str, Resource] = {
    objects.SUBNETS: Resource(f"/apis/{objects.API_VERSION}/subnets", objects.API_VERSION, "Subnet"),
    objects.IPS: Resource(f"/apis/{objects.API_VERSION}/ips", objects.API_VERSION, "IP"),
    objects.IPPOOLS: Resource(f"/apis/{objects.API_VERSION}/ippools", objects.API_VERSION, "IPPool"),
    objects.NADS: Resource(
        f"/apis/{objects.NAD_GROUP}/{objects.NAD_VERSION}/network-attachment-definitions",
        f"{objects.NAD_GROUP}/{objects.NAD_VERSION}",
        "NetworkAttachmentDefinition",
    ),
    objects.PODS: Resource("/api/v1/pods", "v1", "Pod"),
    objects.STATEFULSETS: Resource("/apis/apps/v1/statefulsets", "apps/v1", "StatefulSet"),
}
ALL: tuple[str, ...] = tuple(RESOURCES)

LIST_PAGE = 500
WATCH_SECONDS = 240  # the server ends each watch after this; we then resume from the last version
CONNECT_TIMEOUT = 10.0
ABSENT_POLL_SECONDS = 1.0  # how often a kind without an API (CRD not installed) is retried


class Gone(Exception):  # noqa: N818 - named after HTTP 410, the condition it signals
    """The resourceVersion we watch from is too old (410 Gone): relist."""


class Absent(Exception):  # noqa: N818 - the API of a kind does not exist (404)
    """The kind's API is not served (yet): its CRD is not installed."""


class ApiError(Exception):
    """The API server answered with an unexpected status."""


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
    ) -> None:
        unknown = [kind for kind in kinds if kind not in RESOURCES]
        if unknown:
            raise ValueError(f"unknown kinds {unknown}; known kinds are {', '.join(ALL)}")
        self.cache = cache
        self._watchers = [
            _Watcher(kind, RESOURCES[kind], cache, api_client, watch_seconds=watch_seconds, backoff=backoff)
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
        resource: Resource,
        cache: ObjectCache,
        api_client: Any,
        *,
        watch_seconds: int,
        backoff: tuple[float, float],
    ) -> None:
        super().__init__(name=f"informer-{kind}", daemon=True)
        self.kind = kind
        self.resource = resource
        self.cache = cache
        self.api_client = api_client
        self.watch_seconds = watch_seconds
        self.backoff_first, self.backoff_max = backoff
        self.synced = threading.Event()
        self._stopping = threading.Event()
        self._response: Any = None
        self._response_lock = threading.Lock()

    def stop(self) -> None:
        self._stopping.set()
        with self._response_lock:
            response = self._response
        if response is not None:
            try:
                response.shutdown()  # unblocks the read of a quiet watch at once
            except Exception:  # already closed or released: nothing to interrupt
                log.debug("watch of %s was already closed", self.kind)

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
            except Absent:
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
        items: list[Object] = []
        token = ""
        while True:
            query: list[tuple[str, Any]] = [("limit", LIST_PAGE)]
            if token:
                query.append(("continue", token))
            body = json.loads(self._get(query, read_timeout=60.0).read())
            for item in body.get("items") or []:
                item.setdefault("apiVersion", self.resource.api_version)
                item.setdefault("kind", self.resource.kind)
                items.append(item)
            meta = body.get("metadata") or {}
            token = meta.get("continue") or ""
            if not token:
                break
        self._update(self.cache.replace, items)
        self.synced.set()
        return str(meta.get("resourceVersion") or "0")

    def _watch(self, version: str) -> str:
        """Apply watch events from `version` until the server ends the watch; the last version."""
        query: list[tuple[str, Any]] = [
            ("watch", "true"),
            ("resourceVersion", version),
            ("allowWatchBookmarks", "true"),
            ("timeoutSeconds", self.watch_seconds),
        ]
        response = self._get(query, read_timeout=self.watch_seconds + 30.0)
        with self._response_lock:
            self._response = response
        try:
            if self._stopping.is_set():  # stop() ran before there was a response to interrupt
                return version
            for line in _lines(response):
                if self._stopping.is_set():
                    break
                version = self._apply(json.loads(line), version)
        finally:
            with self._response_lock:
                self._response = None
            response.release_conn()
        return version

    def _apply(self, event: dict[str, Any], version: str) -> str:
        kind, obj = event.get("type"), event.get("object") or {}
        if kind == "ERROR":
            if obj.get("code") == 410:
                raise Gone(obj.get("message", ""))
            raise ApiError(f"watch error {obj.get('code')}: {obj.get('message')}")
        if kind in ("ADDED", "MODIFIED"):
            if not self._held_already(obj):
                self._update(self.cache.put, obj)
        elif kind == "DELETED":
            self._update(self.cache.delete, obj)
        return str((obj.get("metadata") or {}).get("resourceVersion") or version)

    def _held_already(self, obj: Object) -> bool:
        """Is `obj` the cached version or an older one? The Store puts what it writes into the
        cache at once (read-your-writes); the watch event of an earlier version arriving after
        that must not roll the cache back, and the event of that very version need not be applied
        (and its subscribers called) a second time. etcd's resourceVersions are increasing
        integers; anything else is never judged held."""
        meta = obj.get("metadata") or {}
        cached = self.cache.get(self.kind, meta.get("name") or "", meta.get("namespace") or "")
        if cached is None:
            return False
        mine, theirs = str(meta.get("resourceVersion", "")), str((cached.get("metadata") or {}).get(
            "resourceVersion", ""))
        return mine.isdigit() and theirs.isdigit() and int(mine) <= int(theirs)

    def _update(self, change: Callable[[str, Any], None], arg: Any) -> None:
        """Apply one change to the cache. The cache stores before it calls its subscribers, so a
        subscriber that raises is logged and passed over: retrying the watch would only replay
        the same event into the same failure and stall this kind for good."""
        try:
            change(self.kind, arg)
        except Exception:
            log.exception("a subscriber of %s failed on a change; the cache holds it regardless", self.kind)

    def _get(self, query: list[tuple[str, Any]], *, read_timeout: float) -> Any:
        """GET the kind's path; the raw urllib3 response, or a typed exception for its status."""
        client = self.api_client
        method, url, headers, body, post = client.param_serialize(
            method="GET",
            resource_path=self.resource.path,
            query_params=query,
            header_params={"Accept": "application/json"},
            auth_settings=["BearerToken"],
        )
        response = client.call_api(
            method, url, header_params=headers, body=body, post_params=post,
            _request_timeout=(CONNECT_TIMEOUT, read_timeout),
        ).response
        if response.status == 200:
            return response
        text = response.data.decode("utf-8", "replace")[:300]
        response.release_conn()
        if response.status == 410:
            raise Gone(text)
        if response.status == 404:
            raise Absent(text)
        raise ApiError(f"GET {self.resource.path} answered {response.status}: {text}")


# What is read of these kinds besides `metadata` (pods: `decisions.terminated`; StatefulSets:
# `decisions.keeps`); the rest of their spec and status (containers, volumes, the pod template,
# conditions …) is not kept. Validation reads the object under review from the request, never these.
KEPT_FIELDS: dict[str, dict[str, tuple[str, ...]]] = {
    objects.PODS: {"spec": ("restartPolicy",), "status": ("phase",)},
    objects.STATEFULSETS: {"spec": ("replicas",)},
}
# Never read, and `kubectl apply` makes it a second copy of the whole object.
UNREAD_ANNOTATIONS = ("kubectl.kubernetes.io/last-applied-configuration",)
SHARED_MAX = 64  # strings up to this length are interned: kinds, namespaces, subnets, providers …


def compact(kind: str, obj: Object) -> Object:
    """What the cache keeps of `obj` (the server's `ObjectCache` transform): no `managedFields`
    (often half an object, read by nobody), only the `KEPT_FIELDS` of pods and StatefulSets, and
    every key and short string interned, so ten thousand pods share one "metadata", one namespace
    and one Subnet name rather than holding a copy each. A new object: `obj` is left as it was."""
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
    """`value` rebuilt with interned keys and short strings (JSON: dicts, lists, scalars)."""
    if isinstance(value, str):
        return sys.intern(value) if len(value) <= SHARED_MAX else value
    if isinstance(value, dict):
        return {sys.intern(k): _shared(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shared(v) for v in value]
    return value


def _lines(response: Any) -> Iterator[bytes]:
    """Newline-delimited JSON of a watch response, one event at a time."""
    buffer = b""
    for chunk in response.stream(amt=None, decode_content=True):
        *lines, buffer = (buffer + chunk).split(b"\n")  # one split per chunk, however many events
        for line in lines:
            if line.strip():
                yield line
    if buffer.strip():
        yield buffer
