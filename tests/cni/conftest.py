"""Fixtures for the netns end-to-end tests: the node daemon against the real control plane, the
guide's NADs and Subnets, pods, and network namespaces and host links that are always removed."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cni import netns as nets

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "manifests" / "examples"
NODE_NAME = "cni-e2e-node"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/cni/" in str(item.fspath):
            item.add_marker(pytest.mark.netns)


@pytest.fixture(scope="session")
def plugin_dir() -> Iterator[Path]:
    """A CNI_PATH entry holding our `kube-ovn` executable: the very file the node DaemonSet's
    init container writes into /opt/cni/bin (`multinic-ipam install-cni`), run by the system python3."""
    from webhook.commands import install_cni

    directory = Path(tempfile.mkdtemp(prefix="cni-bin-", dir="/tmp"))
    install_cni.build(directory / "kube-ovn")
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@contextlib.contextmanager
def running_node_daemon(kubeconfig: Path, node_name: str) -> Iterator[str]:
    """`multinic-ipam node` on a temp socket; yields the socket path (the NADs' server_socket)."""
    directory = Path(tempfile.mkdtemp(prefix="cni-node-", dir="/tmp"))
    socket = directory / "kube-ovn-daemon.sock"
    log = (directory / "node.log").open("w")
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "multinic-ipam"), "node", "--kubeconfig",
         str(kubeconfig), "--node-name", node_name, "--socket", str(socket),
         "--wait-seconds", "2"],
        stdout=log, stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while not socket.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"the node daemon did not start: {(directory / 'node.log').read_text()}")
        time.sleep(0.1)
    try:
        yield str(socket)
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def node_daemon(control_plane: Any) -> Iterator[str]:
    """The node daemon for the netns tests' node name."""
    with running_node_daemon(control_plane.kubeconfig, NODE_NAME) as socket:
        yield socket


@pytest.fixture(scope="session")
def guide_objects(kubectl: Callable[..., Any], webhook_server: Any) -> None:
    """The guide's macvlan and attachnet NADs and their Subnets, applied unchanged."""
    for name in ("nad-macvlan.yaml", "nad-attachnet.yaml", "subnet-macvlan.yaml", "subnet-attachnet.yaml"):
        kubectl("apply", "-f", str(EXAMPLES / name))


@pytest.fixture
def sandbox() -> Iterator[Callable[[], nets.Netns]]:
    """Make network namespaces (IPv6 DAD off, so addresses settle at once); all deleted afterwards."""
    made: list[nets.Netns] = []

    def make() -> nets.Netns:
        namespace = nets.Netns()
        made.append(namespace)
        nets.sh("ip", "netns", "exec", namespace.name, "sysctl", "-qw", "net.ipv6.conf.default.accept_dad=0")
        return namespace

    yield make
    for namespace in made:
        namespace.delete()


@pytest.fixture
def host_links() -> Iterator[Callable[[str], str]]:
    """Register host link names to delete after the test (`ip link del` of one veth end drops both)."""
    names: list[str] = []
    yield lambda name: names.append(name) or name  # type: ignore[func-returns-value]
    for name in names:
        nets.sh("ip", "link", "del", name, check=False)


@pytest.fixture
def veth_pair(host_links: Callable[[str], str]) -> Callable[[], tuple[str, str]]:
    """A host veth pair, both ends up: one end is a macvlan master or a host-device."""

    def make() -> tuple[str, str]:
        left, right = nets.unique("mva"), nets.unique("mvb")
        host_links(left)
        nets.sh("ip", "link", "add", left, "type", "veth", "peer", "name", right)
        nets.sh("ip", "link", "set", left, "up")
        nets.sh("ip", "link", "set", right, "up")
        return left, right

    return make


@pytest.fixture
def pods(kubectl: Callable[..., Any], webhook_server: Any) -> Iterator[Callable[[str], dict[str, Any]]]:
    """Create a pod from YAML (a guide file name or text) through the installed admission webhooks;
    returns it as the API server stored it, with the mutating webhook's annotations."""
    created: list[tuple[str, str]] = []

    def create(manifest: str) -> dict[str, Any]:
        text = (EXAMPLES / manifest).read_text() if manifest.endswith(".yaml") else manifest
        pod = json.loads(kubectl("create", "-f", "-", "-o", "json", input=text).stdout)
        created.append((pod["metadata"]["namespace"], pod["metadata"]["name"]))
        return pod

    yield create
    for namespace, name in created:
        # No kubelet confirms a graceful delete of a pod bound to a node: force it, or it lingers.
        kubectl("delete", "-n", namespace, "pod", name, "--grace-period=0", "--force", "--ignore-not-found",
                check=False)


@dataclasses.dataclass(frozen=True)
class Rig:
    """Everything one netns test uses, so tests take one fixture instead of seven."""

    kubectl: Callable[..., Any]
    socket: str
    plugin_dir: Path
    create_pod: Callable[[str], dict[str, Any]]
    sandbox: Callable[[], nets.Netns]
    veth_pair: Callable[[], tuple[str, str]]
    host_link: Callable[[str], str]


@pytest.fixture
def rig(request: pytest.FixtureRequest, guide_objects: None) -> Rig:
    value = request.getfixturevalue
    return Rig(kubectl=value("kubectl"), socket=value("node_daemon"), plugin_dir=value("plugin_dir"),
               create_pod=value("pods"), sandbox=value("sandbox"), veth_pair=value("veth_pair"),
               host_link=value("host_links"))


def pytest_configure(config: pytest.Config) -> None:
    if os.geteuid() != 0:
        raise pytest.UsageError("tests/cni need root: they create network namespaces and links")
