"""A real, throwaway Kubernetes control plane: etcd + kube-apiserver + kube-controller-manager.

Admission can only be tested honestly against a real API server (its webhook calls, dry-run,
patch application, status codes), so tests and `dev up` start one here. Everything it starts runs
in its own process group and is killed by `stop()`; ports are picked free at start, so several
control planes (several engineers, several sessions) can run side by side on one machine.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml

BUILD_SCRIPT = "scripts/build-control-plane.sh"
ADMIN_USER = "multinic-ipam-admin"
# kubectl verbs that send objects for the server to validate; kubectl 1.32 would otherwise validate
# them against a 1.20 server's OpenAPI and refuse fields newer than 1.20.
_VALIDATING_VERBS = frozenset({"apply", "create", "replace"})
_LOG_TAIL_LINES = 30
_PORT_ATTEMPTS = 3
_PORT_TAKEN = "address already in use"


class ControlPlaneError(RuntimeError):
    """The control plane could not be found or started; the message says what to do."""


class KubectlError(subprocess.CalledProcessError):
    """A kubectl call failed; unlike CalledProcessError, its text includes kubectl's stderr."""

    def __str__(self) -> str:
        command = " ".join(str(part) for part in self.cmd)
        return f"{command!r} exited with {self.returncode}: {(self.stderr or '').strip()}"


SERVICE_RANGE = "10.96.0.0/12"
SERVICE_IP = "10.96.0.1"  # the `kubernetes` Service, the first address of the range
# With `pods_via`: Endpoints and EndpointSlices for kube-proxy, and service-account tokens for pods.
_POD_CONTROLLERS = ",endpoint,endpointslice,endpointslicemirroring,serviceaccount,serviceaccount-token"


def cache_dir() -> Path:
    """Where `scripts/build-control-plane.sh` caches binaries (`MULTINIC_CACHE` overrides)."""
    return Path(os.environ.get("MULTINIC_CACHE") or Path.home() / ".cache" / "multinic-ipam")


def find_binaries(bin_dir: Path | None = None) -> dict[str, Path]:
    """Paths of etcd, kube-apiserver, kube-controller-manager and kubectl.

    Order: an explicit `bin_dir`, then `KUBEBUILDER_ASSETS` (the envtest convention), then the
    build cache for the Kubernetes binaries with Debian's etcd and the kubectl on PATH.
    """
    assets = os.environ.get("KUBEBUILDER_ASSETS")
    folders: list[Path] = []
    if bin_dir is not None:
        folders.append(Path(bin_dir))
    if assets:
        folders.append(Path(assets))
    folders.append(cache_dir() / "bin")
    found: dict[str, Path] = {}
    missing: list[str] = []
    for name in ("etcd", "kube-apiserver", "kube-controller-manager", "kubectl"):
        candidates = [folder / name for folder in folders]
        on_path = shutil.which(name)
        if on_path and name in ("etcd", "kubectl"):
            candidates.append(Path(on_path))
        path = next((c for c in candidates if c.is_file() and os.access(c, os.X_OK)), None)
        if path is None:
            missing.append(name)
        else:
            found[name] = path
    # envtest asset folders carry no controller manager; it is optional then (no workload pods).
    if missing == ["kube-controller-manager"] and assets:
        return found
    if missing:
        searched = ", ".join(str(f) for f in folders)
        raise ControlPlaneError(
            f"missing control-plane binaries {', '.join(missing)} (searched {searched} and PATH); "
            f"run `bash {BUILD_SCRIPT}` to build and cache them, or set KUBEBUILDER_ASSETS"
        )
    return found


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


ETCD_DIR_PREFIX = "multinic-etcd-"
_OWNER_FILE = "owner.pid"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _tmpfs_base() -> Path | None:
    shm = Path("/dev/shm")
    return shm if shm.is_dir() and os.access(shm, os.W_OK) else None


def _etcd_data_dir() -> Path:
    """A fresh folder on /dev/shm when there is one: etcd fsyncs every write, tmpfs makes that free.

    It records its owner's pid; folders left by owners that died without `stop()` (a SIGKILLed
    test run) are swept here, since tmpfs holds them in memory until reboot.
    """
    base = _tmpfs_base()
    if base is not None:
        for stale in base.glob(f"{ETCD_DIR_PREFIX}*"):
            try:
                owner = int((stale / _OWNER_FILE).read_text())
            except (OSError, ValueError):
                continue
            if not _pid_alive(owner):
                shutil.rmtree(stale, ignore_errors=True)
    folder = Path(tempfile.mkdtemp(prefix=ETCD_DIR_PREFIX, dir=base))
    (folder / _OWNER_FILE).write_text(str(os.getpid()))
    return folder


def _write_serving_certs(cert_dir: Path, extra_hosts: tuple[str, ...] = ()) -> tuple[Path, Path, Path]:
    """A throwaway CA and a serving certificate for 127.0.0.1/localhost (and `extra_hosts`); returns
    (ca, crt, key).

    Made by `certs.generate`, the code that makes the webhook's own, so both servers' TLS is one
    kind of certificate."""
    from certs import generate

    paths = generate.write_certificates(
        cert_dir, ["localhost", "kubernetes.default.svc", "127.0.0.1", *extra_hosts], ca_days=7, cert_days=7
    )
    return paths.ca_cert, paths.cert, paths.key


def _write_service_account_key(path: Path) -> Path:
    """The key the API server signs service-account tokens with (1.20 requires one)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)
    return path


def binary_version(path: Path) -> tuple[int, int] | None:
    """(major, minor) from `<binary> --version` ("Kubernetes v1.20.2"); None when unreadable."""
    try:
        done = subprocess.run(
            [str(path), "--version"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    found = re.search(r"v(\d+)\.(\d+)", done.stdout + done.stderr)
    return (int(found.group(1)), int(found.group(2))) if found else None


def _insecure_port_off(binary: Path, flag: str) -> list[str]:
    """`flag` for binaries that still have an insecure port (before 1.24, which removed the flag).

    The cached build is 1.20; KUBEBUILDER_ASSETS may hold a newer kube-apiserver.
    """
    version = binary_version(binary)
    return [flag] if version is None or version < (1, 24) else []


def _parent_death_hook() -> Callable[[], None] | None:
    """A pre-exec hook making the child die with us (Linux `prctl(PR_SET_PDEATHSIG)`).

    A killed test run then leaves no orphaned etcd behind. libc is resolved here, in the parent,
    so the child makes a single foreign call between fork and exec. The signal follows the
    *thread* that started the child: start control planes from a long-lived thread (the main one).
    """
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig = 1

    def hook() -> None:
        prctl(pr_set_pdeathsig, signal.SIGKILL)

    return hook


class ManagedProcess:
    """One started binary: its own process group, its log file, and a tail for error messages."""

    def __init__(
        self, name: str, argv: Sequence[str], log_path: Path, *, append: bool = False, cwd: Path | None = None
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.cwd = cwd
        self.popen = self._spawn(append=append)

    def _spawn(self, *, append: bool) -> subprocess.Popen[bytes]:
        with open(self.log_path, "ab" if append else "wb") as log:
            return subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_parent_death_hook(),  # noqa: PLW1509 (one prctl call, resolved beforehand)
                cwd=self.cwd,
            )

    def respawn(self) -> None:
        """Start the same command again (after it was stopped or killed), appending to its log."""
        if self.running():
            raise ControlPlaneError(f"{self.name} is still running; stop it before starting it again")
        self.popen = self._spawn(append=True)

    def running(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, lines: int = _LOG_TAIL_LINES) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM the whole process group, SIGKILL what is left after `grace` seconds.

        Also when the leader has exited already: children that outlived it are still in its group."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGTERM)
        try:
            self.popen.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout=grace)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)


class ControlPlane:
    """etcd, kube-apiserver and (when available) kube-controller-manager on free local ports.

    `kubeconfig` is an admin kubeconfig (a bearer token in group system:masters) that verifies the
    server's certificate. Use as a context manager, or call `start()` and `stop()`.
    """

    def __init__(self, workdir: Path, bin_dir: Path | None = None, *, pods_via: str | None = None) -> None:
        """`pods_via`: an address of a local node (devtools/node.py) through which pods reach the API
        server as in a cluster: it is advertised as the `kubernetes` Service's endpoint (the server
        listens on every address), service-account tokens are issued and mounted, and Endpoints and
        EndpointSlices are kept for kube-proxy. Without it, nothing runs in pods."""
        self.workdir = Path(workdir)
        self.bin_dir = bin_dir
        self.pods_via = pods_via
        self._processes: list[ManagedProcess] = []
        self._etcd_data: Path | None = None
        self._port: int | None = None
        self._etcd_url = ""
        self._token = secrets.token_urlsafe(32)
        self._binaries: dict[str, Path] = {}
        self._atexit_registered = False

    # -- public surface ---------------------------------------------------------------------------

    @property
    def server(self) -> str:
        if self._port is None:
            raise ControlPlaneError("the control plane is not started")
        return f"https://127.0.0.1:{self._port}"

    @property
    def kubeconfig(self) -> Path:
        return self.workdir / "kubeconfig"

    @property
    def ca_file(self) -> Path:
        """The CA that signed the API server's serving certificate."""
        return self.workdir / "pki" / "ca.crt"

    @property
    def token(self) -> str:
        return self._token

    @property
    def kubectl_path(self) -> Path:
        return self._binaries.get("kubectl") or find_binaries(self.bin_dir)["kubectl"]

    def start(self, timeout: float = 90.0) -> ControlPlane:
        """Start everything and wait until the API server is ready; on failure stop it all."""
        if self._processes:
            raise ControlPlaneError(f"the control plane in {self.workdir} is already started")
        self._binaries = find_binaries(self.bin_dir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        if not self._atexit_registered:
            atexit.register(self.stop)
            self._atexit_registered = True
        deadline = time.monotonic() + timeout
        for attempt in range(1, _PORT_ATTEMPTS + 1):
            try:
                client_port = self._start_etcd()
                self._start_apiserver(client_port)
                self._wait_ready(deadline)
                self._start_controller_manager()
                return self
            except ControlPlaneError as error:
                self.stop()
                # A port picked free can be taken before the process binds it (other control
                # planes start on this machine too): pick new ports and try again.
                if _PORT_TAKEN not in str(error) or attempt == _PORT_ATTEMPTS:
                    raise
            except BaseException:
                self.stop()
                raise
        raise AssertionError("unreachable")

    def stop(self) -> None:
        """Kill every process this control plane started (process groups) and drop etcd's data."""
        for process in reversed(self._processes):
            process.stop()
        self._processes.clear()
        if self._etcd_data is not None:
            shutil.rmtree(self._etcd_data, ignore_errors=True)
            self._etcd_data = None

    @property
    def pids(self) -> list[int]:
        """Process ids of what is running now (etcd, kube-apiserver, kube-controller-manager)."""
        return [process.popen.pid for process in self._processes]

    def running(self) -> bool:
        return bool(self._processes) and all(p.running() for p in self._processes)

    def interrupt(self, name: str, sig: int = signal.SIGKILL, grace: float = 10.0) -> float:
        """Send `sig` to one part (`etcd`, `kube-apiserver`, …) and wait until it has exited, with
        SIGKILL after `grace` seconds as a kubelet ends a pod: a crash (SIGKILL) or a stop (SIGTERM)
        for fault-injection tests; `resume` starts it again. Returns the seconds until it was gone."""
        process = self._process(name)
        started = time.monotonic()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.popen.pid, sig)
        try:
            process.popen.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.popen.pid, signal.SIGKILL)
            process.popen.wait(timeout=30)
        return time.monotonic() - started

    def resume(self, name: str, timeout: float = 60.0) -> float:
        """Start an interrupted part again with its old command line (same ports, same etcd data)
        and wait until it answers; returns the seconds that took."""
        process = self._process(name)
        started = time.monotonic()
        process.respawn()
        deadline = started + timeout
        if name == "etcd":
            self._wait_etcd(process, self._etcd_url, deadline)
        elif name == "kube-apiserver":
            self._wait_ready(deadline)
        return time.monotonic() - started

    def _process(self, name: str) -> ManagedProcess:
        found = next((p for p in self._processes if p.name == name), None)
        if found is None:
            running = ", ".join(p.name for p in self._processes)
            raise ControlPlaneError(f"no {name} in this control plane; it runs {running}")
        return found

    def api_client(self) -> Any:
        """A `kubernetes.client.ApiClient` talking to this API server as the admin (for the tests:
        the client library is a test dependency, not the product's)."""
        try:
            from kubernetes import config
        except ImportError:
            raise ControlPlaneError(
                "the kubernetes client library is not installed; install the test extra: "
                "pip install -e '.[test]'") from None

        return config.new_client_from_config(config_file=str(self.kubeconfig))

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 60.0
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl against this control plane (text mode, output captured).

        `apply`, `create` and `replace` get `--validate=false` unless a `--validate` is given: the
        kubectl here is newer than the 1.20 server and would reject fields the server accepts.
        """
        argv = [str(self.kubectl_path), f"--kubeconfig={self.kubeconfig}", *args]
        if args and args[0] in _VALIDATING_VERBS and not any(a.startswith("--validate") for a in args):
            argv.append("--validate=false")
        completed = subprocess.run(
            argv, input=input, text=True, capture_output=True, timeout=timeout, check=False
        )
        if check and completed.returncode != 0:
            raise KubectlError(completed.returncode, argv, completed.stdout, completed.stderr)
        return completed

    def __enter__(self) -> ControlPlane:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # -- the parts ----------------------------------------------------------------------------------

    def _spawn(self, name: str, argv: Sequence[str]) -> ManagedProcess:
        process = ManagedProcess(name, argv, self.workdir / f"{name}.log")
        self._processes.append(process)
        return process

    def _failure(self, process: ManagedProcess, what: str) -> ControlPlaneError:
        return ControlPlaneError(
            f"{process.name} {what}; last lines of {process.log_path}:\n{process.log_tail()}"
        )

    def _start_etcd(self) -> int:
        self._etcd_data = _etcd_data_dir()
        client_port, peer_port = free_port(), free_port()
        client = f"http://127.0.0.1:{client_port}"
        peer = f"http://127.0.0.1:{peer_port}"
        process = self._spawn(
            "etcd",
            [
                str(self._binaries["etcd"]),
                f"--data-dir={self._etcd_data / 'data'}",
                f"--listen-client-urls={client}",
                f"--advertise-client-urls={client}",
                f"--listen-peer-urls={peer}",
                f"--initial-advertise-peer-urls={peer}",
                f"--initial-cluster=default={peer}",
                "--name=default",
                # Keep the write-ahead log small and snappy: this etcd lives for one test session.
                "--snapshot-count=10000",
                "--quota-backend-bytes=1073741824",
            ],
        )
        self._etcd_url = client
        self._wait_etcd(process, client, time.monotonic() + 30)
        return client_port

    def _wait_etcd(self, process: ManagedProcess, client: str, deadline: float) -> None:
        while time.monotonic() < deadline:
            if not process.running():
                raise self._failure(process, "exited during start")
            try:
                with urllib.request.urlopen(f"{client}/health", timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        raise self._failure(process, "did not answer /health in time")

    def _start_apiserver(self, etcd_port: int) -> None:
        pki = self.workdir / "pki"
        pki.mkdir(exist_ok=True)
        ca, crt, key = _write_serving_certs(pki, (SERVICE_IP, self.pods_via) if self.pods_via else ())
        sa_key = _write_service_account_key(pki / "service-account.key")
        tokens = pki / "tokens.csv"
        tokens.write_text(f'{self._token},{ADMIN_USER},{ADMIN_USER},"system:masters"\n')
        tokens.chmod(0o600)
        self._port = free_port()
        self._spawn(
            "kube-apiserver",
            [
                str(self._binaries["kube-apiserver"]),
                f"--etcd-servers=http://127.0.0.1:{etcd_port}",
                f"--cert-dir={pki}",
                f"--tls-cert-file={crt}",
                f"--tls-private-key-file={key}",
                f"--secure-port={self._port}",
                f"--bind-address={'0.0.0.0' if self.pods_via else '127.0.0.1'}",
                f"--advertise-address={self.pods_via or '127.0.0.1'}",
                f"--token-auth-file={tokens}",
                "--authorization-mode=RBAC",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-signing-key-file={sa_key}",
                f"--service-account-key-file={sa_key}",
                f"--service-cluster-ip-range={SERVICE_RANGE}",
                *([] if self.pods_via else ["--disable-admission-plugins=ServiceAccount"]),
                *_insecure_port_off(self._binaries["kube-apiserver"], "--insecure-port=0"),
                "--allow-privileged=true",
                # `kubectl exec`/`logs` reach a local node's kubelet by its IP (devtools/node.py).
                "--kubelet-preferred-address-types=InternalIP,Hostname",
            ],
        )
        self._write_kubeconfig(ca)

    def _write_kubeconfig(self, ca: Path) -> None:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "multinic-ipam",
                    "cluster": {"server": self.server, "certificate-authority": str(ca)},
                }
            ],
            "users": [{"name": ADMIN_USER, "user": {"token": self._token}}],
            "contexts": [
                {"name": "multinic-ipam", "context": {"cluster": "multinic-ipam", "user": ADMIN_USER}}
            ],
            "current-context": "multinic-ipam",
        }
        self.kubeconfig.write_text(yaml.safe_dump(config, sort_keys=False))
        self.kubeconfig.chmod(0o600)

    def _wait_ready(self, deadline: float) -> None:
        """Poll /readyz (with the admin token) until it answers 200 or the deadline passes."""
        apiserver = next(p for p in self._processes if p.name == "kube-apiserver")
        context = ssl.create_default_context(cafile=str(self.ca_file))
        request = urllib.request.Request(
            f"{self.server}/readyz", headers={"Authorization": f"Bearer {self._token}"}
        )
        last_error = "no answer yet"
        while time.monotonic() < deadline:
            if not apiserver.running():
                raise self._failure(apiserver, "exited during start")
            try:
                with urllib.request.urlopen(request, timeout=5, context=context) as response:
                    if response.status == 200:
                        return
            except urllib.error.HTTPError as error:
                last_error = f"HTTP {error.code}"
            except (urllib.error.URLError, OSError) as error:
                last_error = str(error)
            time.sleep(0.2)
        raise self._failure(apiserver, f"was not ready in time (/readyz: {last_error})")

    def _start_controller_manager(self) -> None:
        binary = self._binaries.get("kube-controller-manager")
        if binary is None:
            return
        process = self._spawn(
            "kube-controller-manager",
            [
                str(binary),
                f"--kubeconfig={self.kubeconfig}",
                "--controllers=deployment,replicaset,statefulset,daemonset,job,cronjob,"
                "garbagecollector,namespace" + (_POD_CONTROLLERS if self.pods_via else ""),
                *([f"--service-account-private-key-file={self.workdir / 'pki' / 'service-account.key'}",
                   f"--root-ca-file={self.ca_file}"] if self.pods_via else []),
                "--leader-elect=false",
                *_insecure_port_off(binary, "--port=0"),
                "--secure-port=0",
                "--use-service-account-credentials=false",
            ],
        )
        time.sleep(0.2)
        if not process.running():
            raise self._failure(process, "exited during start")
