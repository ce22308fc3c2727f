"""How long the operator waits: `dev up` (binaries cached), `dev status`, the operator CLI, `dev down`.

Prints one JSON object with seconds (one run; `dev up` is dominated by starting the control plane
and the webhook's informer sync):
``{"dev_up_s", "dev_status_s", "status_s", "who_has_s", "gc_dry_run_s", "ip_objects", "dev_down_s"}``.
Before the CLI timings, `ip_objects` pods of the guide's macvlan NAD are created, so the CLI reads
that many IP objects. Run it alone: it starts a control plane of its own.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PODS = int(sys.argv[1]) if len(sys.argv) > 1 else 200


def timed(*argv: str) -> float:
    started = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True, text=True, cwd=REPO, timeout=600)
    return round(time.perf_counter() - started, 3)


def cli(*args: str) -> tuple[str, ...]:
    return (sys.executable, "-m", "webhook.cli", *args)


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="multinic-dev-bench-") as folder:
        run_dir = Path(folder)
        kubeconfig = str(run_dir / "controlplane" / "kubeconfig")
        result: dict[str, float | int] = {"dev_up_s": timed(*cli("dev", "up", "--run-dir", folder))}
        try:
            result["dev_status_s"] = timed(*cli("dev", "status", "--run-dir", folder))
            pods = [
                {"apiVersion": "v1", "kind": "Pod",
                 "metadata": {"name": f"bench-{i}", "namespace": "default",
                              "annotations": {"k8s.v1.cni.cncf.io/networks": "default/macvlan"}},
                 "spec": {"containers": [{"name": "c", "image": "docker.io/library/alpine:edge"}]}}
                for i in range(PODS)
            ]
            subprocess.run(["kubectl", f"--kubeconfig={kubeconfig}", "create", "--validate=false", "-f", "-"],
                           input=json.dumps({"apiVersion": "v1", "kind": "List", "items": pods}),
                           check=True, capture_output=True, text=True, timeout=600)
            result["ip_objects"] = PODS
            result["status_s"] = timed(*cli("status", "--kubeconfig", kubeconfig))
            result["who_has_s"] = timed(*cli("who-has", "172.17.0.11", "--kubeconfig", kubeconfig))
            result["gc_dry_run_s"] = timed(*cli("gc", "--dry-run", "--kubeconfig", kubeconfig))
        finally:
            result["dev_down_s"] = timed(*cli("dev", "down", "--run-dir", folder))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
