"""Pods as the mutating webhook annotates them, and a fake node daemon on a short temp socket."""

from __future__ import annotations

import json
import shutil
import tempfile
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cni import daemon
from cni.daemon import Pod

NETWORKS = "k8s.v1.cni.cncf.io/networks"
DEFAULT_NETWORK = "v1.multus-cni.io/default-network"


def annotated_pod(name: str, *, provider: str = "macvlan.default", namespace: str = "default",
                  ip: str = "172.17.0.12", cidr: str = "172.17.0.0/16", gateway: str = "172.17.0.1",
                  mac: str = "00:00:00:53:6b:bb", networks: str = "default/macvlan", uid: str = "uid-1",
                  extra: Mapping[str, str] | None = None, allocated: bool = True) -> dict[str, Any]:
    notes = {NETWORKS: networks, **(extra or {})}
    if allocated:
        notes.update({
            f"{provider}.kubernetes.io/ip_address": ip, f"{provider}.kubernetes.io/cidr": cidr,
            f"{provider}.kubernetes.io/gateway": gateway, f"{provider}.kubernetes.io/mac_address": mac,
            f"{provider}.kubernetes.io/logical_switch": provider.split(".", maxsplit=1)[0],
            f"{provider}.kubernetes.io/allocated": "true",
        })
    return {"metadata": {"namespace": namespace, "name": name, "uid": uid, "annotations": notes}}


def ipam_conf(socket: str, *, version: str = "0.3.0", provider: str = "macvlan.default",
              routes: list[dict[str, str]] | None = None) -> dict[str, Any]:
    """The guide's macvlan NAD config, pointed at `socket`."""
    ipam: dict[str, Any] = {"type": "kube-ovn", "server_socket": socket, "provider": provider}
    if routes is not None:
        ipam["routes"] = routes
    return {"cniVersion": version, "name": "macvlan", "type": "macvlan", "master": "eth0",
            "mode": "bridge", "ipam": ipam}


def cni_env(command: str, *, pod: str = "p1", namespace: str = "default", ifname: str = "net1",
            netns: str = "/var/run/netns/none", uid: str = "uid-1") -> dict[str, str]:
    return {
        "CNI_COMMAND": command, "CNI_CONTAINERID": "c0ffee", "CNI_NETNS": netns, "CNI_IFNAME": ifname,
        "CNI_PATH": "/usr/lib/cni",
        "CNI_ARGS": f"IgnoreUnknown=1;K8S_POD_NAMESPACE={namespace};K8S_POD_NAME={pod};"
                    f"K8S_POD_INFRA_CONTAINER_ID=c0ffee;K8S_POD_UID={uid}",
    }


@contextmanager
def short_dir() -> Iterator[Path]:
    """A temp dir with a short path: unix socket paths must stay under 108 bytes."""
    path = Path(tempfile.mkdtemp(prefix="cni-", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@contextmanager
def fake_daemon(pods: daemon.PodSource, *, wait_seconds: float = 0.3) -> Iterator[str]:
    """The real daemon's HTTP server and Responder over an in-memory pod source; yields the socket."""
    with short_dir() as directory:
        socket = str(directory / "run" / "daemon.sock")
        server = serve_in_thread(socket, daemon.Responder(pods, wait_seconds=wait_seconds))
        try:
            yield socket
        finally:
            server.shutdown()
            server.server_close()


def dumps(conf: Mapping[str, Any]) -> bytes:
    return json.dumps(conf).encode()


class StaticPods:
    """An in-memory `cni.daemon.PodSource`: `put` a pod and waiters wake up."""

    def __init__(self, pods: list[Pod] | None = None) -> None:
        self._pods: dict[tuple[str, str], Pod] = {}
        self._changed = threading.Condition()
        for pod in pods or []:
            self.put(pod)

    def put(self, pod: Pod) -> None:
        meta = pod["metadata"]
        with self._changed:
            self._pods[(meta["namespace"], meta["name"])] = pod
            self._changed.notify_all()

    def cached(self, namespace: str, name: str) -> Pod | None:
        with self._changed:
            return self._pods.get((namespace, name))

    read = cached

    def wait_for_change(self, timeout: float) -> None:
        with self._changed:
            self._changed.wait(timeout)


def serve_in_thread(path: str, responder: daemon.Responder) -> daemon.UnixHTTPServer:
    """Start serving on `path` in a daemon thread; `shutdown()` stops it."""
    server = daemon.UnixHTTPServer(path, responder)
    threading.Thread(target=server.serve_forever, name="node-daemon", daemon=True).start()
    return server
