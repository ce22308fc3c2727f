"""How long the test harness takes: control-plane start, CRD apply, `install`, and stop.

Prints one JSON object:
``{"runs", "start_s", "crds_s", "install_s", "install_again_s", "stop_s"}`` (medians over runs):

- start: `ControlPlane.start()` until kube-apiserver's /readyz answers 200 (etcd, kube-apiserver,
  kube-controller-manager), i.e. what the session fixture costs once;
- crds: `install.apply_crds` on the fresh server, waiting until every CRD is Established;
- install / install_again: `install.install` in `--url` mode, first and second (no-op) run;
- stop: `ControlPlane.stop()`, every process group gone.

Run it alone (not next to a test session): it starts a control plane of its own.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from certs import generate
from devtools.controlplane import ControlPlane
from webhook.operator import configurations, install

RUNS = int(sys.argv[1]) if len(sys.argv) > 1 else 3


def one_run(folder: Path) -> dict[str, float]:
    timings: dict[str, float] = {}
    plane = ControlPlane(folder / "plane")
    began = time.perf_counter()
    plane.start()
    timings["start_s"] = time.perf_counter() - began
    try:
        api = plane.api_client()
        began = time.perf_counter()
        install.apply_crds(api)
        timings["crds_s"] = time.perf_counter() - began
        generate.write_certificates(folder / "certs", ["127.0.0.1"])
        target = configurations.Target.parse(url="https://127.0.0.1:1")
        for key in ("install_s", "install_again_s"):
            began = time.perf_counter()
            install.install(api, target=target, cert_dir=folder / "certs")
            timings[key] = time.perf_counter() - began
        api.close()
    finally:
        began = time.perf_counter()
        plane.stop()
        timings["stop_s"] = time.perf_counter() - began
    return timings


def main() -> None:
    runs = []
    for _ in range(RUNS):
        with tempfile.TemporaryDirectory(prefix="multinic-bench-") as folder:
            runs.append(one_run(Path(folder)))
    result: dict[str, float | int] = {"runs": RUNS}
    for key in runs[0]:
        result[key] = round(statistics.median(run[key] for run in runs), 3)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
