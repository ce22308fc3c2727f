"""An in-memory API server for the Store and the Lifecycle (`webhook.cluster.kubeapi.Api`).

It keeps IP objects, Leases and readable objects with resourceVersions, answers `create` of a taken
name with AlreadyExists and guarded updates of a moved version with Conflict, as the real one does.
Writes can be mirrored into ObjectCaches (`watchers`) to play the informers, immediately or when
`deliver()` is called, so tests can hold a watch event back.
"""

from __future__ import annotations

import copy
import itertools
import threading
from collections.abc import Callable
from typing import Any

from webhook.cluster import objects
from webhook.cluster.cache import Object, ObjectCache
from webhook.cluster.kubeapi import AlreadyExists, ApiError, Conflict, NotFound


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


class FakeApi:
    """`webhook.cluster.kubeapi.Api` over dicts, thread-safe, with optional fault injection."""

    def __init__(self, *, watchers: tuple[ObjectCache, ...] = (), deferred: bool = False) -> None:
        self._lock = threading.RLock()
        self._versions = itertools.count(1)
        self.ips: dict[str, Object] = {}
        self.leases: dict[tuple[str, str], Object] = {}
        self.objects: dict[tuple[str, str, str], Object] = {}  # (kind, namespace, name)
        self.statuses: dict[str, Object] = {}
        self.watchers = list(watchers)
        self.deferred = deferred
        self.pending: list[tuple[str, Object]] = []
        self.calls: list[tuple[str, str]] = []
        self.fail: Callable[[str, str], ApiError | None] = lambda op, name: None

    # ---- the Api interface ----------------------------------------------------------------------

    def create_ip(self, body: Object) -> Object:
        name = body["metadata"]["name"]
        self._record("create_ip", name)
        with self._lock:
            if name in self.ips:
                raise AlreadyExists(409, f'ips.kubeovn.io "{name}" already exists')
            obj = copy.deepcopy(body)
            obj["metadata"]["resourceVersion"] = str(next(self._versions))
            obj["metadata"]["uid"] = f"uid-{name}-{obj['metadata']['resourceVersion']}"
            obj["metadata"].setdefault("creationTimestamp", "2026-01-01T00:00:00Z")
            self.ips[name] = obj
            self._emit("PUT", obj)
            return copy.deepcopy(obj)

    def patch_ip(self, name: str, patch: Object) -> Object:
        self._record("patch_ip", name)
        with self._lock:
            current = self.ips.get(name)
            if current is None:
                raise NotFound(404, f'ips.kubeovn.io "{name}" not found')
            wanted = (patch.get("metadata") or {}).get("resourceVersion")
            if wanted and wanted != current["metadata"]["resourceVersion"]:
                raise Conflict(409, f'the object "{name}" has been modified')
            updated = merge_patch(current, patch)
            updated["metadata"]["resourceVersion"] = str(next(self._versions))
            self.ips[name] = updated
            self._emit("PUT", updated)
            return copy.deepcopy(updated)

    def delete_ip(self, name: str, *, resource_version: str | None = None) -> None:
        self._record("delete_ip", name)
        with self._lock:
            current = self.ips.get(name)
            if current is None:
                raise NotFound(404, f'ips.kubeovn.io "{name}" not found')
            if resource_version and resource_version != current["metadata"]["resourceVersion"]:
                raise Conflict(409, "Precondition failed: ResourceVersion")
            del self.ips[name]
            self._emit("DELETE", current)

    def patch_pod(self, namespace: str, name: str, patch: Object) -> Object:
        """Merge-patch a stored pod; a `metadata.uid` other than the pod's is refused (422)."""
        self._record("patch_pod", f"{namespace}/{name}")
        with self._lock:
            current = self.objects.get((objects.PODS, namespace, name))
            if current is None:
                raise NotFound(404, f'pods "{name}" not found')
            uid = (patch.get("metadata") or {}).get("uid")
            if uid and uid != current["metadata"].get("uid"):
                raise ApiError(422, f'Pod "{name}" is invalid: metadata.uid: field is immutable')
            updated = merge_patch(current, patch)
            updated["metadata"]["resourceVersion"] = str(next(self._versions))
            self.objects[(objects.PODS, namespace, name)] = updated
        for cache in self.watchers:
            cache.put(objects.PODS, copy.deepcopy(updated))
        return copy.deepcopy(updated)

    def patch_subnet_status(self, name: str, status: Object) -> None:
        self._record("patch_subnet_status", name)
        with self._lock:
            self.statuses[name] = merge_patch(self.statuses.get(name, {}), status)

    def read(self, kind: str, name: str, namespace: str = "") -> Object | None:
        self._record("read", f"{kind}/{namespace}/{name}")
        with self._lock:
            found = self.ips.get(name) if kind == objects.IPS else self.objects.get((kind, namespace, name))
            return copy.deepcopy(found) if found is not None else None

    def list(self, kind: str) -> list[Object]:
        self._record("list", kind)
        with self._lock:
            if kind == objects.IPS:
                return [copy.deepcopy(o) for o in self.ips.values()]
            return [copy.deepcopy(o) for (k, _, _), o in self.objects.items() if k == kind]

    def read_lease(self, namespace: str, name: str) -> Object | None:
        self._record("read_lease", name)
        with self._lock:
            found = self.leases.get((namespace, name))
            return copy.deepcopy(found) if found else None

    def create_lease(self, namespace: str, body: Object) -> Object:
        self._record("create_lease", body["metadata"]["name"])
        with self._lock:
            key = (namespace, body["metadata"]["name"])
            if key in self.leases:
                raise AlreadyExists(409, "lease already exists")
            obj = copy.deepcopy(body)
            obj["metadata"]["resourceVersion"] = str(next(self._versions))
            self.leases[key] = obj
            return copy.deepcopy(obj)

    def replace_lease(self, namespace: str, body: Object) -> Object:
        self._record("replace_lease", body["metadata"]["name"])
        with self._lock:
            key = (namespace, body["metadata"]["name"])
            current = self.leases.get(key)
            if current is None:
                raise NotFound(404, "lease not found")
            if body["metadata"].get("resourceVersion") != current["metadata"]["resourceVersion"]:
                raise Conflict(409, "lease was modified")
            obj = copy.deepcopy(body)
            obj["metadata"]["resourceVersion"] = str(next(self._versions))
            self.leases[key] = obj
            return copy.deepcopy(obj)

    # ---- test helpers -----------------------------------------------------------------------------

    def put(self, kind: str, obj: Object) -> Object:
        """Store a readable object (pod, statefulset, subnet, NAD) and tell the watchers."""
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        with self._lock:
            meta.setdefault("uid", f"uid-{meta['name']}-{next(self._versions)}")
            meta["resourceVersion"] = str(next(self._versions))
            self.objects[(kind, meta.get("namespace", ""), meta["name"])] = obj
        for cache in self.watchers:
            cache.put(kind, copy.deepcopy(obj))
        return obj

    def remove(self, kind: str, namespace: str, name: str) -> None:
        with self._lock:
            obj = self.objects.pop((kind, namespace, name))
        for cache in self.watchers:
            cache.delete(kind, obj)

    def deliver(self) -> int:
        """Deliver held-back IP watch events to the watchers; return how many."""
        with self._lock:
            events, self.pending = self.pending, []
        for event, obj in events:
            self._apply(event, obj)
        return len(events)

    def _emit(self, event: str, obj: Object) -> None:
        obj = copy.deepcopy(obj)
        if self.deferred:
            self.pending.append((event, obj))
        else:
            self._apply(event, obj)

    def _apply(self, event: str, obj: Object) -> None:
        for cache in self.watchers:
            if event == "PUT":
                cache.put(objects.IPS, copy.deepcopy(obj))
            else:
                cache.delete(objects.IPS, obj)

    def _record(self, op: str, name: str) -> None:
        error = self.fail(op, name)
        with self._lock:
            self.calls.append((op, name))
        if error is not None:
            raise error
