"""Objects held as tuples: `webhook.cluster.packing`."""

from __future__ import annotations

import pytest

from webhook.cluster import packing
from webhook.cluster.packing import Shape, lookup, pack, unpack

OBJECT = {
    "apiVersion": "v1",
    "metadata": {"name": "web-0", "resourceVersion": "12", "labels": {}, "finalizers": [],
                 "ownerReferences": [{"kind": "StatefulSet", "name": "web"}, {"kind": "Other"}]},
    "spec": {"replicas": 3, "ratio": 0.5, "paused": False, "nothing": None,
             "nested": [[1, 2], [], [{"a": []}]]},
}


def test_what_is_packed_unpacks_to_an_equal_object() -> None:
    packed = pack(OBJECT)
    assert isinstance(packed, tuple) and type(packed[0]) is Shape
    assert unpack(packed) == OBJECT
    assert type(unpack(packed)["metadata"]["finalizers"]) is list  # lists come back as lists
    assert unpack(pack([])) == [] and unpack(pack({})) == {} and unpack(pack("x")) == "x"


def test_objects_with_the_same_keys_share_one_shape() -> None:
    one = pack({"name": "a", "namespace": "n"})
    two = pack({"name": "b", "namespace": "n"})
    assert one[0] is two[0]
    assert pack({"namespace": "n", "name": "a"})[0] is not one[0]  # key order is part of the shape


def test_a_value_is_looked_up_without_unpacking() -> None:
    packed = pack(OBJECT)
    assert lookup(packed, "metadata", "resourceVersion") == "12"
    assert lookup(packed, "spec", "replicas") == 3
    assert lookup(packed, "metadata", "missing") is None
    assert lookup(packed, "metadata", "resourceVersion", "deeper") is None  # a string has no keys
    assert lookup(packed, "metadata", "finalizers", "x") is None  # nor has a list
    assert unpack(lookup(packed, "metadata", "labels")) == {}


def test_shapes_beyond_the_limit_are_not_remembered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(packing, "_shapes", {})
    monkeypatch.setattr(packing, "SHAPES_MAX", 2)
    pack({"a": 1})
    pack({"b": 1})
    first, second = pack({"c": 1}), pack({"c": 2})
    assert len(packing._shapes) == 2
    assert first[0] == second[0] and first[0] is not second[0]
    assert unpack(first) == {"c": 1}


def fresh(text: str) -> str:
    """An equal string that is not the same object (as each JSON parse makes)."""
    return "".join(list(text))


def test_shared_strings_hand_out_the_copy_seen_recently() -> None:
    shared = packing.SharedStrings(size=3)
    first = fresh("10.0.0.7")
    assert shared(first) is first
    assert shared(fresh("10.0.0.7")) is first
    for other in ("a", "b", "c"):  # the generation fills and becomes the old one: still shared
        shared(fresh(other))
    assert shared(fresh("10.0.0.7")) is first
    for other in ("d", "e", "f", "g", "h", "i"):  # two generations later it is forgotten
        shared(fresh(other))
    again = fresh("10.0.0.7")
    assert shared(again) is again
    assert len(shared._young) + len(shared._old) <= 6  # bounded, however many strings pass


def test_an_attachment_and_its_ip_object_share_one_owner_string() -> None:
    from webhook.cluster.claims import PodIdentity
    from webhook.cluster.ipobjects import ip_body, owner_of

    pod = PodIdentity("default", "web-0", token="0123abcd")
    admitted = pod.owner("macvlan.default", "net1")
    body = ip_body(subnet="macvlan", provider="macvlan.default", interface="net1", address="10.0.0.5",
                   mac="", namespace="default", pod_name="web-0", generate_name="", owner_kind="",
                   owner_uid="", token="0123abcd", annotations={})
    assert owner_of(body) == admitted == "default/web-0/macvlan.default/net1#0123abcd"
    assert owner_of(body) is admitted  # the allocator and the cache index hold one copy
