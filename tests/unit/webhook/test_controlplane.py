"""The control-plane harness without a control plane: binary lookup, process groups, start failures."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from devtools.controlplane import ControlPlane, ControlPlaneError, ManagedProcess, find_binaries

REPO = Path(__file__).resolve().parents[3]
BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kubectl")


def _script(path: Path, body: str) -> Path:
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return path


def _alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            if text in cmdline and _alive(int(entry.name)):
                found.append(int(entry.name))
    return found


def test_missing_binaries_name_the_build_script(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBEBUILDER_ASSETS", raising=False)
    monkeypatch.setenv("MULTINIC_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("PATH", str(tmp_path / "no-bin"))
    with pytest.raises(ControlPlaneError, match=r"run `bash scripts/build-control-plane\.sh`") as failure:
        find_binaries()
    assert "kube-apiserver" in str(failure.value) and "etcd" in str(failure.value)


def test_kubebuilder_assets_win_over_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assets, cache = tmp_path / "assets", tmp_path / "cache"
    assets.mkdir()
    (cache / "bin").mkdir(parents=True)
    for name in BINARIES:
        _script(assets / name, "exit 0")
        _script(cache / "bin" / name, "exit 0")
    monkeypatch.setenv("KUBEBUILDER_ASSETS", str(assets))
    monkeypatch.setenv("MULTINIC_CACHE", str(cache))
    found = find_binaries()
    assert {name: path.parent for name, path in found.items()} == dict.fromkeys(BINARIES, assets)


def test_envtest_assets_need_no_controller_manager(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("etcd", "kube-apiserver", "kubectl"):
        _script(tmp_path / name, "exit 0")
    monkeypatch.setenv("KUBEBUILDER_ASSETS", str(tmp_path))
    monkeypatch.setenv("MULTINIC_CACHE", str(tmp_path / "empty-cache"))
    assert "kube-controller-manager" not in find_binaries()


def test_stop_kills_the_whole_process_group(tmp_path: Path) -> None:
    child_pid_file = tmp_path / "child.pid"
    process = ManagedProcess(
        "group", ["sh", "-c", f"sleep 300 & echo $! > {child_pid_file}; wait"], tmp_path / "group.log"
    )
    deadline = time.monotonic() + 10
    while not child_pid_file.exists() or not child_pid_file.read_text().strip():
        assert time.monotonic() < deadline, "the shell never started its child"
        time.sleep(0.05)
    child = int(child_pid_file.read_text())
    assert _alive(child) and process.running()
    process.stop(grace=5)
    assert not process.running()
    deadline = time.monotonic() + 5
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child)


def test_stop_escalates_to_sigkill(tmp_path: Path) -> None:
    process = ManagedProcess("stubborn", ["sh", "-c", "trap '' TERM; while :; do sleep 0.1; done"],
                             tmp_path / "stubborn.log")
    time.sleep(0.2)
    started = time.monotonic()
    process.stop(grace=0.5)
    assert not process.running()
    assert process.popen.returncode == -9
    assert time.monotonic() - started < 5


def test_a_failing_api_server_is_reported_with_its_log_and_etcd_is_stopped(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "etcd").symlink_to(find_binaries()["etcd"])
    _script(bin_dir / "kube-apiserver", 'echo "Error: unknown flag: --boom" >&2; exit 1')
    _script(bin_dir / "kube-controller-manager", "exit 1")
    _script(bin_dir / "kubectl", "exit 0")
    plane = ControlPlane(tmp_path / "work", bin_dir=bin_dir)
    with pytest.raises(ControlPlaneError, match=r"kube-apiserver exited during start") as failure:
        plane.start(timeout=30)
    assert "unknown flag: --boom" in str(failure.value)
    assert str(tmp_path / "work" / "kube-apiserver.log") in str(failure.value)
    assert plane.pids == []
    assert _processes_mentioning(str(bin_dir)) == []
    assert not plane.running()


def test_server_before_start_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ControlPlaneError, match="not started"):
        _ = ControlPlane(tmp_path).server
    assert not os.path.exists(tmp_path / "kubeconfig")


def test_a_port_taken_meanwhile_is_retried_with_new_ports(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "etcd-calls"
    etcd = find_binaries()["etcd"]
    _script(
        bin_dir / "etcd",
        f'echo $$ >> {calls}\n'
        f'if [ "$(wc -l < {calls})" -eq 1 ]; then\n'
        '  echo "listen tcp 127.0.0.1:2379: bind: address already in use" >&2; exit 1\n'
        f'fi\nexec {etcd} "$@"',
    )
    _script(bin_dir / "kube-apiserver", 'echo "Error: unknown flag: --boom" >&2; exit 1')
    _script(bin_dir / "kube-controller-manager", "exit 1")
    _script(bin_dir / "kubectl", "exit 0")
    plane = ControlPlane(tmp_path / "work", bin_dir=bin_dir)
    with pytest.raises(ControlPlaneError, match=r"kube-apiserver exited during start"):
        plane.start(timeout=30)
    pids = [int(pid) for pid in calls.read_text().split()]
    assert len(pids) == 2
    assert not any(_alive(pid) for pid in pids)


def test_children_die_with_a_killed_parent(tmp_path: Path) -> None:
    # A parent that starts a process and dies without stopping it, like a SIGKILLed pytest.
    program = (
        "import sys, os; from pathlib import Path; from devtools.controlplane import ManagedProcess; "
        f"p = ManagedProcess('orphan', ['sleep', '300'], Path({str(tmp_path / 'orphan.log')!r})); "
        "print(p.popen.pid, flush=True); os._exit(0)"
    )
    parent = subprocess.run([sys.executable, "-c", program], cwd=REPO, capture_output=True, text=True,
                            timeout=30, check=True)
    child = int(parent.stdout.strip())
    deadline = time.monotonic() + 5
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child)


def test_etcd_folders_of_dead_owners_are_swept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from devtools import controlplane

    monkeypatch.setattr(controlplane, "_tmpfs_base", lambda: tmp_path)
    dead = subprocess.run(["sh", "-c", "echo $$"], capture_output=True, text=True, check=True)
    stale = tmp_path / f"{controlplane.ETCD_DIR_PREFIX}stale"
    live = tmp_path / f"{controlplane.ETCD_DIR_PREFIX}live"
    for folder, pid in ((stale, dead.stdout.strip()), (live, str(os.getpid()))):
        (folder / "data").mkdir(parents=True)
        (folder / "owner.pid").write_text(pid)
    fresh = controlplane._etcd_data_dir()
    assert not stale.exists()
    assert live.exists()
    assert fresh.parent == tmp_path and (fresh / "owner.pid").read_text() == str(os.getpid())


@pytest.mark.parametrize(("version", "has_insecure_flag"), [("v1.20.2", True), ("v1.30.1", False)])
def test_insecure_port_flag_only_for_servers_that_have_it(
    tmp_path: Path, version: str, has_insecure_flag: bool
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    recorded = tmp_path / "apiserver-args"
    (bin_dir / "etcd").symlink_to(find_binaries()["etcd"])
    _script(
        bin_dir / "kube-apiserver",
        f'if [ "$1" = --version ]; then echo "Kubernetes {version}"; exit 0; fi\n'
        f'echo "$@" > {recorded}; exit 1',
    )
    _script(bin_dir / "kube-controller-manager", "exit 1")
    _script(bin_dir / "kubectl", "exit 0")
    with pytest.raises(ControlPlaneError):
        ControlPlane(tmp_path / "work", bin_dir=bin_dir).start(timeout=30)
    args = recorded.read_text().split()
    assert ("--insecure-port=0" in args) is has_insecure_flag
    assert "--authorization-mode=RBAC" in args and "--bind-address=127.0.0.1" in args
