"""Informers against a small fake API server: list, watch, 410 relist, reconnect, absent CRDs, stop."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kubernetes import client
from prometheus_client import REGISTRY

from tests.unit.webhook.fake_apiserver import PODS_PATH, SUBNETS_PATH, FakeApi
from webhook.cluster import informers, objects
from webhook.cluster.cache import ObjectCache


@pytest.fixture
def fake() -> Iterator[FakeApi]:
    api = FakeApi([SUBNETS_PATH, PODS_PATH])
    yield api
    api.close()


@pytest.fixture
def make_informers(fake: FakeApi) -> Iterator[Callable[..., informers.Informers]]:
    started: list[informers.Informers] = []

    def make(cache: ObjectCache, kinds: tuple[str, ...] = (objects.SUBNETS,)) -> informers.Informers:
        configuration = client.Configuration()
        configuration.host = fake.host
        result = informers.Informers(cache, client.ApiClient(configuration), kinds, backoff=(0.05, 0.2))
        result.start()
        started.append(result)
        return result

    yield make
    for result in started:
        result.stop()


def eventually(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


def names(cache: ObjectCache, kind: str = objects.SUBNETS) -> set[str]:
    return {o["metadata"]["name"] for o in cache.list(kind)}


def test_list_fills_the_cache_and_reports_synced(fake: FakeApi, make_informers: Callable[..., Any]) -> None:
    fake.put(SUBNETS_PATH, "macvlan", {"cidrBlock": "172.17.0.0/16"})
    fake.put(PODS_PATH, "web", namespace="default")
    cache = ObjectCache()

    inf = make_informers(cache, (objects.SUBNETS, objects.PODS))

    assert inf.wait_synced(5)
    assert inf.synced and inf.unsynced_kinds() == []
    subnet = cache.get(objects.SUBNETS, "macvlan")
    assert subnet is not None and subnet["spec"] == {"cidrBlock": "172.17.0.0/16"}
    # List items lack kind/apiVersion on the wire; the informer restores them like watch events have.
    assert subnet["kind"] == "Subnet" and subnet["apiVersion"] == "kubeovn.io/v1"
    pod = cache.get(objects.PODS, "web", "default")
    assert pod is not None and pod["kind"] == "Pod"


def test_managed_fields_are_not_kept(fake: FakeApi, make_informers: Callable[..., Any]) -> None:
    fake.put(SUBNETS_PATH, "listed")
    fake.objects[SUBNETS_PATH]["listed"]["metadata"]["managedFields"] = [{"manager": "kubectl"}]
    cache = informers.server_cache()
    assert make_informers(cache).wait_synced(5)
    eventually(lambda: fake.watch_count(SUBNETS_PATH) == 1)
    with fake.lock:
        fake._send(SUBNETS_PATH, {"type": "ADDED", "object": {
            "metadata": {"name": "watched", "resourceVersion": "900", "managedFields": [{"manager": "x"}]}}})
    eventually(lambda: names(cache) == {"listed", "watched"})
    for obj in cache.list(objects.SUBNETS):
        assert "managedFields" not in obj["metadata"]


def test_paged_lists_are_followed(fake: FakeApi, make_informers: Callable[..., Any]) -> None:
    fake.page_size = 2
    for i in range(5):
        fake.put(SUBNETS_PATH, f"s{i}")
    cache = ObjectCache()
    assert make_informers(cache).wait_synced(5)
    assert names(cache) == {f"s{i}" for i in range(5)}


def test_a_field_selector_narrows_the_list_and_the_watch(fake: FakeApi) -> None:
    """The node daemon's informer: only its node's pods, on the paged list and on the watch."""
    configuration = client.Configuration()
    configuration.host = fake.host
    inf = informers.Informers(ObjectCache(), client.ApiClient(configuration), (objects.PODS,),
                              field_selector="spec.nodeName=n1")
    inf.start()
    try:
        assert inf.wait_synced(5)
        eventually(lambda: fake.watch_count(PODS_PATH) == 1)
    finally:
        inf.stop()
    listed, watched = (query for path, query in fake.requests[:2])
    assert listed["fieldSelector"] == watched["fieldSelector"] == ["spec.nodeName=n1"]
    assert listed["limit"] == ["500"] and watched["watch"] == ["true"]


def test_watch_applies_adds_updates_and_deletes(fake: FakeApi, make_informers: Callable[..., Any]) -> None:
    cache = ObjectCache()
    assert make_informers(cache).wait_synced(5)
    eventually(lambda: fake.watch_count(SUBNETS_PATH) == 1)

    fake.put(SUBNETS_PATH, "a", {"v": 1})
    eventually(lambda: names(cache) == {"a"})
    fake.put(SUBNETS_PATH, "a", {"v": 2})
    eventually(lambda: (cache.get(objects.SUBNETS, "a") or {}).get("spec") == {"v": 2})
    fake.remove(SUBNETS_PATH, "a")
    eventually(lambda: names(cache) == set())


def test_watch_resumes_from_the_last_version(fake: FakeApi, make_informers: Callable[..., Any]) -> None:
    cache = ObjectCache()
    assert make_informers(cache).wait_synced(5)
    eventually(lambda: fake.watch_count(SUBNETS_PATH) == 1)
    fake.put(SUBNETS_PATH, "a")
    eventually(lambda: names(cache) == {"a"})
    version_of_a = fake.objects[SUBNETS_PATH]["a"]["metadata"]["resourceVersion"]

    def watches() -> list[dict[str, list[str]]]:
        return [q for path, q in fake.requests if path == SUBNETS_PATH and q.get("watch") == ["true"]]

    fake.drop_watches(SUBNETS_PATH)  # the server ends the watch (timeoutSeconds)
    eventually(lambda: len(watches()) == 2)

    lists = [q for path, q in fake.requests if path == SUBNETS_PATH and "watch" not in q]
    assert watches()[-1]["resourceVersion"] == [version_of_a]
    assert len(lists) == 1  # no relist needed


def test_410_during_watch_relists_and_drops_vanished_objects(
    fake: FakeApi, make_informers: Callable[..., Any]
) -> None:
    fake.put(SUBNETS_PATH, "old")
    cache = ObjectCache()
    assert make_informers(cache).wait_synced(5)
    eventually(lambda: fake.watch_count(SUBNETS_PATH) == 1)

    fake.quietly_remove(SUBNETS_PATH, "old")
    fake.quietly_put(SUBNETS_PATH, "new")
    fake.expire_watches(SUBNETS_PATH)

    eventually(lambda: names(cache) == {"new"})


def test_410_on_watch_request_relists(fake: FakeApi, make_informers: Callable[..., Any]) -> None:
    cache = ObjectCache()
    fake.gone_watches = 1
    assert make_informers(cache).wait_synced(5)
    eventually(lambda: fake.watch_count(SUBNETS_PATH) == 1)
    lists = [q for path, q in fake.requests if path == SUBNETS_PATH and "watch" not in q]
    assert len(lists) == 2


def test_errors_back_off_and_recover(fake: FakeApi, make_informers: Callable[..., Any]) -> None:
    fake.put(SUBNETS_PATH, "a")
    fake.failures = 3  # the API server is restarting
    cache = ObjectCache()
    before = REGISTRY.get_sample_value(
        "multinic_ipam_informer_restarts_total", {"kind": "subnets", "reason": "error"}) or 0
    inf = make_informers(cache)

    assert inf.wait_synced(5)
    assert names(cache) == {"a"}
    assert fake.failures == 0
    after = REGISTRY.get_sample_value(
        "multinic_ipam_informer_restarts_total", {"kind": "subnets", "reason": "error"})
    assert after is not None and after - before >= 3


def test_not_synced_while_the_api_server_fails(fake: FakeApi, make_informers: Callable[..., Any]) -> None:
    fake.failures = 10_000
    inf = make_informers(ObjectCache(), (objects.SUBNETS, objects.PODS))
    assert not inf.wait_synced(0.3)
    assert not inf.synced
    assert inf.unsynced_kinds() == [objects.SUBNETS, objects.PODS]


def test_absent_kind_counts_as_synced_and_is_picked_up_later(
    fake: FakeApi, make_informers: Callable[..., Any]
) -> None:
    cache = ObjectCache()
    inf = make_informers(cache, (objects.IPPOOLS,))
    assert inf.wait_synced(5)
    assert cache.list(objects.IPPOOLS) == []

    pools = "/apis/kubeovn.io/v1/ippools"
    with fake.lock:  # the CRD gets installed
        fake.objects[pools] = {}
        fake.watchers[pools] = []
    fake.put(pools, "pool-a")
    eventually(lambda: names(cache, objects.IPPOOLS) == {"pool-a"})


def test_stop_interrupts_a_quiet_watch(fake: FakeApi, make_informers: Callable[..., Any]) -> None:
    inf = make_informers(ObjectCache())
    assert inf.wait_synced(5)
    eventually(lambda: fake.watch_count(SUBNETS_PATH) == 1)

    started = time.monotonic()
    inf.stop(timeout=5)

    assert time.monotonic() - started < 3
    assert not any(w.is_alive() for w in inf._watchers)


def test_unknown_kind_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"unknown kinds \['widgets'\]; known kinds are subnets"):
        informers.Informers(ObjectCache(), None, ("widgets",))


def test_a_failing_subscriber_does_not_stall_the_watch(
    fake: FakeApi, make_informers: Callable[..., Any]
) -> None:
    cache = ObjectCache()
    seen: list[str] = []

    def picky(event: str, obj: dict[str, Any]) -> None:
        seen.append(obj["metadata"]["name"])
        if obj["metadata"]["name"] == "poison":
            raise RuntimeError("subscriber bug")

    cache.subscribe(objects.SUBNETS, picky)
    fake.put(SUBNETS_PATH, "poison")
    assert make_informers(cache).wait_synced(5)
    eventually(lambda: fake.watch_count(SUBNETS_PATH) == 1)

    fake.put(SUBNETS_PATH, "after")

    eventually(lambda: names(cache) == {"poison", "after"})
    assert seen == ["poison", "after"]  # no replay of the poison event


def test_a_late_event_never_rolls_back_a_newer_cached_object(
    fake: FakeApi, make_informers: Callable[..., Any]
) -> None:
    cache = ObjectCache()
    assert make_informers(cache).wait_synced(5)
    eventually(lambda: fake.watch_count(SUBNETS_PATH) == 1)
    # The store wrote version 500 and cached it at once (read-your-writes) ...
    cache.put(objects.SUBNETS, {"metadata": {"name": "s", "resourceVersion": "500"}, "spec": {"v": "mine"}})

    fake.put(SUBNETS_PATH, "s", {"v": "older event"})  # ... then the watch brings an older version
    fake.put(SUBNETS_PATH, "other")
    eventually(lambda: names(cache) == {"s", "other"})

    assert (cache.get(objects.SUBNETS, "s") or {})["spec"] == {"v": "mine"}


def test_the_event_of_a_version_already_cached_is_not_applied_again(
    fake: FakeApi, make_informers: Callable[..., Any]
) -> None:
    cache = ObjectCache()
    assert make_informers(cache).wait_synced(5)
    eventually(lambda: fake.watch_count(SUBNETS_PATH) == 1)
    seen: list[str] = []
    cache.subscribe(objects.SUBNETS, lambda event, obj: seen.append(f"{event} {obj['metadata']['name']}"))
    with fake.lock:
        version = str(fake.version + 1)  # what the create below will be answered with
    # the store caches the create's answer before the watch event of that version comes
    cache.put(objects.SUBNETS, {"metadata": {"name": "s", "resourceVersion": version}, "spec": {"v": 1}})
    fake.put(SUBNETS_PATH, "s", {"v": 1})
    fake.put(SUBNETS_PATH, "other")
    eventually(lambda: names(cache) == {"s", "other"})

    assert seen == ["ADDED s", "ADDED other"]


# ---- what the cache keeps (the server's transform) ------------------------------------------------

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def full_pod(name: str = "web") -> dict[str, Any]:
    """A pod as the API server sends it, with much that nothing here reads."""
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": name, "namespace": "default", "uid": f"uid-{name}", "resourceVersion": "42",
            "generateName": "web-", "creationTimestamp": "2026-11-30T16:36:21Z",
            "deletionTimestamp": "2026-11-30T16:40:00Z", "deletionGracePeriodSeconds": 30,
            "labels": {"app": "web"}, "finalizers": ["example.com/keep"],
            "annotations": {objects.RESERVATION_ANNOTATION: "t1", "k8s.v1.cni.cncf.io/networks": "net",
                            LAST_APPLIED: '{"kind": "Pod", "spec": {"containers": []}}'},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web",
                                 "uid": "rs-1", "controller": True}],
            "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:spec": {}}}],
        },
        "spec": {"containers": [{"name": "c", "image": "alpine"}], "restartPolicy": "Never",
                 "nodeName": "n1", "volumes": [{"name": "v", "emptyDir": {}}]},
        "status": {"phase": "Failed", "conditions": [{"type": "Ready", "status": "False"}],
                   "podIP": "10.0.0.7"},
    }


def test_compact_keeps_of_a_pod_its_metadata_restart_policy_and_phase() -> None:
    pod = full_pod()
    meta = {k: v for k, v in pod["metadata"].items() if k != "managedFields"}
    meta["annotations"] = {k: v for k, v in meta["annotations"].items() if k != LAST_APPLIED}

    assert informers.compact(objects.PODS, pod) == {
        "apiVersion": "v1", "kind": "Pod", "metadata": meta,
        "spec": {"restartPolicy": "Never"}, "status": {"phase": "Failed"},
    }
    assert pod == full_pod()  # a new object; the one given is left as it was


def test_compact_keeps_of_a_statefulset_its_replicas() -> None:
    sts = {"kind": "StatefulSet", "metadata": {"name": "db", "uid": "s1", "managedFields": []},
           "spec": {"replicas": 3, "template": {"spec": {"containers": [{"name": "c"}]}}},
           "status": {"replicas": 3}}
    assert informers.compact(objects.STATEFULSETS, sts) == {
        "kind": "StatefulSet", "metadata": {"name": "db", "uid": "s1"}, "spec": {"replicas": 3}}


@pytest.mark.parametrize("kind", [objects.IPS, objects.SUBNETS, objects.IPPOOLS, objects.NADS])
def test_compact_keeps_everything_of_other_kinds_but_managed_fields(kind: str) -> None:
    obj = {"kind": "X", "metadata": {"name": "a", "labels": {"l": "v"}, "managedFields": [{}]},
           "spec": {"subnet": "s", "list": [{"a": 1}, "x" * 100]}, "status": {"v4usingIPs": 3}}
    expected = {**obj, "metadata": {"name": "a", "labels": {"l": "v"}}}
    assert informers.compact(kind, obj) == expected


def test_compact_shares_keys_and_short_strings_between_objects() -> None:
    import json

    one, two = (informers.compact(objects.PODS, json.loads(json.dumps(full_pod(n)))) for n in ("a", "b"))
    assert one["metadata"]["namespace"] is two["metadata"]["namespace"]
    key_one = next(k for k in one["metadata"] if k == "namespace")
    key_two = next(k for k in two["metadata"] if k == "namespace")
    assert key_one is key_two


def test_a_cache_with_a_transform_stores_and_reports_what_it_keeps() -> None:
    cache = ObjectCache(transform=informers.compact)
    seen: list[dict[str, Any]] = []
    cache.subscribe(objects.PODS, lambda _event, obj: seen.append(obj))

    cache.put(objects.PODS, full_pod())  # as the Store puts an API server's answer

    held = cache.get(objects.PODS, "web", "default")
    assert held is not None and held["spec"] == {"restartPolicy": "Never"}
    assert seen == [held] and seen[0] is held
