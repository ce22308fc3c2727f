"""Helpers for the allocation, concurrency and lifecycle end-to-end tests.

`allocating_server` starts a `multinic-ipam serve` with a short reservation grace period (the env
var travels with the subprocess) and installs it, then installs the session server again.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.webhook import WebhookServer
from webhook.cluster import objects
from webhook.settings import GRACE_ENV

Kubectl = Callable[..., subprocess.CompletedProcess[str]]
EXAMPLES = Path(__file__).resolve().parents[2] / "manifests" / "examples"
NETWORKS = "k8s.v1.cni.cncf.io/networks"
GRACE_SECONDS = 3


@contextlib.contextmanager
def allocating_server(control_plane: Any, session_server: WebhookServer, workdir: Path, *,
                      workers: int = 2, grace: float = GRACE_SECONDS) -> Iterator[WebhookServer]:
    """A server with a short grace period (unless `grace` says otherwise), installed for the block."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(GRACE_ENV, f"{grace:g}")
        server = WebhookServer(control_plane=control_plane, cert_dir=session_server.cert_dir,
                               workdir=workdir, workers=workers, threads=8)
        server.start()
    try:
        server.install()
        yield server
    finally:
        server.stop()
        session_server.install()


def eventually(check: Callable[[], Any], *, timeout: float = 30.0, interval: float = 0.25,
               what: str = "condition") -> Any:
    """Poll until `check()` is truthy; return its value."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what} not reached within {timeout}s"
        time.sleep(interval)


def get_json(kubectl: Kubectl, *args: str) -> Any:
    return json.loads(kubectl("get", *args, "-o", "json").stdout)


def annotations(kubectl: Kubectl, pod: str, namespace: str = "default") -> dict[str, str]:
    return get_json(kubectl, "pod", pod, "-n", namespace)["metadata"].get("annotations") or {}


def ip_objects(kubectl: Kubectl, selector: str | None = None) -> list[dict]:
    args = ["ips.kubeovn.io"] + (["-l", selector] if selector else [])
    return get_json(kubectl, *args)["items"]


def apply_example(kubectl: Kubectl, name: str, *, check: bool = True) -> subprocess.CompletedProcess[str]:
    return kubectl("apply", "-f", str(EXAMPLES / name), check=check)


def pod_body(name: str, annotations_: dict[str, str], *, generate: bool = False) -> dict:
    meta: dict[str, Any] = {"annotations": annotations_}
    meta["generateName" if generate else "name"] = name
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta,
            "spec": {"containers": [{"name": "c", "image": "docker.io/library/alpine:edge"}]}}


def create_pods(k8s_api: Any, namespace: str, bodies: list[dict], *, threads: int = 16) -> list[Any]:
    """Create pods in parallel; each result is the created pod (dict) or the ApiException."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    core = client.CoreV1Api(k8s_api)

    def create(body: dict) -> Any:
        try:
            response = core.create_namespaced_pod(namespace, body, _preload_content=False)
            return json.loads(response.data)
        except ApiException as error:
            return error

    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(create, bodies))


def held_addresses(pods: list[dict], provider: str) -> list[str]:
    key = f"{provider}.kubernetes.io/ip_address"
    return [(p["metadata"].get("annotations") or {}).get(key, "") for p in pods]


def subnet_ips(kubectl: Kubectl, subnet: str) -> list[dict]:
    return ip_objects(kubectl, f"{objects.LABEL_SUBNET}={subnet}")


def nad_yaml(name: str, namespace: str, provider: str) -> str:
    config = json.dumps({"cniVersion": "0.3.0", "type": "macvlan", "master": "eth0", "mode": "bridge",
                         "ipam": {"type": "kube-ovn", "provider": provider,
                                  "server_socket": "/run/openvswitch/kube-ovn-daemon.sock"}})
    return json.dumps({"apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
                       "metadata": {"name": name, "namespace": namespace}, "spec": {"config": config}})


def subnet_yaml(name: str, cidr: str, provider: str, *, exclude: tuple[str, ...] = ()) -> str:
    return json.dumps({"apiVersion": "kubeovn.io/v1", "kind": "Subnet", "metadata": {"name": name},
                       "spec": {"protocol": "IPv4", "cidrBlock": cidr, "provider": provider,
                                "excludeIps": list(exclude)}})


def run_check(plane: Any, subnet: str, *extra: str) -> subprocess.CompletedProcess[str]:
    """`multinic-ipam check --subnet SUBNET` against the plane, as an operator runs it."""
    return subprocess.run(
        [sys.executable, "-m", "webhook.cli", "check", "--kubeconfig", str(plane.kubeconfig),
         "--subnet", subnet, *extra],
        capture_output=True, text=True, timeout=60, check=False,
    )


def check_passes(plane: Any, subnet: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    """`check` until it passes (the leader binds reservations and writes the Subnet status within
    seconds); the last run, passing or not."""
    deadline = time.monotonic() + timeout
    while True:
        done = run_check(plane, subnet, "--confirm", "0")
        if done.returncode == 0 or time.monotonic() > deadline:
            return done
        time.sleep(1)
