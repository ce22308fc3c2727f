"""Property tests: the interval set against a plain set, and Subnet against a brute-force model.

The model enumerates an 8-address block, which the real allocator must never do; agreement on
every step checks: no address twice, sequential allocation never hands out network, broadcast/last,
gateway or excluded addresses, released addresses come back only after never-used ones and in
release order, and the counts always match the held addresses.
"""

from __future__ import annotations

import itertools
from unittest import mock

import netaddr
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from allocator import ranges
from allocator.errors import AddressConflict, AllocatorError, OutOfRange, SubnetExhausted
from allocator.ranges import IPRangeSet
from allocator.subnet import Subnet
from allocator.subnet_spec import SubnetSpec

# -- IPRangeSet ----------------------------------------------------------------------------------
UNIVERSE = 120
bounds = st.tuples(st.integers(0, UNIVERSE), st.integers(0, UNIVERSE)).map(sorted)
range_ops = st.lists(
    st.one_of(
        st.tuples(st.just("add"), bounds),
        st.tuples(st.just("remove"), bounds),
        st.tuples(st.just("discard"), st.integers(0, UNIVERSE)),
        st.tuples(st.just("pop_first"), st.none()),
    ),
    max_size=80,
)


@given(range_ops)
@settings(max_examples=300)
def test_range_set_matches_a_plain_set(ops) -> None:
    with mock.patch.object(ranges, "_LOAD", 2):  # tiny blocks so splits and merges of blocks happen
        model: set[int] = set()
        subject = IPRangeSet()
        for name, arg in ops:
            if name == "add":
                subject.add(*arg)
                model.update(range(arg[0], arg[1] + 1))
            elif name == "remove":
                subject.remove(*arg)
                model.difference_update(range(arg[0], arg[1] + 1))
            elif name == "discard":
                assert subject.discard(arg) == (arg in model)
                model.discard(arg)
            else:
                expected = min(model) if model else None
                assert subject.pop_first() == expected
                model.discard(expected)
            _check_intervals(subject, model)


def _check_intervals(subject: IPRangeSet, model: set[int]) -> None:
    intervals = list(subject.intervals())
    for (_, end), (start, _) in itertools.pairwise(intervals):
        assert end + 1 < start, intervals  # sorted, disjoint and merged
    assert {v for s, e in intervals for v in range(s, e + 1)} == model
    assert subject.size == len(model)
    assert len(subject) == len(intervals)
    assert subject.first() == (min(model) if model else None)
    assert all((value in subject) == (value in model) for value in range(-1, UNIVERSE + 2))


# -- Subnet against a model ----------------------------------------------------------------------
BLOCKS = {4: "10.20.30.0/27", 6: "fd00:20::/123"}
SMALL = {4: "10.20.30.0/29", 6: "fd00:20::/125"}  # 8 addresses, so exhaustion and reuse happen
OWNERS = [f"ns/pod-{i}" for i in range(10)]
owner = st.sampled_from(OWNERS)
offset = st.integers(0, 7)
subnet_ops = st.lists(
    st.one_of(
        st.tuples(st.just("allocate"), owner, st.none()),
        st.tuples(st.just("claim"), owner, offset),
        st.tuples(st.just("mark"), owner, offset),
        st.tuples(st.just("release"), st.none(), offset),
    ),
    min_size=20,
    max_size=90,
)
REUSE_ORDER = [("allocate", who, None) for who in OWNERS[:5]] + [
    ("release", None, 3),
    ("release", None, 2),
    ("allocate", OWNERS[7], None),
    ("allocate", OWNERS[8], None),
]


class Model:
    """Brute-force reference: every allocatable address listed, FIFO reuse queue as a list."""

    def __init__(self, low: int, high: int, gateway: int, excluded: set[int]) -> None:
        self.low, self.high, self.gateway = low, high, gateway
        self.allocatable = {v for v in range(low, high + 1) if v != gateway and v not in excluded}
        self.never_used = set(self.allocatable)
        self.queue: list[int] = []
        self.held: dict[int, str] = {}
        self.owners: dict[str, list[int]] = {}

    def allocate(self, who: str) -> int:
        if self.owners.get(who):
            return self.owners[who][0]
        if self.never_used:
            value = min(self.never_used)
        elif self.queue:
            value = self.queue[0]
        else:
            raise SubnetExhausted("model")
        self.take(who, value)
        return value

    def claim(self, who: str, value: int) -> int:
        if not self.low <= value <= self.high:
            raise OutOfRange("model")
        if value == self.gateway:
            raise AddressConflict("model")
        return self.mark(who, value)

    def mark(self, who: str, value: int) -> int:
        holder = self.held.get(value)
        if holder is not None and holder != who:
            raise AddressConflict("model", holder=holder)
        if holder is None:
            self.take(who, value)
        return value

    def take(self, who: str, value: int) -> None:
        self.never_used.discard(value)
        if value in self.queue:
            self.queue.remove(value)
        self.held[value] = who
        self.owners.setdefault(who, []).append(value)

    def release(self, value: int) -> str | None:
        who = self.held.pop(value, None)
        if who is not None:
            self.owners[who].remove(value)
            if value in self.allocatable:
                self.queue.append(value)
        return who


subnet_setup = st.fixed_dictionaries(
    {
        "family": st.sampled_from([4, 6]),
        "gateway": st.integers(1, 6),
        "exclude": st.one_of(st.none(), bounds.map(lambda b: (b[0] % 8, max(b[0] % 8, b[1] % 8)))),
    }
)


@given(subnet_setup, subnet_ops)
@example({"family": 4, "gateway": 1, "exclude": None}, REUSE_ORDER)
@settings(max_examples=300)
def test_subnet_matches_the_model(setup, ops) -> None:
    family = setup["family"]
    network = netaddr.IPNetwork(SMALL[family])
    first = network.first

    def text(off: int) -> str:
        return str(netaddr.IPAddress(first + off, family))

    spec = {"cidrBlock": SMALL[family], "gateway": text(setup["gateway"])}
    excluded: set[int] = set()
    if setup["exclude"] is not None:
        low, high = setup["exclude"]
        spec["excludeIps"] = [f"{text(low)}..{text(high)}"]
        excluded = set(range(low, high + 1))
    subject = Subnet(SubnetSpec.parse("prop", spec))
    model = Model(1, 6, setup["gateway"], excluded)

    for name, who, off in ops:
        expected: object
        fresh = not model.owners.get(who)
        try:
            if name == "allocate":
                expected = model.allocate(who)
            elif name == "claim":
                expected = model.claim(who, off)
            elif name == "mark":
                expected = model.mark(who, off)
            else:
                expected = model.release(off)
        except AllocatorError as error:
            expected = type(error)
        got: object
        try:
            if name == "allocate":
                got = int(subject.allocate(who, family)) - first
                if fresh:
                    assert got in model.allocatable, got  # never network, last, gateway or excluded
            elif name == "claim":
                got = int(subject.claim(who, text(off))) - first
            elif name == "mark":
                subject.mark_held(who, text(off))
                got = off
            else:
                got = subject.release(text(off))
        except AllocatorError as error:
            got = type(error)
        assert got == expected, (name, who, off)
        _check_subnet(subject, model, family, text)


def _check_subnet(subject: Subnet, model: Model, family: int, text) -> None:
    for off in range(8):
        assert subject.holder(text(off)) == model.held.get(off)
    for who in OWNERS:  # the first address an owner took is the one `allocate` returns
        mine = model.owners.get(who)
        assert subject.held_by(who, family) == (netaddr.IPAddress(text(mine[0])) if mine else None)
    assert subject.held_count == len(model.held)  # with `holder` above: no address twice
    usage = subject.usage()
    assert getattr(usage, f"v{family}_using") == len(model.held)
    assert getattr(usage, f"v{family}_available") == len(model.never_used) + len(model.queue)
    held_allocatable = len(model.allocatable & model.held.keys())
    assert getattr(usage, f"v{family}_available") + held_allocatable == len(model.allocatable)


@given(st.sampled_from([4, 6]), st.permutations(range(20)), st.integers(0, 20))
def test_released_addresses_return_in_release_order_after_the_rest(family, order, count) -> None:
    subject = Subnet(SubnetSpec.parse("reuse", {"cidrBlock": BLOCKS[family]}))
    got = [subject.allocate(f"p{i}", family) for i in range(20)]
    released = [got[i] for i in order[:count]]
    for address in released:
        subject.release(address)
    fresh = [subject.allocate(f"n{i}", family) for i in range(29 - 20)]  # offsets 22..30 never used
    assert all(address not in got for address in fresh)
    assert [subject.allocate(f"r{i}", family) for i in range(count)] == released
    with pytest.raises(SubnetExhausted):
        subject.allocate("late", family)  # a /27 has 29 allocatable addresses here


@given(st.lists(st.tuples(owner, st.lists(st.integers(0, 7), max_size=2)), max_size=25))
def test_allocate_all_is_all_or_nothing(requests) -> None:
    subject = Subnet(SubnetSpec.parse("dual", {"cidrBlock": "10.0.0.0/29,fd00::/126"}))
    for who, offsets in requests:
        fixed = [str(netaddr.IPAddress(0x0A000000 + o)) if o < 4 else f"fd00::{o - 4:x}" for o in offsets]
        before = (subject.usage(), _holders(subject))
        try:
            got = subject.allocate_all(who, fixed)
        except AllocatorError:
            assert (subject.usage(), _holders(subject)) == before
        else:
            assert [a.version for a in got] == [4, 6]
            assert all(subject.holder(a) == who for a in got)


def _holders(subject: Subnet) -> list[str | None]:
    """Who holds each address of the /29 and the /126: the whole state of `allocate_all`'s subnet."""
    addresses = [f"10.0.0.{o}" for o in range(8)] + [f"fd00::{o:x}" for o in range(4)]
    return [subject.holder(address) for address in addresses]
