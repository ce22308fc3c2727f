"""IPRangeSet: a set of integers kept as sorted, merged, disjoint ``[start, end]`` intervals.

It is the free-address structure of a subnet (like Kube-OVN's ``IPRangeList``): a /8 or an IPv6
/64 is one interval, not millions of entries. Intervals live in blocks of at most
``2 * _LOAD`` parallel start/end lists, indexed by each block's first start, so every operation
is two bisections plus a bounded in-block insert or delete: O(log n) in the number of intervals.
Taking the lowest value, the hot path of sequential allocation, edits the first block in place.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterator

_LOAD = 256


class IPRangeSet:
    """Sorted, merged, disjoint integer intervals with O(log n) updates."""

    __slots__ = ("_count", "_ends", "_firsts", "_size", "_starts")

    def __init__(self) -> None:
        self._starts: list[list[int]] = []
        self._ends: list[list[int]] = []
        self._firsts: list[int] = []
        self._size = 0
        self._count = 0

    # -- queries -------------------------------------------------------------------------------
    @property
    def size(self) -> int:
        """How many integers the set holds (exact, also for IPv6-sized ranges)."""
        return self._size

    def __len__(self) -> int:
        """The number of intervals."""
        return self._count

    def __bool__(self) -> bool:
        return self._count > 0

    def __contains__(self, value: object) -> bool:
        if not isinstance(value, int):
            return False
        block = bisect_right(self._firsts, value) - 1
        if block < 0:
            return False
        return self._ends[block][bisect_right(self._starts[block], value) - 1] >= value

    def first(self) -> int | None:
        """The lowest value, or None when empty."""
        return self._starts[0][0] if self._count else None

    def lowest(self, count: int) -> list[int]:
        """The ``count`` lowest values (fewer when the set holds fewer), ascending."""
        found: list[int] = []
        for start, end in self.intervals():
            found.extend(range(start, min(end, start + count - len(found) - 1) + 1))
            if len(found) >= count:
                break
        return found

    def intervals(self) -> Iterator[tuple[int, int]]:
        """Every ``(start, end)`` in ascending order."""
        for starts, ends in zip(self._starts, self._ends, strict=True):
            yield from zip(starts, ends, strict=True)

    def __repr__(self) -> str:
        shown = ", ".join(f"[{s}, {e}]" for s, e in self.intervals())
        return f"IPRangeSet({shown})"

    # -- updates -------------------------------------------------------------------------------
    def pop_first(self) -> int | None:
        """Remove and return the lowest value (None when empty); O(1) on the common path."""
        if not self._count:
            return None
        starts = self._starts[0]
        start = starts[0]
        if start == self._ends[0][0]:
            self._delete_at(0, 0)
        else:
            starts[0] = start + 1
            self._firsts[0] = start + 1
        self._size -= 1
        return start

    def add(self, start: int, end: int) -> None:
        """Add ``[start, end]``, merging with overlapping and adjacent intervals."""
        _check_interval(start, end)
        low, high = start, end
        while True:
            found = self._locate(high + 1)
            if found is None:
                break
            block, index = found
            other_start, other_end = self._starts[block][index], self._ends[block][index]
            if other_end < low - 1:
                break
            self._delete_at(block, index)
            self._size -= other_end - other_start + 1
            low, high = min(low, other_start), max(high, other_end)
        self._insert(low, high)
        self._size += high - low + 1

    def remove(self, start: int, end: int) -> None:
        """Remove every value in ``[start, end]``; values not in the set are ignored."""
        _check_interval(start, end)
        while True:
            found = self._locate(end)
            if found is None:
                return
            block, index = found
            other_start, other_end = self._starts[block][index], self._ends[block][index]
            if other_end < start:
                return
            self._delete_at(block, index)
            self._size -= other_end - other_start + 1
            if other_end > end:
                self._insert(end + 1, other_end)
                self._size += other_end - end
            if other_start < start:
                self._insert(other_start, start - 1)
                self._size += start - other_start
                return

    def discard(self, value: int) -> bool:
        """Remove one value; return whether it was present."""
        block = bisect_right(self._firsts, value) - 1
        if block < 0:
            return False
        starts, ends = self._starts[block], self._ends[block]
        index = bisect_right(starts, value) - 1
        start, end = starts[index], ends[index]
        if end < value:
            return False
        if start == end:
            self._delete_at(block, index)
        elif value == start:
            starts[index] = value + 1
            if index == 0:
                self._firsts[block] = value + 1
        elif value == end:
            ends[index] = value - 1
        else:
            ends[index] = value - 1
            starts.insert(index + 1, value + 1)
            ends.insert(index + 1, end)
            self._count += 1
            self._split_if_full(block)
        self._size -= 1
        return True

    # -- internals -----------------------------------------------------------------------------
    def _locate(self, value: int) -> tuple[int, int] | None:
        """Position of the last interval whose start is <= value, or None."""
        block = bisect_right(self._firsts, value) - 1
        if block < 0:
            return None
        return block, bisect_right(self._starts[block], value) - 1

    def _insert(self, start: int, end: int) -> None:
        """Insert an interval known to be disjoint from and not adjacent to the others."""
        self._count += 1
        if not self._firsts:
            self._starts.append([start])
            self._ends.append([end])
            self._firsts.append(start)
            return
        block = max(bisect_right(self._firsts, start) - 1, 0)
        starts = self._starts[block]
        index = bisect_right(starts, start)
        starts.insert(index, start)
        self._ends[block].insert(index, end)
        if index == 0:
            self._firsts[block] = start
        self._split_if_full(block)

    def _delete_at(self, block: int, index: int) -> None:
        starts, ends = self._starts[block], self._ends[block]
        del starts[index]
        del ends[index]
        self._count -= 1
        if not starts:
            del self._starts[block], self._ends[block], self._firsts[block]
        elif index == 0:
            self._firsts[block] = starts[0]

    def _split_if_full(self, block: int) -> None:
        starts, ends = self._starts[block], self._ends[block]
        if len(starts) <= 2 * _LOAD:
            return
        self._starts.insert(block + 1, starts[_LOAD:])
        self._ends.insert(block + 1, ends[_LOAD:])
        self._firsts.insert(block + 1, starts[_LOAD])
        del starts[_LOAD:], ends[_LOAD:]


def _check_interval(start: int, end: int) -> None:
    if start > end:
        raise ValueError(f"interval [{start}, {end}] is empty; start must not exceed end")
