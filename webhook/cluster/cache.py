"""A thread-safe, in-process copy of the cluster objects the webhook and node daemon read.

Informers (see `webhook.cluster.informers`) fill it from list and watch; unit tests fill it by hand.
Readers never talk to the API server: they ask a `webhook.cluster.view.ClusterView` over this cache.
A `transform` (the server's: `webhook.cluster.informers.compact`) is applied to every object on its way in,
whoever puts it (informers, or the Store with an API server's answer), so nothing held is fatter
than what readers need.
"""

from __future__ import annotations

import threading
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Hashable, Iterable
from typing import Any, Generic, TypeVar

Object = dict[str, Any]
Key = tuple[str, str]  # (namespace, or "" for cluster-scoped objects; name)
Handler = Callable[[str, Object], None]  # (event: "ADDED" | "MODIFIED" | "DELETED", object)
Transform = Callable[[str, Object], Object]  # (kind, object as the API server sent it) → what is kept
_T = TypeVar("_T")


def key_of(obj: Object) -> Key:
    meta = obj.get("metadata") or {}
    return meta.get("namespace") or "", meta.get("name") or ""


def _newer(obj: Object, held: Object | None) -> bool:
    """Is `obj` a later version than `held`? etcd's resourceVersions are increasing integers;
    without a held object, or without two integers to compare, the new object is taken."""
    if held is None:
        return True
    mine = (obj.get("metadata") or {}).get("resourceVersion")
    theirs = (held.get("metadata") or {}).get("resourceVersion")
    if isinstance(mine, str) and isinstance(theirs, str) and mine.isdigit() and theirs.isdigit():
        return int(mine) > int(theirs)
    return True


class ObjectCache:
    """Objects by kind (the plural resource name) and (namespace, name), with change handlers."""

    def __init__(self, transform: Transform | None = None) -> None:
        self._transform = transform
        self._lock = threading.RLock()
        self._objects: dict[str, dict[Key, Object]] = defaultdict(dict)
        self._handlers: dict[str, list[Handler]] = defaultdict(list)

    def put(self, kind: str, obj: Object, *, force: bool = False) -> bool:
        """Hold `obj` unless the same or a newer version of it is held (`force`: hold it anyway, a
        reading of the object that is not the API server's); True when it was stored.

        Writers cache the API server's answer at once (read-your-writes) while the watch brings
        the same changes a little later, in either order: an older version arriving last must not
        roll the cache back (the watch will not send the newer one again), and the event of the
        version already held need not reach the subscribers twice."""
        key = key_of(obj)
        if not force:
            with self._lock:
                if not _newer(obj, self._objects[kind].get(key)):
                    return False
        if self._transform is not None:
            obj = self._transform(kind, obj)  # outside the lock: it walks the whole object
        return self._store(kind, key, obj, check=not force)

    def _store(self, kind: str, key: Key, obj: Object, *, check: bool) -> bool:
        with self._lock:
            held = self._objects[kind].get(key)
            if check and not _newer(obj, held):  # another writer got there while we transformed
                return False
            self._objects[kind][key] = obj
            handlers = list(self._handlers[kind])
        self._notify(handlers, "ADDED" if held is None else "MODIFIED", obj)
        return True

    def delete(self, kind: str, obj: Object) -> None:
        with self._lock:
            removed = self._objects[kind].pop(key_of(obj), None)
            handlers = list(self._handlers[kind])
        if removed is not None:
            self._notify(handlers, "DELETED", removed)

    def replace(self, kind: str, objects: Iterable[Object]) -> None:
        """Make `kind` hold exactly `objects` (after a relist), firing the events that implies."""
        fresh = {key_of(obj): obj for obj in objects}
        with self._lock:
            gone = [obj for key, obj in self._objects[kind].items() if key not in fresh]
        for obj in gone:
            self.delete(kind, obj)
        for key, obj in fresh.items():  # a list is the truth, whatever versions were held
            self._store(kind, key, self._transform(kind, obj) if self._transform else obj, check=False)

    def _notify(self, handlers: list[Handler], event: str, obj: Object) -> None:
        """Call the handlers, outside the lock: calls for one object may overlap or arrive out of
        order, so a handler must re-read the cache for the current state rather than trust `event`."""
        for handler in handlers:
            handler(event, obj)

    def get(self, kind: str, name: str, namespace: str = "") -> Object | None:
        with self._lock:
            return self._objects[kind].get((namespace, name))

    def list(self, kind: str, namespace: str | None = None) -> list[Object]:
        with self._lock:
            objects = list(self._objects[kind].values())
        if namespace is None:
            return objects
        return [obj for obj in objects if key_of(obj)[0] == namespace]

    def subscribe(self, kind: str, handler: Handler) -> None:
        """Call `handler` on every later change of `kind`, and now for each object already held."""
        with self._lock:
            self._handlers[kind].append(handler)
            present = list(self._objects[kind].values())
        for obj in present:
            handler("ADDED", obj)


class Derived(Generic[_T]):
    """What `compute` makes of an object (a Subnet's parsed spec, a NAD's config), once per version.

    Objects are never changed in place, in the cache or in a review (a change arrives as a new
    object), so an object's identity names its version and every review of a pod need not parse the
    same Subnet and NAD again. The memo holds the objects it was computed from, so their ids cannot
    pass to others, and forgets the least recently used beyond `size`. A `compute` that raises is
    not remembered: the next call raises the same way.
    """

    def __init__(self, compute: Callable[..., _T], *, size: int = 256) -> None:
        self._compute = compute
        self._size = size
        self._memo: OrderedDict[tuple[int, tuple], tuple[Any, _T]] = OrderedDict()
        self._lock = threading.Lock()

    def __call__(self, obj: Any, *args: Any) -> _T:
        """`compute(obj, *args)`, remembered for this `obj` and these (hashable) `args`."""
        key = (id(obj), args)
        with self._lock:
            hit = self._memo.get(key)
            if hit is not None and hit[0] is obj:
                self._memo.move_to_end(key)
                return hit[1]
        value = self._compute(obj, *args)
        with self._lock:
            self._memo[key] = (obj, value)
            self._memo.move_to_end(key)
            while len(self._memo) > self._size:
                self._memo.popitem(last=False)
        return value


class Names:
    """Object names by key (an address, a MAC, a pod's identity), for the indexes subscribers keep
    over cached objects, where a key nearly always has one name: a lone name is kept as itself, not
    in a set of its own (about 220 bytes each, per held address and index). Not thread-safe: its
    owner's lock guards it."""

    def __init__(self) -> None:
        self._names: dict[Hashable, str | frozenset[str]] = {}

    def add(self, key: Hashable, name: str) -> None:
        held = self._names.get(key)
        if held is None:
            self._names[key] = name
        elif isinstance(held, str):
            if held != name:
                self._names[key] = frozenset((held, name))
        else:
            self._names[key] = held | {name}

    def discard(self, key: Hashable, name: str) -> None:
        held = self._names.get(key)
        if held is None or held == name:
            self._names.pop(key, None)
        elif not isinstance(held, str) and name in held:
            rest = held - {name}
            self._names[key] = next(iter(rest)) if len(rest) == 1 else rest

    def get(self, key: Hashable) -> list[str]:
        """The names under `key`, sorted (none: empty)."""
        held = self._names.get(key)
        if held is None:
            return []
        return [held] if isinstance(held, str) else sorted(held)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._names
