"""A thread-safe, in-process copy of the cluster objects the webhook and node daemon read.

Informers (see `webhook.cluster.informers`) fill it from list and watch; unit tests fill it by hand.
Readers never talk to the API server: they ask a `webhook.cluster.view.ClusterView` over this cache.
A `transform` (the server's: `webhook.cluster.informers.compact`) is applied to every object on its way in,
whoever puts it (informers, or the Store with an API server's answer), so nothing held is fatter
than what readers need. The kinds named `packed` (the server's: pods and IP objects, thousands of
each) are held as tuples (`webhook.cluster.packing`) and handed out as new dicts on every read.
"""

from __future__ import annotations

import threading
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Hashable, Iterable, Iterator
from typing import Any, Generic, TypeVar

from webhook.cluster.packing import lookup, pack, unpack

Object = dict[str, Any]
Key = tuple[str, str]  # (namespace, or "" for cluster-scoped objects; name)
Handler = Callable[[str, Object], None]  # (event: "ADDED" | "MODIFIED" | "DELETED", object)
Transform = Callable[[str, Object], Object]  # (kind, object as the API server sent it) → what is kept
_T = TypeVar("_T")


def key_of(obj: Object) -> Key:
    meta = obj.get("metadata") or {}
    return meta.get("namespace") or "", meta.get("name") or ""


def _version(held: Any) -> Any:
    """The resourceVersion of a held object, packed or not."""
    if isinstance(held, dict):
        return (held.get("metadata") or {}).get("resourceVersion")
    return lookup(held, "metadata", "resourceVersion")


def _newer(obj: Object, held: Any) -> bool:
    """Is `obj` a later version than `held` (as stored: packed or not)? etcd's resourceVersions are
    increasing integers; without a held object, or without two integers to compare, the new
    object is taken."""
    if held is None:
        return True
    mine = (obj.get("metadata") or {}).get("resourceVersion")
    theirs = _version(held)
    if isinstance(mine, str) and isinstance(theirs, str) and mine.isdigit() and theirs.isdigit():
        return int(mine) > int(theirs)
    return True


class ObjectCache:
    """Objects by kind (the plural resource name) and (namespace, name), with change handlers."""

    def __init__(self, transform: Transform | None = None, *, packed: Iterable[str] = ()) -> None:
        """`transform`: applied to every object put; `packed`: the kinds held as tuples."""
        self._transform = transform
        self._packed = frozenset(packed)
        self._lock = threading.RLock()
        self._objects: dict[str, dict[Key, Any]] = defaultdict(dict)  # as stored: see `_held`
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
        stored = pack(obj) if kind in self._packed else obj
        with self._lock:
            held = self._objects[kind].get(key)
            if check and not _newer(obj, held):  # another writer got there while we transformed
                return False
            self._objects[kind][key] = stored
            handlers = list(self._handlers[kind])
        self._notify(handlers, "ADDED" if held is None else "MODIFIED", obj)
        return True

    def _held(self, kind: str, stored: Any) -> Any:
        """A stored object as readers see it: a packed kind's as new dicts."""
        return unpack(stored) if kind in self._packed else stored

    def delete(self, kind: str, obj: Object) -> None:
        self._delete(kind, key_of(obj))

    def _delete(self, kind: str, key: Key) -> None:
        with self._lock:
            removed = self._objects[kind].pop(key, None)
            handlers = list(self._handlers[kind])
        if removed is not None:
            self._notify(handlers, "DELETED", self._held(kind, removed))

    def replace(self, kind: str, objects: Iterable[Object]) -> None:
        """Make `kind` hold exactly `objects` (after a relist), firing the events that implies."""
        fresh = {key_of(obj): obj for obj in objects}
        with self._lock:
            gone = [key for key in self._objects[kind] if key not in fresh]
        for key in gone:
            self._delete(kind, key)
        for key, obj in fresh.items():  # a list is the truth, whatever versions were held
            self._store(kind, key, self._transform(kind, obj) if self._transform else obj, check=False)

    def _notify(self, handlers: list[Handler], event: str, obj: Object) -> None:
        """Call the handlers, outside the lock: calls for one object may overlap or arrive out of
        order, so a handler must re-read the cache for the current state rather than trust `event`."""
        for handler in handlers:
            handler(event, obj)

    def get(self, kind: str, name: str, namespace: str = "") -> Object | None:
        with self._lock:
            stored = self._objects[kind].get((namespace, name))
        return None if stored is None else self._held(kind, stored)

    def current(self, kind: str, obj: Object) -> Object | None:
        """What is held now of `obj`'s object (None: nothing), for a handler, which must read the
        cache rather than trust its event; `obj` itself when it is the version held (a packed
        kind's handlers then need no copy)."""
        with self._lock:
            stored = self._objects[kind].get(key_of(obj))
        if stored is None:
            return None
        mine = (obj.get("metadata") or {}).get("resourceVersion")
        if kind in self._packed and mine is not None and mine == _version(stored):
            return obj
        return self._held(kind, stored)

    def list(self, kind: str, namespace: str | None = None) -> list[Object]:
        with self._lock:
            if namespace is None:
                stored = list(self._objects[kind].values())
            else:
                stored = [obj for key, obj in self._objects[kind].items() if key[0] == namespace]
        return [self._held(kind, obj) for obj in stored] if kind in self._packed else stored

    def each(self, kind: str) -> Iterator[Object]:
        """Every object of `kind`, as `list` would give them but read one at a time: a pass over
        thousands of packed objects need not hold them all unpacked at once."""
        with self._lock:
            stored = list(self._objects[kind].values())
        return (self._held(kind, obj) for obj in stored)

    def subscribe(self, kind: str, handler: Handler) -> None:
        """Call `handler` on every later change of `kind`, and now for each object already held."""
        with self._lock:
            self._handlers[kind].append(handler)
            present = list(self._objects[kind].values())
        for obj in present:
            handler("ADDED", self._held(kind, obj))


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
