"""Pod creations per second through the API server, without and with the webhooks, in one run.

Starts its own control plane and `multinic-ipam serve` (its default workers and threads unless
--workers/--server-threads say otherwise; JSON logs), then creates pods
carrying the guide's `k8s.v1.cni.cncf.io/networks: default/macvlan` annotation from 16 threads:
first with no webhook configuration installed, then installed (mutation allocates, validation
checks). The webhook's own time per review comes from its per-review log lines (`duration_ms`).

Prints one JSON object: ``{"pods", "threads", "workers", "without_webhook_pods_per_s",
"with_webhook_pods_per_s", "mutate_p50_ms", "mutate_p99_ms", "validate_p50_ms", "validate_p99_ms",
"distinct_addresses", "cpu_ms_per_pod", "review_cpu_ms_per_pod"}``. The machine is shared, so
compare the two rates of one run, not runs; ``cpu_ms_per_pod`` (CPU time of the webhook's processes,
the API server, etcd and the controller manager during the hooked burst, per pod) tracks the
neighbours' load far less. ``review_cpu_ms_per_pod`` is the part of the webhook's spent in the two
reviews' own threads (their `cpu_ms` log field).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from devtools.controlplane import ControlPlane  # noqa: E402
from tests.fixtures.readiness import wait_ready_streak  # noqa: E402
from webhook.operator import install  # noqa: E402

EXAMPLES = ROOT / "manifests" / "examples"
NETWORKS = "k8s.v1.cni.cncf.io/networks"
PLANE_PARTS = ("etcd", "kube-apiserver", "kube-controller-manager")  # ControlPlane.pids order


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "webhook.cli", *args]


def _wait_ready(url: str, ca: Path, timeout: float = 90.0) -> None:
    wait_ready_streak(url, ca, streak=8, timeout=timeout)


def _create(api: Any, namespace: str, names: list[str], threads: int) -> tuple[float, list[dict]]:
    from kubernetes import client

    core = client.CoreV1Api(api)

    def one(name: str) -> dict:
        body = {"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": name, "annotations": {NETWORKS: "default/macvlan"}},
                "spec": {"containers": [{"name": "c", "image": "docker.io/library/alpine:edge"}]}}
        response = core.create_namespaced_pod(namespace, body, _preload_content=False)
        return json.loads(response.data)

    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        pods = list(pool.map(one, names))
    return time.perf_counter() - started, pods


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process and its reaped children (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return sum(int(value) for value in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def _tree(pid: int) -> list[int]:
    """`pid` and its live children (gunicorn's master and its workers)."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return [pid]
    return [pid, *(int(child) for child in children)]


def _cpu(groups: dict[str, list[int]]) -> dict[str, float]:
    return {name: sum(_cpu_seconds(pid) for pid in pids) for name, pids in groups.items()}


def _lost_races(url: str, ca: Path) -> int:
    """IP object creates answered 409 during the run, from /metrics (summed over the workers)."""
    context = ssl.create_default_context(cafile=str(ca))
    with urllib.request.urlopen(f"{url}/metrics", timeout=10, context=context) as response:
        text = response.read().decode()
    return int(sum(float(line.rpartition(" ")[2]) for line in text.splitlines()
                   if line.startswith("multinic_ipam_ip_lock_conflicts_total{")))


def _serve_default(option: str) -> int:
    """`multinic-ipam serve`'s default for --workers or --threads."""
    from webhook.commands import serve

    parser = argparse.ArgumentParser()
    serve.register(parser.add_subparsers())
    return getattr(parser.parse_args(["serve", "--cert-dir", "."]), option)


def _durations(log: Path, webhook: str, field: str = "duration_ms") -> list[float]:
    out = []
    for line in log.read_text(errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("webhook") == webhook and entry.get("kind") == "Pod" and field in entry:
            out.append(float(entry[field]))
    return out


def _percentile(values: list[float], fraction: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(fraction * len(ordered)))], 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=300)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--workers", type=int, help="serve --workers (default: serve's own)")
    parser.add_argument("--server-threads", type=int, help="serve --threads (default: serve's own)")
    args = parser.parse_args()
    args.workers = args.workers or _serve_default("workers")
    args.server_threads = args.server_threads or _serve_default("threads")

    work = Path(tempfile.mkdtemp(prefix="bench-admission-"))
    with ControlPlane(work / "cp") as plane:
        api = plane.api_client()
        install.apply_crds(api)
        for name in ("nad-macvlan.yaml", "subnet-macvlan.yaml"):
            plane.kubectl("apply", "-f", str(EXAMPLES / name))
        certs = work / "certs"
        subprocess.run(_cli("certs", "--cert-dir", str(certs), "--hosts", "127.0.0.1,localhost"),
                       check=True, capture_output=True, cwd=ROOT)
        port = _free_port()
        url = f"https://127.0.0.1:{port}"
        log = work / "serve.log"
        env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
        with log.open("wb") as out:
            server = subprocess.Popen(
                _cli("serve", "--kubeconfig", str(plane.kubeconfig), "--bind", f"127.0.0.1:{port}",
                     "--cert-dir", str(certs), "--workers", str(args.workers),
                     "--threads", str(args.server_threads), "--log-format", "json"),
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True, cwd=ROOT, env=env,
            )
        try:
            _wait_ready(url, certs / "ca.crt")
            plane.kubectl("create", "namespace", "bare")
            bare_s, _ = _create(api, "bare", [f"bare-{i}" for i in range(args.pods)], args.threads)
            subprocess.run(_cli("install", "--kubeconfig", str(plane.kubeconfig), "--url", url,
                                "--cert-dir", str(certs)), check=True, capture_output=True, cwd=ROOT)
            plane.kubectl("create", "namespace", "hooked")
            time.sleep(2)  # webhook configurations reach the API server's admission chain
            groups = {"webhook": _tree(server.pid)}
            groups.update((name, [pid]) for name, pid in zip(PLANE_PARTS, plane.pids, strict=False))
            before = _cpu(groups)
            hooked_s, pods = _create(api, "hooked", [f"pod-{i}" for i in range(args.pods)], args.threads)
            time.sleep(1)  # the Lifecycle binds and the watches deliver what the burst caused
            used = {name: _cpu(groups)[name] - seconds for name, seconds in before.items()}
            addresses = {p["metadata"]["annotations"].get("macvlan.default.kubernetes.io/ip_address")
                         for p in pods}
            lost = _lost_races(url, certs / "ca.crt")
            mutate = _durations(log, "mutate")
            validate = _durations(log, "validate")
            review_cpu = sum(_durations(log, "mutate", "cpu_ms")) + sum(_durations(log, "validate", "cpu_ms"))
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(30)
        api.close()
    print(json.dumps({
        "pods": args.pods,
        "threads": args.threads,
        "workers": args.workers,
        "server_threads": args.server_threads,
        "without_webhook_pods_per_s": round(args.pods / bare_s, 1),
        "with_webhook_pods_per_s": round(args.pods / hooked_s, 1),
        "mutate_reviews": len(mutate),
        "mutate_p50_ms": _percentile(mutate, 0.50),
        "mutate_p99_ms": _percentile(mutate, 0.99),
        "mutate_mean_ms": round(statistics.fmean(mutate), 2) if mutate else None,
        "validate_p50_ms": _percentile(validate, 0.50),
        "validate_p99_ms": _percentile(validate, 0.99),
        "distinct_addresses": len(addresses - {None}),
        "lost_races": lost,
        "cpu_ms_per_pod": {name: round(1e3 * seconds / args.pods, 2) for name, seconds in used.items()},
        # of the webhook's: the two reviews' own threads (parse, decide, answer, log), the rest being the
        # HTTP server's dispatch, TLS, informers and the leader's binds
        "review_cpu_ms_per_pod": round(review_cpu / args.pods, 2),
    }))


if __name__ == "__main__":
    main()
