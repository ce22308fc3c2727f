"""changes.Changes: which IP objects the Lifecycle's next pass decides again."""

from __future__ import annotations

from webhook.cluster import objects
from webhook.cluster.cache import ObjectCache
from webhook.cluster.ipobjects import RESERVED_AT_ANNOTATION
from webhook.leader import changes


def ip(name: str, *, pod: str = "", token: str = "", uid: str = "", sts: bool = False,
       reserved: float = 100.0) -> dict:
    spec = {"namespace": "default", "podName": pod, "podUID": uid}
    if sts:
        spec["podType"] = "StatefulSet"
    return {"metadata": {"name": name, "labels": {objects.LABEL_RESERVATION: token} if token else {},
                         "annotations": {RESERVED_AT_ANNOTATION: str(reserved)}}, "spec": spec}


def pod(name: str, token: str = "") -> dict:
    annotations = {objects.RESERVATION_ANNOTATION: token} if token else {}
    return {"metadata": {"name": name, "namespace": "default", "annotations": annotations}}


def tracker(cache: ObjectCache) -> changes.Changes:
    return changes.Changes(cache, deadline=lambda ip: None if ip["spec"]["podUID"] else
                           float(ip["metadata"]["annotations"][RESERVED_AT_ANNOTATION]) + 10)


def test_objects_already_cached_count_as_changed_once():
    cache = ObjectCache()
    cache.put(objects.IPS, ip("a", pod="a", uid="u"))
    seen = tracker(cache)
    assert seen.take(0) == {"a"}
    assert seen.take(0) == set()


def test_pods_map_to_the_objects_naming_them_or_carrying_their_token():
    cache = ObjectCache()
    seen = tracker(cache)
    for obj in (ip("named", pod="web", uid="u"), ip("generated", token="t1"), ip("other", pod="x", uid="v")):
        cache.put(objects.IPS, obj)
    seen.take(0)
    seen.pod_changed(pod("web"))
    seen.pod_changed(pod("web-abc12", token="t1"))
    assert seen.take(0) == {"named", "generated"}


def test_the_index_follows_an_object_that_names_another_pod():
    cache = ObjectCache()
    seen = tracker(cache)
    cache.put(objects.IPS, ip("a", pod="web-0", uid="u"))
    cache.put(objects.IPS, ip("a", pod="web-1", uid="u"))
    seen.take(0)
    seen.pod_changed(pod("web-0"))
    assert seen.take(0) == set()
    seen.pod_changed(pod("web-1"))
    assert seen.take(0) == {"a"}


def test_statefulset_events_map_to_their_pods_objects():
    cache = ObjectCache()
    seen = tracker(cache)
    cache.put(objects.IPS, ip("w0", pod="web-0", uid="u", sts=True))
    cache.put(objects.IPS, ip("d0", pod="db-0", uid="v", sts=True))
    seen.take(0)
    cache.put(objects.STATEFULSETS, {"metadata": {"name": "web", "namespace": "default"}})
    assert seen.take(0) == {"w0"}


def test_a_grace_deadline_comes_due_once_and_not_after_the_object_was_bound():
    cache = ObjectCache()
    seen = tracker(cache)
    cache.put(objects.IPS, ip("waits", token="t1", reserved=100))
    cache.put(objects.IPS, ip("bound", token="t2", reserved=100))
    seen.take(0)
    cache.put(objects.IPS, ip("bound", token="t2", uid="u", reserved=100))
    assert seen.take(109) == {"bound"}  # its change, not its deadline
    assert seen.take(110) == {"waits"}
    assert seen.take(200) == set()


def test_the_deadline_heap_stays_bounded_as_reservations_are_bound():
    cache = ObjectCache()
    seen = tracker(cache)
    for index in range(3 * changes.STALE_SLACK):
        cache.put(objects.IPS, ip(f"r{index}", token=f"t{index}"))
        cache.put(objects.IPS, ip(f"r{index}", token=f"t{index}", uid="u"))
        seen.take(0)
    assert seen.size()["due"] <= changes.STALE_SLACK + 1
