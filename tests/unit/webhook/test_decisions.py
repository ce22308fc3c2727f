"""decisions.decide: the Lifecycle's rules as a pure function of IP objects, pods, StatefulSets and time."""

from __future__ import annotations

import pytest

from webhook.cluster import informers, objects
from webhook.cluster.ipobjects import GRACE_ANNOTATION, RESERVED_AT_ANNOTATION
from webhook.leader import decisions
from webhook.leader.decisions import Bind, Release, Snapshot

NOW = 1_000_000.0
GRACE = 60.0


def ip(name: str = "web", *, uid: str = "", token: str = "t1", age: float = 0.0, sts: str = "",
       annotations: dict | None = None, generate: bool = False) -> dict:
    """An IP object for pod default/`name`, reserved `age` seconds before NOW."""
    spec = {"subnet": "macvlan", "namespace": "default", "podName": "" if generate else name,
            "podUID": uid, "ipAddress": "172.17.0.11"}
    if sts:
        spec.update(podType="StatefulSet", ownerUID=sts)
    meta = {"name": f"macvlan.{name}", "resourceVersion": "7",
            "labels": {objects.LABEL_RESERVATION: token},
            "annotations": {RESERVED_AT_ANNOTATION: str(NOW - age), **(annotations or {})}}
    return {"metadata": meta, "spec": spec}


def pod(name: str = "web", *, uid: str = "u1", token: str = "t1", phase: str = "Running",
        restart: str = "Always") -> dict:
    return {"metadata": {"name": name, "namespace": "default", "uid": uid,
                         "annotations": {objects.RESERVATION_ANNOTATION: token}},
            "spec": {"restartPolicy": restart}, "status": {"phase": phase}}


def statefulset(replicas: int, uid: str = "sts-1") -> dict:
    return {"metadata": {"name": "web", "namespace": "default", "uid": uid}, "spec": {"replicas": replicas}}


GONE = "its pod is gone"
NEVER = "its pod never came to exist"
SCALED = "StatefulSet default/web no longer has a pod web-1"

CASES = [
    # (case id, IP object, pods, StatefulSets, expected decision or None to keep)
    ("bound, pod running", ip(uid="u1"), [pod()], [], None),
    ("bound, pod gone", ip(uid="u1"), [], [], Release("macvlan.web", GONE, "7")),
    ("bound, same name new uid", ip(uid="u1"), [pod(uid="u2", token="t2")], [],
     Release("macvlan.web", GONE, "7")),
    ("bound, Succeeded", ip(uid="u1"), [pod(phase="Succeeded")], [],
     Release("macvlan.web", "its pod has succeeded for good", "7")),
    ("bound, Failed + Never", ip(uid="u1"), [pod(phase="Failed", restart="Never")], [],
     Release("macvlan.web", "its pod has failed for good", "7")),
    ("bound, Failed + OnFailure", ip(uid="u1"), [pod(phase="Failed", restart="OnFailure")], [], None),
    ("bound, Running + Never", ip(uid="u1"), [pod(restart="Never")], [], None),
    ("sts kept", ip("web-1", uid="u1", sts="sts-1", age=10_000), [], [statefulset(2)], None),
    ("sts scaled down", ip("web-1", uid="u1", sts="sts-1"), [], [statefulset(1)],
     Release("macvlan.web-1", SCALED, "7")),
    ("sts deleted", ip("web-1", uid="u1", sts="sts-1"), [], [], Release("macvlan.web-1", SCALED, "7")),
    ("sts deleted and recreated", ip("web-1", uid="u1", sts="sts-1"), [], [statefulset(2, uid="sts-2")],
     Release("macvlan.web-1", SCALED, "7")),
    ("sts pod recreated", ip("web-1", uid="u1", sts="sts-1"), [pod("web-1", uid="u9")], [statefulset(2)],
     Bind("macvlan.web-1", "web-1", "u9", "7")),
    ("unbound, within grace", ip(age=GRACE - 1), [], [], None),
    ("unbound, after grace", ip(age=GRACE + 1), [], [], Release("macvlan.web", NEVER, "7")),
    ("unbound, pod exists", ip(age=GRACE + 1), [pod()], [], Bind("macvlan.web", "web", "u1", "7")),
    ("unbound, generateName pod by token", ip(generate=True), [pod("web-x1", uid="ux")], [],
     Bind("macvlan.web", "web-x1", "ux", "7")),
    ("unbound, same name other token", ip(age=GRACE + 1), [pod(token="t2")], [],
     Release("macvlan.web", NEVER, "7")),
    ("unbound, pod finished", ip(age=GRACE + 1), [pod(phase="Succeeded")], [],
     Release("macvlan.web", NEVER, "7")),
    ("unbound, its own shorter grace", ip(age=10, annotations={GRACE_ANNOTATION: "5"}), [], [],
     Release("macvlan.web", NEVER, "7")),
]


@pytest.mark.parametrize(("ip_object", "pods", "sets", "expected"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_decide(ip_object: dict, pods: list, sets: list, expected: decisions.Decision | None) -> None:
    found = decisions.decide([ip_object], Snapshot(pods, sets), now=NOW, default_grace=GRACE)
    assert found == ([] if expected is None else [expected])


def _as_served(obj: dict) -> dict:
    """`obj` with the spec and status an API server adds that no rule reads."""
    return {**obj, "metadata": {**obj["metadata"], "managedFields": [{"manager": "kubelet"}]},
            "spec": {**obj.get("spec", {}), "containers": [{"name": "c", "image": "alpine"}],
                     "template": {"spec": {"containers": []}}},
            "status": {**obj.get("status", {}), "conditions": [{"type": "Ready", "status": "True"}]}}


@pytest.mark.parametrize(("ip_object", "pods", "sets", "expected"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_decide_the_same_on_what_the_servers_cache_keeps(
        ip_object: dict, pods: list, sets: list, expected: decisions.Decision | None) -> None:
    """The cache keeps only part of pods and StatefulSets (`informers.compact`): enough for every rule."""
    kept_pods = [informers.compact(objects.PODS, _as_served(p)) for p in pods]
    kept_sets = [informers.compact(objects.STATEFULSETS, _as_served(s)) for s in sets]
    kept_ip = informers.compact(objects.IPS, ip_object)
    found = decisions.decide([kept_ip], Snapshot(kept_pods, kept_sets), now=NOW, default_grace=GRACE)
    assert found == ([] if expected is None else [expected])


DELETED_CASES = [
    # (case id, IP object, pods, expected decision) with the token t1 seen on a deleted pod
    ("unbound, pod seen deleted, within grace", ip(age=1), [],
     Release("macvlan.web", decisions.DELETED_UNBOUND, "7")),
    ("unbound generateName, pod seen deleted", ip(generate=True, age=1), [],
     Release("macvlan.web", decisions.DELETED_UNBOUND, "7")),
    ("unbound, same name recreated with another token", ip(age=1), [pod(uid="u2", token="t2")],
     Release("macvlan.web", decisions.DELETED_UNBOUND, "7")),
    ("unbound, a pod carrying the token exists after all", ip(age=1), [pod()],
     Bind("macvlan.web", "web", "u1", "7")),
    ("bound, pod gone", ip(uid="u1"), [], Release("macvlan.web", GONE, "7")),
    ("sts kept although its pod was deleted", ip("web-1", uid="u1", sts="sts-1", age=1), [], None),
]


@pytest.mark.parametrize(("ip_object", "pods", "expected"), [c[1:] for c in DELETED_CASES],
                         ids=[c[0] for c in DELETED_CASES])
def test_a_pod_seen_deleted_releases_its_reservation_without_the_grace_period(
        ip_object: dict, pods: list, expected: decisions.Decision | None) -> None:
    sets = [statefulset(2)]
    found = decisions.decide([ip_object], Snapshot(pods, sets), now=NOW, default_grace=GRACE,
                             deleted={"t1"})
    assert found == ([] if expected is None else [expected])


def test_only_the_deleted_pods_token_skips_the_grace_period() -> None:
    young = ip(age=1)
    assert decisions.decide([young], Snapshot(), now=NOW, default_grace=GRACE, deleted={"t9"}) == []
    assert decisions.decide([ip(age=1, token="")], Snapshot(), now=NOW, default_grace=GRACE,
                            deleted={""}) == []


def test_a_grace_override_beats_the_reservations_own() -> None:
    young = ip(age=10, annotations={GRACE_ANNOTATION: "5"})
    assert decisions.decide([young], Snapshot(), now=NOW, grace=30) == []
    later = decisions.decide([young], Snapshot(), now=NOW + 21, grace=30)
    assert later == [Release("macvlan.web", NEVER, "7")]


def test_decide_keeps_order_and_leaves_out_kept_objects() -> None:
    ips = [ip("a", uid="ua"), ip("b", uid="ub"), ip("c", uid="uc")]
    found = decisions.decide(ips, Snapshot([pod("b", uid="ub", token="tb")]), now=NOW)
    assert [d.ip_name for d in found] == ["macvlan.a", "macvlan.c"]



@pytest.mark.parametrize(("case", "ip_object", "pods", "sets", "expected"), CASES, ids=[c[0] for c in CASES])
def test_a_decision_changes_only_with_what_looked_up_names(case, ip_object, pods, sets, expected) -> None:
    """The Lifecycle's incremental passes decide again only when these change: the pods and
    StatefulSets not named are irrelevant to the decision."""
    pod_key, token, statefulset_key = decisions.looked_up(ip_object)
    relevant_pods = [p for p in pods if decisions.namespaced_name(p) == pod_key or
                     decisions.token_of(p) == token]
    relevant_sets = [s for s in sets if decisions.namespaced_name(s) == statefulset_key]
    noise = [pod(f"other-{i}", uid=f"o{i}", token=f"o{i}") for i in range(3)]
    assert decisions.decide_one(ip_object, Snapshot(relevant_pods + noise, relevant_sets), now=NOW,
                                default_grace=GRACE) == expected


@pytest.mark.parametrize("grace", [None, 5.0])
def test_grace_ends_where_the_rule_starts_releasing(grace) -> None:
    reservation = ip(age=0, annotations={GRACE_ANNOTATION: "30"})
    ends = decisions.grace_ends(reservation, grace=grace, default_grace=GRACE)
    assert ends == NOW + (30 if grace is None else grace)
    at = decisions.decide([reservation], Snapshot(), now=ends, grace=grace, default_grace=GRACE)
    after = decisions.decide([reservation], Snapshot(), now=ends + 0.001, grace=grace, default_grace=GRACE)
    assert (at, [d.reason for d in after]) == ([], [NEVER])
    assert decisions.grace_ends(ip(uid="u1")) is None
    assert decisions.grace_ends(ip("web-1", sts="sts-1")) is None
