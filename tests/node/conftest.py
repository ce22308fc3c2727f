"""Fixtures for the node tests: a real kubelet node (devtools/node.py) beside the session's control
plane, with the webhook installed (short grace period), the node daemon, and the guide's macvlan NAD
as this node runs it. Every test here is marked `node` (root: links, mounts, cgroups)."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from devtools import node
from tests.cni.conftest import running_node_daemon
from tests.e2e.ipam_helpers import Kubectl, allocating_server
from tests.fixtures.webhook import WebhookServer

EXAMPLES = Path(__file__).resolve().parents[2] / "manifests" / "examples"
NODE_NAME = "multinic-e2e-node"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/node/" in str(item.fspath):
            item.add_marker(pytest.mark.node)


def pytest_configure(config: pytest.Config) -> None:
    if os.geteuid() != 0:
        raise pytest.UsageError("tests/node need root: they run a kubelet and containerd")


@pytest.fixture(scope="module")
def node_socket(control_plane: Any) -> Iterator[str]:
    with running_node_daemon(control_plane.kubeconfig, NODE_NAME) as socket:
        yield socket


@pytest.fixture(scope="module")
def local_node(control_plane: Any, webhook_server: WebhookServer, node_socket: str, kubectl: Kubectl,
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[node.LocalNode]:
    """The node, Ready, with the guide's macvlan and attachnet NADs (on the node's master link and
    daemon socket) and Subnets; stopped after the module (not idling through later tests), and the
    host must then be as it was."""
    workdir = tmp_path_factory.mktemp("node")
    with allocating_server(control_plane, webhook_server, tmp_path_factory.mktemp("node-webhook")):
        started = node.LocalNode(workdir, kubeconfig=control_plane.kubeconfig, name=NODE_NAME)
        began = time.monotonic()
        started.start()
        print(f"node Ready {time.monotonic() - began:.1f}s after start")
        try:
            for network in ("macvlan", "attachnet"):
                nad = yaml.safe_load((EXAMPLES / f"nad-{network}.yaml").read_text())
                config = node.for_node(json.loads(nad["spec"]["config"]), Path(node_socket))
                nad["spec"]["config"] = json.dumps(config)
                kubectl("apply", "-f", "-", input=json.dumps(nad))
                kubectl("apply", "-f", str(EXAMPLES / f"subnet-{network}.yaml"))
            yield started
        finally:
            problems = started.stop()
            assert problems == [], problems


class Pods:
    """Creates pods and workloads on the node and reads them back, timing create → Running."""

    def __init__(self, kubectl: Kubectl) -> None:
        self.kubectl = kubectl
        self.created: list[tuple[str, str, str]] = []

    def apply(self, manifest: str | Path, namespace: str = "default") -> dict[str, Any]:
        text = manifest.read_text() if isinstance(manifest, Path) else manifest
        done = self.kubectl("create", "-n", namespace, "-f", "-", "-o", "json", input=text)
        created = json.loads(done.stdout)
        self.created.append((created["kind"].lower(), created["metadata"]["name"], namespace))
        return created

    def get(self, name: str, namespace: str = "default") -> dict[str, Any] | None:
        found = self.kubectl("get", "pod", name, "-n", namespace, "-o", "json", check=False)
        return json.loads(found.stdout) if found.returncode == 0 else None

    def running(self, name: str, namespace: str = "default", timeout: float = 60.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            pod = self.get(name, namespace)
            if pod is not None and pod["status"].get("phase") == "Running":
                return pod
            if time.monotonic() > deadline:
                events = self.kubectl("get", "events", "-n", namespace, "--field-selector",
                                      f"involvedObject.name={name}", check=False).stdout
                raise AssertionError(f"pod {namespace}/{name} not Running in {timeout}s: "
                                     f"{(pod or {}).get('status')}\n{events}")
            time.sleep(0.2)

    def exec(self, name: str, *argv: str, namespace: str = "default") -> str:
        return self.kubectl("exec", "-n", namespace, name, "--", *argv).stdout

    def addresses(self, name: str, ifname: str, namespace: str = "default") -> list[str]:
        shown = self.exec(name, "ip", "-4", "-o", "addr", "show", "dev", ifname, namespace=namespace)
        return [line.split()[3] for line in shown.splitlines() if " inet " in line]

    def default_routes(self, name: str, namespace: str = "default") -> list[str]:
        return self.exec(name, "ip", "-4", "route", "show", "default", namespace=namespace).splitlines()


@pytest.fixture
def pods(local_node: node.LocalNode, kubectl: Kubectl) -> Iterator[Pods]:
    made = Pods(kubectl)
    yield made
    for kind, name, namespace in reversed(made.created):
        kubectl("delete", kind, name, "-n", namespace, "--wait=false", "--ignore-not-found", check=False)


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


def netns_with_address(address: str) -> str | None:
    """The pod sandbox namespace (containerd's /run/netns/cni-*) whose net1 or eth0 holds `address`."""
    folder = Path("/run/netns")
    for entry in sorted(folder.glob("cni-*")) if folder.is_dir() else ():
        shown = run("ip", "-n", entry.name, "-4", "-o", "addr", "show")
        if any(f" {address}/" in line for line in shown.stdout.splitlines()):
            return entry.name
    return None
