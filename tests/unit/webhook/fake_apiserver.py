"""A fake kube-apiserver speaking just enough of the list/watch protocol for informer tests."""

from __future__ import annotations

import json
import queue
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

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
