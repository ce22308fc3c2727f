"""`KubernetesApi` over the transport's keep-alive connections: reuse, auth, TLS, proxy, statuses, retries."""

from __future__ import annotations

import json
import re
import ssl
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from certs.generate import write_certificates
from webhook.cluster import transport
from webhook.cluster.kubeapi import (
    AlreadyExists,
    ApiError,
    Conflict,
    KubernetesApi,
    NotFound,
    Unreachable,
)
from webhook.cluster.transport import Transport


class Server:
    """A tiny HTTP/1.1 API server: records requests and the client port each came from."""

    def __init__(self, context: ssl.SSLContext | None = None) -> None:
        self.requests: list[dict[str, Any]] = []
        self.answers: dict[tuple[str, str], tuple[int, dict]] = {}
        self.hang_up_before_answering = 0  # close this many next connections without any answer
        self.hang_up_after_answering = 0  # close this many after answering, without saying so
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                server.requests.append({
                    "method": self.command, "path": self.path, "port": self.client_address[1],
                    "headers": {k.lower(): v for k, v in self.headers.items()},
                    "body": json.loads(body) if body else None,
                })
                if server.hang_up_before_answering:
                    server.hang_up_before_answering -= 1
                    self.close_connection = True
                    return
                status, answer = server.answers.get((self.command, self.path), (200, {"ok": True}))
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                if server.hang_up_after_answering:
                    server.hang_up_after_answering -= 1
                    self.wfile.flush()
                    self.close_connection = True

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve  # noqa: N815

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        if context is not None:
            self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, scheme: str = "http") -> str:
        return f"{scheme}://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[Server]:
    running = Server()
    yield running
    running.close()


def api_for(host: str, **settings: Any) -> KubernetesApi:
    configuration = client.Configuration()
    configuration.host = host
    for name, value in settings.items():
        setattr(configuration, name, value)
    return KubernetesApi(client.ApiClient(configuration), timeout=5.0)


def test_calls_of_one_thread_share_one_connection_and_carry_the_token(server: Server) -> None:
    api = api_for(server.url(), api_key={"authorization": "Bearer sekrit"})
    assert isinstance(api.transport, Transport)
    api.create_ip({"metadata": {"name": "a"}})
    api.patch_ip("a", {"spec": {"podUID": "u"}})
    assert api.read("ips", "a") == {"ok": True}
    assert [r["method"] for r in server.requests] == ["POST", "PATCH", "GET"]
    assert len({r["port"] for r in server.requests}) == 1
    assert {r["headers"]["authorization"] for r in server.requests} == {"Bearer sekrit"}
    assert server.requests[0]["path"] == "/apis/kubeovn.io/v1/ips"
    assert server.requests[0]["body"] == {"metadata": {"name": "a"}}
    assert server.requests[1]["headers"]["content-type"] == "application/merge-patch+json"


def test_threads_get_their_own_connections(server: Server) -> None:
    api = api_for(server.url())
    threads = [threading.Thread(target=api.read, args=("ips", "x")) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({r["port"] for r in server.requests}) == 3


def test_a_refreshed_token_is_sent_once_the_reuse_period_is_over(
        server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    tokens = iter(["Bearer one", "Bearer two", "Bearer three"])
    asked = []

    def refresh(configuration: client.Configuration) -> None:
        asked.append(1)
        configuration.api_key["authorization"] = next(tokens)

    api = api_for(server.url(), api_key={"authorization": "Bearer zero"}, refresh_api_key_hook=refresh)
    api.read("ips", "a")
    api.read("ips", "b")  # within the period: the hook (a kubeconfig reload) is not asked again
    monkeypatch.setattr(transport, "TOKEN_REUSE_SECONDS", 0.0)
    api.read("ips", "c")  # the period is over: asked at every call
    api.read("ips", "d")
    sent = [r["headers"]["authorization"] for r in server.requests]
    assert sent == ["Bearer one", "Bearer one", "Bearer two", "Bearer three"]
    assert len(asked) == 3


def test_statuses_become_the_store_s_exceptions(server: Server) -> None:
    server.answers[("POST", "/apis/kubeovn.io/v1/ips")] = (409, {"message": "ips \"a\" already exists"})
    server.answers[("PATCH", "/apis/kubeovn.io/v1/ips/a")] = (409, {"message": "changed"})
    server.answers[("DELETE", "/apis/kubeovn.io/v1/ips/a")] = (404, {"message": "not found"})
    server.answers[("GET", "/apis/kubeovn.io/v1/ips/gone")] = (404, {"message": "not found"})
    server.answers[("GET", "/apis/kubeovn.io/v1/ips?limit=500")] = (500, {"message": "etcd is down"})
    api = api_for(server.url())
    with pytest.raises(AlreadyExists, match="already exists"):
        api.create_ip({"metadata": {"name": "a"}})
    with pytest.raises(Conflict, match="changed"):
        api.patch_ip("a", {})
    with pytest.raises(NotFound):
        api.delete_ip("a")
    assert api.read("ips", "gone") is None
    with pytest.raises(ApiError, match="500: etcd is down"):
        api.list("ips")


def test_an_idle_connection_the_server_closed_is_replaced(server: Server) -> None:
    api = api_for(server.url())
    server.hang_up_after_answering = 1  # as an idle timeout would, later
    api.read("ips", "a")
    time.sleep(0.2)
    assert api.create_ip({"metadata": {"name": "b"}}) == {"ok": True}
    assert [r["path"] for r in server.requests] == ["/apis/kubeovn.io/v1/ips/a", "/apis/kubeovn.io/v1/ips"]
    assert server.requests[0]["port"] != server.requests[1]["port"]


def test_a_lost_answer_to_a_create_is_not_sent_again(server: Server) -> None:
    api = api_for(server.url())
    api.read("ips", "warm")  # the create goes out on a reused connection
    server.hang_up_before_answering = 1
    with pytest.raises(Unreachable, match=f"^the API server at {re.escape(server.url())} did not answer "):
        api.create_ip({"metadata": {"name": "a"}})
    assert [r["method"] for r in server.requests] == ["GET", "POST"]


def test_a_lost_answer_to_a_read_is_asked_again_on_a_new_connection(server: Server) -> None:
    api = api_for(server.url())
    api.read("ips", "warm")
    server.hang_up_before_answering = 1
    assert api.read("ips", "a") == {"ok": True}
    assert [r["method"] for r in server.requests] == ["GET", "GET", "GET"]
    assert server.requests[1]["port"] != server.requests[2]["port"]


def test_an_unreachable_server_is_an_api_error() -> None:
    unused = Server()
    url = unused.url()
    unused.close()
    with pytest.raises(Unreachable, match=f"^cannot reach the API server at {re.escape(url)} "):
        api_for(url).read("ips", "a")


def test_tls_is_verified_against_the_configured_ca(tmp_path: Path) -> None:
    write_certificates(tmp_path, ["127.0.0.1"])
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(tmp_path / "tls.crt"), str(tmp_path / "tls.key"))
    tls = Server(context)
    try:
        trusting = api_for(tls.url("https"), ssl_ca_cert=str(tmp_path / "ca.crt"))
        assert trusting.read("ips", "a") == {"ok": True}
        with pytest.raises(ApiError, match="cannot reach"):
            api_for(tls.url("https")).read("ips", "a")  # the system CAs do not know ours
    finally:
        tls.close()


def test_a_certificate_name_other_than_the_host_is_checked(tmp_path: Path) -> None:
    write_certificates(tmp_path, ["kubernetes"])  # as a kubeconfig's tls-server-name names it
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(tmp_path / "tls.crt"), str(tmp_path / "tls.key"))
    tls = Server(context)
    try:
        named = api_for(tls.url("https"), ssl_ca_cert=str(tmp_path / "ca.crt"), tls_server_name="kubernetes")
        assert named.read("ips", "a") == {"ok": True}
        with pytest.raises(Unreachable, match="cannot reach"):
            api_for(tls.url("https"), ssl_ca_cert=str(tmp_path / "ca.crt")).read("ips", "a")  # 127.0.0.1
    finally:
        tls.close()


def test_a_plain_http_proxy_gets_the_absolute_address(server: Server) -> None:
    api = api_for("http://api.example:8080", proxy=server.url())
    assert api.read("ips", "a") == {"ok": True}
    assert server.requests[0]["path"] == "http://api.example:8080/apis/kubeovn.io/v1/ips/a"


def test_a_configuration_without_an_address_is_refused() -> None:
    with pytest.raises(ValueError, match="is not an http"):
        Transport.for_client(client.ApiClient(client.Configuration()), timeout=1.0)  # no host


def test_a_list_is_read_in_pages_joined_by_the_continue_token(server: Server) -> None:
    api = api_for(server.url())
    first, second = "/api/v1/pods?limit=500", "/api/v1/pods?limit=500&continue=abc%3D%3D"
    server.answers[("GET", first)] = (200, {"metadata": {"continue": "abc=="},
                                            "items": [{"metadata": {"name": "a"}}]})
    server.answers[("GET", second)] = (200, {"metadata": {"continue": ""},
                                             "items": [{"metadata": {"name": "b"}}]})
    assert [p["metadata"]["name"] for p in api.list("pods")] == ["a", "b"]
    assert [r["path"] for r in server.requests] == [first, second]
