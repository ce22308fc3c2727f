"""The webhook server's Flask app: `/validate`, `/mutate`, `/healthz`, `/readyz`, `/metrics`.

`create_app(settings)` builds one app with one blueprint. Its `Runtime` (in
`app.extensions["multinic_ipam"]`) owns what the routes share: the object cache, the read-only
`ClusterView`, the cluster access (`connection.connect`), the `Store` used by mutation, the
informers that fill the cache and the Lease-elected `Lifecycle`. Under gunicorn every worker
process calls `worker_app()` after the fork, so each worker has its own cache and informers.

Tests hand in their doubles as keyword arguments: `cache`, `api_client`, `store`.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify, request
from flask.json.provider import JSONProvider
from werkzeug.exceptions import HTTPException

from webhook import codec, metrics, mutate, validate
from webhook.admission import reviews
from webhook.cluster.cache import ObjectCache
from webhook.cluster.connection import connect
from webhook.cluster.kubeconfig import SERVICE_ACCOUNT_DIR
from webhook.cluster.view import ClusterView
from webhook.settings import Settings, inherited

log = logging.getLogger(__name__)

EXTENSION = "multinic_ipam"
MAX_BODY_BYTES = 16 * 1024 * 1024  # an object is at most ~1.5 MiB; a review carries two

bp = Blueprint("webhook", __name__)


def create_app(
    settings: Settings, *, cache: ObjectCache | None = None, api_client: Any = None, store: Any = None
) -> Flask:
    """The app for `settings`; `cache`, `api_client` and `store` replace what it would build."""
    app = Flask(__name__)
    app.json = _FastJSON(app)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    runtime = Runtime(settings, cache=cache, api_client=api_client, store=store)
    app.extensions[EXTENSION] = runtime
    app.register_blueprint(bp)
    app.register_error_handler(reviews.BadReview, _bad_review)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected)
    runtime.start(informers=settings.start_informers, lifecycle=settings.start_lifecycle)
    return app


class _FastJSON(JSONProvider):
    """Flask's `jsonify` through `webhook.codec`: every answer is compact JSON and a newline."""

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        return codec.dumps_text(obj)

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return codec.loads(s)

    def response(self, *args: Any, **kwargs: Any) -> Response:
        body = codec.dumps(self._prepare_response_obj(args, kwargs)) + b"\n"  # as Flask's own
        return self._app.response_class(body, mimetype="application/json")


def worker_app() -> Flask:
    """gunicorn's app in each worker: the settings `serve` handed down."""
    return create_app(inherited())


def runtime_of(app: Flask) -> Runtime:
    return app.extensions[EXTENSION]


class Runtime:
    """Per-process state shared by the routes; built once per app (one per gunicorn worker)."""

    def __init__(
        self, settings: Settings, *, cache: ObjectCache | None, api_client: Any, store: Any
    ) -> None:
        self.settings = settings
        self.kubeconfig = settings.kubeconfig
        self.identity: str = settings.identity or f"{socket.gethostname()}-{os.getpid()}"
        if cache is None:
            from webhook.cluster.informers import server_cache

            cache = server_cache()
        self.cache: ObjectCache = cache
        self.view = ClusterView(self.cache)
        self.system_users = _system_users(settings.system_users, in_cluster=self.kubeconfig is None)
        self._api_client: Any = api_client
        self._store: Any = store
        self._lock = threading.Lock()
        self.informers: Any = None
        self.lifecycle: Any = None
        self._stopping = threading.Event()
        self._warm: threading.Event | None = None  # set once the Store is built after the first sync

    @property
    def api_client(self) -> Any:
        with self._lock:
            if self._api_client is None:
                self._api_client = connect(self.kubeconfig)
            return self._api_client

    @property
    def store(self) -> Any:
        """The mutation `Store` over this cache, built on first use (it indexes the cache)."""
        if self._store is None:
            from webhook.cluster.store import Store

            client = self.api_client
            with self._lock:
                if self._store is None:
                    self._store = Store(
                        cache=self.cache, api_client=client, grace=self.settings.reservation_grace
                    )
        return self._store

    @property
    def built_store(self) -> Any:
        """The `Store` once built, else None: validation's live reads must not connect on their own."""
        return self._store

    def start(self, *, informers: bool, lifecycle: bool) -> None:
        if informers:
            from webhook.cluster.informers import Informers

            self.informers = Informers(self.cache, self.api_client)
            self.informers.start()
            self._warm = threading.Event()
        if informers or lifecycle:
            threading.Thread(
                target=self._after_sync, args=(lifecycle,), name="after-sync", daemon=True
            ).start()

    def _after_sync(self, lifecycle: bool) -> None:
        """Once the caches are filled: index them into the Store, then start the Lifecycle.

        Building the Store here keeps its indexing off the first /mutate request's clock (/readyz
        waits for it). The Lifecycle releases addresses whose pods are gone: it must never judge
        from a cache that is still filling.
        """
        while self.informers is not None and not self.informers.wait_synced(1.0):
            if self._stopping.is_set():
                return
        try:
            self._start_after_sync(lifecycle)
        except Exception:  # a broken Store or Lifecycle must not go unnoticed, nor kill serving
            log.exception("starting the store or the lifecycle failed")
        finally:
            if self._warm is not None:
                self._warm.set()

    def _start_after_sync(self, lifecycle: bool) -> None:
        store = self.store
        if not lifecycle:
            return
        from webhook.leader.lifecycle import Lifecycle

        with self._lock:
            if self._stopping.is_set():
                return
            self.lifecycle = Lifecycle(
                store=store, identity=self.identity, namespace=self.settings.lease_namespace
            )
            self.lifecycle.start()  # under the lock: stop() either sees it running or prevents it

    def unsynced(self) -> list[str]:
        """Kinds whose cache is not filled yet, and "store" until it has indexed them."""
        if self.informers is None:
            return []
        kinds = self.informers.unsynced_kinds()
        if self._warm is not None and not self._warm.is_set():
            kinds.append("store")
        return kinds

    def stop(self) -> None:
        """Stop the Lifecycle (hand its Lease over) and the informers; gunicorn's worker_exit."""
        with self._lock:
            self._stopping.set()
        if self.lifecycle is not None:
            self.lifecycle.stop()
        if self.informers is not None:
            self.informers.stop()


def _system_users(configured: Iterable[str], *, in_cluster: bool) -> frozenset[str]:
    """Configured usernames, plus our own service account's when running in a pod."""
    users = set(configured)
    if in_cluster:
        own = _service_account_user(SERVICE_ACCOUNT_DIR / "token")
        if own:
            users.add(own)
    return frozenset(users)


def _service_account_user(token_file: Path) -> str | None:
    """`system:serviceaccount:<ns>:<name>` from the `sub` claim of the mounted token, if readable."""
    try:
        payload = token_file.read_text().split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (OSError, IndexError, ValueError):
        return None
    subject = claims.get("sub") if isinstance(claims, dict) else None
    return subject if isinstance(subject, str) else None


# ---- routes ------------------------------------------------------------------------------------


@bp.post("/validate")
def validate_route() -> tuple[Response, int]:
    return _answer("validate", _validate)


@bp.post("/mutate")
def mutate_route() -> tuple[Response, int]:
    return _answer("mutate", _mutate)


@bp.get("/healthz")
def healthz() -> tuple[Response, int]:
    return jsonify({"status": "ok"}), 200


@bp.get("/readyz")
def readyz() -> tuple[Response, int]:
    unsynced = runtime_of(current_app).unsynced()
    if unsynced:
        message = f"caches not synced yet: {', '.join(unsynced)}"
        return jsonify({"ready": False, "unsynced": unsynced, "message": message}), 503
    return jsonify({"ready": True}), 200


@bp.get("/metrics")
def metrics_route() -> Response:
    runtime = runtime_of(current_app)
    body, content_type = metrics.render(usage_source=runtime, metrics_dir=runtime.settings.metrics_dir)
    return Response(body, content_type=content_type)


def _validate(admission: reviews.AdmissionRequest, runtime: Runtime) -> reviews.Verdict:
    return validate.review(
        admission, view=runtime.view, system_users=runtime.system_users, live=runtime.built_store
    )


def _mutate(admission: reviews.AdmissionRequest, runtime: Runtime) -> reviews.Verdict:
    return mutate.review(admission, store=runtime.store)


def _answer(
    webhook: str, decide: Callable[[reviews.AdmissionRequest, Runtime], reviews.Verdict]
) -> tuple[Response, int]:
    """Parse the review, decide, log one line, count it, and answer with the AdmissionReview."""
    started, cpu_started = time.perf_counter(), time.thread_time()
    try:
        body = codec.loads(request.get_data(cache=False))
    except ValueError as error:  # also UnicodeDecodeError
        raise reviews.BadReview(
            f"body is not valid JSON ({error}); send an AdmissionReview v1 object"
        ) from error
    admission = reviews.parse_review(body)
    verdict = decide(admission, runtime_of(current_app))
    elapsed = time.perf_counter() - started
    about = reviews.describe(admission)
    result = "allowed" if verdict.allowed else "denied"
    metrics.REVIEWS.labels(webhook, about["kind"], about["operation"], result).inc()
    metrics.REVIEW_SECONDS.labels(webhook).observe(elapsed)
    fields = {
        "webhook": webhook, **about, "uid": admission["uid"], "allowed": verdict.allowed,
        "denial": verdict.message, "warnings": list(verdict.warnings),
        "duration_ms": round(elapsed * 1e3, 2), "dry_run": bool(admission.get("dryRun")),
        "cpu_ms": round((time.thread_time() - cpu_started) * 1e3, 3),  # this thread's, the review's own
    }
    text = f"{webhook} {about['kind']} {about['object']} {about['operation']}: {result}"
    if verdict.message:
        text += f": {verdict.message}"
    given = reviews.allocation_summary(verdict.patch)
    if given:
        text += f": {given}"
        fields["allocated"] = given
    if verdict.warnings:
        text += f" (warnings: {'; '.join(verdict.warnings)})"
    log.info("%s (%.1f ms)", text, elapsed * 1e3, extra={"fields": fields})
    return jsonify(reviews.response_for(admission["uid"], verdict)), 200


# ---- errors: always JSON, never an HTML page or a stack trace ----------------------------------


def _bad_review(error: reviews.BadReview) -> tuple[Response, int]:
    webhook = (request.path or "/").strip("/") or "?"
    metrics.BAD_REVIEWS.labels(webhook).inc()
    log.info("bad review on %s: %s", request.path, error, extra={"fields": {"bad_review": str(error)}})
    return jsonify({"error": str(error)}), error.status


def _http_error(error: HTTPException) -> tuple[Response, int]:
    code = error.code or 500
    return jsonify({"error": error.description or error.name}), code


def _unexpected(error: Exception) -> tuple[Response, int]:
    metrics.INTERNAL_ERRORS.labels(request.path).inc()
    log.exception("internal error on %s %s", request.method, request.path)
    message = f"internal error in the webhook ({type(error).__name__}); the server log has the details"
    return jsonify({"error": message}), 500
