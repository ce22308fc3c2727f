"""Store: IP-object creates are the locks; the allocator only proposes candidates."""

from __future__ import annotations

import ipaddress
import threading
from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from allocator import errors
from allocator.family import SUBNET_BUCKET
from allocator.subnet import Subnet
from allocator.subnet_spec import SubnetSpec
from tests.fakes import FakeApi
from tests.unit.webhook.world import World, subnet
from webhook.cluster import objects, spread, subnetstate
from webhook.cluster.claims import Claim, PodIdentity, TryAgain
from webhook.cluster.kubeapi import AlreadyExists, ApiError, Unreachable

MACVLAN = Claim(subnet="macvlan", provider="macvlan.default", interface="net1")


def pod(name: str, **kw) -> PodIdentity:
    return PodIdentity("default", name, **kw)


@pytest.fixture
def world() -> World:
    return World().guide()


def test_sequential_addresses_skip_gateway_and_excluded_range(world):
    first = world.store.reserve(pod("a"), MACVLAN)
    second = world.store.reserve(pod("b"), MACVLAN)
    assert (first.addresses, second.addresses) == (("172.17.0.11",), ("172.17.0.12",))
    assert first.names == ("macvlan.172.17.0.11",)
    assert first.mac != second.mac


def test_ip_object_records_pod_provider_and_reservation(world):
    who = pod("a")
    world.store.reserve(who, MACVLAN)
    ip = world.api.ips["macvlan.172.17.0.11"]
    assert ip["metadata"]["labels"] == {
        objects.LABEL_SUBNET: "macvlan",
        objects.LABEL_POD_NAMESPACE: "default",
        objects.LABEL_RESERVATION: who.token,
    }
    spec = ip["spec"]
    assert (spec["v4IPAddress"], spec["provider"], spec["podName"], spec["podUID"], spec["interface"]) == (
        "172.17.0.11", "macvlan.default", "a", "", "net1",
    )


def test_read_your_writes_the_cache_holds_the_created_object_at_once():
    api = FakeApi(deferred=True)  # the watch has not delivered anything yet
    world = World(api).guide()
    world.store.reserve(pod("a"), MACVLAN)
    assert world.store.ip_object("macvlan.172.17.0.11") is not None
    assert world.store.reserve(pod("b"), MACVLAN).addresses == ("172.17.0.12",)


def test_fixed_address_held_by_another_pod_is_refused_naming_the_holder(world):
    world.store.reserve(pod("static-ip"), Claim(**{**MACVLAN.__dict__, "fixed": ("172.17.0.100",)}))
    second = Claim(**{**MACVLAN.__dict__, "fixed": ("172.17.0.100",)})
    with pytest.raises(errors.AddressConflict) as caught:
        world.store.check(pod("other"), second)
    assert "172.17.0.100 is held by pod default/static-ip" in str(caught.value)


def test_fixed_address_outside_the_subnet_is_refused(world):
    with pytest.raises(errors.OutOfRange, match=r"10\.0\.0\.5 is outside subnet macvlan"):
        world.store.check(pod("a"), Claim(**{**MACVLAN.__dict__, "fixed": ("10.0.0.5",)}))


def test_lost_race_marks_the_address_taken_and_tries_one_a_short_random_way_above():
    api = FakeApi(deferred=True)
    world = World(api).guide()
    other = World(api)  # a second process; its creates reach the first only through the watch
    other.store.reserve(pod("elsewhere"), MACVLAN)  # takes .11 behind the first process's back
    got = world.store.reserve(pod("here"), MACVLAN)
    assert got.addresses[0] in {"172.17.0.12", "172.17.0.13", "172.17.0.14", "172.17.0.15"}
    assert world.store.state("macvlan").allocator.holder("172.17.0.11") == "?"
    assert ("create_ip", "macvlan.172.17.0.11") in api.calls
    api.deliver()
    assert world.store.ip_object("macvlan.172.17.0.11")["spec"]["podName"] == "elsewhere"


def test_refused_fixed_race_names_the_holder_once_known():
    api = FakeApi(deferred=True)
    world = World(api).guide()
    fixed = Claim(**{**MACVLAN.__dict__, "fixed": ("172.17.0.100",)})
    world.store.check(pod("loser"), fixed)
    # Another process wins the address between our check and our create; no watch event yet.
    World(api).store.reserve(pod("winner"), fixed)
    with pytest.raises(errors.AddressConflict, match="held by pod default/winner"):
        world.store.reserve(pod("loser"), fixed)
    assert api.ips["macvlan.172.17.0.100"]["spec"]["podName"] == "winner"


def test_dual_stack_takes_both_or_neither(world):
    world.add(objects.SUBNETS, subnet("dual", "10.1.0.0/24,fd00:1::/120", provider="macvlan.default",
                                      protocol="Dual"))
    dual = Claim(subnet="dual", provider="macvlan.default", interface="net1")
    held = world.store.reserve(pod("a"), dual)
    assert held.addresses == ("10.1.0.2", "fd00:1::2")
    assert set(held.names) == {"dual.10.1.0.2", "dual.fd00-0001-0000-0000-0000-0000-0000-0002"}
    def fail(op: str, name: str) -> ApiError | None:
        return ApiError(500, "etcd down") if op == "create_ip" and "fd00" in name else None

    world.api.fail = fail
    with pytest.raises(TryAgain):
        world.store.reserve(pod("b"), dual)
    assert sorted(world.api.ips) == sorted(held.names)  # b's IPv4 object was deleted again


def test_dual_stack_fixed_single_family_gets_the_other_family_allocated(world):
    """Kube-OVN's checkAndAppendIpsForDual: the fixed address is kept, the other family is the next free."""
    world.add(objects.SUBNETS, subnet("dual", "10.1.0.0/24,fd00:1::/120", provider="macvlan.default",
                                      protocol="Dual"))
    claim = Claim(subnet="dual", provider="macvlan.default", interface="net1", fixed=("10.1.0.9",))
    world.store.check(pod("a"), claim)
    assert world.store.reserve(pod("a"), claim).addresses == ("10.1.0.9", "fd00:1::2")
    v6_only = Claim(subnet="dual", provider="macvlan.default", interface="net1", fixed=("fd00:1::9",))
    assert world.store.reserve(pod("b"), v6_only).addresses == ("10.1.0.2", "fd00:1::9")


def test_exhausted_subnet_names_itself_and_its_size(world):
    world.add(objects.SUBNETS, subnet("tiny", "10.9.0.0/29", provider="macvlan.default"))
    tiny = Claim(subnet="tiny", provider="macvlan.default", interface="net1")
    got = {world.store.reserve(pod(f"p{i}"), tiny).addresses[0] for i in range(5)}
    assert got == {"10.9.0.2", "10.9.0.3", "10.9.0.4", "10.9.0.5", "10.9.0.6"}
    with pytest.raises(errors.SubnetExhausted) as caught:
        world.store.check(pod("p5"), tiny)
    assert "subnet tiny" in str(caught.value) and "5" in str(caught.value)
    with pytest.raises(errors.SubnetExhausted):
        world.store.reserve(pod("p5"), tiny)


def test_pool_gives_distinct_entries_then_refuses(world):
    pool = Claim(**{**MACVLAN.__dict__, "pool": (("172.17.0.200",), ("172.17.0.201",))})
    first = world.store.reserve(pod("w-1"), pool)
    second = world.store.reserve(pod("w-2"), pool)
    assert {first.addresses, second.addresses} == {("172.17.0.200",), ("172.17.0.201",)}
    with pytest.raises(errors.PoolExhausted, match=r"172\.17\.0\.200,172\.17\.0\.201"):
        world.store.check(pod("w-3"), pool)


def test_ippool_by_name_hands_out_its_addresses(world):
    world.add(objects.IPPOOLS, {"metadata": {"name": "p1"},
                                "spec": {"subnet": "macvlan", "ips": ["172.17.1.5..172.17.1.6"]}})
    claim = Claim(**{**MACVLAN.__dict__, "ippool": "p1"})
    got = [world.store.reserve(pod(f"x{i}"), claim).addresses for i in range(2)]
    assert got == [("172.17.1.5",), ("172.17.1.6",)]
    with pytest.raises(errors.PoolExhausted, match="IPPool p1 of subnet macvlan"):
        world.store.check(pod("x3"), claim)


def test_dry_run_creates_nothing_and_changes_no_order(world):
    planned = world.store.reserve(pod("a"), MACVLAN, dry_run=True)
    assert planned.addresses == ("172.17.0.11",) and planned.names == ()
    assert world.api.ips == {}
    assert world.store.reserve(pod("b"), MACVLAN).addresses == ("172.17.0.11",)


def test_statefulset_pod_recreated_gets_its_addresses_back(world):
    first = pod("web-0", owner_kind="StatefulSet", owner_uid="sts-1")
    held = world.store.reserve(first, MACVLAN)
    world.store.reserve(pod("other"), MACVLAN)
    again = pod("web-0", owner_kind="StatefulSet", owner_uid="sts-1")
    reused = world.store.reserve(again, MACVLAN)
    assert reused.addresses == held.addresses and reused.mac == held.mac
    assert reused.created == ()
    labels = world.api.ips[held.names[0]]["metadata"]["labels"]
    assert labels[objects.LABEL_RESERVATION] == again.token


def test_fixed_address_of_a_gone_pod_with_the_same_name_passes_to_the_new_pod(world):
    fixed = Claim(**{**MACVLAN.__dict__, "fixed": ("172.17.0.100",), "mac": "00:00:00:53:6B:BB"})
    world.store.reserve(pod("static-ip"), fixed)  # its pod was deleted (never in the cache)
    newer = pod("static-ip")
    world.store.check(newer, fixed)
    held = world.store.reserve(newer, fixed)
    assert held.created == () and held.names == ("macvlan.172.17.0.100",)
    assert held.mac == "00:00:00:53:6b:bb"
    with pytest.raises(errors.AddressConflict, match="MAC 00:00:00:53:6b:bb is held by pod default/static"):
        world.store.check(pod("someone-else"), Claim(**{**MACVLAN.__dict__, "mac": "00:00:00:53:6b:bb"}))
    labels = world.api.ips["macvlan.172.17.0.100"]["metadata"]["labels"]
    assert labels[objects.LABEL_RESERVATION] == newer.token


def test_an_unanswered_live_read_refuses_to_retry_instead_of_taking_a_maybe_live_pod_s_address(world):
    fixed = Claim(**{**MACVLAN.__dict__, "fixed": ("172.17.0.100",)})
    earlier = pod("static-ip")
    world.store.reserve(earlier, fixed)  # an earlier pod of this name: gone, or not cached yet
    world.api.fail = lambda op, name: Unreachable("cannot reach the API server") if op == "read" else None
    refusal = r"^could not read ips macvlan\.172\.17\.0\.100 \(cannot reach the API server\)"
    with pytest.raises(TryAgain, match=refusal):
        world.store.reserve(pod("static-ip"), fixed)
    labels = world.api.ips["macvlan.172.17.0.100"]["metadata"]["labels"]
    assert labels[objects.LABEL_RESERVATION] == earlier.token  # not taken over
    world.api.fail = lambda op, name: None
    assert world.store.reserve(pod("static-ip"), fixed).addresses == ("172.17.0.100",)  # answered: passes


def test_fixed_address_and_mac_whose_cached_holder_is_gone_are_given(world):
    """Another replica released them and this one's watch lags (restarting after an API server
    outage): the refusal the cache suggests is checked live first, and would be false."""
    fixed = Claim(**{**MACVLAN.__dict__, "fixed": ("172.17.0.100",), "mac": "00:00:00:53:6B:BB"})
    world.store.reserve(pod("gone"), fixed)
    del world.api.ips["macvlan.172.17.0.100"]  # deleted without a watch event reaching this cache
    newer = pod("newer")
    world.store.check(newer, fixed)
    held = world.store.reserve(newer, fixed)
    assert (held.addresses, held.mac, held.created) == (("172.17.0.100",), "00:00:00:53:6b:bb", held.names)
    assert world.api.ips["macvlan.172.17.0.100"]["spec"]["podName"] == "newer"
    with pytest.raises(errors.AddressConflict, match=r"172\.17\.0\.100 is held by pod default/newer"):
        world.store.check(pod("third"), fixed)  # confirmed live: refused as ever


def test_fixed_mac_whose_cached_holder_passed_to_another_mac_is_given(world):
    world.store.reserve(pod("gone"), Claim(**{**MACVLAN.__dict__, "mac": "00:00:00:53:6B:BB"}))
    name = "macvlan.172.17.0.11"
    world.api.ips[name]["spec"]["macAddress"] = "00:00:00:53:6b:cc"  # changed without a watch event
    assert world.store.reserve(pod("b"), Claim(**{**MACVLAN.__dict__, "mac": "00:00:00:53:6b:bb"})).mac == (
        "00:00:00:53:6b:bb"
    )


def test_fixed_mac_held_is_refused_naming_the_pod(world):
    world.store.reserve(pod("a"), Claim(**{**MACVLAN.__dict__, "mac": "00:00:00:53:6B:BB"}))
    with pytest.raises(errors.AddressConflict, match="MAC 00:00:00:53:6b:bb is held by pod default/a"):
        world.store.check(pod("b"), Claim(**{**MACVLAN.__dict__, "mac": "00:00:00:53:6b:bb"}))


def test_deleted_ip_object_frees_the_address(world):
    held = world.store.reserve(pod("a"), MACVLAN)
    assert world.store.delete(held.names[0])
    assert world.store.state("macvlan").allocator.holder("172.17.0.11") is None


def test_subnet_spec_change_rebuilds_and_keeps_held_addresses(world):
    world.store.reserve(pod("a"), MACVLAN)
    changed = subnet("macvlan", "172.17.0.0/16", provider="macvlan.default", gateway="172.17.0.1",
                     exclude=("172.17.0.0..172.17.0.20",))
    world.add(objects.SUBNETS, changed)
    state = world.store.state("macvlan")
    assert state.allocator.holder("172.17.0.11") is not None
    assert world.store.reserve(pod("b"), MACVLAN).addresses == ("172.17.0.21",)


def test_unknown_subnet_is_read_live_then_refused_when_absent(world):
    world.api.objects[(objects.SUBNETS, "", "late")] = subnet("late", "10.7.0.0/24", provider="x.y")
    assert world.store.state("late").spec.name == "late"  # not in the cache yet: read live
    with pytest.raises(errors.AllocatorError, match="subnet 'nope' does not exist"):
        world.store.state("nope")


def test_many_threads_never_share_an_address(world):
    results: list[str] = []
    lock = threading.Lock()

    def worker(index: int) -> None:
        for n in range(25):
            held = world.store.reserve(pod(f"t{index}-{n}"), MACVLAN)
            with lock:
                results.extend(held.addresses)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 200 and len(set(results)) == 200
    assert len(world.api.ips) == 200


def test_two_processes_racing_on_one_api_never_share_an_address():
    api = FakeApi(deferred=True)
    first = World(api).guide()
    second = World(api)
    results: list[str] = []
    lock = threading.Lock()

    def worker(world: World, tag: str) -> None:
        for n in range(40):
            held = world.store.reserve(pod(f"{tag}-{n}"), MACVLAN)
            with lock:
                results.extend(held.addresses)
            if n % 7 == 0:
                api.deliver()

    threads = [threading.Thread(target=worker, args=(w, t)) for w, t in ((first, "a"), (second, "b"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 80 and len(set(results)) == 80
    lost = [call for call in api.calls if call[0] == "create_ip"]
    assert len(lost) >= 80


def test_api_failure_on_create_leaves_nothing_held(world):
    world.api.fail = lambda op, name: ApiError(500, "boom") if op == "create_ip" else None
    with pytest.raises(TryAgain, match="retry"):
        world.store.reserve(pod("a"), MACVLAN)
    assert world.api.ips == {}
    alloc = world.store.state("macvlan").allocator
    assert alloc.holder("172.17.0.11") is None and alloc.usage().v4_using == 0


def test_too_many_lost_races_ask_to_retry(world):
    world.api.fail = lambda op, name: AlreadyExists(409, "exists") if op == "create_ip" else None
    with pytest.raises(TryAgain, match="lost 64 races"):
        world.store.reserve(pod("a"), MACVLAN)


def test_exhaustion_discovered_by_a_lost_race_is_still_refused_by_name():
    api = FakeApi(deferred=True)
    world = World(api).guide()
    world.add(objects.SUBNETS, subnet("tiny", "10.9.0.0/29", provider="macvlan.default"))
    tiny = Claim(subnet="tiny", provider="macvlan.default", interface="net1")
    elsewhere = World(api)
    for index in range(5):  # another process takes all five behind this one's back
        elsewhere.store.reserve(pod(f"x{index}"), tiny)
    with pytest.raises(errors.SubnetExhausted, match="subnet tiny has no free IPv4 address left"):
        world.store.reserve(pod("late"), tiny)
    assert len(api.ips) == 5


@pytest.mark.parametrize(("cidr", "first"), [("10.1.0.0/24", "10.1.0.2"), ("fd00:1::/120", "fd00:1::2")])
def test_single_family_subnets_of_either_family(world, cidr, first):
    world.add(objects.SUBNETS, subnet("one", cidr, provider="macvlan.default"))
    held = world.store.reserve(pod("a"), Claim(subnet="one", provider="macvlan.default", interface="net1"))
    assert held.addresses == (first,)
    assert world.api.ips[held.names[0]]["spec"]["ipAddress"] == first


def test_a_hand_made_ip_object_with_a_bad_address_is_ignored(world):
    junk = {"subnet": "macvlan", "ipAddress": "not-an-ip", "macAddress": "zz"}
    world.cache.put(objects.IPS, {"metadata": {"name": "macvlan.junk"}, "spec": junk})
    assert world.store.reserve(pod("a"), MACVLAN).addresses == ("172.17.0.11",)


def test_fixed_address_being_reserved_by_a_concurrent_request_names_that_pod(world):
    state = world.store.state("macvlan")
    with state.lock:  # another request of this process holds it and has not created its object yet
        state.allocator.claim(pod("racer").owner("macvlan.default", "net1"), "172.17.0.100")
    with pytest.raises(errors.AddressConflict, match=r"172\.17\.0\.100 is held by pod default/racer;"):
        world.store.check(pod("b"), Claim(**{**MACVLAN.__dict__, "fixed": ("172.17.0.100",)}))
    with pytest.raises(errors.AddressConflict, match="gateway"):
        world.store.check(pod("c"), Claim(**{**MACVLAN.__dict__, "fixed": ("172.17.0.1",)}))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(st.tuples(st.sampled_from(["reserve", "delete", "deliver"]), st.integers(0, 1),
                                st.integers(0, 50)), max_size=40))
def test_two_processes_never_hand_out_a_held_address(steps):
    api = FakeApi(deferred=True)
    processes = [World(api), World(api)]
    processes[0].add(objects.SUBNETS, subnet("small", "10.8.0.0/28", provider="macvlan.default"))
    claim = Claim(subnet="small", provider="macvlan.default", interface="net1")
    held: dict[str, str] = {}  # address → IP object name, as the API server has it
    for index, (action, which, pick) in enumerate(steps):
        world = processes[which]
        if action == "reserve":
            try:
                got = world.store.reserve(pod(f"p{index}"), claim)
            except (errors.SubnetExhausted, TryAgain):
                assert len(api.ips) >= 1
                continue
            assert got.addresses[0] not in held
            held[got.addresses[0]] = got.names[0]
        elif action == "delete" and held:
            address = sorted(held)[pick % len(held)]
            world.store.delete(held.pop(address))
        else:
            api.deliver()
        assert {ip["spec"]["ipAddress"] for ip in api.ips.values()} == set(held)
    api.deliver()
    for world in processes:
        alloc = world.store.state("small").allocator
        assert {a for a in held if alloc.holder(a) not in (None, "?")} == set(held)
        everything = {f"10.8.0.{host}" for host in range(1, 15)}
        assert {a for a in everything if alloc.holder(a) is not None} == set(held)


def _lose_a_race(api: FakeApi, world: World) -> None:
    """Another process takes 172.17.0.11 behind `world`'s back; `world` loses the race for it."""
    World(api).store.reserve(pod("elsewhere"), MACVLAN)
    world.store.reserve(pod("loser"), MACVLAN)


def test_after_a_lost_race_a_first_try_is_one_of_the_lowest_never_used_at_random(monkeypatch):
    api = FakeApi(deferred=True)
    world = World(api).guide()
    _lose_a_race(api, world)
    state = world.store.state("macvlan")
    ahead = state.allocator.next_never_used(4, spread.SCATTER_WIDTH)
    offered: list[list[int]] = []
    monkeypatch.setattr(spread.random, "choice", lambda values: offered.append(values) or values[-1])
    got = world.store.reserve(pod("next"), MACVLAN)
    assert offered == [ahead] and len(ahead) == spread.SCATTER_WIDTH
    assert got.addresses == (str(ipaddress.ip_address(ahead[-1])),)
    assert ("create_ip", got.names[0]) in api.calls
    # The lowest never-used address was not taken: it is still handed out next, not queued as released.
    assert state.allocator.next_never_used(4, 1) == ahead[:1]


def test_contention_ends_and_first_tries_take_the_lowest_free_again(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(subnetstate, "time", SimpleNamespace(monotonic=lambda: now[0]))
    api = FakeApi(deferred=True)
    world = World(api).guide()
    _lose_a_race(api, world)
    assert world.store.state("macvlan").contended()
    now[0] += subnetstate.CONTENDED_SECONDS + 1
    lowest = world.store.state("macvlan").allocator.next_never_used(4, 1)[0]
    assert world.store.reserve(pod("calm"), MACVLAN).addresses == (str(ipaddress.ip_address(lowest)),)


def test_contended_dual_stack_picks_each_family_among_its_lowest(monkeypatch):
    api = FakeApi(deferred=True)
    world = World(api).guide()
    world.add(objects.SUBNETS, subnet("dual", "10.1.0.0/24,fd00:1::/120", provider="macvlan.default",
                                      protocol="Dual"))
    dual = Claim(subnet="dual", provider="macvlan.default", interface="net1")
    World(api).store.reserve(pod("elsewhere"), dual)
    world.store.reserve(pod("loser"), dual)
    alloc = world.store.state("dual").allocator
    second = [alloc.next_never_used(version, 2)[1] for version in (4, 6)]
    monkeypatch.setattr(spread.random, "choice", lambda values: values[1])
    held = world.store.reserve(pod("next"), dual)
    assert [int(ipaddress.ip_address(a)) for a in held.addresses] == second


@pytest.mark.parametrize("choose", ["scatter", "spread"])
def test_a_family_without_a_choice_leaves_the_other_familys_order_untouched(choose):
    alloc = Subnet(SubnetSpec.parse("dual", {"cidrBlock": "10.1.0.0/24,fd00:1::/126", "protocol": "Dual"}))
    for index, value in enumerate(alloc.next_never_used(6, 8)):  # the small IPv6 block fills up
        alloc.claim(f"other{index}", str(ipaddress.ip_address(value)))
    assert alloc.next_never_used(6, 1) == []
    window = spread.SCATTER_WIDTH + 8  # wider than either function looks
    before = alloc.next_never_used(4, window)
    if choose == "scatter":
        assert spread.scatter(alloc, "me", (4, 6), SUBNET_BUCKET) is None
    else:
        assert spread.spread(alloc, "me", ("10.1.0.2", "fd00:1::2"), 1, SUBNET_BUCKET) is None
    assert alloc.next_never_used(4, window) == before and alloc.held_by("me", 4) is None
    assert int(alloc.allocate("next", 4)) == before[0]
