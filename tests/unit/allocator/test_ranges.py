"""IPRangeSet: merged, disjoint intervals with exact sizes, independent of how large they are."""

from __future__ import annotations

import pytest

from allocator import ranges
from allocator.ranges import IPRangeSet


def build(*intervals: tuple[int, int]) -> IPRangeSet:
    result = IPRangeSet()
    for start, end in intervals:
        result.add(start, end)
    return result


def test_empty_set_answers_none_and_zero() -> None:
    empty = IPRangeSet()
    assert (empty.first(), empty.pop_first(), empty.size, len(empty), bool(empty)) == (
        None,
        None,
        0,
        0,
        False,
    )
    assert 0 not in empty
    assert not empty.discard(0)


@pytest.mark.parametrize(
    ("intervals", "expected"),
    [
        pytest.param([(1, 5), (6, 10)], [(1, 10)], id="adjacent-merge"),
        pytest.param([(1, 5), (3, 8)], [(1, 8)], id="overlap-merge"),
        pytest.param([(1, 2), (4, 5)], [(1, 2), (4, 5)], id="gap-kept"),
        pytest.param([(20, 30), (1, 5), (8, 25)], [(1, 5), (8, 30)], id="bridge-two"),
        pytest.param([(1, 3), (5, 7), (9, 11), (0, 12)], [(0, 12)], id="swallow-many"),
        pytest.param([(5, 5), (4, 4), (6, 6)], [(4, 6)], id="singles"),
    ],
)
def test_add_merges_overlapping_and_adjacent(intervals, expected) -> None:
    result = build(*intervals)
    assert list(result.intervals()) == expected
    assert result.size == sum(end - start + 1 for start, end in expected)
    assert len(result) == len(expected)


@pytest.mark.parametrize(
    ("remove", "expected"),
    [
        pytest.param((10, 20), [(0, 9), (21, 100)], id="split"),
        pytest.param((0, 0), [(1, 100)], id="first"),
        pytest.param((100, 200), [(0, 99)], id="tail-and-beyond"),
        pytest.param((-5, 200), [], id="everything"),
        pytest.param((101, 300), [(0, 100)], id="outside"),
    ],
)
def test_remove_trims_and_splits(remove, expected) -> None:
    result = build((0, 100))
    result.remove(*remove)
    assert list(result.intervals()) == expected
    assert result.size == sum(end - start + 1 for start, end in expected)


def test_remove_across_many_intervals_keeps_the_edges() -> None:
    result = build(*((i, i + 1) for i in range(0, 100, 3)))
    result.remove(4, 95)
    assert list(result.intervals()) == [(0, 1), (3, 3), (96, 97), (99, 100)]
    assert result.size == 7


def test_discard_reports_presence_and_splits() -> None:
    result = build((10, 20))
    assert result.discard(15)
    assert not result.discard(15)
    assert result.discard(10)
    assert result.discard(20)
    assert not result.discard(9)
    assert list(result.intervals()) == [(11, 14), (16, 19)]
    assert result.size == 8


def test_pop_first_walks_up_and_across_gaps() -> None:
    result = build((1, 2), (5, 5))
    assert [result.pop_first() for _ in range(4)] == [1, 2, 5, None]
    assert result.size == 0


def test_ipv6_sized_intervals_have_exact_sizes() -> None:
    result = build((0, 2**128 - 1))
    result.discard(2**127)
    assert result.size == 2**128 - 1
    assert isinstance(result.size, int)
    assert 2**127 not in result
    assert 2**127 + 1 in result
    assert len(result) == 2


def test_contains_rejects_non_integers() -> None:
    assert "5" not in build((0, 10))


def test_empty_interval_is_refused() -> None:
    with pytest.raises(ValueError, match=r"interval \[5, 4\] is empty"):
        build((5, 4))


def test_many_intervals_spread_over_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ranges, "_LOAD", 4)
    result = IPRangeSet()
    for value in range(0, 400, 2):
        result.add(value, value)
    assert len(result) == 200
    assert all(value in result for value in range(0, 400, 2))
    assert not any(value in result for value in range(1, 400, 2))
    for value in range(1, 399, 2):
        result.add(value, value)
    assert list(result.intervals()) == [(0, 398)]
    assert result.size == 399


@pytest.mark.parametrize(("count", "expected"), [
    (0, []), (2, [3, 4]), (5, [3, 4, 5, 9, 10]), (9, [3, 4, 5, 9, 10, 20]),
])
def test_lowest_reads_the_first_values_across_intervals_without_taking_them(count, expected) -> None:
    values = build((3, 5), (9, 10), (20, 20))
    assert values.lowest(count) == expected
    assert values.size == 6
