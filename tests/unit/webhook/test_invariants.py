"""`multinic-ipam check`'s invariants: a clean snapshot passes, and each violation has its fixture."""

from __future__ import annotations

import pytest

from allocator import annotations as keys
from tests.unit.webhook.world import World
from webhook import mutate
from webhook.cluster import objects
from webhook.cluster.ipobjects import RESERVED_AT_ANNOTATION
from webhook.leader import lifecycle, status
from webhook.leader.decisions import Snapshot
from webhook.operator import invariants, ops

NOW = 1_000_000.0
GRACE = 60.0
PROVIDER = "macvlan.default"
STATUS = {"v4availableIPs": 65519, "v4usingIPs": 1, "v6availableIPs": 0, "v6usingIPs": 0}


def pod(name: str = "a", *, address: str = "172.17.0.11", token: str = "t-a", uid: str = "u-a",
        phase: str = "Running", subnet: str = "macvlan", provider: str = PROVIDER) -> dict:
    notes = {objects.RESERVATION_ANNOTATION: token, keys.key(provider, keys.IP_ADDRESS): address,
             keys.key(provider, keys.ALLOCATED): "true"}
    if subnet:
        notes[keys.key(provider, keys.LOGICAL_SWITCH)] = subnet
    return {"metadata": {"name": name, "namespace": "default", "uid": uid, "annotations": notes},
            "spec": {"restartPolicy": "Never"}, "status": {"phase": phase}}


def ip(address: str = "172.17.0.11", *, pod_name: str = "a", token: str = "t-a", uid: str = "u-a",
       name: str | None = None, age: float = 0.0) -> dict:
    meta = {"name": name or objects.ip_object_name("macvlan", address), "resourceVersion": "3",
            "labels": {objects.LABEL_RESERVATION: token},
            "annotations": {RESERVED_AT_ANNOTATION: str(NOW - age)}}
    spec = {"subnet": "macvlan", "provider": PROVIDER, "ipAddress": address, "namespace": "default",
            "podName": pod_name, "podUID": uid}
    spec["v6IPAddress" if ":" in address else "v4IPAddress"] = address
    return {"metadata": meta, "spec": spec}


def subnet(status: dict | None = None) -> dict:
    return {"metadata": {"name": "macvlan"}, "spec": {"cidrBlock": "172.17.0.0/16"},
            "status": dict(STATUS) if status is None else status}


def run(ips: list, pods: list, subnets: list | None = None, expected: dict | None = None,
        statefulsets: list = ()) -> list[invariants.Violation]:
    return invariants.check_all(
        ips=ips, pods=pods, subnets=[subnet()] if subnets is None else subnets,
        expected_status={"macvlan": STATUS} if expected is None else expected,
        facts=Snapshot(pods, statefulsets), now=NOW, default_grace=GRACE,
    )


def only(violations: list[invariants.Violation]) -> invariants.Violation:
    assert len(violations) == 1, [v.message for v in violations]
    return violations[0]


def test_a_bound_pod_with_its_ip_object_and_current_status_passes():
    assert run([ip()], [pod()]) == []


def test_a_reservation_in_its_grace_period_and_a_statefulset_slot_pass():
    reservation = ip("172.17.0.12", pod_name="never", token="t-n", uid="", age=GRACE - 1)
    slot = ip("172.17.0.13", pod_name="web-0", token="t-w", uid="u-old")
    slot["spec"].update(podType="StatefulSet", ownerUID="sts-1")
    sts = {"metadata": {"name": "web", "namespace": "default", "uid": "sts-1"}, "spec": {"replicas": 1}}
    assert run([ip(), reservation, slot], [pod()], statefulsets=[sts]) == []


def test_an_address_held_by_two_ip_objects():
    forged = ip(pod_name="b", token="t-b", uid="u-b", name="forged")
    found = run([ip(), forged], [pod(), pod("b", address="172.17.0.99", token="t-b", uid="u-b")],
                expected={})
    violation = only([v for v in found if v.invariant == invariants.HELD_TWICE])
    assert violation.message == ("172.17.0.11 in subnet macvlan is held by 2 IP objects: "
                                 "forged (pod default/b), macvlan.172.17.0.11 (pod default/a)")
    assert violation.objects == ("ip/forged", "ip/macvlan.172.17.0.11")


def test_ipv6_spellings_of_one_address_are_one_address():
    found = invariants.held_twice([ip("fd00::11", name="one"), ip("fd00:0::11", name="two")])
    assert only(found).objects == ("ip/one", "ip/two")


def test_an_address_written_into_two_live_pods():
    found = run([ip()], [pod(), pod("b", token="t-b", uid="u-b")])
    violation = only([v for v in found if v.invariant == invariants.WRITTEN_TWICE])
    assert violation.message == ("172.17.0.11 in subnet macvlan is written into the annotations of "
                                 "2 live pods: default/a, default/b")
    assert violation.objects == ("pod/default/a", "pod/default/b")


def test_a_finished_pod_keeps_its_annotation_without_holding_the_address():
    assert run([ip()], [pod(), pod("done", token="t-d", uid="u-d", phase="Succeeded")]) == []


@pytest.mark.parametrize(("ip_object", "pods", "reason"), [
    (ip(), [], "its pod is gone"),
    (ip(uid="", age=GRACE + 1), [], "its pod never came to exist"),
], ids=["bound pod gone", "reservation past its grace period"])
def test_an_ip_object_no_pod_needs(ip_object, pods, reason):
    violation = only(run([ip_object], pods))
    assert violation.invariant == invariants.UNNEEDED
    assert violation.message == ("IP object macvlan.172.17.0.11 holds 172.17.0.11 in subnet macvlan for "
                                 f"pod default/a, but {reason}")
    assert violation.objects == ("ip/macvlan.172.17.0.11",)


def test_an_allocated_annotation_without_its_ip_object():
    violation = only(run([], [pod()], expected={}))
    assert violation.invariant == invariants.UNHELD
    assert violation.message == ("pod default/a has 172.17.0.11 in macvlan.default.kubernetes.io/ip_address "
                                 "but no IP object macvlan.172.17.0.11 holds it in subnet macvlan")


def test_an_allocated_annotation_whose_ip_object_holds_it_for_another_pod():
    other = pod("b", address="172.17.0.50", token="t-b", uid="u-b")
    found = run([ip(pod_name="b", token="t-b", uid="u-b"), ip("172.17.0.50", pod_name="b", token="t-b",
                                                                 uid="u-b")],
                [pod(), other], expected={})
    violation = only(found)
    assert violation.message.endswith("but IP object macvlan.172.17.0.11 holds it in subnet macvlan for "
                                      "pod default/b")
    assert violation.objects == ("pod/default/a", "ip/macvlan.172.17.0.11")


def test_an_allocated_annotation_naming_no_subnet_or_no_address():
    assert only(run([], [pod(subnet="")], expected={})).message.endswith(
        "but no macvlan.default.kubernetes.io/logical_switch naming its Subnet")
    assert only(run([], [pod(address="172.17.0.x")], expected={})).message.endswith(
        "but that is not an IP address")


def test_a_subnet_status_that_differs_from_its_ip_objects():
    stale = dict(STATUS, v4usingIPs=0)
    del stale["v4availableIPs"]
    violation = only(run([ip()], [pod()], subnets=[subnet(stale)]))
    assert violation.invariant == invariants.STATUS
    assert violation.message == ("Subnet macvlan status says v4availableIPs=(none), v4usingIPs=0 but its "
                                 "IP objects make v4availableIPs=65519, v4usingIPs=1")
    assert violation.objects == ("subnet/macvlan",)


def test_a_subnet_without_counters_is_not_compared():
    assert run([ip()], [pod()], subnets=[subnet({})], expected={}) == []


def test_ops_check_over_a_store_after_real_admission():
    """Pods admitted by `mutate`, bound by the leader, status written: check passes; a forged second
    address in a second pod is reported."""
    world = World().guide()
    cycle = lifecycle.Lifecycle(store=world.store, identity="one", namespace="kube-system",
                                clock=lambda: world.now)
    for name in ("a", "b"):
        body = {"metadata": {"name": name, "namespace": "default",
                             "annotations": {keys.NETWORKS: "macvlan"}}, "spec": {"containers": []}}
        verdict = mutate.review({"uid": "1", "kind": {"kind": "Pod"}, "operation": "CREATE",
                                 "namespace": "default", "object": body}, store=world.store)
        notes = dict(body["metadata"]["annotations"])
        notes.update({p["path"].rsplit("/", 1)[-1].replace("~1", "/"): p["value"] for p in verdict.patch})
        world.add(objects.PODS, {**body, "metadata": {**body["metadata"], "annotations": notes},
                                 "status": {"phase": "Pending"}})
    cycle.reconcile()
    for item in world.store.subnets():
        name = item["metadata"]["name"]
        world.add(objects.SUBNETS, {**item, "status": status.subnet_status(world.store, name)})
    result = ops.check(world.store, now=world.now)
    assert result.violations == []
    assert result.counts == {"ips": 2, "pods": 2, "subnets": 2, "ippools": 0}

    pod_b = world.store.pod("default", "b")
    address_a = world.store.pod("default", "a")["metadata"]["annotations"][
        keys.key(PROVIDER, keys.IP_ADDRESS)]
    pod_b["metadata"]["annotations"][keys.key(PROVIDER, keys.IP_ADDRESS)] = address_a
    world.add(objects.PODS, pod_b)
    found = {v.invariant for v in ops.check(world.store, now=world.now).violations}
    assert found == {invariants.WRITTEN_TWICE, invariants.UNHELD}


def test_ops_check_limited_to_one_subnet_and_an_unknown_subnet():
    world = World().guide()
    stray = ip()
    stray["spec"]["subnet"] = "attachnet"  # in attachnet's scope only, and no pod needs it
    world.api.ips[stray["metadata"]["name"]] = stray
    world.cache.put(objects.IPS, stray)
    assert {v.invariant for v in ops.check(world.store, now=NOW, subnets=["attachnet"]).violations} >= {
        invariants.UNNEEDED}
    assert ops.check(world.store, now=NOW, subnets=["macvlan"]).counts["ips"] == 0
    with pytest.raises(ops.OpsError, match="no Subnet named nope"):
        ops.check(world.store, subnets=["nope", "macvlan"])


def test_check_command_exits_2_when_the_cluster_cannot_be_read(tmp_path, capsys):
    from webhook import cli

    assert cli.main(["check", "--kubeconfig", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_only_violations_found_by_both_looks_are_confirmed():
    gone = invariants.Violation(invariants.UNNEEDED, "its pod is gone", ("ip/x",))
    status_then = invariants.Violation(invariants.STATUS, "says 1 makes 2", ("subnet/s",))
    status_now = invariants.Violation(invariants.STATUS, "says 2 makes 3", ("subnet/s",))
    new = invariants.Violation(invariants.UNHELD, "pod p has …", ("pod/ns/p",))
    first = ops.CheckResult([gone, status_then], {"ips": 1})
    second = ops.CheckResult([status_now, new], {"ips": 2})
    assert ops.confirmed(first, second) == ops.CheckResult([status_now], {"ips": 2})
