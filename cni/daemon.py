"""The node daemon: answers the `kube-ovn` plugin on a unix socket from the pods' annotations.

Pods of this node come from a watch (the webhook's informer with `spec.nodeName=<node>`); a pod the
watch has not delivered yet (just scheduled, or never scheduled as in tests) is read directly.
A pod created before the webhook could annotate it is waited for a bounded time, then refused
with CNI code 11 so that the runtime retries the sandbox later.
"""

from __future__ import annotations

import contextlib
import dataclasses
import http.server
import json
import logging
import os
import queue
import socketserver
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from cni import allocation, errors

log = logging.getLogger("multinic_ipam.node")

DEFAULT_SOCKET = "/run/openvswitch/kube-ovn-daemon.sock"
DEFAULT_WAIT_SECONDS = 10.0
MAX_CALLS = 256  # CNI calls answered at once (each may wait for annotations); more wait their turn
POLL_SECONDS = 0.5
Pod = dict[str, Any]


class PodSource(Protocol):
    """Where pods come from: a cache that may lag, and an authoritative (slower) read."""

    def cached(self, namespace: str, name: str) -> Pod | None: ...

    def read(self, namespace: str, name: str) -> Pod | None:
        """The pod from the API server; None when it does not exist; raises when unreachable."""

    def wait_for_change(self, timeout: float) -> None:
        """Return when the cache changed or after `timeout` seconds."""


class DaemonError(Exception):
    """A refusal with its CNI code, sent to the plugin as `{"code", "msg", "details"}`."""

    def __init__(self, code: int, msg: str, details: str = "") -> None:
        super().__init__(msg)
        self.code, self.msg, self.details = code, msg, details


@dataclasses.dataclass
class Responder:
    """Turns an allocation request into the daemon's answer, waiting for annotations if need be."""

    pods: PodSource
    wait_seconds: float = DEFAULT_WAIT_SECONDS
    clock: Callable[[], float] = time.monotonic

    def answer(self, body: Mapping[str, Any]) -> dict[str, Any]:
        request, uid = parse_request(body)
        deadline = self.clock() + self.wait_seconds
        reason = ""
        while True:
            pod, reason = self._lookup(request, uid, reason)
            if pod is not None:
                try:
                    return allocation.answer(pod, request)
                except allocation.UnusableAnnotationError as exc:
                    raise DaemonError(errors.INVALID_CONFIG, str(exc)) from None
                except allocation.NotAnnotatedError as exc:
                    reason = str(exc)
            remaining = deadline - self.clock()
            if remaining <= 0:
                raise DaemonError(errors.TRY_AGAIN_LATER, reason,
                                  details=f"waited {self.wait_seconds:g} s")
            self.pods.wait_for_change(min(POLL_SECONDS, remaining))

    def _lookup(self, request: allocation.Request, uid: str, reason: str) -> tuple[Pod | None, str]:
        """The pod if it is usable now, else None with why; the cache first, then a direct read."""
        pod = self.pods.cached(request.namespace, request.name)
        if pod is not None and _matches(pod, uid) and _annotated(pod, request):
            return pod, reason
        try:
            pod = self.pods.read(request.namespace, request.name)
        except Exception as exc:  # API server restarting: keep trying until the deadline
            return None, f"pod {request.pod}: the API server is unreachable ({exc.__class__.__name__})"
        if pod is None:
            raise DaemonError(errors.TRY_AGAIN_LATER, f"pod {request.pod} does not exist")
        if not _matches(pod, uid):
            actual = (pod.get("metadata") or {}).get("uid")
            raise DaemonError(errors.TRY_AGAIN_LATER,
                              f"pod {request.pod} has UID {actual}, not {uid}; the pod was recreated")
        return pod, reason


def parse_request(body: Mapping[str, Any]) -> tuple[allocation.Request, str]:
    """Validated request fields; a bad request is the plugin's bug or a stray client (code 7)."""
    values = {}
    for field in ("namespace", "name", "provider"):
        value = body.get(field)
        if not isinstance(value, str) or not value:
            raise DaemonError(errors.INVALID_CONFIG,
                              f"allocation request field {field} is {value!r}; it must be a non-empty string")
        values[field] = value
    ifname = body.get("ifname") or "net1"
    routes = body.get("nad_routes") or []
    uid = body.get("pod_uid") or ""
    if not isinstance(ifname, str) or not isinstance(routes, list) or not isinstance(uid, str):
        raise DaemonError(errors.INVALID_CONFIG,
                          "allocation request fields ifname, pod_uid must be strings and nad_routes a list")
    return allocation.Request(ifname=ifname, nad_routes=tuple(routes), **values), uid


def _matches(pod: Pod, uid: str) -> bool:
    return not uid or (pod.get("metadata") or {}).get("uid") in (None, "", uid)


def _annotated(pod: Pod, request: allocation.Request) -> bool:
    """Has the webhook written this attachment's allocation (keyed `<provider>.<ifname>` too)?"""
    notes = (pod.get("metadata") or {}).get("annotations") or {}
    return "true" in (notes.get(f"{request.provider}.kubernetes.io/allocated"),
                      notes.get(f"{request.provider}.{request.ifname}.kubernetes.io/allocated"))


_Call = tuple[Callable[..., None], tuple[Any, ...]]


class CallThreads:
    """Daemon threads taking calls from a queue; a new one starts only while none is idle, up to
    `limit`. Daemon threads as `ThreadingMixIn.daemon_threads`: a call still waiting for a client
    or for annotations never holds up the daemon's exit (a `ThreadPoolExecutor` would join it)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._calls: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        self._idle = threading.Semaphore(0)
        self._lock = threading.Lock()
        self._threads = 0

    def submit(self, call: Callable[..., None], *args: Any) -> None:
        self._calls.put((call, args))
        if self._idle.acquire(blocking=False):
            return  # an idle thread takes it
        with self._lock:
            if self._threads < self.limit:
                self._threads += 1
                threading.Thread(target=self._work, name="node-daemon-call", daemon=True).start()

    def stop(self) -> None:
        """Let every thread end once it is done with its current call."""
        with self._lock:
            for _ in range(self._threads):
                self._calls.put(None)
            self._threads = 0

    def _work(self) -> None:
        while (item := self._calls.get()) is not None:
            call, args = item
            call(*args)
            self._idle.release()


class UnixHTTPServer(socketserver.UnixStreamServer):
    """HTTP over AF_UNIX, each CNI call on a thread of its own from a pool (up to `MAX_CALLS` at
    once), so a call waiting for annotations never holds up another. Pooled, not a new thread per
    connection as `ThreadingMixIn` does: starting a thread was half of a call's time in the daemon."""

    # socketserver's default backlog is 5: a sixth simultaneous CNI call would get EAGAIN from
    # connect() on a unix socket (no retransmission as with TCP) while accept() catches up.
    request_queue_size = 256

    def __init__(self, path: str, responder: Responder) -> None:
        self.responder = responder
        self.calls = CallThreads(MAX_CALLS)
        parent = os.path.dirname(path)
        if parent:
            os.makedirs(parent, exist_ok=True)
        if os.path.exists(path):
            os.unlink(path)  # a socket left by a previous run
        old_umask = os.umask(0o177)  # the socket is born 0600: only root may ask for addresses
        try:
            super().__init__(path, Handler)
        finally:
            os.umask(old_umask)
        os.chmod(path, 0o600)

    def process_request(self, request: Any, client_address: Any) -> None:
        self.calls.submit(self._answer_call, request, client_address)

    def _answer_call(self, request: Any, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)

    def server_close(self) -> None:
        super().server_close()
        self.calls.stop()
        with contextlib.suppress(OSError):
            os.unlink(self.server_address)


class Handler(http.server.BaseHTTPRequestHandler):
    """`POST /v1/allocation`, `GET /v1/healthz`; one log line per call."""

    server: UnixHTTPServer
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        if self.path == "/v1/healthz":
            self._send(200, {"ok": True})
        else:
            self._send(404, {"code": errors.OTHER, "msg": f"no such path {self.path}; use /v1/healthz"})

    def do_POST(self) -> None:
        started = time.perf_counter()
        if self.path != "/v1/allocation":
            self._send(404, {"code": errors.OTHER, "msg": f"no such path {self.path}; use /v1/allocation"})
            return
        body: Any = {}
        try:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
            if not isinstance(body, dict):
                raise DaemonError(errors.DECODE_FAILURE, "the allocation request must be a JSON object")
            answer = self.server.responder.answer(body)
        except DaemonError as exc:
            status = 503 if exc.code == errors.TRY_AGAIN_LATER else 400
            self._send(status, {"code": exc.code, "msg": exc.msg, "details": exc.details})
            log.info("allocation %s/%s %s %s failed in %.1f ms: code %d: %s", body.get("namespace"),
                     body.get("name"), body.get("provider"), body.get("ifname"),
                     (time.perf_counter() - started) * 1000, exc.code, exc.msg)
            return
        except ValueError as exc:
            self._send(400, {"code": errors.DECODE_FAILURE,
                             "msg": f"the allocation request is not JSON: {exc}"})
            return
        except Exception as exc:
            log.exception("allocation %r failed", body)
            self._send(500, {"code": errors.OTHER, "msg": f"the node daemon failed: {exc!r}"})
            return
        self._send(200, answer)
        log.info("allocation %s/%s %s %s -> %s in %.1f ms", body["namespace"], body["name"], body["provider"],
                 body.get("ifname"), ",".join(ip["address"] for ip in answer["ips"]),
                 (time.perf_counter() - started) * 1000)

    def _send(self, status: int, payload: Mapping[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def address_string(self) -> str:
        return "unix"  # client_address is empty for AF_UNIX peers

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)
