"""`multinic-ipam serve` over TLS against the real control plane: health, readiness, informers,
certificate renewal without restart, signals, metrics across workers, JSON logs."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509

from tests.fixtures.webhook import StartWebhookServer, WebhookServer, cli_argv

Kubectl = Callable[..., subprocess.CompletedProcess[str]]


def eventually(check: Callable[[], bool], timeout: float = 20.0, interval: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(interval)


def served_serial(server: WebhookServer) -> int:
    """The serial number of the certificate a fresh TLS handshake is given."""
    context = ssl.create_default_context(cafile=str(server.ca_file))
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw, context.wrap_socket(
        raw, server_hostname="127.0.0.1"
    ) as tls:
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


def subnet_review(name: str, cidr: str, provider: str, uid: str = "e2e-uid") -> dict[str, Any]:
    obj = {"apiVersion": "kubeovn.io/v1", "kind": "Subnet", "metadata": {"name": name},
           "spec": {"protocol": "IPv4", "cidrBlock": cidr, "provider": provider}}
    return {
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": uid, "kind": {"group": "kubeovn.io", "version": "v1", "kind": "Subnet"},
            "resource": {"group": "kubeovn.io", "version": "v1", "resource": "subnets"},
            "name": name, "operation": "CREATE", "userInfo": {"username": "admin"}, "object": obj,
            "oldObject": None, "dryRun": False,
        },
    }


def test_healthz_and_readyz_over_tls(webhook_server: WebhookServer) -> None:
    assert webhook_server.get("/healthz") == (200, '{"status":"ok"}\n')
    status, body = webhook_server.get("/readyz")
    assert status == 200
    assert json.loads(body) == {"ready": True}


def test_plain_http_is_not_served(webhook_server: WebhookServer) -> None:
    with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):
        urllib.request.urlopen(f"http://127.0.0.1:{webhook_server.port}/healthz", timeout=5)


def test_certificate_is_verified_against_the_ca(webhook_server: WebhookServer, tmp_path: Path) -> None:
    other = tmp_path / "other"
    subprocess.run(cli_argv("certs", "--cert-dir", str(other), "--hosts", "127.0.0.1"), check=True,
                   capture_output=True)
    context = ssl.create_default_context(cafile=str(other / "ca.crt"))
    with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
        urllib.request.urlopen(f"{webhook_server.url}/healthz", timeout=5, context=context)


def test_malformed_review_is_a_400_over_the_wire(webhook_server: WebhookServer) -> None:
    status, body = webhook_server.post("/validate", {"kind": "AdmissionReview"})
    assert status == 400
    assert "apiVersion None is not supported" in body["error"]


def test_every_worker_cache_sees_a_subnet_created_with_kubectl(
    webhook_server: WebhookServer, kubectl: Kubectl
) -> None:
    kubectl("apply", "-f", "-", input=json.dumps({
        "apiVersion": "kubeovn.io/v1", "kind": "Subnet", "metadata": {"name": "e2e-serve-seen"},
        "spec": {"protocol": "IPv4", "cidrBlock": "10.231.0.0/24", "provider": "seen.default"},
    }))
    try:
        review = subnet_review("e2e-serve-twin", "10.231.0.128/25", "seen.default")

        def denied_by_every_worker() -> bool:
            # Fresh connections land on any worker; ten denials in a row cover both of them.
            for _ in range(10):
                status, body = webhook_server.post("/validate", review)
                assert status == 200
                if body["response"]["allowed"]:
                    return False
            return True

        eventually(denied_by_every_worker)
        _, body = webhook_server.post("/validate", review)
        assert "overlaps 10.231.0.0/24 of Subnet e2e-serve-seen" in body["response"]["status"]["message"]
        assert body["response"]["uid"] == "e2e-uid"
    finally:
        kubectl("delete", "subnet", "e2e-serve-seen", "--ignore-not-found", check=False)


def test_the_api_server_calls_the_installed_webhook(webhook_server: WebhookServer, kubectl: Kubectl) -> None:
    result = kubectl("apply", "-f", "-", check=False, input=json.dumps({
        "apiVersion": "kubeovn.io/v1", "kind": "Subnet", "metadata": {"name": "e2e-serve-bad"},
        "spec": {"protocol": "IPv4", "cidrBlock": "10.232.0.0/33", "provider": "bad.default"},
    }))
    assert result.returncode != 0
    assert 'admission webhook "validate.multinic-ipam.io" denied the request' in result.stderr
    assert "10.232.0.0/33" in result.stderr


def test_renewed_certificate_is_served_without_restart(
    start_webhook_server: StartWebhookServer, tmp_path: Path
) -> None:
    server = start_webhook_server(workers=2)
    arbiter, workers = server.process.pid, sorted(server.worker_pids())  # type: ignore[union-attr]
    before = served_serial(server)

    # New hosts force a new serving certificate under the same CA (the installed caBundle stays valid).
    subprocess.run(cli_argv("certs", "--cert-dir", str(server.cert_dir), "--hosts",
                            "127.0.0.1,localhost,renewed.example"), check=True, capture_output=True)
    on_disk = x509.load_pem_x509_certificate((server.cert_dir / "tls.crt").read_bytes()).serial_number
    assert on_disk != before

    for _ in range(6):  # every worker, whichever accepts the connection
        assert served_serial(server) == on_disk
    assert server.process is not None and server.process.pid == arbiter
    assert sorted(server.worker_pids()) == workers  # no worker was restarted either
    assert server.get("/healthz")[0] == 200


def test_metrics_sum_all_workers(start_webhook_server: StartWebhookServer) -> None:
    server = start_webhook_server(workers=2)
    for i in range(12):
        status, _ = server.post("/validate", subnet_review(f"m{i}", "10.233.0.0/24", f"m{i}.default"))
        assert status == 200
    text = server.get("/metrics")[1]
    line = next(
        row for row in text.splitlines()
        if row.startswith("multinic_ipam_admission_reviews_total{")
        and 'webhook="validate"' in row and 'result="allowed"' in row
    )
    assert float(line.rsplit(" ", 1)[1]) == 12.0


def test_sigterm_shuts_down_gracefully(start_webhook_server: StartWebhookServer) -> None:
    server = start_webhook_server(workers=2)
    process, workers = server.process, server.worker_pids()
    assert process is not None and len(workers) == 2

    server.kill(signal.SIGTERM)

    assert process.wait(30) == 0
    for pid in workers:
        assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]
    assert "Shutting down" in server.log_path.read_text()


def test_sighup_replaces_the_workers_and_they_sync_again(start_webhook_server: StartWebhookServer) -> None:
    server = start_webhook_server(workers=2)
    arbiter, old = server.process.pid, set(server.worker_pids())  # type: ignore[union-attr]

    server.kill(signal.SIGHUP)

    eventually(lambda: len(server.worker_pids()) == 2 and not old & set(server.worker_pids()))
    server.wait_ready(60)
    assert server.process is not None and server.process.pid == arbiter
    status, body = server.post("/validate", subnet_review("hup", "10.236.0.0/33", "hup.default"))
    assert status == 200 and body["response"]["allowed"] is False


def test_a_killed_worker_is_replaced(start_webhook_server: StartWebhookServer) -> None:
    server = start_webhook_server(workers=2)
    victim = server.worker_pids()[0]

    os.kill(victim, signal.SIGKILL)

    eventually(lambda: len(server.worker_pids()) == 2 and victim not in server.worker_pids())
    server.wait_ready(60)
    assert server.get("/healthz")[0] == 200


def test_restart_serves_again_on_the_same_port(start_webhook_server: StartWebhookServer) -> None:
    server = start_webhook_server(workers=1)
    first = server.process.pid  # type: ignore[union-attr]
    port = server.port
    server.restart()
    assert server.process is not None and server.process.pid != first
    assert server.port == port
    assert server.get("/readyz")[0] == 200


def test_json_log_format_writes_one_object_per_review(start_webhook_server: StartWebhookServer) -> None:
    server = start_webhook_server(workers=1, extra_args=("--log-format", "json"))
    server.post("/validate", subnet_review("jsonlog", "10.234.0.0/33", "j.default", uid="json-uid"))

    def review_line() -> dict[str, Any] | None:
        for row in server.log_path.read_text().splitlines():
            if '"json-uid"' in row:
                return json.loads(row)
        return None

    eventually(lambda: review_line() is not None, timeout=10)
    entry = review_line()
    assert entry is not None
    assert entry["allowed"] is False and entry["kind"] == "Subnet" and entry["object"] == "jsonlog"
    assert entry["operation"] == "CREATE" and entry["webhook"] == "validate"
    assert "10.234.0.0/33" in entry["message"]


def test_check_config_loads_without_touching_the_cluster(webhook_server: WebhookServer) -> None:
    result = subprocess.run(
        cli_argv("serve", "--cert-dir", str(webhook_server.cert_dir), "--bind", "127.0.0.1:1",
                 "--check-config"),
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 0, result.stderr


class OutageProxy:
    """A TCP pass-through to the API server that can drop every connection and refuse new ones,
    as a restarting API server would (TLS passes through: the server's SANs include 127.0.0.1)."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.down = threading.Event()
        self.closed = False
        self.lock = threading.Lock()
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.down.is_set():
                client.close()
                continue
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            with self.lock:
                self.sockets += [client, server]
            for source, target in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(source, target), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, target):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        """Drop every open connection and refuse new ones until `restore`."""
        self.down.set()
        with self.lock:
            sockets, self.sockets = self.sockets, []
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def restore(self) -> None:
        self.down.clear()

    def close(self) -> None:
        self.closed = True
        self.cut()
        self.listener.close()


def test_informers_reconnect_after_an_api_server_outage(
    start_webhook_server: StartWebhookServer, kubectl: Kubectl, tmp_path: Path
) -> None:
    config = yaml.safe_load(kubectl("config", "view", "--raw", "-o", "yaml").stdout)
    upstream = urllib.parse.urlsplit(config["clusters"][0]["cluster"]["server"])
    proxy = OutageProxy((upstream.hostname or "127.0.0.1", upstream.port or 443))
    config["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{proxy.port}"
    kubeconfig = tmp_path / "through-proxy.kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(config))
    try:
        server = start_webhook_server(workers=2, kubeconfig=kubeconfig)
        proxy.cut()  # the API server "restarts": watches break, reconnects are refused
        kubectl("apply", "-f", "-", input=json.dumps({
            "apiVersion": "kubeovn.io/v1", "kind": "Subnet", "metadata": {"name": "e2e-outage"},
            "spec": {"protocol": "IPv4", "cidrBlock": "10.235.0.0/24", "provider": "outage.default"},
        }))
        time.sleep(2)  # a few failed reconnects: the backoff grows
        review = subnet_review("e2e-outage-twin", "10.235.0.0/25", "outage.default")
        status, body = server.post("/validate", review)
        assert status == 200 and body["response"]["allowed"] is True  # cannot know it yet
        assert server.get("/healthz")[0] == 200  # serving goes on while the API server is away

        proxy.restore()

        def denied_by_every_worker() -> bool:
            return all(not server.post("/validate", review)[1]["response"]["allowed"] for _ in range(10))

        eventually(denied_by_every_worker, timeout=40, interval=0.5)
        assert "overlaps 10.235.0.0/24 of Subnet e2e-outage" in (
            server.post("/validate", review)[1]["response"]["status"]["message"]
        )
    finally:
        proxy.close()
        kubectl("delete", "subnet", "e2e-outage", "--ignore-not-found", check=False)
