"""cache.Derived: values computed from objects once per version (identity) of each."""

from __future__ import annotations

import pytest

from webhook.cache import Derived


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
