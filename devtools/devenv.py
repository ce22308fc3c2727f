"""The local environment behind `multinic-ipam dev up|status|down`.

`up` must return while everything keeps running, yet `down` must leave no process behind. So `up`
starts one detached supervisor (its own session, `python -m devtools.devenv`) that owns the control
plane, the webhook server and the node daemon as its children: each child runs in its own process
group and dies with the supervisor (parent-death signal), and the supervisor stops them all on
SIGTERM. The supervisor reports its progress and the processes it runs in `state.json` in the run
folder; `up`, `status` and `down` only read that file and signal the supervisor.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TextIO

REPO = Path(__file__).resolve().parents[1]
DEFAULT_RUN_DIR = REPO / ".run"
EXAMPLES = REPO / "manifests" / "examples"
# What `up` applies: the guide's two NADs, each with the Subnet bound to its provider.
STARTER_EXAMPLES = ("nad-macvlan.yaml", "subnet-macvlan.yaml", "nad-attachnet.yaml", "subnet-attachnet.yaml")
# With --node: the guide's NADs are applied again as the local node runs them (devtools/node.py).
NODE_NADS = ("nad-macvlan.yaml", "nad-attachnet.yaml")
BUILD_SCRIPT = REPO / "scripts" / "build-control-plane.sh"
STATE_FILE = "state.json"
SUPERVISOR_LOG = "supervisor.log"
SOCKET_NAME = "kube-ovn-daemon.sock"
CONTROL_PLANE_NAMES = frozenset({"etcd", "kube-apiserver", "kube-controller-manager"})
PHASE_READY = "ready"
PHASE_FAILED = "failed"
PHASE_STOPPED = "stopped"


@dataclass(frozen=True)
class RunningProcess:
    """One process of the environment as `status` shows it."""

    name: str
    pid: int
    pgid: int
    endpoint: str
    log: str


class DevEnvError(RuntimeError):
    """The environment could not be started or stopped; the message says what to do."""


# -- /proc helpers: what runs, without trusting pids blindly --------------------------------------


def _proc_stat(pid: int) -> tuple[str, int, int, int] | None:
    """(state, ppid, pgid, session) of `pid`, or None when it does not exist."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name sits in parentheses and may contain spaces: split after the last ')'.
    fields = text[text.rindex(")") + 2 :].split()
    return fields[0], int(fields[1]), int(fields[2]), int(fields[3])


def alive(pid: int) -> bool:
    """True when `pid` exists and is not a zombie."""
    stat = _proc_stat(pid)
    return stat is not None and stat[0] not in ("Z", "X")


def _all_pids() -> Iterable[int]:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            yield int(entry.name)


def processes_in_groups(pgids: Iterable[int]) -> list[int]:
    """Live processes whose process group is one of `pgids` (what `down` must leave empty)."""
    wanted = set(pgids)
    found = []
    for pid in _all_pids():
        stat = _proc_stat(pid)
        if stat is not None and stat[2] in wanted and stat[0] not in ("Z", "X"):
            found.append(pid)
    return sorted(found)


def _children_of(parent: int) -> list[int]:
    return sorted(pid for pid in _all_pids() if (s := _proc_stat(pid)) is not None and s[1] == parent)


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


# -- the state file ---------------------------------------------------------------------------------


class RunDir:
    """The run folder: state file, logs, certificates, kubeconfig, the node daemon's socket."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path).resolve()

    @property
    def state_path(self) -> Path:
        return self.path / STATE_FILE

    @property
    def kubeconfig(self) -> Path:
        return self.path / "controlplane" / "kubeconfig"

    @property
    def cert_dir(self) -> Path:
        return self.path / "certs"

    @property
    def socket_path(self) -> Path:
        return self.path / SOCKET_NAME

    @property
    def supervisor_log(self) -> Path:
        return self.path / SUPERVISOR_LOG

    def read_state(self) -> dict[str, Any] | None:
        try:
            return json.loads(self.state_path.read_text())
        except (OSError, ValueError):
            return None

    def write_state(self, **state: Any) -> None:
        """Atomically replace the state file (readers never see half a file)."""
        self.path.mkdir(parents=True, exist_ok=True)
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2) + "\n")
        tmp.replace(self.state_path)

    def supervisor_pid(self) -> int | None:
        """The supervisor's pid when its state file names one that is alive."""
        state = self.read_state()
        pid = int((state or {}).get("supervisor_pid") or 0)
        return pid if pid and alive(pid) and _is_supervisor(pid, self.path) else None


def _is_supervisor(pid: int, run_dir: Path) -> bool:
    """Guards against a recycled pid: the process must be our supervisor for this run folder."""
    argv = _cmdline(pid)
    return "devtools.devenv" in argv and str(run_dir) in argv


# -- the supervisor (runs detached) -----------------------------------------------------------------


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "webhook.cli", *args]


class _Child:
    """A long-running child of the supervisor (a `ManagedProcess` appending to its log in the run
    folder) and the endpoint it serves."""

    def __init__(self, name: str, argv: Sequence[str], log: Path, endpoint: str) -> None:
        from devtools.controlplane import ManagedProcess

        self.name, self.endpoint, self.log = name, endpoint, log
        self.process = ManagedProcess(name, argv, log, append=True, cwd=REPO)
        self.popen = self.process.popen

    def info(self) -> RunningProcess:
        return RunningProcess(self.name, self.popen.pid, self.popen.pid, self.endpoint, str(self.log))

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM the group, SIGKILL what is left after `grace`, then reap."""
        self.process.stop(grace)


class Supervisor:
    """Starts everything in order, records it, and stops it all on SIGTERM."""

    def __init__(self, run_dir: RunDir, *, node_name: str, workers: int, with_node: bool = False,
                 deployed: bool = False) -> None:
        self.run = run_dir
        self.node_name = node_name
        self.workers = workers
        self.with_node = with_node
        self.deployed = deployed
        self.node: Any = None
        self.children: list[_Child] = []
        self.plane: Any = None
        self.webhook_url = ""

    def phase(self, phase: str, message: str, **extra: Any) -> None:
        self.run.write_state(
            supervisor_pid=os.getpid(),
            phase=phase,
            message=message,
            kubeconfig=str(self.run.kubeconfig),
            processes=[asdict(p) for p in self.processes()],
            updated=time.time(),
            **extra,
        )

    def processes(self) -> list[RunningProcess]:
        me = os.getpid()
        found = [RunningProcess("supervisor", me, os.getpgid(me), "-", str(self.run.supervisor_log))]
        ours = {child.popen.pid for child in self.children}
        for pid in _children_of(me):
            argv = _cmdline(pid)
            name = Path(argv[0]).name if argv else ""
            stat = _proc_stat(pid)
            if pid in ours or name not in CONTROL_PLANE_NAMES or stat is None:
                continue
            found.append(
                RunningProcess(name, pid, stat[2], _endpoint(name, argv, self.plane),
                               str(self.run.path / "controlplane" / f"{name}.log"))
            )
        found.extend(child.info() for child in self.children)
        if self.node is not None:
            found.extend(RunningProcess(p.name, p.popen.pid, p.popen.pid, self.node.endpoint(p.name),
                                        str(p.log_path)) for p in self.node.processes if p.running())
        return found

    def run_forever(self) -> int:
        signal.signal(signal.SIGTERM, _exit_on_signal)
        signal.signal(signal.SIGINT, _exit_on_signal)
        signal.signal(signal.SIGHUP, _exit_on_signal)
        try:
            self.start()
            self.phase(PHASE_READY, "everything runs", webhook_url=self.webhook_url)
            while True:
                time.sleep(3600)
        except SystemExit:
            return 0
        except BaseException as error:
            self.phase(PHASE_FAILED, str(error))
            return 1
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                signal.signal(sig, signal.SIG_IGN)
            self.stop()

    def start(self) -> None:
        from devtools.controlplane import ControlPlane, free_port

        if self.deployed:
            self._start_deployed()
            return
        self.phase("starting", "starting etcd, kube-apiserver and kube-controller-manager")
        self.plane = ControlPlane(self.run.path / "controlplane")
        self.plane.start(timeout=180)

        self.phase("starting", "writing the webhook's certificates")
        self._check(_cli("certs", "--cert-dir", str(self.run.cert_dir), "--hosts", "127.0.0.1,localhost"))

        port = free_port()
        self.webhook_url = f"https://127.0.0.1:{port}"
        self.phase("starting", f"starting the webhook server on {self.webhook_url}")
        serve = _cli(
            "serve", "--kubeconfig", str(self.run.kubeconfig), "--bind", f"127.0.0.1:{port}",
            "--cert-dir", str(self.run.cert_dir), "--workers", str(self.workers),
        )
        self.children.append(_Child("webhook", serve, self.run.path / "webhook.log", self.webhook_url))
        self._wait_ready(self.children[-1], f"{self.webhook_url}/readyz", timeout=90)

        self.phase("starting", "installing the CRDs and both webhook configurations")
        self._check(
            _cli("install", "--kubeconfig", str(self.run.kubeconfig), "--url", self.webhook_url,
                 "--cert-dir", str(self.run.cert_dir))
        )

        socket_path = self.run.socket_path
        self.phase("starting", f"starting the node daemon on {socket_path}")
        node = _cli(
            "node", "--kubeconfig", str(self.run.kubeconfig), "--node-name", self.node_name,
            "--socket", str(socket_path),
        )
        self.children.append(_Child("node", node, self.run.path / "node.log", str(socket_path)))
        self._wait_for(socket_path.exists, self.children[-1], "create its socket", timeout=60)

        self.phase("starting", "applying the guide's NADs and Subnets")
        for name in STARTER_EXAMPLES:
            self._apply_with_retry(EXAMPLES / name)
        if self.with_node:
            self._start_node(socket_path)

    def _start_node(self, socket_path: Path) -> None:
        """kubelet + containerd + Multus as node `node_name`; the guide's NADs as they run there."""
        import yaml

        from devtools import node

        self.phase("starting", f"starting the node {self.node_name}: containerd, kube-scheduler, kubelet")
        self.node = node.LocalNode(self.run.path / "node", kubeconfig=self.run.kubeconfig,
                                   name=self.node_name)
        self.node.start()
        for name in NODE_NADS:
            nad = yaml.safe_load((EXAMPLES / name).read_text())
            nad["spec"]["config"] = json.dumps(node.for_node(json.loads(nad["spec"]["config"]), socket_path))
            path = self.run.path / f"node-{name}"
            path.write_text(yaml.safe_dump(nad))
            self._apply_with_retry(path)

    def _start_deployed(self) -> None:
        """The system in the node's pods, deployed as the README tells users (devtools/deploy.py)."""
        from devtools import deploy, node
        from devtools.controlplane import ControlPlane, binary_version, find_binaries

        self.phase("starting", "starting etcd, kube-apiserver and kube-controller-manager for pods")
        self.plane = ControlPlane(self.run.path / "controlplane", pods_via=node.NODE_IP)
        self.plane.start(timeout=180)
        self.phase("starting", f"starting the node {self.node_name}: containerd, kube-scheduler, "
                               "kube-proxy, kubelet")
        self.node = node.LocalNode(self.run.path / "node", kubeconfig=self.run.kubeconfig,
                                   name=self.node_name, deployed=True)
        self.node.start()
        tag = deploy.image_tag()
        self.phase("starting", f"building the image {deploy.IMAGE}:{tag} (scripts/build-image.sh) into "
                               "the node's containerd")
        deploy.build_image(tag, self.node)
        self.phase("starting", "deploying: the certificate Secret, kubectl apply -k, install --service, "
                               "the guide's NADs and Subnets")
        server = binary_version(find_binaries()["kube-apiserver"]) or (1, 20)
        system = deploy.Deployment(self.plane.kubectl, self.node, self.run.kubeconfig,
                                   self.run.path / "deploy", server)
        system.install(tag)

    def stop(self) -> None:
        if self.node is not None:
            problems = self.node.stop()
            if problems:
                with open(self.run.supervisor_log, "a") as log:
                    log.write(f"the node left behind: {'; '.join(problems)}\n")
        for child in reversed(self.children):
            child.stop()
        if self.plane is not None:
            self.plane.stop()
        state = self.run.read_state() or {}
        if state.get("phase") != PHASE_FAILED:
            self.run.write_state(supervisor_pid=os.getpid(), phase=PHASE_STOPPED, message="stopped",
                                 processes=[], updated=time.time())

    def _check(self, argv: Sequence[str]) -> None:
        done = subprocess.run(list(argv), capture_output=True, text=True, cwd=REPO, check=False)
        with open(self.run.supervisor_log, "a") as log:
            log.write(f"$ {' '.join(argv)}\n{done.stdout}{done.stderr}")
        if done.returncode != 0:
            lines = (done.stderr or done.stdout).strip().splitlines() or ["no output"]
            raise DevEnvError(
                f"`multinic-ipam {argv[3]}` failed: {lines[-1]} (its output is in {self.run.supervisor_log})"
            )

    def _apply_with_retry(self, path: Path, attempts: int = 10) -> None:
        """Apply one file; the webhook may need a moment after install before it admits NADs."""
        last = ""
        for _ in range(attempts):
            done = self.plane.kubectl("apply", "-f", str(path), check=False)
            if done.returncode == 0:
                return
            last = done.stderr.strip()
            time.sleep(1)
        raise DevEnvError(f"kubectl apply -f {path.name} failed: {last}")

    def _wait_ready(self, child: _Child, url: str, timeout: float) -> None:
        context = ssl.create_default_context(cafile=str(self.run.cert_dir / "ca.crt"))

        def ready() -> bool:
            try:
                with urllib.request.urlopen(url, timeout=3, context=context) as response:
                    return response.status == 200
            except (urllib.error.URLError, OSError):
                return False

        self._wait_for(ready, child, f"answer {url}", timeout=timeout)

    @staticmethod
    def _wait_for(condition: Callable[[], bool], child: _Child, what: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return
            if child.popen.poll() is not None:
                raise DevEnvError(f"{child.name} exited before it could {what}; see {child.log}")
            time.sleep(0.3)
        raise DevEnvError(f"{child.name} did not {what} within {timeout:.0f}s; see {child.log}")


def _exit_on_signal(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def _endpoint(name: str, argv: Sequence[str], plane: Any) -> str:
    if name == "kube-apiserver" and plane is not None:
        return str(plane.server)
    for arg in argv:
        if arg.startswith("--listen-client-urls="):
            return arg.split("=", 1)[1]
    return "-"


# -- the commands -------------------------------------------------------------------------------------


def _say(out: TextIO, text: str) -> None:
    print(text, file=out, flush=True)


def ensure_control_plane_binaries(out: TextIO, *, progress_every: float = 20.0) -> None:
    """Build and cache the control plane when it is missing, showing progress (it takes minutes)."""
    from devtools.controlplane import ControlPlaneError, cache_dir, find_binaries

    try:
        find_binaries()
        return
    except ControlPlaneError:
        pass
    _say(out, f"[dev] the control plane is not built yet; running {BUILD_SCRIPT} (several minutes, once)")
    build_log = cache_dir() / "build.log"
    started = time.monotonic()
    process = subprocess.Popen(["bash", str(BUILD_SCRIPT)], stdout=out, stderr=out)
    while process.poll() is None:
        try:
            process.wait(timeout=progress_every)
        except subprocess.TimeoutExpired:
            last = _last_line(build_log)
            elapsed = time.monotonic() - started
            _say(out, f"[dev] still building ({elapsed:.0f}s){': ' + last if last else ''}")
    if process.returncode != 0:
        raise DevEnvError(f"{BUILD_SCRIPT} failed (exit {process.returncode}); see its output above")
    find_binaries()


def _last_line(path: Path) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return lines[-1][:100] if lines else ""


def up(run_dir: RunDir, *, out: TextIO, timeout: float = 300.0, node_name: str | None = None,
       workers: int = 1, with_node: bool = False, deployed: bool = False) -> int:
    """Start everything detached; a second `up` only reports that it already runs."""
    if run_dir.supervisor_pid() is not None:
        _say(out, f"[dev] already running (run folder {run_dir.path}); `multinic-ipam dev status` shows it")
        _print_next_steps(run_dir, out)
        return 0
    if not (EXAMPLES / STARTER_EXAMPLES[0]).is_file():
        raise DevEnvError(f"dev up runs from a checkout of the repository; {EXAMPLES} is missing")
    ensure_control_plane_binaries(out)
    run_dir.path.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        run_dir.state_path.unlink()
    argv = [sys.executable, "-m", "devtools.devenv", "--run-dir", str(run_dir.path),
            "--node-name", node_name or socket.gethostname(), "--workers", str(workers),
            *(["--node"] if with_node else []), *(["--deploy"] if deployed else [])]
    with open(run_dir.supervisor_log, "ab") as log:
        supervisor = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, cwd=REPO,
        )
    shown = ""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = run_dir.read_state() or {}
        message = state.get("message", "")
        if message and message != shown and state.get("phase") not in (PHASE_READY, PHASE_FAILED):
            _say(out, f"[dev] {message}")
            shown = message
        if state.get("phase") == PHASE_READY:
            _say(out, f"[dev] ready (supervisor pid {supervisor.pid}, logs in {run_dir.path})")
            _print_next_steps(run_dir, out, with_node=with_node)
            return 0
        if state.get("phase") == PHASE_FAILED or supervisor.poll() is not None:
            supervisor.wait(timeout=60)
            reason = state.get("message") or _last_line(run_dir.supervisor_log) or "it exited"
            raise DevEnvError(f"dev up failed: {reason} (logs in {run_dir.path})")
        time.sleep(0.3)
    down(run_dir, out=out)
    raise DevEnvError(f"dev up did not finish within {timeout:.0f}s; logs in {run_dir.path}")


def _print_next_steps(run_dir: RunDir, out: TextIO, *, with_node: bool = False) -> None:
    examples = os.path.relpath(EXAMPLES, Path.cwd()) if EXAMPLES.is_relative_to(Path.cwd()) else EXAMPLES
    _say(out, f"\nexport KUBECONFIG={run_dir.kubeconfig}")
    tools = Path(sys.executable).parent
    if shutil.which("kubectl-ipam") != str(tools / "kubectl-ipam"):
        _say(out, f"export PATH={tools}:$PATH    # multinic-ipam, and kubectl-ipam for `kubectl ipam`")
    _say(out, "")
    _say(out, "Then try:")
    _say(out, "  kubectl get subnets")
    _say(out, f"  kubectl apply -f {examples}/pod-samplepod.yaml")
    _say(out, "  kubectl get pod samplepod -o jsonpath='{.metadata.annotations}'")
    if with_node:
        _say(out, "  kubectl get pod samplepod                  # Running on the local node")
        _say(out, "  kubectl exec samplepod -- ip addr show net1   # the annotated address")
    _say(out, "  multinic-ipam status        # or: kubectl ipam status")
    _say(out, "  multinic-ipam who-has 172.17.0.11")
    _say(out, f"  ls {examples}/              # every YAML of the guide")
    _say(out, "  multinic-ipam dev down      # stop everything")


def status(run_dir: RunDir, *, out: TextIO) -> int:
    """Print what runs; exit 0 only when everything recorded is alive."""
    state = run_dir.read_state()
    if state is None or run_dir.supervisor_pid() is None:
        _say(out, f"not running (run folder {run_dir.path})")
        return 1
    processes = [RunningProcess(**p) for p in state.get("processes", [])]
    _say(out, f"phase: {state.get('phase')} ({state.get('message')})")
    _say(out, f"kubeconfig: {state.get('kubeconfig')}")
    rows = [("NAME", "PID", "ALIVE", "ENDPOINT")]
    rows += [(p.name, str(p.pid), "yes" if alive(p.pid) else "no", p.endpoint) for p in processes]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        _say(out, "  ".join([*cells, row[3]]))
    everything_alive = bool(processes) and all(alive(p.pid) for p in processes)
    return 0 if everything_alive and state.get("phase") == PHASE_READY else 1


def down(run_dir: RunDir, *, out: TextIO, timeout: float = 60.0) -> int:
    """Stop the supervisor (which stops its children), then make sure no process is left."""
    state = run_dir.read_state() or {}
    pgids = {int(p["pgid"]) for p in state.get("processes", [])}
    pid = run_dir.supervisor_pid()
    if pid is None and not processes_in_groups(pgids):
        _say(out, f"[dev] nothing runs (run folder {run_dir.path})")
        _recover_node(out)
        return 0
    if pid is not None:
        pgids.add(os.getpgid(pid))
        _say(out, f"[dev] stopping the supervisor (pid {pid}) and everything it started")
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
    leftovers = processes_in_groups(pgids)
    for pgid in pgids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
    if leftovers:
        _say(out, f"[dev] killed leftover processes {leftovers}")
        deadline = time.monotonic() + 10
        while processes_in_groups(pgids) and time.monotonic() < deadline:
            time.sleep(0.1)
    remaining = processes_in_groups(pgids)
    if remaining:
        raise DevEnvError(f"processes {remaining} survived SIGKILL; check them with `ps -o pid,cmd -p ...`")
    _recover_node(out)
    with contextlib.suppress(FileNotFoundError):
        run_dir.state_path.unlink()
    _say(out, "[dev] stopped; no process left")
    return 0


def _recover_node(out: TextIO) -> None:
    """A node whose supervisor was killed left containers, mounts and links: put the host back."""
    from devtools import hostchanges

    if not hostchanges.STATE_FILE.exists():
        return
    try:
        left = hostchanges.HostChanges.recover_stale()
    except hostchanges.NodeRunningError:
        return  # another run folder's node: not ours to stop
    _say(out, "[dev] cleaned up after a node that was not stopped")
    if left:
        raise DevEnvError(f"the node left {'; '.join(left)}")


def main(argv: Sequence[str] | None = None) -> int:
    """The supervisor's entry point (`python -m devtools.devenv`); `dev up` starts it detached."""
    parser = argparse.ArgumentParser(prog="python -m devtools.devenv")
    parser.add_argument("--run-dir", type=Path, required=True)
    parser.add_argument("--node-name", default=socket.gethostname())
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--node", action="store_true")
    parser.add_argument("--deploy", action="store_true")
    args = parser.parse_args(argv)
    supervisor = Supervisor(RunDir(args.run_dir), node_name=args.node_name, workers=args.workers,
                            with_node=args.node, deployed=args.deploy)
    return supervisor.run_forever()


if __name__ == "__main__":
    sys.exit(main())
