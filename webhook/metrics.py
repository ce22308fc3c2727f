"""Prometheus metrics of the webhook server, safe under gunicorn's several worker processes.

With `PROMETHEUS_MULTIPROC_DIR` set (`multinic-ipam serve` sets it before gunicorn starts), every
worker writes its samples to files there and `/metrics` sums them across workers; without it (tests,
a single process) the default registry is used.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client import REGISTRY as DEFAULT_REGISTRY

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

REVIEWS = Counter(
    "multinic_ipam_admission_reviews_total",
    "Admission reviews answered, by webhook, object kind, operation and result (allowed or denied).",
    ["webhook", "kind", "operation", "result"],
)
REVIEW_SECONDS = Histogram(
    "multinic_ipam_admission_review_seconds",
    "Time to answer one admission review, by webhook.",
    ["webhook"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
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


def render() -> tuple[bytes, str]:
    """The Prometheus text exposition of all workers' metrics, and its content type."""
    if os.environ.get(MULTIPROC_ENV):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(DEFAULT_REGISTRY), CONTENT_TYPE_LATEST


def worker_exited(pid: int) -> None:
    """Forget the live-only samples of a dead worker (gunicorn's `child_exit` hook calls this)."""
    if os.environ.get(MULTIPROC_ENV):
        multiprocess.mark_process_dead(pid)
