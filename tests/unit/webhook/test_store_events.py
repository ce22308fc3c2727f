"""Cache events delivered late, twice or out of order never leave the allocator out of step with the
cache (issue 9, item 10): the Store re-reads the cache on every event, so whatever order the
handlers run in, the last one leaves allocator state == cache state."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fakes import FakeApi
from tests.unit.webhook.world import subnet
from webhook.cluster import objects
from webhook.cluster.cache import Handler, Object, ObjectCache
from webhook.cluster.ipobjects import address_of, owner_of
from webhook.cluster.store import Store

NAMES = [f"ip-{i}" for i in range(4)]
ADDRESSES = ["10.0.0.5", "10.0.0.6", "10.0.0.7"]
MACS = ["0a:00:00:00:00:01", "0a:00:00:00:00:02"]


class DelayedCache(ObjectCache):
    """A cache whose handler calls are queued, to be run later in any order."""

    def __init__(self) -> None:
        super().__init__()
        self.queued: list[tuple[list[Handler], str, Object]] = []
        self.delay = False

    def _notify(self, handlers: list[Handler], event: str, obj: Object) -> None:
        if self.delay:
            self.queued.append((handlers, event, obj))
        else:
            super()._notify(handlers, event, obj)

    def run_queued(self, order: random.Random) -> None:
        calls, self.queued = self.queued, []
        order.shuffle(calls)
        for handlers, event, obj in calls:
            for handler in handlers:
                handler(event, obj)


def ip_object(name: str, address: str, owner: str, mac: str) -> Object:
    return {
        "apiVersion": objects.API_VERSION, "kind": "IP",
        "metadata": {"name": name, "labels": {objects.LABEL_RESERVATION: owner}},
        "spec": {"subnet": "net", "provider": "p", "ipAddress": address, "v4IPAddress": address,
                 "macAddress": mac, "namespace": "ns", "podName": owner, "interface": "net1"},
    }


step = st.one_of(
    st.tuples(st.just("put"), st.sampled_from(NAMES), st.sampled_from(ADDRESSES),
              st.sampled_from(["a", "b", "c"]), st.sampled_from(MACS)),
    st.tuples(st.just("delete"), st.sampled_from(NAMES), st.none(), st.none(), st.none()),
)


@settings(max_examples=300, deadline=None)
@given(steps=st.lists(step, max_size=25), seed=st.integers(0, 2**32 - 1))
def test_reordered_and_delayed_events_leave_allocator_state_equal_to_cache_state(steps, seed) -> None:
    cache = DelayedCache()
    cache.put(objects.SUBNETS, subnet("net", "10.0.0.0/24", provider="p"))
    store = Store(cache, api=FakeApi(), grace=120)
    cache.delay = True
    for op, name, address, owner, mac in steps:
        if op == "put":
            # one address per object at a time, as IP object names are derived from the address
            clash = [o for o in cache.list(objects.IPS) if address_of(o) == address and o != cache.get(
                objects.IPS, name)]
            if clash:
                continue
            cache.put(objects.IPS, ip_object(name, address, owner, mac))
        elif cache.get(objects.IPS, name) is not None:
            cache.delete(objects.IPS, cache.get(objects.IPS, name))
    cache.run_queued(random.Random(seed))

    alloc = store.state("net").allocator
    cached = cache.list(objects.IPS)
    assert alloc.held_count == len(cached)
    for ip in cached:
        assert alloc.holder(address_of(ip)) == owner_of(ip)
    held_macs = {ip["spec"]["macAddress"]: owner_of(ip) for ip in cached}
    for mac in MACS:
        if mac not in held_macs:
            assert alloc.release_mac(mac) is None, f"{mac} is still held although no IP object has it"
    usage = alloc.usage()
    assert usage.v4_using == len(cached)


def test_deleting_a_hand_made_duplicate_keeps_the_address_held_by_the_proper_object() -> None:
    """Found by `multinic-ipam check`: a second IP object for one address, deleted, freed the address
    although the correctly named object still held it."""
    cache = ObjectCache()
    cache.put(objects.SUBNETS, subnet("net", "10.0.0.0/24", provider="p"))
    store = Store(cache, api=FakeApi(), grace=120)
    proper = ip_object(objects.ip_object_name("net", "10.0.0.5"), "10.0.0.5", "a", MACS[0])
    duplicate = ip_object("hand-made", "10.0.0.5", "b", MACS[1])
    cache.put(objects.IPS, proper)
    cache.put(objects.IPS, duplicate)
    cache.delete(objects.IPS, duplicate)
    alloc = store.state("net").allocator
    assert alloc.holder("10.0.0.5") == owner_of(proper)
    assert alloc.usage().v4_using == 1
