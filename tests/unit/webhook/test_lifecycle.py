"""Lifecycle: one leader by Lease; bind, release and garbage-collect IP objects; batch Subnet status."""

from __future__ import annotations

import threading
import time

import pytest

from tests.unit.webhook.world import World
from webhook.cluster import ipobjects, objects
from webhook.cluster.claims import Claim, PodIdentity
from webhook.cluster.kubeapi import ApiError
from webhook.leader import lifecycle
from webhook.leader.actions import WRITERS
from webhook.leader.lease import LEASE_NAME
from webhook.operator import ops

MACVLAN = Claim(subnet="macvlan", provider="macvlan.default", interface="net1")


@pytest.fixture
def world() -> World:
    return World().guide()


def leader(world: World, identity: str = "one", **kw) -> lifecycle.Lifecycle:
    kw.setdefault("grace", 60)
    cycle = lifecycle.Lifecycle(store=world.store, identity=identity, namespace="kube-system",
                                clock=lambda: world.now, **kw)
    assert cycle.acquire()
    return cycle


def admit(world: World, name: str, **kw) -> tuple[PodIdentity, str]:
    who = PodIdentity("default", name, **kw)
    return who, world.store.reserve(who, MACVLAN).names[0]


def create_pod(world: World, who: PodIdentity, *, phase: str = "Running", restart: str = "Always",
               uid: str | None = None) -> dict:
    meta = {"name": who.name, "namespace": who.namespace,
            "annotations": {objects.RESERVATION_ANNOTATION: who.token}}
    if uid:
        meta["uid"] = uid
    return world.add(objects.PODS, {"metadata": meta, "spec": {"restartPolicy": restart},
                                    "status": {"phase": phase}})


def pod_the_informer_has_not_seen(world: World, token: str) -> None:
    """A generateName pod web-x1 (uid u-x1) carrying `token`, in the API server but not the cache."""
    world.api.objects[(objects.PODS, "default", "web-x1")] = {
        "metadata": {"name": "web-x1", "namespace": "default", "uid": "u-x1",
                     "annotations": {objects.RESERVATION_ANNOTATION: token}},
        "status": {"phase": "Pending"},
    }


def test_only_one_replica_leads_and_a_stopped_leader_hands_over(world):
    first = leader(world, "one")
    second = lifecycle.Lifecycle(store=world.store, identity="two", namespace="kube-system",
                                 clock=lambda: world.now)
    assert not second.acquire()
    assert first.acquire()  # renewal
    first.stop()
    assert second.acquire()
    assert world.api.leases[("kube-system", LEASE_NAME)]["spec"]["holderIdentity"] == "two"


def test_an_expired_lease_is_taken_over(world):
    first = leader(world, "one", lease_seconds=10)
    second = lifecycle.Lifecycle(store=world.store, identity="two", namespace="kube-system",
                                 clock=lambda: world.now)
    assert not second.acquire()
    world.now += 11  # the first leader died without renewing
    assert second.acquire()
    assert not first.acquire()
    assert world.api.leases[("kube-system", LEASE_NAME)]["spec"]["leaseTransitions"] == 1


def test_reservation_is_bound_to_its_pod_once_the_pod_exists(world):
    cycle = leader(world)
    who, name = admit(world, "")  # a generateName pod: no name at admission
    assert cycle.reconcile().kept == 1
    pod = create_pod(world, PodIdentity("default", "web-abc12", token=who.token))
    assert cycle.reconcile().bound == 1
    spec = world.api.ips[name]["spec"]
    assert (spec["podName"], spec["podUID"]) == ("web-abc12", pod["metadata"]["uid"])


def bound_then_gone(world: World, cycle: lifecycle.Lifecycle) -> str:
    """The IP object of pod default/a, bound by a pass, after the pod was deleted."""
    who, name = admit(world, "a")
    create_pod(world, who)
    cycle.reconcile()
    world.api.remove(objects.PODS, "default", "a")
    return name


def test_address_is_released_when_the_pod_is_gone(world):
    cycle = leader(world)
    name = bound_then_gone(world, cycle)
    assert cycle.reconcile().released == 1
    assert name not in world.api.ips
    assert world.store.state("macvlan").allocator.holder("172.17.0.11") is None


def test_a_cache_miss_is_confirmed_live_before_releasing(world):
    cycle = leader(world)
    who, name = admit(world, "a")
    create_pod(world, who)
    cycle.reconcile()
    world.cache.delete(objects.PODS, world.cache.get(objects.PODS, "a", "default"))  # cache lags behind
    assert cycle.reconcile().released == 0
    assert name in world.api.ips


def test_recreated_pod_with_the_same_name_but_new_uid_releases_the_old_address(world):
    cycle = leader(world)
    who, name = admit(world, "a")
    create_pod(world, who)
    cycle.reconcile()
    world.api.remove(objects.PODS, "default", "a")
    create_pod(world, PodIdentity("default", "a"))  # new pod, new UID and token
    assert cycle.reconcile().released == 1
    assert name not in world.api.ips


@pytest.mark.parametrize(
    ("phase", "restart", "released"),
    [("Succeeded", "Always", 1), ("Failed", "Never", 1), ("Failed", "OnFailure", 0), ("Running", "Never", 0)],
)
def test_finished_pods_release_their_addresses(world, phase, restart, released):
    cycle = leader(world)
    who, _ = admit(world, "job")
    running = create_pod(world, who)
    assert cycle.reconcile().bound == 1
    create_pod(world, who, phase=phase, restart=restart, uid=running["metadata"]["uid"])
    assert cycle.reconcile().released == released


def test_reservation_whose_pod_never_came_is_released_after_the_grace_period(world):
    cycle = leader(world, grace=30)
    _, name = admit(world, "refused-later")
    world.now += 29
    assert cycle.reconcile().released == 0
    world.now += 2
    assert cycle.reconcile().released == 1
    assert name not in world.api.ips


def admitted_created_deleted(world: World, name: str = "quick") -> tuple[PodIdentity, str]:
    """A pod admitted, created and deleted again before any pass bound its reservation."""
    who, ip_name = admit(world, name)
    create_pod(world, who)
    world.api.remove(objects.PODS, "default", name)
    return who, ip_name


def test_a_pod_deleted_before_it_was_bound_releases_its_address_at_once(world):
    cycle = leader(world, grace=120)
    _, name = admitted_created_deleted(world)
    world.now += 1
    result = cycle.reconcile()
    assert (result.released, result.bound) == (1, 0)
    assert name not in world.api.ips
    assert world.store.state("macvlan").allocator.holder("172.17.0.11") is None


def test_a_reservation_whose_pod_was_never_seen_still_waits_for_the_grace_period(world):
    cycle = leader(world, grace=120)
    _, name = admit(world, "unseen")
    world.now += 60
    assert cycle.reconcile().released == 0
    assert name in world.api.ips


def test_every_replica_remembers_deleted_pods_so_a_new_leader_releases_at_once(world):
    first = leader(world, "one", grace=120)
    second = lifecycle.Lifecycle(store=world.store, identity="two", namespace="kube-system",
                                 clock=lambda: world.now, grace=120)
    assert not second.acquire()
    who, name = admitted_created_deleted(world)
    assert who.token in second.deleted.tokens()
    first.stop()  # hands the Lease over before any pass of its own
    assert second.step().released == 1
    assert name not in world.api.ips


def test_every_address_of_a_deleted_pod_goes_at_once(world):
    cycle = leader(world, grace=120)
    who = PodIdentity("default", "two-nics")
    first = world.store.reserve(who, MACVLAN).names[0]
    second = world.store.reserve(who, Claim(subnet="attachnet", provider="attachnet.default.ovn",
                                            interface="net2")).names[0]
    create_pod(world, who)
    world.api.remove(objects.PODS, "default", "two-nics")
    assert cycle.reconcile().released == 2
    assert first not in world.api.ips and second not in world.api.ips


def test_the_memory_of_deleted_pods_is_bounded_in_count_and_age():
    now = [0.0]
    memory = lifecycle.DeletedPods(keep=10, clock=lambda: now[0], limit=3)
    for token in ("a", "b", "c", "d"):
        memory.add(token)
        now[0] += 1
    assert memory.tokens() == {"b", "c", "d"}
    now[0] = 11.5  # b was added at 1, c at 2, d at 3
    assert memory.tokens() == {"c", "d"}
    memory.add("c")  # seen again: younger now
    now[0] = 13.5
    assert memory.tokens() == {"c"}


def test_generate_name_reservation_found_by_a_live_list_is_bound_not_released(world):
    cycle = leader(world, grace=30)
    who, name = admit(world, "")
    pod_the_informer_has_not_seen(world, who.token)
    world.now += 31
    assert cycle.reconcile().bound == 1
    assert world.api.ips[name]["spec"]["podUID"] == "u-x1"


def test_statefulset_pods_keep_addresses_until_scale_down_or_deletion(world):
    cycle = leader(world)
    world.add(objects.STATEFULSETS, {"metadata": {"name": "web", "namespace": "default", "uid": "sts"},
                                     "spec": {"replicas": 2}})
    _, zero = admit(world, "web-0", owner_kind="StatefulSet", owner_uid="sts")
    _, one = admit(world, "web-1", owner_kind="StatefulSet", owner_uid="sts")
    world.now += 1000  # far past any grace period, pods deleted: kept anyway
    assert cycle.reconcile().released == 0
    world.add(objects.STATEFULSETS, {"metadata": {"name": "web", "namespace": "default", "uid": "sts"},
                                     "spec": {"replicas": 1}})
    assert cycle.reconcile().released == 1
    assert one not in world.api.ips and zero in world.api.ips
    world.api.remove(objects.STATEFULSETS, "default", "web")
    assert cycle.reconcile().released == 1
    assert world.api.ips == {}


def test_release_loses_to_a_concurrent_takeover(world):
    _, name = admit(world, "web-0", owner_kind="StatefulSet", owner_uid="gone")
    stale = world.cache.get(objects.IPS, name)
    world.api.patch_ip(name, {"metadata": {"labels": {objects.LABEL_RESERVATION: "newer"}}})
    assert not world.store.delete(name, resource_version=stale["metadata"]["resourceVersion"])
    assert name in world.api.ips


def test_subnet_status_is_written_in_batches_only_when_changed(world):
    cycle = leader(world, status_interval=5)
    admit(world, "a")
    admit(world, "b")
    assert cycle.write_status() == 2  # both subnets have no status yet
    assert world.api.statuses["macvlan"] == {"v4availableIPs": 65522, "v4usingIPs": 2,
                                             "v6availableIPs": 0, "v6usingIPs": 0}
    for name, status in world.api.statuses.items():  # the watch brings the written status back
        subnet = world.cache.get(objects.SUBNETS, name)
        newer = {**subnet["metadata"], "resourceVersion": str(int(subnet["metadata"]["resourceVersion"]) + 1)}
        world.cache.put(objects.SUBNETS, {**subnet, "metadata": newer, "status": status})
    assert cycle.write_status() == 0
    calls = len([c for c in world.api.calls if c[0] == "patch_subnet_status"])
    cycle.step()
    world.now += 1
    cycle.step()  # within the batch interval: no status write
    assert len([c for c in world.api.calls if c[0] == "patch_subnet_status"]) == calls


def test_a_non_leader_does_nothing(world):
    leader(world, "one")
    follower = lifecycle.Lifecycle(store=world.store, identity="two", namespace="kube-system",
                                   clock=lambda: world.now, grace=0)
    admit(world, "never")
    world.now += 5
    assert follower.step() is None
    assert len(world.api.ips) == 1


def test_each_reservation_carries_the_grace_period_of_the_process_that_made_it(world):
    cycle = lifecycle.Lifecycle(store=world.store, identity="one", namespace="kube-system",
                                clock=lambda: world.now)  # no override: the objects decide
    assert cycle.acquire()
    world.store.grace = 5
    _, short = admit(world, "short")
    world.store.grace = 500
    _, long = admit(world, "long")
    assert world.api.ips[short]["metadata"]["annotations"][ipobjects.GRACE_ANNOTATION] == "5"
    world.now += 6
    assert cycle.reconcile().released == 1
    assert short not in world.api.ips and long in world.api.ips


def test_decide_writes_nothing_and_act_carries_it_out(world):
    cycle = leader(world)
    name = bound_then_gone(world, cycle)
    planned = cycle.decide()
    assert [(type(d).__name__, d.ip_name, d.reason) for d in planned] == [
        ("Release", name, "its pod is gone")]
    assert name in world.api.ips
    [outcome] = cycle.act(planned)
    assert outcome.done == planned[0] and name not in world.api.ips


def test_act_skips_a_decision_made_on_an_older_version(world):
    cycle = leader(world)
    _, name = admit(world, "web-1", owner_kind="StatefulSet", owner_uid="gone")
    planned = cycle.decide()
    assert len(planned) == 1
    world.api.patch_ip(name, {"metadata": {"labels": {objects.LABEL_RESERVATION: "newer"}}})
    [outcome] = cycle.act(planned)
    assert outcome.done is None and name in world.api.ips


def test_a_release_becomes_a_bind_when_live_reads_find_the_pod(world):
    cycle = leader(world, grace=30)
    who, name = admit(world, "")
    pod_the_informer_has_not_seen(world, who.token)
    world.now += 31
    [planned] = cycle.decide()
    assert planned.reason == "its pod never came to exist"
    [outcome] = cycle.act([planned])
    assert outcome.planned == planned
    assert (outcome.done.pod_name, outcome.done.pod_uid) == ("web-x1", "u-x1")
    assert world.api.ips[name]["spec"]["podUID"] == "u-x1"


def test_gc_dry_run_reports_reasons_and_gc_acts(world):
    gone = bound_then_gone(world, leader(world))
    _, never = admit(world, "never")
    dry = ops.collect_garbage(world.store, dry_run=True, grace=0)
    assert {(d.ip_object, d.action, d.reason, d.done) for d in dry} == {
        (gone, "release", "its pod is gone", False), (never, "release", "its pod never came to exist", False)}
    assert gone in world.api.ips and never in world.api.ips
    real = ops.collect_garbage(world.store, dry_run=False, grace=0)
    assert {(d.ip_object, d.done) for d in real} == {(gone, True), (never, True)}
    assert world.api.ips == {}


def count(world: World, op: str, name: str | None = None) -> int:
    return sum(1 for o, n in world.api.calls if o == op and (name is None or n == name))


def test_many_releases_are_confirmed_by_one_pod_list_and_deleted_concurrently(world):
    cycle = leader(world)
    gone = []
    for index in range(20):
        who, name = admit(world, f"scaled-{index}")
        create_pod(world, who)
        gone.append(name)
    lagging, kept = admit(world, "lagging")
    create_pod(world, lagging)
    assert cycle.reconcile().bound == 21
    for index in range(20):
        world.api.remove(objects.PODS, "default", f"scaled-{index}")
    world.cache.delete(objects.PODS, world.cache.get(objects.PODS, "lagging", "default"))  # cache lags
    in_flight, most = [0], [0]
    lock = threading.Lock()

    def slow_delete(op: str, name: str) -> None:
        if op == "delete_ip":
            with lock:
                in_flight[0] += 1
                most[0] = max(most[0], in_flight[0])
            time.sleep(0.02)
            with lock:
                in_flight[0] -= 1

    world.api.fail = slow_delete
    world.api.calls.clear()
    assert cycle.reconcile().released == 20
    assert not set(gone) & set(world.api.ips) and kept in world.api.ips  # live list still has "lagging"
    assert count(world, "list", objects.PODS) == 1
    assert count(world, "read") == 0 and count(world, "list", objects.STATEFULSETS) == 0
    assert count(world, "delete_ip") == 20
    assert 1 < most[0] <= WRITERS
    cycle.stop()


def test_a_statefulset_scale_down_lists_statefulsets_once(world):
    cycle = leader(world)
    world.add(objects.STATEFULSETS, {"metadata": {"name": "web", "namespace": "default", "uid": "sts"},
                                     "spec": {"replicas": 12}})
    names = [admit(world, f"web-{i}", owner_kind="StatefulSet", owner_uid="sts")[1] for i in range(12)]
    assert cycle.reconcile().released == 0
    world.add(objects.STATEFULSETS, {"metadata": {"name": "web", "namespace": "default", "uid": "sts"},
                                     "spec": {"replicas": 2}})
    world.api.calls.clear()
    assert cycle.reconcile().released == 10
    assert set(world.api.ips) == set(names[:2])
    assert count(world, "list", objects.STATEFULSETS) == 1 and count(world, "read") == 0


def test_a_failed_live_list_keeps_every_release_for_a_later_pass(world, caplog):
    cycle = leader(world, grace=30)
    names = [admit(world, f"never-{i}")[1] for i in range(10)]
    world.now += 31
    world.api.fail = lambda op, name: ApiError(500, "etcd is down") if op == "list" else None
    assert cycle.reconcile().released == 0
    assert set(names) <= set(world.api.ips)
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "kept 10 releases for now" in warnings[0]  # once, not per address
    world.api.fail = lambda op, name: None
    assert cycle.reconcile().released == 10


def test_a_listed_pod_carrying_the_token_turns_a_release_into_a_bind(world):
    cycle = leader(world, grace=30)
    who, name = admit(world, "")
    pod_the_informer_has_not_seen(world, who.token)
    never = [admit(world, f"never-{i}")[1] for i in range(9)]
    world.now += 31
    world.api.calls.clear()
    result = cycle.reconcile()
    assert (result.released, result.bound) == (9, 1)
    assert world.api.ips[name]["spec"]["podUID"] == "u-x1" and not set(never) & set(world.api.ips)
    assert count(world, "list", objects.PODS) == 1


# ---- incremental passes ------------------------------------------------------------------------


def decided(cycle: lifecycle.Lifecycle, monkeypatch) -> list[list[str]]:
    """Record the names each later pass decides over (the passes' work)."""
    seen: list[list[str]] = []
    real = cycle._decide_scheduling

    def spy(ips):
        ips = list(ips)
        seen.append(sorted(ip["metadata"]["name"] for ip in ips))
        return real(ips)

    monkeypatch.setattr(cycle, "_decide_scheduling", spy)
    return seen


def held(world: World, cycle: lifecycle.Lifecycle, count: int) -> list[str]:
    """`count` pods admitted, created and bound by a (full) first pass; the next pass decides over
    the objects its binds changed, and keeps them."""
    names = []
    for index in range(count):
        who, name = admit(world, f"held-{index}")
        create_pod(world, who)
        names.append(name)
    first = cycle.reconcile()
    assert (first.full, first.bound, first.released) == (True, count, 0)
    assert cycle.reconcile() == lifecycle.Pass(kept=count)
    return names


def test_a_pass_with_no_changes_decides_over_nothing(world, monkeypatch):
    cycle = leader(world)
    held(world, cycle, 5)
    seen = decided(cycle, monkeypatch)
    world.now += 1
    assert cycle.reconcile() == lifecycle.Pass()
    assert cycle.reconcile() == lifecycle.Pass()
    assert seen == [[], []]


def test_a_pass_decides_only_over_what_changed(world, monkeypatch):
    cycle = leader(world)
    held(world, cycle, 5)
    seen = decided(cycle, monkeypatch)
    who, name = admit(world, "new")
    create_pod(world, who)
    assert cycle.reconcile().bound == 1
    world.api.remove(objects.PODS, "default", "held-0")
    assert cycle.reconcile().released == 1
    assert seen[0] == [name]  # the new reservation (and its pod, by name and token)
    assert len(seen[1]) == 2 and name in seen[1]  # held-0's object, and the bind's own event


def test_a_deleted_pod_releases_in_an_incremental_pass(world):
    cycle = leader(world, grace=120)
    held(world, cycle, 3)
    _, name = admitted_created_deleted(world)  # never bound: released at once by its token
    world.api.remove(objects.PODS, "default", "held-1")
    world.now += 1
    result = cycle.reconcile()
    assert (result.full, result.released, result.bound) == (False, 2, 0)
    assert name not in world.api.ips and len(world.api.ips) == 2


def test_a_due_grace_deadline_releases_in_an_incremental_pass(world, monkeypatch):
    cycle = leader(world, grace=30, full_interval=3600)
    held(world, cycle, 3)
    _, name = admit(world, "refused-later")
    seen = decided(cycle, monkeypatch)
    world.now += 10
    assert cycle.reconcile().released == 0  # its creation is a change; the deadline is 20 s away
    world.now += 10
    assert cycle.reconcile().released == 0
    world.now += 11
    result = cycle.reconcile()
    assert (result.full, result.released) == (False, 1)
    assert name not in world.api.ips
    assert seen == [[name], [], [name]]


def test_a_statefulset_scale_down_releases_in_an_incremental_pass(world, monkeypatch):
    cycle = leader(world)
    world.add(objects.STATEFULSETS, {"metadata": {"name": "web", "namespace": "default", "uid": "sts"},
                                     "spec": {"replicas": 3}})
    names = [admit(world, f"web-{i}", owner_kind="StatefulSet", owner_uid="sts")[1] for i in range(3)]
    held(world, cycle, 2)
    seen = decided(cycle, monkeypatch)
    world.add(objects.STATEFULSETS, {"metadata": {"name": "web", "namespace": "default", "uid": "sts"},
                                     "spec": {"replicas": 1}})
    result = cycle.reconcile()
    assert (result.full, result.released) == (False, 2)
    assert seen == [sorted(names)]  # the set's objects only, not the other pods'
    assert names[0] in world.api.ips and not set(names[1:]) & set(world.api.ips)


def test_a_release_not_carried_out_is_decided_again_next_pass(world):
    cycle = leader(world)
    name = bound_then_gone(world, cycle)
    world.api.fail = lambda op, n: ApiError(500, "etcd is down") if op == "read" else None
    assert cycle.reconcile().released == 0  # the live read to confirm it failed
    world.api.fail = lambda op, n: None
    assert cycle.reconcile().released == 1  # no event since: kept in the changes for this pass
    assert name not in world.api.ips


def test_full_passes_come_at_the_full_interval_on_a_new_lease_and_after_a_failed_pass(world, monkeypatch):
    cycle = leader(world, full_interval=30)
    assert cycle.reconcile().full
    world.now += 29
    assert not cycle.reconcile().full
    world.now += 1
    assert cycle.reconcile().full
    monkeypatch.setattr(cycle, "act", lambda planned: (_ for _ in ()).throw(RuntimeError("boom")))
    with pytest.raises(RuntimeError):
        cycle.reconcile()
    monkeypatch.undo()
    assert cycle.reconcile().full
    assert not cycle.reconcile().full
    world.api.leases[("kube-system", LEASE_NAME)]["spec"]["holderIdentity"] = "other"
    assert cycle.step() is None  # lost the Lease
    world.now += 60  # the other holder's Lease expired
    assert cycle.step().full


def test_an_object_changed_by_hand_is_decided_by_the_next_full_pass(world):
    cycle = leader(world, full_interval=30)
    name = bound_then_gone(world, cycle)
    world.api.fail = lambda op, n: ApiError(500, "etcd is down") if op == "read" else None
    cycle.reconcile()
    world.api.fail = lambda op, n: None
    cycle.changes.take(world.now)  # as if the change were lost
    assert cycle.reconcile().released == 0
    world.now += 30
    assert cycle.reconcile().released == 1 and name not in world.api.ips


def test_a_write_the_server_refuses_does_not_stall_the_others(world, caplog):
    cycle = leader(world)
    pods = [admit(world, name) for name in ("a", "b", "c")]
    for who, _ in pods:
        create_pod(world, who)
    stuck = pods[1][1]
    world.api.fail = lambda op, name: ApiError(422, "spec.podUID: Invalid value") if name == stuck else None
    result = cycle.reconcile()
    assert result.bound == 2
    assert all(world.api.ips[name]["spec"].get("podUID") for _, name in pods if name != stuck)
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("could not bind 172.17.0." in w and stuck in w for w in warnings), warnings
    world.api.fail = lambda op, name: None
    assert cycle.reconcile().bound == 1  # decided again on the next pass
    world.api.fail = lambda op, name: ApiError(500, "etcd is down") if name == stuck else None
    for who, _ in pods:
        world.api.remove(objects.PODS, "default", who.name)
    assert cycle.reconcile().released == 2
    assert set(world.api.ips) == {stuck}


def test_writes_refused_by_a_server_that_is_down_are_logged_a_few_and_counted(world, caplog):
    cycle = leader(world)
    for name in [f"p{i}" for i in range(10)]:
        who, _ = admit(world, name)
        create_pod(world, who)
    world.api.fail = lambda op, name: ApiError(503, "etcd is down") if op == "patch_ip" else None
    assert cycle.reconcile().bound == 0
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert sum("could not bind" in w for w in warnings) == 3
    assert any("and 7 more writes refused this pass" in w for w in warnings), warnings
    world.api.fail = lambda op, name: None
    assert cycle.reconcile().bound == 10
