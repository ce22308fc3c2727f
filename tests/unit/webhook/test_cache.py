"""cache.Derived: values computed from objects once per version (identity) of each."""

from __future__ import annotations

import pytest

from webhook.cluster.cache import Derived, ObjectCache


def counting() -> tuple[Derived[str], list[object]]:
    calls: list[object] = []

    def compute(obj: dict, *args: str) -> str:
        calls.append(obj)
        if obj.get("bad"):
            raise ValueError("bad object")
        return f"{obj['v']}{''.join(args)}"

    return Derived(compute, size=2), calls


def test_one_computation_per_object_and_args() -> None:
    derived, calls = counting()
    obj = {"v": "a"}
    assert derived(obj) == derived(obj) == "a"
    assert derived(obj, "x") == "ax"
    assert len(calls) == 2


def test_a_changed_object_is_a_new_object_and_is_computed_again() -> None:
    derived, calls = counting()
    assert derived({"v": "a"}) == "a"
    assert derived({"v": "b"}) == "b"  # a new version: never answered from the old one's id
    assert len(calls) == 2


def test_failures_are_not_remembered() -> None:
    derived, calls = counting()
    obj = {"v": "a", "bad": True}
    for _ in range(2):
        with pytest.raises(ValueError, match="bad object"):
            derived(obj)
    assert len(calls) == 2


def test_the_least_recently_used_is_forgotten_beyond_size() -> None:
    derived, calls = counting()
    first, second, third = {"v": "1"}, {"v": "2"}, {"v": "3"}
    derived(first)
    derived(second)
    derived(first)  # used again: `second` is now the least recently used
    derived(third)
    calls.clear()
    derived(first)
    derived(third)
    assert calls == []
    derived(second)
    assert calls == [second]


def test_names_keep_one_or_many_names_per_key() -> None:
    from webhook.cluster.cache import Names

    names = Names()
    names.add("k", "b")
    names.add("k", "b")  # again: still one
    assert names.get("k") == ["b"] and "k" in names
    names.add("k", "a")
    names.add("k", "c")
    assert names.get("k") == ["a", "b", "c"]
    names.discard("k", "b")
    names.discard("k", "zz")  # not there: nothing changes
    assert names.get("k") == ["a", "c"]
    names.discard("k", "a")
    assert names.get("k") == ["c"]
    names.discard("k", "other")  # a lone name that is another one stays
    assert names.get("k") == ["c"]
    names.discard("k", "c")
    assert names.get("k") == [] and "k" not in names
    names.discard("missing", "x")


@pytest.mark.parametrize("packed", [(), ("ips",)], ids=["dicts", "packed"])
def test_an_older_version_put_last_never_rolls_the_cache_back(packed: tuple[str, ...]) -> None:
    # a writer caches its answer (version 7) after the watch already brought version 8
    cache = ObjectCache(packed=packed)
    seen: list[str] = []
    cache.subscribe("ips", lambda event, obj: seen.append(obj["spec"]["v"]))
    assert cache.put("ips", {"metadata": {"name": "a", "resourceVersion": "8"}, "spec": {"v": "newer"}})
    assert not cache.put("ips", {"metadata": {"name": "a", "resourceVersion": "7"}, "spec": {"v": "older"}})
    assert not cache.put("ips", {"metadata": {"name": "a", "resourceVersion": "8"}, "spec": {"v": "newer"}})
    assert cache.get("ips", "a")["spec"] == {"v": "newer"} and seen == ["newer"]
    assert cache.put("ips", {"metadata": {"name": "a", "resourceVersion": "9"}, "spec": {"v": "next"}})
    assert cache.put("ips", {"metadata": {"name": "a", "resourceVersion": "3"}, "spec": {"v": "a reading"}},
                     force=True)
    cache.replace("ips", [{"metadata": {"name": "a", "resourceVersion": "2"}, "spec": {"v": "listed"}}])
    assert cache.get("ips", "a")["spec"] == {"v": "listed"}  # a relist is the truth
    assert seen == ["newer", "next", "a reading", "listed"]


def test_a_packed_kind_reads_back_equal_new_dicts_every_time() -> None:
    cache = ObjectCache(packed=("pods",))
    pod = {"metadata": {"name": "web", "namespace": "default", "resourceVersion": "4",
                        "annotations": {"a": "1"}, "ownerReferences": [{"kind": "StatefulSet"}]},
           "spec": {}, "status": {"phase": "Running"}}
    events: list[tuple[str, dict]] = []
    cache.subscribe("pods", lambda event, obj: events.append((event, obj)))
    cache.put("pods", pod)
    first = cache.get("pods", "web", "default")
    assert first == pod and first is not pod
    first["metadata"]["annotations"]["a"] = "changed by a reader"
    assert cache.get("pods", "web", "default") == pod  # a reader's copy is its own
    assert cache.list("pods") == [pod] and cache.list("pods", "default") == [pod]
    assert cache.list("pods", "other") == []
    late: list[dict] = []
    cache.subscribe("pods", lambda event, obj: late.append(obj))
    assert late == [pod]  # the replay of what is held, unpacked
    cache.replace("pods", [])
    assert cache.get("pods", "web", "default") is None
    assert [event for event, _ in events] == ["ADDED", "DELETED"] and events[1][1] == pod


def test_kinds_not_packed_are_handed_out_as_stored() -> None:
    cache = ObjectCache(packed=("pods",))
    subnet = {"metadata": {"name": "s", "resourceVersion": "1"}, "spec": {"cidrBlock": "10.0.0.0/24"}}
    cache.put("subnets", subnet)
    assert cache.get("subnets", "s") is subnet  # `Derived` memos rely on the identity of these


def test_current_is_the_event_itself_only_while_its_version_is_held() -> None:
    cache = ObjectCache(packed=("ips",))
    seven = {"metadata": {"name": "a", "resourceVersion": "7"}, "spec": {"v": "seven"}}
    eight = {"metadata": {"name": "a", "resourceVersion": "8"}, "spec": {"v": "eight"}}
    cache.put("ips", seven)
    assert cache.current("ips", seven) is seven  # the version held: no copy
    cache.put("ips", eight)
    late = cache.current("ips", seven)  # a handler of version 7 running after 8 arrived
    assert late == eight and late is not eight
    cache.delete("ips", eight)
    assert cache.current("ips", eight) is None
