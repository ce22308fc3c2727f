"""The real Multus 4.3 thin plugin over our `kube-ovn` IPAM and node daemon, without a kubelet: called
as a container runtime calls it, it reads the pod and its NetworkAttachmentDefinition from the real
API server, gives eth0 from a bridge + host-local cluster network, delegates net1 to macvlan with our
IPAM, and writes `k8s.v1.cni.cncf.io/network-status` back to the pod."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devtools import prebuilt
from tests.cni import netns as nets
from tests.cni.conftest import Rig
from tests.cni.test_reference_plugins import expected_addresses, subnet

pytestmark = pytest.mark.both_apiservers  # Multus 4.3 reads pods and NADs from 1.36 as well
NETWORK_STATUS = "k8s.v1.cni.cncf.io/network-status"
NETWORKS = "k8s.v1.cni.cncf.io/networks"
CLUSTER_NETWORK = "multinic-e2e-cluster"
CLUSTER_CIDR = "10.250.0.0/24"
CLUSTER_GATEWAY = "10.250.0.1"
ATTACHMENT_CIDR = "10.69.0.0/24"
DELEGATES = ("bridge", "host-local", "macvlan", "loopback")


class Multus:
    """Multus as a node has it: a bin dir with the delegates and our plugin, the cluster network's
    conflist (bridge + host-local, no host address), a cache dir, and the API server's kubeconfig."""

    def __init__(self, root: Path, binary: Path, plugin_dir: Path, kubeconfig: Path, bridge: str) -> None:
        self.root, self.binary = root, binary
        self.bin_dir = root / "bin"
        self.bin_dir.mkdir()
        for name in DELEGATES:
            (self.bin_dir / name).symlink_to(nets.REFERENCE_PLUGINS / name)
        shutil.copy2(plugin_dir / "kube-ovn", self.bin_dir / "kube-ovn")
        cluster = {"cniVersion": "0.4.0", "name": CLUSTER_NETWORK, "plugins": [{
            "type": "bridge", "bridge": bridge, "isGateway": False,
            "ipam": {"type": "host-local", "dataDir": str(root / "host-local"),
                     "ranges": [[{"subnet": CLUSTER_CIDR, "gateway": CLUSTER_GATEWAY}]],
                     "routes": [{"dst": "0.0.0.0/0", "gw": CLUSTER_GATEWAY}]},
        }]}
        cluster_path = root / "cluster.conflist"
        cluster_path.write_text(json.dumps(cluster))
        self.conf = {"cniVersion": "0.4.0", "name": "multus-cni-network", "type": "multus",
                     "kubeconfig": str(kubeconfig), "clusterNetwork": str(cluster_path),
                     "binDir": str(self.bin_dir), "cniDir": str(root / "multus-cache"),
                     "confDir": str(root), "logFile": str(root / "multus.log"), "logLevel": "verbose"}

    def __call__(self, command: str, pod: dict[str, Any], netns: nets.Netns) -> tuple[int, Any]:
        meta = pod["metadata"]
        env = {
            "PATH": nets.NODE_PATH, "CNI_COMMAND": command, "CNI_CONTAINERID": f"ctr-{meta['uid']}",
            "CNI_NETNS": netns.path, "CNI_IFNAME": "eth0", "CNI_PATH": str(self.bin_dir),
            "CNI_ARGS": f"IgnoreUnknown=true;K8S_POD_NAMESPACE={meta['namespace']};K8S_POD_NAME="
                        f"{meta['name']};K8S_POD_INFRA_CONTAINER_ID=ctr-{meta['uid']};K8S_POD_UID={meta['uid']}",
        }
        done = subprocess.run([str(self.binary)], input=json.dumps(self.conf), env=env, capture_output=True,
                              text=True, timeout=120, check=False)
        answer = json.loads(done.stdout) if done.stdout.strip() else None
        if done.returncode != 0:
            return done.returncode, answer or done.stderr
        return 0, answer

    def log(self) -> str:
        path = self.root / "multus.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else "(no Multus log)"


@pytest.fixture(scope="session")
def multus_binary() -> Path:
    return prebuilt.ensure(prebuilt.MULTUS)


@pytest.fixture
def multus(rig: Rig, control_plane: Any, multus_binary: Path) -> Iterator[Multus]:
    root = Path(tempfile.mkdtemp(prefix="multus-", dir="/tmp"))
    bridge = rig.host_link(nets.unique("mcl"))
    try:
        yield Multus(root, multus_binary, rig.plugin_dir, control_plane.kubeconfig, bridge)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _attachment(rig: Rig, namespace: str) -> str:
    """A macvlan NAD with our IPAM (on the test's daemon socket, over a fresh veth) and its Subnet."""
    master, _ = rig.veth_pair()
    provider = f"macvlan.{namespace}"
    config = {"cniVersion": "0.3.1", "type": "macvlan", "master": master, "mode": "bridge",
              "ipam": {"type": "kube-ovn", "server_socket": rig.socket, "provider": provider}}
    rig.kubectl("apply", "-f", "-", input=json.dumps({
        "apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
        "metadata": {"name": "macvlan", "namespace": namespace}, "spec": {"config": json.dumps(config)}}))
    rig.kubectl("apply", "-f", "-", input=json.dumps(subnet(namespace, provider, ATTACHMENT_CIDR)))
    return provider


def _pod(rig: Rig, namespace: str, networks: str) -> dict[str, Any]:
    return rig.create_pod(json.dumps({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "multus-pod", "namespace": namespace, "annotations": {NETWORKS: networks}},
        "spec": {"containers": [{"name": "c", "image": "docker.io/library/alpine:edge"}]}}))


def _network_status(rig: Rig, namespace: str) -> list[dict[str, Any]]:
    notes = json.loads(rig.kubectl("get", "pod", "multus-pod", "-n", namespace, "-o",
                                   "jsonpath={.metadata.annotations}").stdout)
    return json.loads(notes[NETWORK_STATUS])


def _in_cluster_cidr(addresses: list[str]) -> bool:
    return len(addresses) == 1 and addresses[0].startswith(CLUSTER_CIDR.rsplit(".", 1)[0] + ".")


def test_multus_gives_net1_our_address_and_reports_it_in_network_status(
    rig: Rig, multus: Multus, namespace: str
) -> None:
    provider = _attachment(rig, namespace)
    pod = _pod(rig, namespace, "macvlan")
    netns = rig.sandbox()

    code, result = multus("ADD", pod, netns)
    assert code == 0, f"{result}\n{multus.log()}"
    want = expected_addresses(pod, provider)
    assert netns.addresses("net1") == want
    assert _in_cluster_cidr(netns.addresses("eth0"))
    assert netns.routes("eth0") == [("default", CLUSTER_GATEWAY)]
    assert netns.routes("net1") == []

    default, attached = _network_status(rig, namespace)
    assert (default["name"], default["interface"], default.get("default")) == (CLUSTER_NETWORK, "eth0", True)
    assert default["ips"] == [netns.addresses("eth0")[0].split("/")[0]]
    assert (attached["name"], attached["interface"]) == (f"{namespace}/macvlan", "net1")
    assert attached["ips"] == [address.split("/")[0] for address in want]
    assert attached["mac"] == netns.link("net1")["address"]

    assert multus("DEL", pod, netns) == (0, None)
    assert not netns.has_link("net1") and not netns.has_link("eth0")
    assert multus("DEL", pod, netns) == (0, None)  # runtimes repeat DEL


def test_multus_default_route_goes_via_the_attachment_gateway(
    rig: Rig, multus: Multus, namespace: str
) -> None:
    provider = _attachment(rig, namespace)
    gateway = ATTACHMENT_CIDR.replace(".0/24", ".1")
    pod = _pod(rig, namespace, json.dumps([{"name": "macvlan", "default-route": [gateway]}]))
    netns = rig.sandbox()

    code, result = multus("ADD", pod, netns)
    assert code == 0, f"{result}\n{multus.log()}"
    assert netns.addresses("net1") == expected_addresses(pod, provider)
    assert netns.routes("net1") == [("default", gateway)]
    # Multus 4.3 leaves the cluster network's own default route on eth0 (multus-cni issue 1444: its
    # DeleteDefaultGW only looks at the attachment's interface); which one wins is the kernel's order.
    # network-status' `default` marks the cluster network; `gateway` names each interface's.
    default, attached = _network_status(rig, namespace)
    assert (default["interface"], default["default"]) == ("eth0", True)
    assert (attached["interface"], attached["gateway"]) == ("net1", [gateway])
    assert multus("DEL", pod, netns) == (0, None)
