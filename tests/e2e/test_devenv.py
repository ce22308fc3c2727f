"""`multinic-ipam dev up|status|down` from nothing but the repository, checked from the outside.

`dev up` starts its own control plane (it is the local environment), so this test uses no session
fixture: it drives the commands as a person would, with `--node` (a real kubelet node), then looks
at /proc and the host to prove `down` left no process, link, mount, cgroup or sysctl behind.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools import devenv, hostchanges, node

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "manifests" / "examples"
DEV_SH = ("bash", str(REPO / "scripts" / "dev.sh"))


def _dev(*args: str, timeout: float = 360) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "webhook.cli", "dev", *args], capture_output=True, text=True,
                          timeout=timeout, check=False, cwd=REPO)


def _live(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline and _live(int(entry.name)):
            found.append(int(entry.name))
    return found


class DevEnv:
    def __init__(self, run_dir: Path, up: subprocess.CompletedProcess[str], sysctls: dict[str, str]) -> None:
        self.run_dir = run_dir
        self.up = up
        self.sysctls_before = sysctls
        self.kubeconfig = run_dir / "controlplane" / "kubeconfig"

    def kubectl(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        validate = ["--validate=false"] if args and args[0] in ("apply", "create") else []
        return subprocess.run(["kubectl", f"--kubeconfig={self.kubeconfig}", *args, *validate], input=stdin,
                              capture_output=True, text=True, timeout=60, check=False)

    def state(self) -> dict:
        return json.loads((self.run_dir / devenv.STATE_FILE).read_text())


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevEnv]:
    run_dir = tmp_path_factory.mktemp("dev-run")
    sysctls = _sysctls()
    up = _dev("up", "--node", "--run-dir", str(run_dir))
    env = DevEnv(run_dir, up, sysctls)
    try:
        assert up.returncode == 0, f"{up.stdout}\n{up.stderr}\n{_tail(run_dir)}"
        yield env
    finally:
        _dev("down", "--run-dir", str(run_dir), timeout=120)


def _sysctls() -> dict[str, str]:
    return {name: (Path("/proc/sys") / name).read_text().strip() for name in hostchanges.KUBELET_SYSCTLS}


def _tail(run_dir: Path) -> str:
    parts = []
    for log in sorted(run_dir.glob("*.log")):
        parts.append(f"== {log.name}\n" + "\n".join(log.read_text(errors="replace").splitlines()[-15:]))
    return "\n".join(parts)


def test_up_prints_the_kubeconfig_and_what_to_try(dev: DevEnv) -> None:
    assert f"export KUBECONFIG={dev.kubeconfig}" in dev.up.stdout
    assert "kubectl apply -f manifests/examples/pod-samplepod.yaml" in dev.up.stdout
    assert "[dev] starting etcd, kube-apiserver and kube-controller-manager" in dev.up.stdout
    assert "kubectl exec samplepod -- ip addr show net1" in dev.up.stdout


def test_everything_runs_detached_and_status_shows_it(dev: DevEnv) -> None:
    done = _dev("status", "--run-dir", str(dev.run_dir))
    assert done.returncode == 0, done.stdout + done.stderr
    names = {p["name"] for p in dev.state()["processes"]}
    assert {"supervisor", "etcd", "kube-apiserver", "kube-controller-manager", "webhook", "node",
            "containerd", "kube-scheduler", "kubelet"} <= names
    for process in dev.state()["processes"]:
        assert _live(process["pid"]), f"{process['name']} (pid {process['pid']}) is not running"
        row = next(line for line in done.stdout.splitlines() if line.startswith(process["name"] + " "))
        assert f" {process['pid']} " in row and " yes " in row and row.rstrip().endswith(process["endpoint"])
    node = next(p for p in dev.state()["processes"] if p["name"] == "node")
    assert node["endpoint"] == str(dev.run_dir / devenv.SOCKET_NAME)


def test_a_second_up_says_it_already_runs(dev: DevEnv) -> None:
    pids = sorted(p["pid"] for p in dev.state()["processes"])
    again = _dev("up", "--run-dir", str(dev.run_dir), timeout=60)
    assert again.returncode == 0
    assert "already running" in again.stdout
    assert sorted(p["pid"] for p in dev.state()["processes"]) == pids


def test_kubectl_sees_the_guides_subnets(dev: DevEnv) -> None:
    done = dev.kubectl("get", "subnets", "-o", "json")
    assert done.returncode == 0, done.stderr
    providers = {s["metadata"]["name"]: s["spec"]["provider"] for s in json.loads(done.stdout)["items"]}
    assert providers == {"macvlan": "macvlan.default", "attachnet": "attachnet.default.ovn"}
    nads = dev.kubectl("get", "network-attachment-definitions", "-n", "default", "-o", "name")
    assert set(nads.stdout.split()) == {
        "networkattachmentdefinition.k8s.cni.cncf.io/macvlan",
        "networkattachmentdefinition.k8s.cni.cncf.io/attachnet",
    }


def test_a_guide_pod_gets_its_address_and_the_node_daemon_serves_it(dev: DevEnv) -> None:
    created = dev.kubectl("apply", "-f", str(EXAMPLES / "pod-samplepod.yaml"))
    assert created.returncode == 0, created.stderr
    pod = json.loads(dev.kubectl("get", "pod", "samplepod", "-o", "json").stdout)
    annotations = pod["metadata"]["annotations"]
    assert annotations["macvlan.default.kubernetes.io/ip_address"] == "172.17.0.11"
    assert annotations["macvlan.default.kubernetes.io/allocated"] == "true"
    # The kube-ovn plugin, called by Multus as macvlan's IPAM, reads it back through the node daemon.
    conf = {
        "cniVersion": "0.3.0", "name": "macvlan", "type": "macvlan", "master": "eth0", "mode": "bridge",
        "ipam": {"type": "kube-ovn", "server_socket": str(dev.run_dir / devenv.SOCKET_NAME),
                 "provider": "macvlan.default"},
    }
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "CNI_COMMAND": "ADD", "CNI_CONTAINERID": "dev-test",
        "CNI_NETNS": "/var/run/netns/dev-test", "CNI_IFNAME": "net1", "CNI_PATH": "/usr/lib/cni",
        "CNI_ARGS": "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=samplepod",
    }
    plugin = Path(sys.executable).parent / "kube-ovn"
    result = subprocess.run([str(plugin)], input=json.dumps(conf), env=env, capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert [ip["address"] for ip in json.loads(result.stdout)["ips"]] == ["172.17.0.11/16"]


def test_with_the_node_the_guide_pod_runs_with_its_address_on_net1(dev: DevEnv) -> None:
    deadline = time.monotonic() + 60
    while dev.kubectl("get", "pod", "samplepod", "-o", "jsonpath={.status.phase}").stdout != "Running":
        assert time.monotonic() < deadline, dev.kubectl("describe", "pod", "samplepod").stdout
        time.sleep(0.3)
    shown = dev.kubectl("exec", "samplepod", "--", "ip", "addr", "show", "net1")
    assert shown.returncode == 0, shown.stderr
    assert "inet 172.17.0.11/16 " in shown.stdout


def test_down_stops_everything_and_leaves_no_process(dev: DevEnv) -> None:
    pids = [p["pid"] for p in dev.state()["processes"]]
    assert all(_live(pid) for pid in pids)
    done = subprocess.run([*DEV_SH, "down", "--run-dir", str(dev.run_dir)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no process left" in done.stdout
    deadline = time.monotonic() + 10
    while any(_live(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert [pid for pid in pids if _live(pid)] == []
    assert _processes_mentioning(str(dev.run_dir)) == []
    _assert_node_left_nothing(dev.run_dir, dev.sysctls_before)  # ...and the node left nothing either
    status = subprocess.run([*DEV_SH, "status", "--run-dir", str(dev.run_dir)],
                            capture_output=True, text=True, timeout=60, check=False)
    assert status.returncode == 1 and "not running" in status.stdout


def _assert_node_left_nothing(run_dir: Path, sysctls: dict[str, str]) -> None:
    for link in (node.NODE_LINK, node.MASTER_LINK, node.CLUSTER_BRIDGE):
        assert subprocess.run(["ip", "link", "show", link], capture_output=True, check=False).returncode != 0
    mounts = Path("/proc/self/mountinfo").read_text()
    assert str(run_dir) not in mounts and "/run/netns/cni-" not in mounts
    assert _sysctls() == sysctls
    cgroups = Path("/sys/fs/cgroup")
    assert not list(cgroups.glob("*/kubepods")) and not list(cgroups.glob("*/k8s.io"))
    assert _processes_mentioning(str(run_dir)) == []  # containerd's shims name its socket there
    assert not hostchanges.STATE_FILE.exists()


def test_down_after_a_killed_supervisor_still_puts_the_host_back(tmp_path: Path) -> None:
    sysctls = _sysctls()
    up = _dev("up", "--node", "--run-dir", str(tmp_path))
    assert up.returncode == 0, f"{up.stdout}\n{up.stderr}\n{_tail(tmp_path)}"
    env = DevEnv(tmp_path, up, sysctls)
    try:
        assert env.kubectl("apply", "-f", str(EXAMPLES / "pod-samplepod.yaml")).returncode == 0
        deadline = time.monotonic() + 60
        while env.kubectl("get", "pod", "samplepod", "-o", "jsonpath={.status.phase}").stdout != "Running":
            assert time.monotonic() < deadline
            time.sleep(0.3)
        os.kill(env.state()["supervisor_pid"], 9)  # its children die with it; containers do not
        time.sleep(1)
        assert _processes_mentioning(str(tmp_path))  # the pod's shims outlive it
    finally:
        down = _dev("down", "--run-dir", str(tmp_path), timeout=120)
    assert down.returncode == 0, down.stdout + down.stderr
    assert "cleaned up after a node that was not stopped" in down.stdout
    _assert_node_left_nothing(tmp_path, sysctls)


def test_dev_sh_names_a_bad_action() -> None:
    done = subprocess.run([*DEV_SH, "restart"], capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 2
    assert '"restart" is not one of them' in done.stderr
