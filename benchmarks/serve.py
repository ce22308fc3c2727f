"""How fast `multinic-ipam serve` answers: start-up to ready, /validate latency and throughput over TLS.

Prints one JSON object:
``{"workers", "threads", "ready_s", "sequential": {"n", "p50_ms", "p99_ms"},
"concurrent": {"clients", "n", "per_s", "p50_ms", "p99_ms"}, "cert_reload_s"}``

- ready: from starting `serve` until /readyz answered 200 on 2 x workers fresh connections;
- sequential: one keep-alive TLS connection posting a Subnet review to /validate, one at a time
  (the validating rules run against the worker's cache: no API server call on the request path);
- concurrent: `clients` threads, each with its own keep-alive connection;
- cert_reload: from rewriting the serving certificate until a new handshake is given it.

Usage: `python benchmarks/serve.py [WORKERS] [REQUESTS]` (defaults 2 and 400). Run it alone: it
starts a control plane of its own.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cryptography import x509

from certs import generate
from devtools.controlplane import ControlPlane
from webhook.operator import install

WORKERS = int(sys.argv[1]) if len(sys.argv) > 1 else 2
REQUESTS = int(sys.argv[2]) if len(sys.argv) > 2 else 400
CLIENTS = 8


def review(i: int) -> bytes:
    obj = {"apiVersion": "kubeovn.io/v1", "kind": "Subnet", "metadata": {"name": f"bench-{i}"},
           "spec": {"protocol": "IPv4", "cidrBlock": f"10.{100 + i % 100}.{i % 250}.0/24",
                    "provider": f"bench{i}.default"}}
    return json.dumps({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {"uid": f"u{i}", "kind": {"group": "kubeovn.io", "version": "v1", "kind": "Subnet"},
                    "resource": {"group": "kubeovn.io", "version": "v1", "resource": "subnets"},
                    "name": f"bench-{i}", "operation": "CREATE", "userInfo": {"username": "admin"},
                    "object": obj, "oldObject": None, "dryRun": False},
    }).encode()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def post_many(port: int, context: ssl.SSLContext, indices: range, out: list[float]) -> None:
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=30)
    for i in indices:
        began = time.perf_counter()
        conn.request("POST", "/validate", body=review(i), headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        body = response.read()
        out.append(time.perf_counter() - began)
        if response.status != 200 or b'"allowed":true' not in body:
            raise RuntimeError(f"unexpected answer {response.status}: {body[:200]!r}")
    conn.close()


def ready(port: int, context: ssl.SSLContext) -> bool:
    try:
        conn = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=2)
        conn.request("GET", "/readyz")
        status = conn.getresponse().status
        conn.close()
        return status == 200
    except OSError:
        return False


def served_serial(port: int, context: ssl.SSLContext) -> int:
    with socket.create_connection(("127.0.0.1", port)) as raw, context.wrap_socket(
        raw, server_hostname="127.0.0.1"
    ) as tls:
        return x509.load_der_x509_certificate(tls.getpeercert(binary_form=True) or b"").serial_number


def measure(folder: Path, plane: ControlPlane) -> dict[str, Any]:
    cert_dir = folder / "certs"
    generate.write_certificates(cert_dir, ["127.0.0.1", "localhost"])
    context = ssl.create_default_context(cafile=str(cert_dir / "ca.crt"))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    argv = [sys.executable, "-m", "webhook.cli", "serve", "--kubeconfig", str(plane.kubeconfig),
            "--bind", f"127.0.0.1:{port}", "--cert-dir", str(cert_dir), "--workers", str(WORKERS)]
    began = time.perf_counter()
    with (folder / "serve.log").open("wb") as log:
        server = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env)
    try:
        streak = 0
        while streak < 2 * WORKERS:
            if server.poll() is not None:
                raise RuntimeError(f"serve exited: {(folder / 'serve.log').read_text()[-2000:]}")
            streak = streak + 1 if ready(port, context) else 0
            if not streak:
                time.sleep(0.05)
        ready_s = time.perf_counter() - began

        post_many(port, context, range(20), [])  # warm every code path once
        sequential: list[float] = []
        post_many(port, context, range(REQUESTS), sequential)

        concurrent: list[float] = []
        per_client = REQUESTS // CLIENTS
        threads = [threading.Thread(target=post_many, args=(port, context, range(c * per_client,
                                                                                  (c + 1) * per_client),
                                                             concurrent)) for c in range(CLIENTS)]
        began = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - began

        before = served_serial(port, context)
        began = time.perf_counter()
        generate.write_certificates(cert_dir, ["127.0.0.1", "localhost", "renewed.example"])
        while served_serial(port, context) == before:
            time.sleep(0.01)
        reload_s = time.perf_counter() - began
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(30)
    ms = 1e3
    return {
        "workers": WORKERS,
        "threads": 8,
        "ready_s": round(ready_s, 3),
        "sequential": {"n": len(sequential), "p50_ms": round(statistics.median(sequential) * ms, 2),
                       "p99_ms": round(percentile(sequential, 0.99) * ms, 2)},
        "concurrent": {"clients": CLIENTS, "n": len(concurrent), "per_s": round(len(concurrent) / wall, 1),
                       "p50_ms": round(statistics.median(concurrent) * ms, 2),
                       "p99_ms": round(percentile(concurrent, 0.99) * ms, 2)},
        "cert_reload_s": round(reload_s, 3),
    }


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp:
        folder = Path(tmp)
        with ControlPlane(folder / "plane") as plane:
            api = plane.api_client()
            install.apply_crds(api)
            api.close()
            print(json.dumps(measure(folder, plane)))


if __name__ == "__main__":
    main()
