"""Faults during a burst: two replicas behind haproxy keep every address unique and nothing leaks.

Each test creates PODS pods from 16 threads (refusals retried, as a controller retries), strikes
once STRIKE_AT of them exist, and ends with every pod created once, every address distinct,
every reservation bound, and `multinic-ipam check` passing. Each prints one `CHAOS {json}` line
with what it measured (pods/s, client latency, refusals seen, recovery times).
"""

from __future__ import annotations

import json
import signal
import time
from typing import Any

import pytest

from tests.fixtures.burst import Burst, BurstResult
from tests.fixtures.replicas import Replicas
from webhook.cluster import objects

pytestmark = [pytest.mark.chaos, pytest.mark.controlplane]

PODS = 500
THREADS = 16
STRIKE_AT = 150
RELEASED = 100  # pods deleted after the Lease changed hands
LEASE_SECONDS = 10  # the Lifecycle's lease duration
PASS_INTERVAL = 2  # seconds between two leader passes
APISERVER_DOWN = 10.0
STOP_GRACE = 5.0  # SIGTERM, then SIGKILL after this long: the API server drains its requests first


def _start(replicas: Replicas, namespace: str, cidr: str) -> tuple[str, Burst]:
    provider = replicas.network(namespace, cidr)
    names = [f"p{i:04d}" for i in range(PODS)]
    burst = Burst(replicas.kubeconfig, namespace, names, threads=THREADS).start()
    burst.wait_created(STRIKE_AT)
    assert burst.created < PODS, "the burst ended before the fault could strike it"
    return provider, burst


def _settled(replicas: Replicas, namespace: str, provider: str, result: BurstResult) -> dict[str, Any]:
    """Assert the end state; return the measurements."""
    assert not result.failed, f"{len(result.failed)} pods never created: {list(result.failed.items())[:3]}"
    listed = json.loads(replicas.plane.kubectl("get", "pods", "-n", namespace, "-o", "json").stdout)["items"]
    key = f"{provider}.kubernetes.io/ip_address"
    addresses = [(pod["metadata"].get("annotations") or {}).get(key, "") for pod in listed]
    assert len(listed) == PODS
    assert all(addresses), "a pod was created without an address"
    twice = len(addresses) - len(set(addresses))
    assert twice == 0, f"{twice} addresses given twice"
    report, settle = replicas.wait_check(timeout=60)
    assert report["ok"], "\n".join(v["message"] for v in report["violations"][:20])

    def unbound() -> list[dict]:
        return [ip for ip in _subnet_ips(replicas, namespace) if not ip["spec"].get("podUID")]

    deadline = time.monotonic() + 30
    while unbound() and time.monotonic() < deadline:
        time.sleep(1)
    assert not unbound(), "reservations whose pods exist were never bound"
    return {**result.summary(), "addresses_twice": twice, "check_passed_after_s": round(settle, 1),
            "ip_objects_checked": report["counts"]["ips"]}


def _subnet_ips(replicas: Replicas, subnet: str) -> list[dict[str, Any]]:
    selector = f"{objects.LABEL_SUBNET}={subnet}"
    found = replicas.plane.kubectl("get", "ips.kubeovn.io", "-l", selector, "-o", "json")
    return json.loads(found.stdout)["items"]


def _report(name: str, measured: dict[str, Any], record_property: Any) -> None:
    record_property("chaos", measured)
    print(f"CHAOS {json.dumps({'scenario': name, **measured})}")


def test_sigkill_one_replica(replicas: Replicas, record_property: Any) -> None:
    leader = replicas.wait_leader()
    victim = next(server for server in replicas.servers if server is not leader)
    provider, burst = _start(replicas, "chaos-replica", "10.210.0.0/22")
    victim.crash()
    restarted = time.monotonic()
    victim.start()
    ready = time.monotonic() - restarted
    measured = _settled(replicas, "chaos-replica", provider, burst.wait())
    replicas.wait_routed()
    _report("sigkill-replica", {**measured, "replica_restart_to_ready_s": round(ready, 1)}, record_property)


def test_sigkill_lease_holder(replicas: Replicas, record_property: Any) -> None:
    leader = replicas.wait_leader()
    survivor = next(server for server in replicas.servers if server is not leader)
    provider, burst = _start(replicas, "chaos-leader", "10.211.0.0/22")
    leader.crash()
    killed = time.monotonic()
    while replicas.replica_of(replicas.lease_holder()) is not survivor:
        assert time.monotonic() - killed < 3 * LEASE_SECONDS, "the surviving replica never took the Lease"
        time.sleep(0.1)
    takeover = time.monotonic() - killed
    assert takeover <= LEASE_SECONDS + 2 * PASS_INTERVAL + 2, f"takeover took {takeover:.1f}s"
    leader.start()
    measured = _settled(replicas, "chaos-leader", provider, burst.wait())
    # The new leader also releases: the addresses of deleted pods are free again within seconds.
    gone = [f"p{i:04d}" for i in range(RELEASED)]
    deleted = time.monotonic()
    replicas.plane.kubectl("delete", "pods", "-n", "chaos-leader", "--wait=false", *gone)
    while len(_subnet_ips(replicas, "chaos-leader")) > PODS - RELEASED:
        assert time.monotonic() - deleted < 60, "the new leader did not release deleted pods' addresses"
        time.sleep(0.5)
    released = time.monotonic() - deleted
    assert replicas.replica_of(replicas.lease_holder()) is survivor
    report, _ = replicas.wait_check(timeout=30)
    assert report["ok"], "\n".join(v["message"] for v in report["violations"][:20])
    replicas.wait_routed()
    _report("sigkill-lease-holder", {**measured, "lease_takeover_s": round(takeover, 1),
                                     f"release_of_{RELEASED}_deleted_pods_s": round(released, 1)},
            record_property)


def test_api_server_stopped_for_ten_seconds(replicas: Replicas, record_property: Any) -> None:
    provider, burst = _start(replicas, "chaos-apiserver", "10.212.0.0/22")
    stopping = replicas.plane.interrupt("kube-apiserver", signal.SIGTERM, grace=STOP_GRACE)
    time.sleep(APISERVER_DOWN)
    back = replicas.plane.resume("kube-apiserver")
    measured = _settled(replicas, "chaos-apiserver", provider, burst.wait())
    replicas.wait_routed()
    _report("apiserver-down-10s", {**measured, "apiserver_stop_s": round(stopping, 1),
                                    "apiserver_ready_after_restart_s": round(back, 1)}, record_property)


def test_etcd_sigkilled_and_restarted(replicas: Replicas, record_property: Any) -> None:
    provider, burst = _start(replicas, "chaos-etcd", "10.213.0.0/22")
    replicas.plane.interrupt("etcd", signal.SIGKILL)
    back = replicas.plane.resume("etcd")
    measured = _settled(replicas, "chaos-etcd", provider, burst.wait())
    replicas.wait_routed()
    _report("sigkill-etcd", {**measured, "etcd_healthy_after_restart_s": round(back, 1)}, record_property)
