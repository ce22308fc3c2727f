"""What a kubelet and containerd change on the host, noted before they start and put back after.

kubelet sets kernel tunables, makes cgroups and writes /var/log/pods; containerd mounts rootfs and
network namespaces; the node's links live in the host namespace. `HostChanges.snapshot()` records
the state before, `restore()` removes exactly what appeared since (and never what was there before).
The snapshot is also kept in a file until restored, so a node whose owner was killed is cleaned up
by the next one (`recover_stale()`).
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

# What kubelet 1.20 sets at start (pkg/kubelet/cm: setupKernelTunables) unless told to only check them.
# And what kube-proxy 1.20's iptables mode sets (NewProxier), when the node runs it.
KUBELET_SYSCTLS = ("vm/overcommit_memory", "kernel/panic", "kernel/panic_on_oops",
                   "net/ipv4/conf/all/route_localnet")
# Fixed paths: kubelet's logs whatever its root dir, the shims' sockets (/run/containerd/s), and the
# CNI library's result cache that containerd keeps (/var/lib/cni/results).
SHARED_FOLDERS = (Path("/var/log/pods"), Path("/var/log/containers"), Path("/run/containerd"),
                  Path("/var/lib/cni"))
NETNS_FOLDER = Path("/run/netns")
CGROUP_ROOT = Path("/sys/fs/cgroup")
# The cgroups a node makes: kubelet's pod hierarchy, and containerd's per-namespace one.
NODE_CGROUPS = frozenset({"kubepods", "k8s.io"})
STATE_FILE = Path("/run/multinic-ipam/node-host.json")


class NodeRunningError(RuntimeError):
    """Another local node owns the host's node state; the message names its process."""


def _mountpoints() -> list[Path]:
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        points.append(Path(point))
    return points


def _cgroup_dirs() -> set[Path]:
    """The node's cgroups (under `kubepods` or `k8s.io`) in every controller."""
    found: set[Path] = set()
    if not CGROUP_ROOT.is_dir():
        return found
    for controller in CGROUP_ROOT.iterdir():
        if controller.is_dir() and not controller.is_symlink():
            found.update(path for path in controller.rglob("*")
                         if path.is_dir() and NODE_CGROUPS & set(path.relative_to(controller).parts))
    return found


def _owner_alive(pid: int) -> bool:
    """True when `pid` runs (a killed owner nobody has reaped yet is a zombie: not alive)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2 :].split()[0] not in ("Z", "X")


def _kill_processes_in(cgroups: list[Path]) -> None:
    """SIGKILL what runs in `cgroups` (containers whose shim is gone), then wait for them to go."""
    pids: set[int] = set()
    for group in cgroups:
        with contextlib.suppress(OSError, ValueError):
            pids.update(int(pid) for pid in (group / "cgroup.procs").read_text().split())
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while pids and time.monotonic() < deadline:
        pids = {pid for pid in pids if Path(f"/proc/{pid}").exists()}
        time.sleep(0.1)


def kill_shims(workdir: Path) -> None:
    """containerd's shims outlive containerd (own process groups); ours name a socket under `workdir`."""
    marker = str(workdir).encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"containerd-shim-runc-v2") and any(marker in arg for arg in argv):
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(entry.name), signal.SIGKILL)


def _umount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False, timeout=30)


def _iptables(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["iptables", *args], capture_output=True, text=True, check=False, timeout=30)


def _kube_chains() -> set[str]:
    """The host's KUBE-* iptables chains as `table/chain` (kube-proxy makes them, and its canaries and
    mark chains stay after its own `--cleanup`)."""
    if shutil.which("iptables-save") is None:
        return set()
    saved = subprocess.run(["iptables-save"], capture_output=True, text=True, check=False, timeout=30)
    table, found = "", set()
    for line in saved.stdout.splitlines():
        if line.startswith("*"):
            table = line[1:]
        elif line.startswith(":KUBE-"):
            found.add(f"{table}/{line[1:].split()[0]}")
    return found


def _remove_chains(chains: set[str]) -> list[str]:
    """Delete `chains` and every rule jumping to them; returns what could not be deleted."""
    for entry in chains:
        table, chain = entry.split("/")
        for rule in _iptables("-t", table, "-S").stdout.splitlines():
            parts = shlex.split(rule)
            if parts[0] == "-A" and "-j" in parts and parts[parts.index("-j") + 1] == chain:
                _iptables("-t", table, "-D", *parts[1:])
        _iptables("-t", table, "-F", chain)
    problems = []
    for entry in sorted(chains):
        table, chain = entry.split("/")
        done = _iptables("-t", table, "-X", chain)
        if done.returncode != 0:
            problems.append(f"iptables chain {entry}: {done.stderr.strip()}")
    return problems


@dataclass
class HostChanges:
    """A snapshot of the host taken before the node starts."""

    workdir: Path
    links: tuple[str, ...]
    sysctls: dict[str, str] = field(default_factory=dict)
    netns: set[str] = field(default_factory=set)
    cgroups: set[Path] = field(default_factory=set)
    shared_entries: dict[Path, set[str] | None] = field(default_factory=dict)
    kube_chains: set[str] = field(default_factory=set)

    @classmethod
    def snapshot(cls, workdir: Path, links: tuple[str, ...]) -> HostChanges:
        changes = cls(workdir=workdir, links=links)
        for name in KUBELET_SYSCTLS:
            changes.sysctls[name] = (Path("/proc/sys") / name).read_text().strip()
        changes.netns = set(os.listdir(NETNS_FOLDER)) if NETNS_FOLDER.is_dir() else set()
        changes.cgroups = _cgroup_dirs()
        changes.kube_chains = _kube_chains()
        for folder in SHARED_FOLDERS:
            changes.shared_entries[folder] = set(os.listdir(folder)) if folder.is_dir() else None
        changes._save()
        return changes

    def _save(self) -> None:
        STATE_FILE.parent.mkdir(parents=True, exist_ok=True)
        STATE_FILE.write_text(json.dumps({
            "owner": os.getpid(), "workdir": str(self.workdir), "links": list(self.links),
            "sysctls": self.sysctls, "netns": sorted(self.netns), "cgroups": sorted(map(str, self.cgroups)),
            "shared": {str(k): None if v is None else sorted(v) for k, v in self.shared_entries.items()},
            "kube_chains": sorted(self.kube_chains),
        }))

    @classmethod
    def recover_stale(cls) -> list[str]:
        """Restore the host after a node whose owner died without stopping it (SIGKILL, a crash);
        raises NodeRunningError when that owner still lives. Returns what could not be undone."""
        try:
            saved = json.loads(STATE_FILE.read_text())
        except FileNotFoundError:
            return []
        if saved["owner"] != os.getpid() and _owner_alive(saved["owner"]):
            raise NodeRunningError(f"a local node of process {saved['owner']} runs; stop it first "
                              f"(`multinic-ipam dev down`)")
        shared = {Path(k): None if v is None else set(v) for k, v in saved["shared"].items()}
        stale = cls(workdir=Path(saved["workdir"]), links=tuple(saved["links"]), sysctls=saved["sysctls"],
                    netns=set(saved["netns"]), cgroups={Path(p) for p in saved["cgroups"]},
                    shared_entries=shared, kube_chains=set(saved.get("kube_chains", ())))
        return stale.restore()

    def restore(self) -> list[str]:
        """Undo everything that appeared since the snapshot; returns what could not be undone."""
        problems: list[str] = []
        kill_shims(self.workdir)
        new_cgroups = sorted(_cgroup_dirs() - self.cgroups, key=lambda p: len(p.parts), reverse=True)
        _kill_processes_in(new_cgroups)
        self._unmount_new()
        for path in self._new_netns():
            with contextlib.suppress(OSError):
                path.unlink()
        for path in new_cgroups:
            try:
                path.rmdir()
            except FileNotFoundError:
                pass
            except OSError as error:
                problems.append(f"cgroup {path}: {error.strerror}")
        for name, value in self.sysctls.items():
            try:
                (Path("/proc/sys") / name).write_text(value)
            except OSError as error:
                problems.append(f"sysctl {name}: {error.strerror}")
        for folder, before in self.shared_entries.items():
            if before is None:
                shutil.rmtree(folder, ignore_errors=True)
            elif folder.is_dir():
                for name in set(os.listdir(folder)) - before:
                    target = folder / name
                    if target.is_dir() and not target.is_symlink():
                        shutil.rmtree(target, ignore_errors=True)
                    else:
                        target.unlink(missing_ok=True)
        problems += _remove_chains(_kube_chains() - self.kube_chains)
        for link in self.links:
            subprocess.run(["ip", "link", "del", link], capture_output=True, check=False, timeout=30)
        STATE_FILE.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            STATE_FILE.parent.rmdir()
        return problems

    def _new_netns(self) -> list[Path]:
        """containerd's pod network namespaces made since (other tests make namespaces of their own)."""
        if not NETNS_FOLDER.is_dir():
            return []
        return [NETNS_FOLDER / name for name in sorted(set(os.listdir(NETNS_FOLDER)) - self.netns)
                if name.startswith("cni-")]

    def _unmount_new(self) -> None:
        """Mounts under the work folder (kubelet's root bind mount, container rootfs) and the pods'
        network namespaces, deepest first."""
        netns = self._new_netns()
        workdir = self.workdir.resolve()
        for _ in range(3):  # a bind mount may be stacked on itself
            doomed = [p for p in _mountpoints() if p == workdir or workdir in p.parents or p in netns]
            if not doomed:
                return
            for point in sorted(set(doomed), key=lambda p: len(p.parts), reverse=True):
                _umount(point)
