"""Prometheus metrics of the webhook server, safe under gunicorn's several worker processes.

With a metrics folder (`Settings.metrics_dir`; `multinic-ipam serve` also exports it as
`PROMETHEUS_MULTIPROC_DIR`, which prometheus_client reads at import), every worker writes its
counters and histograms to files there and `/metrics` sums them across workers; without it (tests,
a single process) the default registry is used.

Address usage is not a counter anyone increments: it is read at scrape time from the allocator
state of the worker that answers (`SubnetUsageCollector`). Every worker's state is built from the
same IP objects, so any one of them answers for the cluster, and no per-process gauge files need
merging.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client import REGISTRY as DEFAULT_REGISTRY
from prometheus_client.core import GaugeMetricFamily, Metric

log = logging.getLogger(__name__)

# One scale for the request path's latencies (a review, one pod's allocation): 0.5 ms to 10 s.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

REVIEWS = Counter(
    "multinic_ipam_admission_reviews_total",
    "Admission reviews answered, by webhook, object kind, operation and result (allowed or denied).",
    ["webhook", "kind", "operation", "result"],
)
REVIEW_SECONDS = Histogram(
    "multinic_ipam_admission_review_seconds",
    "Time to answer one admission review, by webhook.",
    ["webhook"],
    buckets=LATENCY_BUCKETS,
)
BAD_REVIEWS = Counter(
    "multinic_ipam_bad_reviews_total",
    "Request bodies that were not a well-formed AdmissionReview v1 (answered with HTTP 400).",
    ["webhook"],
)
INTERNAL_ERRORS = Counter(
    "multinic_ipam_internal_errors_total",
    "Requests that failed with an unexpected exception (answered with HTTP 500).",
    ["endpoint"],
)
INFORMER_RESTARTS = Counter(
    "multinic_ipam_informer_restarts_total",
    "List/watch restarts by kind and reason: gone (410, relisted) or error (reconnected with backoff).",
    ["kind", "reason"],
)


ALLOCATION_SECONDS = Histogram(
    "multinic_ipam_allocation_seconds",
    "Time to hold the addresses of one pod attachment, IP object creates included, by outcome: "
    "allocated, refused (a sentence for the user) or retry (races lost; the creation may be retried).",
    ["outcome"],
    buckets=LATENCY_BUCKETS,
)
LOCK_CONFLICTS = Counter(
    "multinic_ipam_ip_lock_conflicts_total",
    "IP object creates answered 409: the address was taken meanwhile (another replica or pod won).",
    ["subnet"],
)
ALLOCATION_RETRIES = Counter(
    "multinic_ipam_allocation_retries_total",
    "Further candidates tried for one attachment after a lost race.",
    ["subnet"],
)
RELEASES = Counter(
    "multinic_ipam_releases_total",
    "Addresses released by the leader, by reason: pod_gone, pod_finished, statefulset_shrunk, "
    "never_created (its pod never came to exist within the grace period).",
    ["reason"],
)
GC_PASSES = Counter(
    "multinic_ipam_gc_passes_total",
    "Garbage-collection passes over every IP object, run by the Lease holder.",
)
GC_PASS_SECONDS = Histogram(
    "multinic_ipam_gc_pass_seconds",
    "Time of one garbage-collection pass.",
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0),
)

_RELEASE_REASONS = (
    ("its pod is gone", "pod_gone"),
    ("its pod has", "pod_finished"),
    ("StatefulSet", "statefulset_shrunk"),
    ("its pod never came to exist", "never_created"),
)


Wrapped = TypeVar("Wrapped", bound=Callable[..., Any])


def timed_allocation(reserve: Wrapped) -> Wrapped:
    """Decorates `Store.reserve`: observe its time by outcome (dry runs hold nothing: not counted)."""

    @functools.wraps(reserve)
    def timed(*args: Any, **kwargs: Any) -> Any:
        if kwargs.get("dry_run"):
            return reserve(*args, **kwargs)
        started = time.perf_counter()
        outcome = "refused"
        try:
            held = reserve(*args, **kwargs)
            outcome = "allocated"
            return held
        except Exception as error:
            # The store's TryAgain: races lost or the API server unreachable; retrying may succeed.
            outcome = "retry" if type(error).__name__ == "TryAgain" else "refused"
            raise
        finally:
            ALLOCATION_SECONDS.labels(outcome).observe(time.perf_counter() - started)

    return timed  # type: ignore[return-value]


def timed_gc_pass(reconcile: Wrapped) -> Wrapped:
    """Decorates `Lifecycle.reconcile`: count the pass and observe its time."""

    @functools.wraps(reconcile)
    def timed(*args: Any, **kwargs: Any) -> Any:
        GC_PASSES.inc()
        with GC_PASS_SECONDS.time():
            return reconcile(*args, **kwargs)

    return timed  # type: ignore[return-value]


def release_reason(why: str) -> str:
    """The `reason` label for one of the Lifecycle's release sentences (bounded label values)."""
    return next((label for prefix, label in _RELEASE_REASONS if why.startswith(prefix)), "other")


class SubnetUsageCollector:
    """Used and available addresses per Subnet and family, from a `webhook.cluster.store.Store`
    at scrape time."""

    def __init__(self, store: Any) -> None:
        self.store = store

    def collect(self) -> Iterator[Metric]:
        from allocator.errors import AllocatorError

        labels = ["subnet", "provider", "family"]
        used = GaugeMetricFamily(
            "multinic_ipam_subnet_used_addresses", "Addresses held in the Subnet, per family.", labels=labels
        )
        available = GaugeMetricFamily(
            "multinic_ipam_subnet_available_addresses",
            "Addresses still free in the Subnet (gateway and excludeIps left out), per family.",
            labels=labels,
        )
        for subnet in self.store.subnets():
            name = subnet["metadata"]["name"]
            try:
                state = self.store.state(name)
            except AllocatorError:  # an unusable spec: validation says why, there is no usage
                continue
            usage = state.usage()
            provider = state.spec.provider
            for cidr in state.spec.cidrs:
                family = f"ipv{cidr.version}"
                using, free = (
                    (usage.v4_using, usage.v4_available) if cidr.version == 4
                    else (usage.v6_using, usage.v6_available)
                )
                used.add_metric([name, provider, family], float(using))
                available.add_metric([name, provider, family], float(free))
        yield used
        yield available


def _usage_text(source: Any) -> bytes:
    """Usage from `source` (the app's runtime: `unsynced()` and `store`) once its caches are full."""
    if source is None:
        return b""
    try:
        if source.unsynced():
            return b""  # half-filled caches would report half the usage
        store = source.store
    except Exception:  # no API client (tests) or a store that cannot be built: no usage, no 500
        log.debug("no address usage for /metrics", exc_info=True)
        return b""
    registry = CollectorRegistry()
    registry.register(SubnetUsageCollector(store))
    return generate_latest(registry)


def render(usage_source: Any = None, metrics_dir: str | None = None) -> tuple[bytes, str]:
    """The Prometheus text exposition of all workers' metrics, and its content type.

    `usage_source` (the app's runtime) adds the per-Subnet address gauges; `metrics_dir` is the
    folder the workers share (None: this process's registry).
    """
    if metrics_dir:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=metrics_dir)
        return generate_latest(registry) + _usage_text(usage_source), CONTENT_TYPE_LATEST
    return generate_latest(DEFAULT_REGISTRY) + _usage_text(usage_source), CONTENT_TYPE_LATEST


def worker_exited(pid: int, metrics_dir: str | None) -> None:
    """Forget the live-only samples of a dead worker (gunicorn's `child_exit` hook calls this)."""
    if metrics_dir:
        multiprocess.mark_process_dead(pid, path=metrics_dir)
