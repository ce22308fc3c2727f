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


def test_an_older_version_put_last_never_rolls_the_cache_back() -> None:
    # a writer caches its answer (version 7) after the watch already brought version 8
    cache = ObjectCache()
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
