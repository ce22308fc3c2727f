"""/metrics: what each counter counts, the usage gauges, and summing across gunicorn workers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY

from tests.fakes import FakeApi
from tests.unit.webhook.world import World, subnet
from webhook import metrics
from webhook.cluster import objects
from webhook.cluster.cache import ObjectCache
from webhook.cluster.claims import Claim, PodIdentity, TryAgain
from webhook.cluster.store import Store
from webhook.leader.lifecycle import Lifecycle

MACVLAN = Claim(subnet="macvlan", provider="macvlan.default", interface="net1")


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def allocations(outcome: str) -> float:
    return sample("multinic_ipam_allocation_seconds_count", outcome=outcome)


# -- the decorators and the reason labels ------------------------------------------------------------


def test_timed_allocation_observes_each_outcome_but_not_dry_runs() -> None:
    class RefusedError(Exception):
        pass

    @metrics.timed_allocation
    def reserve(*, fail: type[Exception] | None = None, dry_run: bool = False) -> str:
        if fail is not None:
            raise fail("no")
        return "held"

    before = {o: allocations(o) for o in ("allocated", "refused", "retry")}
    assert reserve() == "held"
    with pytest.raises(RefusedError):
        reserve(fail=RefusedError)
    with pytest.raises(TryAgain):
        reserve(fail=TryAgain)
    reserve(dry_run=True)
    assert {o: allocations(o) - before[o] for o in before} == {"allocated": 1, "refused": 1, "retry": 1}


@pytest.mark.parametrize(
    ("why", "label"),
    [
        ("its pod is gone", "pod_gone"),
        ("its pod has succeeded for good", "pod_finished"),
        ("its pod has failed for good", "pod_finished"),
        ("StatefulSet default/web no longer has a pod web-2", "statefulset_shrunk"),
        ("its pod never came to exist", "never_created"),
        ("something new", "other"),
    ],
)
def test_release_reasons_are_a_bounded_label(why: str, label: str) -> None:
    assert metrics.release_reason(why) == label


# -- wired into the store and the lifecycle ---------------------------------------------------------


def test_a_lost_race_counts_a_conflict_and_a_retry() -> None:
    api = FakeApi(deferred=True)
    world = World(api).guide()
    other = World(api)  # a second replica: its create reaches the first one only through the watch
    conflicts = sample("multinic_ipam_ip_lock_conflicts_total", subnet="macvlan")
    retries = sample("multinic_ipam_allocation_retries_total", subnet="macvlan")
    allocated = allocations("allocated")
    other.store.reserve(PodIdentity("default", "elsewhere"), MACVLAN)
    world.store.reserve(PodIdentity("default", "here"), MACVLAN)
    assert sample("multinic_ipam_ip_lock_conflicts_total", subnet="macvlan") == conflicts + 1
    assert sample("multinic_ipam_allocation_retries_total", subnet="macvlan") == retries + 1
    assert allocations("allocated") == allocated + 2


def test_a_refused_allocation_is_timed_as_refused() -> None:
    world = World().guide()
    fixed = Claim(**{**MACVLAN.__dict__, "fixed": ("172.17.0.100",)})
    world.store.reserve(PodIdentity("default", "static-ip"), fixed)
    refused = allocations("refused")
    with pytest.raises(Exception, match=r"172\.17\.0\.100"):
        world.store.reserve(PodIdentity("default", "second"), fixed)
    assert allocations("refused") == refused + 1


def test_gc_passes_and_releases_are_counted_by_reason() -> None:
    world = World().guide()
    world.store.reserve(PodIdentity("default", "gone"), MACVLAN)
    [ip] = world.store.ip_objects("macvlan")
    world.api.patch_ip(ip["metadata"]["name"], {"spec": {"podUID": "uid-of-a-pod-that-is-gone"}})
    lifecycle = Lifecycle(store=world.store, identity="test", grace=0)
    passes = sample("multinic_ipam_gc_passes_total")
    gone = sample("multinic_ipam_releases_total", reason="pod_gone")
    lifecycle.reconcile()
    assert sample("multinic_ipam_gc_passes_total") == passes + 1
    assert sample("multinic_ipam_releases_total", reason="pod_gone") == gone + 1
    assert sample("multinic_ipam_gc_pass_seconds_count") >= 1


# -- usage gauges -------------------------------------------------------------------------------------


def _usage_store() -> Store:
    cache = ObjectCache()
    store = Store(cache, api=FakeApi())
    cache.put(objects.SUBNETS, subnet("dual", "10.1.0.0/24,fd00:1::/120", provider="ovn",
                                      gateway="10.1.0.1,fd00:1::1", protocol="Dual"))
    cache.put(objects.SUBNETS, subnet("broken", "10.2.0.1/24"))  # host bits set: unusable, left out
    for address in ("10.1.0.2", "10.1.0.3", "fd00:1::2"):
        version = 6 if ":" in address else 4
        cache.put(objects.IPS, {
            "apiVersion": objects.API_VERSION, "kind": "IP",
            "metadata": {"name": objects.ip_object_name("dual", address)},
            "spec": {"subnet": "dual", "provider": "ovn", "ipAddress": address,
                     f"v{version}IPAddress": address, "namespace": "default", "podName": f"p-{address}",
                     "interface": "eth0"},
        })
    return store


class Source:
    def __init__(self, store: Any, unsynced: list[str] | None = None) -> None:
        self.store = store
        self._unsynced = unsynced or []

    def unsynced(self) -> list[str]:
        return self._unsynced


def test_usage_gauges_per_subnet_and_family() -> None:
    text = metrics.render(usage_source=Source(_usage_store()))[0].decode()
    # /24: 254 usable minus the gateway = 253, two held; /120: 254 usable minus the gateway, one held.
    labels = 'provider="ovn",subnet="dual"'
    assert f'multinic_ipam_subnet_used_addresses{{family="ipv4",{labels}}} 2.0' in text
    assert f'multinic_ipam_subnet_available_addresses{{family="ipv4",{labels}}} 251.0' in text
    assert f'multinic_ipam_subnet_used_addresses{{family="ipv6",{labels}}} 1.0' in text
    assert f'multinic_ipam_subnet_available_addresses{{family="ipv6",{labels}}} 252.0' in text
    assert 'subnet="broken"' not in text
    assert "multinic_ipam_admission_reviews_total" in text  # the rest is still there


def test_no_usage_before_the_caches_are_filled_or_without_a_store() -> None:
    text = metrics.render(usage_source=Source(_usage_store(), unsynced=["ips"]))[0].decode()
    assert "multinic_ipam_subnet_used_addresses{" not in text

    class NoStore:
        def unsynced(self) -> list[str]:
            return []

        @property
        def store(self) -> Any:
            raise RuntimeError("no API client in this test")

    body, content_type = metrics.render(usage_source=NoStore())
    assert content_type.startswith("text/plain") and b"multinic_ipam_subnet_used_addresses{" not in body


# -- several worker processes ---------------------------------------------------------------------------


def test_counters_of_several_worker_processes_are_summed(tmp_path: Path) -> None:
    env = {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    worker = ("from webhook import metrics; metrics.LOCK_CONFLICTS.labels('s').inc({n}); "
              "metrics.RELEASES.labels('pod_gone').inc()")
    for n in (2, 3):
        subprocess.run([sys.executable, "-c", worker.format(n=n)], env=env, check=True, timeout=60)
    render = f"from webhook import metrics; print(metrics.render(metrics_dir={str(tmp_path)!r})[0].decode())"
    scrape = subprocess.run([sys.executable, "-c", render], env=env, check=True, timeout=60,
                            capture_output=True, text=True).stdout
    assert 'multinic_ipam_ip_lock_conflicts_total{subnet="s"} 5.0' in scrape
    assert 'multinic_ipam_releases_total{reason="pod_gone"} 2.0' in scrape
