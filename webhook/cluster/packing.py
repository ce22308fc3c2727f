"""JSON objects held as tuples: what the cache keeps of the kinds it holds thousands of.

A dict costs its hash table in every object, though ten thousand pods' metadata all have the same
keys. A packed object is a tuple: its `Shape` (the keys, one tuple shared by every object with
those keys) followed by the values, packed alike; a list becomes a plain tuple. About a third of
the memory of the dicts it replaces (a compacted pod 1,096 → 408 bytes, an IP object 1,316 → 492,
not counting the strings both share). `unpack` rebuilds the dicts and lists, a new copy each time.
"""

from __future__ import annotations

from typing import Any

Packed = Any  # a Shape-led tuple (an object), a plain tuple (a list), or a JSON scalar
SHAPES_MAX = 4096  # key sets remembered for sharing; beyond, an object keeps a Shape of its own


class Shape(tuple):
    """The keys of a packed object, in order; shared by every object with the same keys."""

    __slots__ = ()


_shapes: dict[tuple[str, ...], Shape] = {}


def _shape(keys: tuple[str, ...]) -> Shape:
    shape = _shapes.get(keys)
    if shape is None:
        shape = Shape(keys)
        if len(_shapes) < SHAPES_MAX:  # annotation key sets vary by workload: bounded, not leaked
            shape = _shapes.setdefault(keys, shape)
    return shape


def pack(value: Any) -> Packed:
    """`value` (JSON: dicts, lists, scalars) as nested tuples; strings and numbers as they are."""
    kind = type(value)
    if kind is dict:
        return (_shape(tuple(value)), *map(pack, value.values()))
    if kind is list:
        return tuple(map(pack, value))
    return value


def unpack(value: Packed) -> Any:
    """The JSON value `pack` was given, as new dicts and lists."""
    if type(value) is not tuple:
        return value
    # Scalars are taken as they are, without a call each, and zip gets no keyword (a keyword sends
    # it down a slow path; the lengths are equal by construction): 14-16 → 9-10 µs per object.
    if value and type(value[0]) is Shape:
        return {key: unpack(item) if type(item) is tuple else item
                for key, item in zip(value[0], value[1:])}  # noqa: B905
    return [unpack(item) if type(item) is tuple else item for item in value]


def lookup(value: Packed, *path: str) -> Any:
    """The packed value at `path` of a packed object (None where a key is absent or a value is no
    object), without unpacking the rest: `lookup(pod, "metadata", "resourceVersion")`."""
    for key in path:
        if type(value) is not tuple or not value or type(value[0]) is not Shape:
            return None
        try:
            value = value[value[0].index(key) + 1]
        except ValueError:
            return None
    return value


class SharedStrings:
    """One copy of each string seen recently, handed out instead of equal ones.

    Two generations of at most `size` strings: a string met again while in either is replaced by
    the copy held. Values repeated across the cluster (namespaces, Subnets, CIDRs, "true") stay,
    and a pod shares its name, addresses and token with its IP objects (they arrive together);
    values met once (uids, resourceVersions) age out. Unlike `sys.intern`, whose table grew by
    about 50 bytes for every such value held, nothing here grows with the objects held. Threads
    racing on a generation change only miss a chance to share."""

    def __init__(self, size: int = 8192) -> None:
        self._size = size
        self._young: dict[str, str] = {}
        self._old: dict[str, str] = {}

    def __call__(self, text: str) -> str:
        young = self._young
        held = young.get(text)
        if held is None:
            held = young[text] = self._old.get(text, text)
            if len(young) >= self._size:
                self._old, self._young = young, {}
        return held
