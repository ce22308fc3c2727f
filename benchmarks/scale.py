"""N pods in bursts through two replicas behind haproxy, as an operator would measure a cluster.

Starts the chaos tests' harness (`tests/fixtures/replicas.py`: its own control plane, two
`multinic-ipam serve` replicas of one worker each, haproxy round-robin in front, installed), then
creates --pods pods (default 10,000) in bursts of --burst (1,000) from --threads threads, each pod
with one attachment of a /16 Subnet. Then: RSS of each replica (arbiter + worker) per held pod,
`multinic-ipam check` over everything, and how long a SIGKILLed replica takes to be ready again
with all of them held. Per burst also the CPU milliseconds per pod of both replicas together, of
the API server and of etcd: unlike pods/s these hardly move with the neighbours' load, so they show
whether admitting a pod costs more as held addresses grow.

Prints one JSON object: ``{"pods", "burst", "threads", "pods_per_s_per_burst": [...],
"cpu_ms_per_pod_per_burst": {"replicas": [...], "etcd": [...], "kube-apiserver": [...]},
"client_p50_ms", "client_p99_ms", "refusals", "distinct_addresses", "rss_mb_per_replica" (and
"_before" the first pod), "rss_kb_per_pod_per_replica" (total / pods; "_growth": the increase / pods),
"distinct_mb_per_replica" (and "_before"), "distinct_kb_per_pod_per_replica" (the same with every
physical page counted once), "restart_to_ready_s", "check_ok", "check_violations", "check_seconds",
"seconds"}``. The machine is shared: compare bursts of one run, not runs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fixtures.burst import Burst  # noqa: E402
from tests.fixtures.replicas import Replicas  # noqa: E402
from tests.fixtures.webhook import WebhookServer  # noqa: E402

NAMESPACE = "scale"
PAGE = os.sysconf("SC_PAGE_SIZE")
PFN_MASK = (1 << 55) - 1


def replica_pids(server: WebhookServer) -> list[int]:
    assert server.process is not None
    return [server.process.pid, *server.worker_pids()]


def rss_kb(server: WebhookServer) -> int:
    """Resident memory of one replica: its gunicorn arbiter plus workers, in KiB (pages the
    arbiter and a worker share after the fork count twice)."""
    total = 0
    for pid in replica_pids(server):
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        total += next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), 0)
    return total


def distinct_kb(server: WebhookServer) -> int:
    """Memory one replica holds, in KiB: the physical pages its processes map, each counted once
    (from /proc/PID/pagemap, root only), so the arbiter's pages a worker still shares after the
    fork count once, as the node's memory accounting counts them."""
    frames: set[int] = set()
    for pid in replica_pids(server):
        try:
            with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/pagemap", "rb") as pagemap:
                for line in maps:
                    fields = line.split()
                    if fields[-1] == "[vsyscall]":
                        continue
                    start, end = (int(bound, 16) // PAGE for bound in fields[0].split("-"))
                    pagemap.seek(start * 8)
                    for entry in memoryview(pagemap.read((end - start) * 8)).cast("Q"):
                        if entry >> 63:  # present in memory: bits 0-54 are the page frame
                            frames.add(entry & PFN_MASK)
        except OSError:
            continue
    return len(frames) * PAGE // 1024


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of these processes (0 for any that is gone)."""
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else 0.0


def run(pods: int, burst: int, threads: int) -> dict:
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="multinic-scale-") as tmp:
        cluster = Replicas(Path(tmp), threads=16).start()
        try:
            provider = cluster.network(NAMESPACE, "10.100.0.0/16")
            baseline = [rss_kb(server) for server in cluster.servers]
            distinct_baseline = [distinct_kb(server) for server in cluster.servers]
            rates, latencies, refusals, failed = [], [], Counter(), 0
            etcd, apiserver = cluster.plane.pids[:2]  # ControlPlane.pids: etcd, kube-apiserver, …
            groups = {"replicas": [pid for server in cluster.servers
                                   for pid in [server.process.pid, *server.worker_pids()]],
                      "etcd": [etcd], "kube-apiserver": [apiserver]}
            cpu: dict[str, list[float]] = {name: [] for name in groups}
            for first in range(0, pods, burst):
                names = [f"p{i:05d}" for i in range(first, min(pods, first + burst))]
                before = {name: cpu_seconds(pids) for name, pids in groups.items()}
                result = Burst(cluster.kubeconfig, NAMESPACE, names, threads=threads).start().wait()
                for name, pids in groups.items():
                    cpu[name].append(round(1e3 * (cpu_seconds(pids) - before[name]) / len(names), 2))
                rates.append(round(result.pods_per_second, 1))
                latencies += result.latencies
                refusals.update(result.refusals)
                failed += len(result.failed)
                print(f"[scale] {first + len(names)} pods: {rates[-1]} pods/s", file=sys.stderr)
            listed = json.loads(cluster.plane.kubectl("get", "pods", "-n", NAMESPACE, "-o", "json",
                                                      timeout=300).stdout)["items"]
            key = f"{provider}.kubernetes.io/ip_address"
            addresses = {(p["metadata"].get("annotations") or {}).get(key) for p in listed} - {None, ""}
            rss = [rss_kb(server) for server in cluster.servers]
            distinct = [distinct_kb(server) for server in cluster.servers]
            report, check_seconds = cluster.wait_check(timeout=180)
            victim = cluster.servers[1]
            victim.crash()
            restarted = time.monotonic()
            victim.start(timeout=300)
            ready = time.monotonic() - restarted
        finally:
            cluster.stop()
    return {
        "pods": pods, "burst": burst, "threads": threads, "pods_per_s_per_burst": rates,
        "cpu_ms_per_pod_per_burst": cpu,
        "client_p50_ms": round(percentile(latencies, 0.5) * 1000, 1),
        "client_p99_ms": round(percentile(latencies, 0.99) * 1000, 1),
        "client_mean_ms": round(statistics.fmean(latencies) * 1000, 1) if latencies else 0.0,
        "refusals": dict(refusals), "failed": failed, "distinct_addresses": len(addresses),
        "rss_mb_per_replica": [round(kb / 1024, 1) for kb in rss],
        "rss_mb_per_replica_before": [round(kb / 1024, 1) for kb in baseline],
        "rss_kb_per_pod_per_replica": [round(kb / max(pods, 1), 1) for kb in rss],
        "rss_kb_per_pod_per_replica_growth": [round((kb - base) / max(pods, 1), 1)
                                              for kb, base in zip(rss, baseline, strict=True)],
        "distinct_mb_per_replica": [round(kb / 1024, 1) for kb in distinct],
        "distinct_mb_per_replica_before": [round(kb / 1024, 1) for kb in distinct_baseline],
        "distinct_kb_per_pod_per_replica": [round(kb / max(pods, 1), 1) for kb in distinct],
        "restart_to_ready_s": round(ready, 2),
        "check_ok": report["ok"], "check_violations": len(report["violations"]),
        "check_seconds": round(check_seconds, 1), "seconds": round(time.monotonic() - started, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pods", type=int, default=10_000)
    parser.add_argument("--burst", type=int, default=1_000)
    parser.add_argument("--threads", type=int, default=16)
    args = parser.parse_args(argv)
    try:
        print(json.dumps(run(args.pods, args.burst, args.threads), indent=2))
    except (RuntimeError, subprocess.SubprocessError) as error:
        print(f"scale: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
