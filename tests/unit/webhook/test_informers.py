"""Informers against a small fake API server: list, watch, 410 relist, reconnect, absent CRDs, stop."""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from kubernetes import client

from webhook import informers, objects
from webhook.cache import ObjectCache

SUBNETS_PATH = "/apis/kubeovn.io/v1/subnets"
PODS_PATH = "/api/v1/pods"


class FakeApi:
    """Just enough of kube-apiserver's list/watch protocol for one or more collection paths."""

    def __init__(self, paths: list[str]) -> None:
        self.lock = threading.Lock()
        self.version = 100
        self.objects: dict[str, dict[str, dict[str, Any]]] = {path: {} for path in paths}
        self.watchers: dict[str, list[queue.Queue[dict[str, Any] | None]]] = {path: [] for path in paths}
        self.failures = 0  # answer this many next requests with 500
        self.gone_watches = 0  # answer this many next watches with HTTP 410
        self.requests: list[tuple[str, dict[str, list[str]]]] = []
        self.page_size: int | None = None
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                fake.handle(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def host(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        with self.lock:
            for watches in self.watchers.values():
                for q in watches:
                    q.put(None)
        self.server.shutdown()
        self.server.server_close()

    # --- changes, as the tests make them ---
    def put(self, path: str, name: str, spec: dict[str, Any] | None = None, namespace: str = "") -> None:
        with self.lock:
            self.version += 1
            meta: dict[str, Any] = {"name": name, "resourceVersion": str(self.version)}
            if namespace:
                meta["namespace"] = namespace
            obj = {"metadata": meta, "spec": spec or {}}
            event = "MODIFIED" if name in self.objects[path] else "ADDED"
            self.objects[path][name] = obj
            self._send(path, {"type": event, "object": {"kind": "X", **obj}})

    def remove(self, path: str, name: str) -> None:
        with self.lock:
            self.version += 1
            obj = self.objects[path].pop(name)
            self._send(path, {"type": "DELETED", "object": obj})

    def expire_watches(self, path: str) -> None:
        """The watch history is compacted: open watches get an ERROR 410 event."""
        with self.lock:
            status = {"kind": "Status", "code": 410, "message": "too old resource version"}
            self._send(path, {"type": "ERROR", "object": status})

    def drop_watches(self, path: str) -> None:
        with self.lock:
            for q in self.watchers[path]:
                q.put(None)

    def quietly_put(self, path: str, name: str) -> None:
        """A change no open watch sees (as if made while the watch was down and then compacted)."""
        with self.lock:
            self.version += 1
            self.objects[path][name] = {"metadata": {"name": name, "resourceVersion": str(self.version)}}

    def quietly_remove(self, path: str, name: str) -> None:
        with self.lock:
            self.version += 1
            del self.objects[path][name]

    def _send(self, path: str, event: dict[str, Any]) -> None:
        for q in self.watchers[path]:
            q.put(event)

    def watch_count(self, path: str) -> int:
        with self.lock:
            return len(self.watchers[path])

    # --- the server side ---
    def handle(self, request: BaseHTTPRequestHandler) -> None:
        url = urlparse(request.path)
        query = parse_qs(url.query)
        with self.lock:
            self.requests.append((url.path, query))
            if self.failures:
                self.failures -= 1
                return self._reply(request, 500, {"kind": "Status", "code": 500, "message": "etcd down"})
            if url.path not in self.objects:
                return self._reply(request, 404, {"kind": "Status", "code": 404, "message": "not found"})
            if query.get("watch") == ["true"]:
                if self.gone_watches:
                    self.gone_watches -= 1
                    return self._reply(request, 410, {"kind": "Status", "code": 410, "message": "gone"})
                events: queue.Queue[dict[str, Any] | None] = queue.Queue()
                self.watchers[url.path].append(events)
            else:
                return self._reply(request, 200, self._list(url.path, query))
        try:
            self._stream(request, events)
        finally:
            with self.lock:
                self.watchers[url.path].remove(events)

    def _list(self, path: str, query: dict[str, list[str]]) -> dict[str, Any]:
        items = sorted(self.objects[path].values(), key=lambda o: o["metadata"]["name"])
        start = int(query.get("continue", ["0"])[0])
        size = self.page_size or len(items) or 1
        page, rest = items[start:start + size], items[start + size:]
        meta = {"resourceVersion": str(self.version), "continue": str(start + size) if rest else ""}
        return {"kind": "XList", "apiVersion": "v1", "metadata": meta, "items": page}

    def _reply(self, request: BaseHTTPRequestHandler, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        request.send_response(status)
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(data)))
        request.end_headers()
        request.wfile.write(data)

    def _stream(self, request: BaseHTTPRequestHandler, events: queue.Queue[dict[str, Any] | None]) -> None:
        request.send_response(200)
        request.send_header("Content-Type", "application/json")
        request.send_header("Transfer-Encoding", "chunked")
        request.end_headers()
        request.wfile.flush()
        try:
            while (event := events.get()) is not None:
                line = json.dumps(event).encode() + b"\n"
                request.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
                request.wfile.flush()
            request.wfile.write(b"0\r\n\r\n")
            request.wfile.flush()
        except OSError:
            pass
        request.close_connection = True


@pytest.fixture
def fake() -> Iterator[FakeApi]:
    api = FakeApi([SUBNETS_PATH, PODS_PATH])
    yield api
    api.close()


@pytest.fixture
def make_informers(fake: FakeApi) -> Iterator[Callable[..., informers.Informers]]:
    started: list[informers.Informers] = []

    def make(cache: ObjectCache, kinds: tuple[str, ...] = (objects.SUBNETS,)) -> informers.Informers:
        configuration = client.Configuration()
        configuration.host = fake.host
        result = informers.Informers(cache, client.ApiClient(configuration), kinds, backoff=(0.05, 0.2))
        result.start()
        started.append(result)
        return result

    yield make
    for result in started:
        result.stop()


def eventually(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


def names(cache: ObjectCache, kind: str = objects.SUBNETS) -> set[str]:
    return {o["metadata"]["name"] for o in cache.list(kind)}


def test_list_fills_the_cache_and_reports_synced(fake: FakeApi, make_informers: Callable[..., Any]) -> None:
    fake.put(SUBNETS_PATH, "macvlan", {"cidrBlock": "172.17.0.0/16"})
    fake.put(PODS_PATH, "web", namespace="default")
    cache = ObjectCache()

    inf = make_informers(cache, (objects.SUBNETS, objects.PODS))

    assert inf.wait_synced(5)
    assert inf.synced and inf.unsynced_kinds() == []
    subnet = cache.get(objects.SUBNETS, "macvlan")
    assert subnet is not None and subnet["spec"] == {"cidrBlock": "172.17.0.0/16"}
    # List items lack kind/apiVersion on the wire; the informer restores them like watch events have.
    assert subnet["kind"] == "Subnet" and subnet["apiVersion"] == "kubeovn.io/v1"
    pod = cache.get(objects.PODS, "web", "default")
    assert pod is not None and pod["kind"] == "Pod"


def test_paged_lists_are_followed(fake: FakeApi, make_informers: Callable[..., Any]) -> None:
    fake.page_size = 2
    for i in range(5):
        fake.put(SUBNETS_PATH, f"s{i}")
    cache = ObjectCache()
    assert make_informers(cache).wait_synced(5)
    assert names(cache) == {f"s{i}" for i in range(5)}


def test_watch_applies_adds_updates_and_deletes(fake: FakeApi, make_informers: Callable[..., Any]) -> None:
    cache = ObjectCache()
    assert make_informers(cache).wait_synced(5)
    eventually(lambda: fake.watch_count(SUBNETS_PATH) == 1)

    fake.put(SUBNETS_PATH, "a", {"v": 1})
    eventually(lambda: names(cache) == {"a"})
    fake.put(SUBNETS_PATH, "a", {"v": 2})
    eventually(lambda: (cache.get(objects.SUBNETS, "a") or {}).get("spec") == {"v": 2})
    fake.remove(SUBNETS_PATH, "a")
    eventually(lambda: names(cache) == set())


def test_watch_resumes_from_the_last_version(fake: FakeApi, make_informers: Callable[..., Any]) -> None:
    cache = ObjectCache()
    assert make_informers(cache).wait_synced(5)
    eventually(lambda: fake.watch_count(SUBNETS_PATH) == 1)
    fake.put(SUBNETS_PATH, "a")
    eventually(lambda: names(cache) == {"a"})
    version_of_a = fake.objects[SUBNETS_PATH]["a"]["metadata"]["resourceVersion"]

    def watches() -> list[dict[str, list[str]]]:
        return [q for path, q in fake.requests if path == SUBNETS_PATH and q.get("watch") == ["true"]]

    fake.drop_watches(SUBNETS_PATH)  # the server ends the watch (timeoutSeconds)
    eventually(lambda: len(watches()) == 2)

    lists = [q for path, q in fake.requests if path == SUBNETS_PATH and "watch" not in q]
    assert watches()[-1]["resourceVersion"] == [version_of_a]
    assert len(lists) == 1  # no relist needed


def test_410_during_watch_relists_and_drops_vanished_objects(
    fake: FakeApi, make_informers: Callable[..., Any]
) -> None:
    fake.put(SUBNETS_PATH, "old")
    cache = ObjectCache()
    assert make_informers(cache).wait_synced(5)
    eventually(lambda: fake.watch_count(SUBNETS_PATH) == 1)

    fake.quietly_remove(SUBNETS_PATH, "old")
    fake.quietly_put(SUBNETS_PATH, "new")
    fake.expire_watches(SUBNETS_PATH)

    eventually(lambda: names(cache) == {"new"})


def test_410_on_watch_request_relists(fake: FakeApi, make_informers: Callable[..., Any]) -> None:
    cache = ObjectCache()
    fake.gone_watches = 1
    assert make_informers(cache).wait_synced(5)
    eventually(lambda: fake.watch_count(SUBNETS_PATH) == 1)
    lists = [q for path, q in fake.requests if path == SUBNETS_PATH and "watch" not in q]
    assert len(lists) == 2


def test_errors_back_off_and_recover(fake: FakeApi, make_informers: Callable[..., Any]) -> None:
    fake.put(SUBNETS_PATH, "a")
    fake.failures = 3  # the API server is restarting
    cache = ObjectCache()
    inf = make_informers(cache)

    assert inf.wait_synced(5)
    assert names(cache) == {"a"}
    assert fake.failures == 0


def test_not_synced_while_the_api_server_fails(fake: FakeApi, make_informers: Callable[..., Any]) -> None:
    fake.failures = 10_000
    inf = make_informers(ObjectCache(), (objects.SUBNETS, objects.PODS))
    assert not inf.wait_synced(0.3)
    assert not inf.synced
    assert inf.unsynced_kinds() == [objects.SUBNETS, objects.PODS]


def test_absent_kind_counts_as_synced_and_is_picked_up_later(
    fake: FakeApi, make_informers: Callable[..., Any]
) -> None:
    cache = ObjectCache()
    inf = make_informers(cache, (objects.IPPOOLS,))
    assert inf.wait_synced(5)
    assert cache.list(objects.IPPOOLS) == []

    pools = "/apis/kubeovn.io/v1/ippools"
    with fake.lock:  # the CRD gets installed
        fake.objects[pools] = {}
        fake.watchers[pools] = []
    fake.put(pools, "pool-a")
    eventually(lambda: names(cache, objects.IPPOOLS) == {"pool-a"})


def test_stop_interrupts_a_quiet_watch(fake: FakeApi, make_informers: Callable[..., Any]) -> None:
    inf = make_informers(ObjectCache())
    assert inf.wait_synced(5)
    eventually(lambda: fake.watch_count(SUBNETS_PATH) == 1)

    started = time.monotonic()
    inf.stop(timeout=5)

    assert time.monotonic() - started < 3
    assert not any(w.is_alive() for w in inf._watchers)


def test_unknown_kind_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"unknown kinds \['widgets'\]; known kinds are subnets"):
        informers.Informers(ObjectCache(), None, ("widgets",))
