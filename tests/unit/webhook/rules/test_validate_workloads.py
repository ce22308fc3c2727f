"""Workload rules: the pod checks on the template, plus fixed addresses versus replica counts."""

from __future__ import annotations

import copy

import pytest

from .world import World, deployment, guide_world

NETWORKS = "k8s.v1.cni.cncf.io/networks"
IP = "macvlan.default.kubernetes.io/ip_address"
POOL = "macvlan.default.kubernetes.io/ip_pool"
FIXED = {NETWORKS: "default/macvlan", IP: "172.17.0.100"}


def _workload(kind: str, annotations: dict[str, str], *, replicas: int | None = None) -> dict:
    """A `kind` whose pod template carries `annotations` (CronJob: under jobTemplate)."""
    template = {
        "metadata": {"annotations": dict(annotations)},
        "spec": {"containers": [{"name": "c", "image": "docker.io/library/alpine:edge"}]},
    }
    api = "batch/v1" if kind in ("Job", "CronJob") else "apps/v1"
    spec: dict = {"template": template}
    if kind == "CronJob":
        job = {"template": template}
        if replicas is not None:
            job["parallelism"] = replicas
        spec = {"schedule": "*/5 * * * *", "jobTemplate": {"spec": job}}
    elif kind == "Job":
        if replicas is not None:
            spec["parallelism"] = replicas
    elif kind != "DaemonSet" and replicas is not None:
        spec["replicas"] = replicas
    return {"apiVersion": api, "kind": kind, "metadata": {"name": "w", "namespace": "default"}, "spec": spec}


@pytest.mark.parametrize("kind", ["Deployment", "ReplicaSet", "StatefulSet", "Job", "CronJob"])
def test_fixed_address_with_one_replica_is_allowed_and_with_three_refused(kind: str) -> None:
    world = guide_world()
    one = world.review(_workload(kind, FIXED, replicas=1))
    assert one.allowed, one.message
    verdict = world.review(_workload(kind, FIXED, replicas=3))
    assert not verdict.allowed
    assert verdict.message.startswith(f"{kind} default/w has 3 replicas but fixes {IP} to 172.17.0.100")
    assert f"use {POOL} with at least 3 addresses" in verdict.message


def test_fixed_address_on_a_daemonset_is_refused_and_a_pool_is_allowed() -> None:
    world = guide_world()
    verdict = world.review(_workload("DaemonSet", FIXED))
    assert not verdict.allowed
    assert "runs a pod on every node" in verdict.message
    pool = {NETWORKS: "default/macvlan", POOL: "172.17.0.200,172.17.0.201"}
    assert world.review(_workload("DaemonSet", pool)).allowed


@pytest.mark.parametrize("kind", ["Deployment", "StatefulSet", "CronJob"])
def test_template_annotations_get_the_pod_checks(kind: str) -> None:
    world = guide_world()
    verdict = world.review(_workload(kind, {NETWORKS: "default/macvlan", IP: "10.0.0.5"}, replicas=1))
    assert not verdict.allowed
    assert f"{IP} 10.0.0.5 is outside Subnet macvlan (172.17.0.0/16)" in verdict.message
    assert not world.review(_workload(kind, {NETWORKS: "default/nope"}, replicas=1)).allowed


def test_pool_smaller_than_the_replica_count_warns() -> None:
    world = guide_world()
    small = world.review(
        deployment({NETWORKS: "default/macvlan", POOL: "172.17.0.200,172.17.0.201"}, replicas=3)
    )
    assert small.allowed
    assert small.warnings == (
        f"Deployment default/web has 3 replicas but {POOL} has only 2 addresses, so 1 pod(s) will wait for a "
        "free one",
    )
    enough = world.review(
        deployment({NETWORKS: "default/macvlan", POOL: "172.17.0.200,172.17.0.201"}, replicas=2)
    )
    assert enough.warnings == ()


def test_pool_named_by_ippool_is_counted_by_its_addresses() -> None:
    world = guide_world()
    world.ippool("pool-1", "macvlan", ["172.17.0.200..172.17.0.203"])
    assert world.review(deployment({NETWORKS: "default/macvlan", POOL: "pool-1"}, replicas=4)).warnings == ()
    assert world.review(deployment({NETWORKS: "default/macvlan", POOL: "pool-1"}, replicas=5)).warnings


def test_fixed_address_held_by_this_workloads_pod_is_not_a_conflict_on_update() -> None:
    world = guide_world()
    old = deployment(FIXED, name="web", replicas=1, strategy={"type": "Recreate"})
    world.hold("macvlan", "172.17.0.100", pod="web-7d4f9c-abcde")
    new = copy.deepcopy(old)
    new["spec"]["template"]["spec"]["containers"][0]["image"] = "docker.io/library/nginx:1.27"
    verdict = world.review(new, operation="UPDATE", old=old)
    assert verdict.allowed, verdict.message
    assert verdict.warnings == ()
    other = deployment(FIXED, name="api", replicas=1, strategy={"type": "Recreate"})
    refused = world.review(other)
    assert not refused.allowed
    assert refused.message.startswith("172.17.0.100 is held by pod default/web-7d4f9c-abcde")


def test_replicaset_of_a_deployment_owns_the_addresses_of_its_sibling_replicasets() -> None:
    world = guide_world()
    world.hold("macvlan", "172.17.0.100", pod="web-old111-abcde")
    replicaset = _workload("ReplicaSet", FIXED, replicas=1)
    replicaset["metadata"]["name"] = "web-new222"
    replicaset["metadata"]["ownerReferences"] = [
        {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": "u", "controller": True}
    ]
    assert world.review(replicaset).allowed
    del replicaset["metadata"]["ownerReferences"]
    assert not world.review(replicaset).allowed


def test_fixed_address_with_a_rolling_update_warns() -> None:
    verdict = guide_world().review(deployment(FIXED, replicas=1))
    assert verdict.allowed
    assert verdict.warnings == (
        f"Deployment default/web fixes {IP} with the RollingUpdate strategy, whose surge pod cannot get the "
        "address the old pod still holds; set strategy.type: Recreate",
    )


def test_scale_only_update_is_checked_but_a_metadata_only_update_is_not() -> None:
    world = World()  # no NAD at all: the template would be refused if re-validated
    old = deployment({NETWORKS: "default/macvlan"}, replicas=1)
    relabelled = copy.deepcopy(old)
    relabelled["metadata"]["labels"] = {"team": "net"}
    assert world.review(relabelled, operation="UPDATE", old=old).allowed
    scaled = copy.deepcopy(old)
    scaled["spec"]["replicas"] = 2
    assert not world.review(scaled, operation="UPDATE", old=old).allowed


def test_job_of_a_cronjob_owns_the_address_an_earlier_run_still_holds() -> None:
    world = guide_world()
    world.hold("macvlan", "172.17.0.100", pod="nightly-28390-x7k2p")
    job = _workload("Job", FIXED, replicas=1)
    job["metadata"]["name"] = "nightly-28391"
    job["metadata"]["ownerReferences"] = [
        {"apiVersion": "batch/v1", "kind": "CronJob", "name": "nightly", "uid": "u", "controller": True}
    ]
    assert world.review(job).allowed
    job["metadata"]["ownerReferences"][0]["name"] = "weekly"
    refused = world.review(job)
    assert not refused.allowed
    assert refused.message.startswith("172.17.0.100 is held by pod default/nightly-28390-x7k2p")
