"""ADD, CHECK and DEL latency of the `kube-ovn` IPAM plugin beside Debian's `host-local`, called alike.

Prints one JSON object:
``{"runs", "load_average", "kube_ovn": {"ADD": {"median_ms", "p90_ms", "median_cpu_ms"}, "CHECK": …,
"DEL": …}, "kube_ovn_venv": {…}, "host_local": {…}, "python_floor": {"ADD": …}, "ratio_median",
"ratio_p90"}`` (ratios: kube_ovn / host_local per command; `--baseline FILE` adds `kube_ovn_baseline`,
an earlier build of the plugin file, and its ratios, to compare two builds back to back).

Each plugin is executed as a runtime would: a fresh process, CNI_* environment, the network config
on stdin, result on stdout; as an IPAM plugin, so no netns is needed.
- `kube_ovn`: the file `multinic-ipam install-cni` puts into /opt/cni/bin (a zipapp run by the
  system python3), executed through its shebang;
- `kube_ovn_venv`: the development venv's console script (site packages add start-up);
- `python_floor`: `python3 -I -S -c pass`, the interpreter's own start, which no Python plugin can
  beat (the machine's load inflates it as much as the rest).
Our node daemon serves from an in-memory pod (the production HTTP server and Responder, without
the API server), so the numbers are the plugin's cost plus one round trip to the daemon.
host-local allocates from a /16 in a temp data dir, one container ID per round: ADD, then CHECK
with the ADD's result as prevResult, then DEL (a sandbox's life). The plugins alternate call by
call, so a neighbour's burst on the shared machine hits all alike; a few warm-up calls are not
counted. `median_cpu_ms` is the plugin process's own CPU time (user + system), which a busy
machine inflates far less than wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cni import daemon
from tests.unit.cni.helpers import StaticPods, serve_in_thread
from webhook.commands import install_cni

PROVIDER = "macvlan.default"
HOST_LOCAL = "/usr/lib/cni/host-local"


def annotated_pod() -> dict:
    notes = {"k8s.v1.cni.cncf.io/networks": "default/macvlan"}
    values = {"ip_address": "172.17.0.12", "cidr": "172.17.0.0/16", "gateway": "172.17.0.1",
              "mac_address": "00:00:00:53:6b:bb", "logical_switch": "macvlan", "allocated": "true"}
    notes.update({f"{PROVIDER}.kubernetes.io/{k}": v for k, v in values.items()})
    return {"metadata": {"namespace": "default", "name": "bench", "uid": "u", "annotations": notes}}


def _children_cpu_ms() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (usage.ru_utime + usage.ru_stime) * 1000


def timed_call(executable: list[str], command: str, conf: dict,
               container_id: str) -> tuple[float, float, bytes]:
    """(wall ms, CPU ms of the plugin process, stdout) of one call."""
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "CNI_COMMAND": command, "CNI_CONTAINERID": container_id,
           "CNI_NETNS": "/var/run/netns/bench", "CNI_IFNAME": "net1", "CNI_PATH": "/usr/lib/cni",
           "CNI_ARGS": "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=bench"}
    cpu_before, started = _children_cpu_ms(), time.perf_counter()
    done = subprocess.run(executable, input=json.dumps(conf).encode(), env=env, capture_output=True,
                          check=False)
    elapsed = (time.perf_counter() - started) * 1000
    if done.returncode != 0:
        raise SystemExit(f"{executable[0]} {command} failed: {done.stdout.decode()}{done.stderr.decode()}")
    return elapsed, _children_cpu_ms() - cpu_before, done.stdout


def sandbox_life(executable: list[str], conf: dict, container_id: str) -> dict[str, tuple[float, float]]:
    """ADD, CHECK (prevResult: the ADD's result) and DEL of one container: command -> (wall, CPU)."""
    wall, cpu, output = timed_call(executable, "ADD", conf, container_id)
    timings = {"ADD": (wall, cpu)}
    if not conf:  # the interpreter floor: nothing to check or delete
        return timings
    check = {**conf, "prevResult": json.loads(output)}
    timings["CHECK"] = timed_call(executable, "CHECK", check, container_id)[:2]
    timings["DEL"] = timed_call(executable, "DEL", conf, container_id)[:2]
    return timings


def summary(samples: list[tuple[float, float]]) -> dict[str, float]:
    ordered = sorted(wall for wall, _ in samples)
    return {"median_ms": round(statistics.median(ordered), 2),
            "p90_ms": round(ordered[int(0.9 * (len(ordered) - 1))], 2),
            "median_cpu_ms": round(statistics.median(cpu for _, cpu in samples), 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--baseline", type=Path,
                        help="an earlier `install-cni` build of the plugin file, measured alongside "
                             "as kube_ovn_baseline")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="cni-bench-", dir="/tmp"))
    socket = str(work / "daemon.sock")
    server = serve_in_thread(socket, daemon.Responder(StaticPods([annotated_pod()])))
    zipapp = work / "kube-ovn"
    install_cni.build(zipapp)
    ours = {"cniVersion": "0.4.0", "name": "macvlan", "type": "macvlan",
            "ipam": {"type": "kube-ovn", "server_socket": socket, "provider": PROVIDER}}
    theirs = {"cniVersion": "0.4.0", "name": "bench", "type": "macvlan",
              "ipam": {"type": "host-local", "subnet": "10.250.0.0/16", "dataDir": str(work / "host-local")}}
    plugins = {
        "kube_ovn": ([str(zipapp)], ours),
        **({"kube_ovn_baseline": ([str(args.baseline.resolve())], ours)} if args.baseline else {}),
        "kube_ovn_venv": ([str(Path(sys.executable).parent / "kube-ovn")], ours),
        "host_local": ([HOST_LOCAL], theirs),
        "python_floor": (["/usr/bin/python3", "-I", "-S", "-c", "pass"], {}),
    }
    samples: dict[str, dict[str, list[tuple[float, float]]]] = {name: {} for name in plugins}
    try:
        for index in range(args.warmup + args.runs):
            for name, (executable, conf) in plugins.items():
                timings = sandbox_life(executable, conf, f"bench-{index}")
                if index >= args.warmup:
                    for command, sample in timings.items():
                        samples[name].setdefault(command, []).append(sample)
    finally:
        server.shutdown()
        server.server_close()
        shutil.rmtree(work, ignore_errors=True)
    report: dict[str, object] = {"runs": args.runs, "load_average": [round(x, 2) for x in os.getloadavg()]}
    summaries = {name: {command: summary(values) for command, values in by_command.items()}
                 for name, by_command in samples.items()}
    report.update(summaries)
    for plugin in ("kube_ovn", "kube_ovn_baseline"):
        if plugin in summaries:
            suffix = plugin.removeprefix("kube_ovn")
            for key, stat in (("ratio_median", "median_ms"), ("ratio_p90", "p90_ms")):
                report[key + suffix] = {command: round(summaries[plugin][command][stat]
                                                       / summaries["host_local"][command][stat], 2)
                                        for command in ("ADD", "CHECK", "DEL")}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
