"""A real, throwaway Kubernetes node beside the local control plane: containerd + runc from Debian,
kube-scheduler and kubelet 1.20 built by scripts/build-control-plane.sh, and Multus as the node's only
CNI configuration (its cluster network a bridge + host-local conflist; our `kube-ovn` plugin installed
as the node DaemonSet installs it). Pods a user applies come up Running with the addresses the
webhook wrote.

The node lives on its own links: `mn-node` (the node IP, TEST-NET-2, only ever reached from this
machine) and its veth peer `mn-node-m`, the macvlan master of the node's NADs, so no pod interface
touches the machine's own network. `stop()` puts the host back as it was (`hostchanges`).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from devtools import hostchanges, node_images, prebuilt
from devtools.controlplane import SERVICE_RANGE, ManagedProcess, cache_dir, free_port

NODE_LINK = "mn-node"
MASTER_LINK = "mn-node-m"
CLUSTER_BRIDGE = "mn-cni0"
NODE_IP = "198.51.100.1"
CLUSTER_NETWORK = "multinic-node-cluster"
CLUSTER_CIDR = "198.18.0.0/24"
SNAPSHOTTER = "native"  # works on any filesystem (overlayfs does not nest in every sandbox)
REFERENCE_PLUGINS = Path("/usr/lib/cni")
DELEGATES = ("bridge", "host-local", "loopback", "macvlan", "host-device", "portmap")
NODE_BINARIES = ("kubelet", "kube-scheduler")
CLUSTER_GATEWAY = "198.18.0.1"  # the bridge's address when the node runs kube-proxy


class NodeError(RuntimeError):
    """The node could not be started; the message says what to do."""


def node_binaries(names: tuple[str, ...] = NODE_BINARIES) -> dict[str, Path]:
    """kubelet and kube-scheduler (and kube-proxy when asked) from the build cache."""
    found = {name: cache_dir() / "bin" / name for name in names}
    missing = [name for name, path in found.items() if not path.is_file()]
    if missing:
        raise NodeError(f"missing {', '.join(missing)} in {cache_dir() / 'bin'}: run "
                        f"`bash scripts/build-control-plane.sh` to build and cache them")
    for tool in ("containerd", "runc", "ctr"):
        if shutil.which(tool) is None:
            raise NodeError(f"{tool} is not installed: run `bash scripts/setup.sh` (it installs Debian's)")
    return found


def for_node(nad_config: dict[str, Any], daemon_socket: Path) -> dict[str, Any]:
    """A NAD's CNI config as this node runs it: macvlan on the node's master link, our IPAM on the
    node daemon's socket (the guide's NADs name the machine's eth0 and the DaemonSet's socket path)."""
    config = json.loads(json.dumps(nad_config))
    if config.get("type") == "macvlan":
        config["master"] = MASTER_LINK
    ipam = config if config.get("type") == "kube-ovn" else config.get("ipam") or {}
    if ipam.get("type") == "kube-ovn" or config.get("type") == "kube-ovn":
        ipam["server_socket"] = str(daemon_socket)
    return config


def _sh(*argv: str) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0:
        raise NodeError(f"{' '.join(argv)} failed: {done.stderr.strip()}")


class LocalNode:
    """containerd, kube-scheduler and kubelet for one node named `name`, against `kubeconfig`.

    `deployed`: the system itself runs in the node's pods (devtools/deploy.py). Then kube-proxy routes
    Services too (the webhook's for the API server, and `kubernetes` for the pods: the control plane
    must be started with `pods_via=NODE_IP`), pods reach the Service range through the bridge, and the
    `kube-ovn` plugin is not put into the CNI folder here: the node DaemonSet's init container does it."""

    def __init__(self, workdir: Path, *, kubeconfig: Path, name: str, deployed: bool = False) -> None:
        self.workdir = Path(workdir)
        self.kubeconfig = kubeconfig
        self.name = name
        self.deployed = deployed
        self.processes: list[ManagedProcess] = []
        self.changes: hostchanges.HostChanges | None = None
        self.containerd_socket = self.workdir / "containerd" / "containerd.sock"
        self.kubelet_port = 0
        self._kubelet_command: list[str] = []

    # -- layout ------------------------------------------------------------------------------------

    @property
    def cni_bin(self) -> Path:
        return self.workdir / "cni" / "bin"

    @property
    def cni_conf(self) -> Path:
        return self.workdir / "cni" / "net.d"

    @property
    def daemon_socket_dir(self) -> Path:
        """The node's /run/openvswitch: where the deployed node daemon puts its socket."""
        return self.workdir / "openvswitch"

    def _write_cni(self) -> None:
        """Multus as the only CNI config, the bridge + host-local cluster network, and the plugins."""
        from webhook.commands import install_cni

        self.cni_bin.mkdir(parents=True, exist_ok=True)
        self.cni_conf.mkdir(parents=True, exist_ok=True)
        for plugin in DELEGATES:
            (self.cni_bin / plugin).unlink(missing_ok=True)
            (self.cni_bin / plugin).symlink_to(REFERENCE_PLUGINS / plugin)
        shutil.copy2(prebuilt.ensure(prebuilt.MULTUS), self.cni_bin / "multus")
        (self.cni_bin / "kube-ovn").unlink(missing_ok=True)
        if not self.deployed:
            install_cni.build(self.cni_bin / "kube-ovn")
        cluster = self.workdir / "cni" / "cluster.conflist"
        ipam: dict[str, Any] = {"type": "host-local", "dataDir": str(self.workdir / "cni" / "host-local"),
                                "ranges": [[{"subnet": CLUSTER_CIDR}]]}
        if self.deployed:  # Services through the bridge (kube-proxy), still no default route
            ipam["ranges"][0][0]["gateway"] = CLUSTER_GATEWAY
            ipam["routes"] = [{"dst": SERVICE_RANGE}]
        # No default route on eth0: a pod's default route is the one its attachment asks for.
        cluster.write_text(json.dumps({"cniVersion": "0.4.0", "name": CLUSTER_NETWORK, "plugins": [{
            "type": "bridge", "bridge": CLUSTER_BRIDGE, "isGateway": self.deployed, "ipam": ipam,
        }]}, indent=2))
        (self.cni_conf / "00-multus.conf").write_text(json.dumps({
            "cniVersion": "0.4.0", "name": "multus-cni-network", "type": "multus",
            "kubeconfig": str(self.kubeconfig), "clusterNetwork": str(cluster),
            "binDir": str(self.cni_bin), "cniDir": str(self.workdir / "cni" / "multus"),
            "confDir": str(self.cni_conf), "logFile": str(self.workdir / "multus.log"), "logLevel": "verbose",
        }, indent=2))

    def _containerd_config(self) -> Path:
        base = self.workdir / "containerd"
        cri = 'plugins."io.containerd.grpc.v1.cri"'
        text = f"""version = 2
root = "{base / 'root'}"
state = "{base / 'state'}"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "{self.containerd_socket}"
[plugins."io.containerd.internal.v1.opt"]
  path = "{base / 'opt'}"
[{cri}]
  sandbox_image = "{node_images.PAUSE_IMAGE}"
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
[{cri}.containerd]
  snapshotter = "{SNAPSHOTTER}"
  default_runtime_name = "runc"
[{cri}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"
[{cri}.containerd.runtimes.runc.options]
  SystemdCgroup = false
  Root = "{base / 'runc'}"
[{cri}.cni]
  bin_dir = "{self.cni_bin}"
  conf_dir = "{self.cni_conf}"
  max_conf_num = 1
"""
        path = base / "config.toml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    def _kubelet_argv(self, kubelet: Path) -> list[str]:
        root = self.workdir / "kubelet"
        self.kubelet_port = free_port()
        return [
            str(kubelet), f"--kubeconfig={self.kubeconfig}", "--container-runtime=remote",
            f"--container-runtime-endpoint=unix://{self.containerd_socket}", "--runtime-request-timeout=2m",
            "--cgroup-driver=cgroupfs", "--fail-swap-on=false", "--oom-score-adj=0",
            f"--hostname-override={self.name}", f"--node-ip={NODE_IP}", f"--address={NODE_IP}",
            f"--port={self.kubelet_port}", "--read-only-port=0", "--healthz-port=0",
            f"--root-dir={root}", f"--cert-dir={root / 'pki'}", f"--seccomp-profile-root={root / 'seccomp'}",
            f"--volume-plugin-dir={root / 'volume-plugins'}",
            f"--pod-infra-container-image={node_images.PAUSE_IMAGE}",
            # Nothing can be pulled back: never collect images, never evict for a full disk.
            "--image-gc-high-threshold=100", "--image-gc-low-threshold=99",
            "--eviction-hard=memory.available<1Mi,nodefs.available<1%,imagefs.available<1%",
            "--make-iptables-util-chains=false", "--serialize-image-pulls=false",
            "--anonymous-auth=true", "--authorization-mode=AlwaysAllow",
            "--node-status-update-frequency=4s", "--sync-frequency=5s",
        ]

    def _proxy_argv(self, proxy: Path) -> list[str]:
        # Masquerade what reaches a Service from outside the cluster network (the API server calling
        # the webhook), so replies come back through the bridge; leave conntrack tunables as they are.
        return [str(proxy), f"--kubeconfig={self.kubeconfig}", f"--hostname-override={self.name}",
                f"--bind-address={NODE_IP}", "--proxy-mode=iptables", f"--cluster-cidr={CLUSTER_CIDR}",
                "--conntrack-max-per-core=0", "--conntrack-tcp-timeout-established=0",
                "--conntrack-tcp-timeout-close-wait=0", "--oom-score-adj=0",
                "--healthz-bind-address=", "--metrics-bind-address=", "--iptables-sync-period=10s"]

    # -- life cycle --------------------------------------------------------------------------------

    def start(self, timeout: float = 120.0) -> LocalNode:
        """Links, images, containerd, kube-scheduler and kubelet; returns once the node is Ready."""
        if os.geteuid() != 0:
            raise NodeError("the local node needs root (it adds links, mounts and cgroups); run it as root")
        binaries = node_binaries(NODE_BINARIES + (("kube-proxy",) if self.deployed else ()))
        try:
            left = hostchanges.HostChanges.recover_stale()
        except hostchanges.NodeRunningError as error:
            raise NodeError(str(error)) from None
        if left:
            raise NodeError(f"a node that was killed left {'; '.join(left)}; remove that by hand")
        taken = subprocess.run(["ip", "link", "show", NODE_LINK], capture_output=True, check=False)
        if taken.returncode == 0:
            raise NodeError(f"link {NODE_LINK} exists but no local node owns it: delete it with "
                            f"`ip link del {NODE_LINK}`")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.changes = hostchanges.HostChanges.snapshot(self.workdir, (NODE_LINK, CLUSTER_BRIDGE))
        try:
            self._start(binaries, time.monotonic() + timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self, binaries: dict[str, Path], deadline: float) -> None:
        _sh("ip", "link", "add", NODE_LINK, "type", "veth", "peer", "name", MASTER_LINK)
        _sh("ip", "addr", "add", f"{NODE_IP}/32", "dev", NODE_LINK)
        for link in (NODE_LINK, MASTER_LINK):
            _sh("ip", "link", "set", link, "up")
        self._write_cni()
        containerd = self._spawn("containerd", ["containerd", "--config", str(self._containerd_config())])
        self._wait(lambda: self._ctr("version").returncode == 0, containerd, "answer on its socket", deadline)
        archive = node_images.write_archive(self.workdir / "images" / "busybox-oci.tar")
        node_images.import_archive(archive, self.containerd_socket, SNAPSHOTTER)
        self._spawn("kube-scheduler", [str(binaries["kube-scheduler"]), f"--kubeconfig={self.kubeconfig}",
                                       "--leader-elect=false", "--port=0", "--secure-port=0"])
        if self.deployed:
            self._spawn("kube-proxy", self._proxy_argv(binaries["kube-proxy"]))
        self._kubelet_command = self._kubelet_argv(binaries["kubelet"])
        kubelet = self._spawn("kubelet", self._kubelet_command)
        self._wait(self.ready, kubelet, "report the node Ready", deadline)
        # kubelet registers with this taint and the node lifecycle controller lifts it once Ready; the
        # local control plane runs no such controller (it would also evict pods when kubelet stops).
        self._kubectl("taint", "node", self.name, "node.kubernetes.io/not-ready:NoSchedule-")

    def endpoint(self, process: str) -> str:
        """Where a process of the node answers, for `dev status`."""
        if process == "kubelet":
            return f"https://{NODE_IP}:{self.kubelet_port}"
        if process == "containerd":
            return f"unix://{self.containerd_socket}"
        return "-"

    def restart_kubelet(self, timeout: float = 60.0) -> None:
        """Stop kubelet and start it again with the same flags (its pods keep running meanwhile)."""
        old = next(p for p in self.processes if p.name == "kubelet")
        old.stop()
        self.processes.remove(old)
        kubelet = ManagedProcess("kubelet", self._kubelet_command, old.log_path, append=True)
        self.processes.append(kubelet)
        self._wait(self.ready, kubelet, "report the node Ready", time.monotonic() + timeout)

    def multus_calls(self, command: str, namespace: str, pod: str) -> int:
        """How many times Multus ran `command` (Add, Del) for the pod's first attachment, from its log."""
        log = self.workdir / "multus.log"
        text = log.read_text(errors="replace") if log.exists() else ""
        prefix = f"] {command}: {namespace}:{pod}:"
        return sum(1 for line in text.splitlines() if prefix in line and ":net1 {" in line)

    def ready(self) -> bool:
        done = self._kubectl("get", "node", self.name, "-o",
                             "jsonpath={.status.conditions[?(@.type=='Ready')].status}")
        return done.returncode == 0 and done.stdout.strip() == "True"

    def stop(self) -> list[str]:
        """Every process and container, then the host as it was; returns what could not be undone.

        Quick rather than graceful: the node's pods are deleted from the API server and their
        containers killed without CNI DEL, since their network namespaces (and every interface in
        them) go with the sandboxes, and the addresses are released by the webhook when the pods go."""
        if any(p.name == "kubelet" for p in self.processes):
            self._kubectl("delete", "pods", "--all-namespaces", "--field-selector",
                          f"spec.nodeName={self.name}", "--grace-period=0", "--force", "--wait=false")
        for process in reversed(self.processes):
            if process.name != "containerd":
                process.stop()
        containerd = next((p for p in self.processes if p.name == "containerd"), None)
        if containerd is not None and containerd.running():
            self._remove_containers()
            containerd.stop()
        hostchanges.kill_shims(self.workdir)
        if any(p.name == "kube-proxy" for p in self.processes):
            # kube-proxy's own undo: its KUBE-* chains and rules in the host's iptables.
            subprocess.run([str(cache_dir() / "bin" / "kube-proxy"), "--cleanup"], capture_output=True,
                           timeout=60, check=False)
        self.processes.clear()
        problems = self.changes.restore() if self.changes is not None else []
        self.changes = None
        for heavy in ("containerd", "kubelet", "images"):
            shutil.rmtree(self.workdir / heavy, ignore_errors=True)
        return problems

    # -- helpers -----------------------------------------------------------------------------------

    def _spawn(self, name: str, argv: list[str]) -> ManagedProcess:
        process = ManagedProcess(name, argv, self.workdir / f"{name}.log")
        self.processes.append(process)
        return process

    def _wait(self, condition: Callable[[], bool], process: ManagedProcess, what: str,
              deadline: float) -> None:
        while time.monotonic() < deadline:
            if not process.running():
                raise NodeError(f"{process.name} exited; last lines of {process.log_path}:\n"
                                f"{process.log_tail()}")
            if condition():
                return
            time.sleep(0.3)
        raise NodeError(f"{process.name} did not {what} in time; last lines of {process.log_path}:\n"
                        f"{process.log_tail()}")

    def _ctr(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["ctr", "--address", str(self.containerd_socket), "-n", "k8s.io", *args],
                              capture_output=True, text=True, timeout=60, check=False)

    def _kubectl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["kubectl", f"--kubeconfig={self.kubeconfig}", *args], capture_output=True,
                              text=True, timeout=60, check=False)

    def _remove_containers(self) -> None:
        """What kubelet did not tear down: kill and delete every task and container left."""
        for container in self._ctr("containers", "list", "--quiet").stdout.split():
            self._ctr("tasks", "kill", "--signal", "SIGKILL", container)
            self._ctr("tasks", "delete", "--force", container)
            self._ctr("containers", "delete", container)
