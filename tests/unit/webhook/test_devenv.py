"""The parts of `dev up|status|down` that need no control plane: the build step's progress, status
of dead processes, and `down` finding and killing leftovers by process group."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from devtools import devenv


def _sleeper() -> subprocess.Popen[bytes]:
    """A process in its own group, like the ones the supervisor starts."""
    return subprocess.Popen(["sleep", "300"], start_new_session=True)


def test_missing_binaries_are_built_with_progress(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "cache"
    script = tmp_path / "build.sh"
    # A stand-in for scripts/build-control-plane.sh: slow, logging to build.log, then "caching" binaries.
    script.write_text(
        "set -e\n"
        f"mkdir -p {cache}/bin\n"
        f"echo 'compiling kube-apiserver' > {cache}/build.log\n"
        "sleep 1.5\n"
        f"for b in kube-apiserver kube-controller-manager; do printf '#!/bin/sh\\n' > {cache}/bin/$b; "
        f"chmod +x {cache}/bin/$b; done\n"
        "echo '[control-plane] built' >&2\n"
    )
    monkeypatch.setenv("MULTINIC_CACHE", str(cache))
    monkeypatch.delenv("KUBEBUILDER_ASSETS", raising=False)
    monkeypatch.setattr(devenv, "BUILD_SCRIPT", script)
    # A real file: the build script's output goes straight to it, as to a terminal.
    with open(tmp_path / "out.txt", "w+") as sink:
        devenv.ensure_control_plane_binaries(sink, progress_every=0.5)
        sink.seek(0)
        text = sink.read()
    assert f"running {script}" in text
    assert "still building" in text and "compiling kube-apiserver" in text
    assert (cache / "bin" / "kube-apiserver").is_file()


def test_a_failing_build_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    script = tmp_path / "build.sh"
    script.write_text("echo 'no compiler' >&2; exit 3\n")
    monkeypatch.setenv("MULTINIC_CACHE", str(tmp_path / "empty"))
    monkeypatch.delenv("KUBEBUILDER_ASSETS", raising=False)
    monkeypatch.setattr(devenv, "BUILD_SCRIPT", script)
    with open(tmp_path / "out.txt", "w") as sink, pytest.raises(devenv.DevEnvError, match="exit 3"):
        devenv.ensure_control_plane_binaries(sink)


def test_status_says_not_running_without_a_supervisor(tmp_path: Path) -> None:
    run = devenv.RunDir(tmp_path)
    out = io.StringIO()
    assert devenv.status(run, out=out) == 1
    assert "not running" in out.getvalue()
    run.write_state(supervisor_pid=os.getpid(), phase="ready", processes=[])
    assert run.supervisor_pid() is None  # this pytest process is not a supervisor of that folder


def test_down_kills_what_a_dead_supervisor_left_behind(tmp_path: Path) -> None:
    orphan = _sleeper()
    run = devenv.RunDir(tmp_path)
    run.write_state(supervisor_pid=999999, phase="ready", processes=[
        {"name": "webhook", "pid": orphan.pid, "pgid": orphan.pid, "endpoint": "-", "log": "-"},
    ])
    out = io.StringIO()
    try:
        assert devenv.down(run, out=out) == 0
        orphan.wait(timeout=10)
        assert orphan.returncode == -signal.SIGKILL
        assert devenv.processes_in_groups([orphan.pid]) == []
        assert "no process left" in out.getvalue()
        assert not run.state_path.exists()
    finally:
        if orphan.poll() is None:
            orphan.kill()


def test_down_with_nothing_running(tmp_path: Path) -> None:
    out = io.StringIO()
    assert devenv.down(devenv.RunDir(tmp_path), out=out) == 0
    assert "nothing runs" in out.getvalue()


def test_processes_in_groups_finds_children_of_a_group(tmp_path: Path) -> None:
    leader = subprocess.Popen(["sh", "-c", "sleep 300 & sleep 300 & wait"], start_new_session=True)
    try:
        deadline = time.monotonic() + 5
        while len(devenv.processes_in_groups([leader.pid])) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(devenv.processes_in_groups([leader.pid])) == 3
    finally:
        os.killpg(leader.pid, signal.SIGKILL)
        leader.wait(timeout=10)
    assert devenv.processes_in_groups([leader.pid]) == []


def test_alive_ignores_zombies() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 5
    while devenv.alive(child.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not devenv.alive(child.pid)  # exited, not yet reaped: a zombie is not running
    child.wait()
    assert devenv.alive(os.getpid())
