"""The system as users deploy it (README "Deploying to a cluster", devtools/deploy.py): the image built
from the Dockerfile, `kubectl apply -k` of the manifests on a real node whose kube-proxy routes the
webhook's Service, the plugin installed by the node DaemonSet's init container; then the guide through
it, and an upgrade and a rollback over pods holding addresses. A broken Dockerfile, manifest or probe
fails here: the rollouts wait for the probes, and every check goes through the deployed pods."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from devtools import deploy, node
from devtools.controlplane import ControlPlane, binary_version, find_binaries
from tests.e2e.ipam_helpers import check_passes, eventually
from tests.node.conftest import EXAMPLES, Pods

# The fixture builds the image (2 to 3 minutes cold) and waits up to ROLLOUT_WAIT for each rollout.
pytestmark = pytest.mark.timeout(900)
ROLLOUT_WAIT = 180.0
NODE_NAME = "multinic-deployed-node"
TAG = deploy.image_tag()
NEXT_TAG = f"{TAG}-next"
MACVLAN = "macvlan.default.kubernetes.io"
WEBHOOK_LABEL = "app.kubernetes.io/component=webhook"


@dataclass
class Deployed:
    plane: ControlPlane
    local_node: node.LocalNode
    system: deploy.Deployment

    def kubectl(self, *args: str, **kwargs: Any) -> Any:
        return self.plane.kubectl(*args, **kwargs)


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployed]:
    """A control plane whose pods reach it, a node running kube-proxy, and the system deployed from
    the image built here; all stopped after the module, and the host must then be as it was."""
    workdir = tmp_path_factory.mktemp("deployed")
    plane = ControlPlane(workdir / "controlplane", pods_via=node.NODE_IP).start(timeout=180)
    local = node.LocalNode(workdir / "node", kubeconfig=plane.kubeconfig, name=NODE_NAME, deployed=True)
    server = binary_version(find_binaries()["kube-apiserver"]) or (1, 20)
    try:
        local.start()
        built = deploy.build_image(TAG, local)
        assert not (local.cni_bin / "kube-ovn").exists()  # only the DaemonSet's init container writes it
        system = deploy.Deployment(plane.kubectl, local, plane.kubeconfig, workdir, server)
        ready = system.install(TAG, timeout=ROLLOUT_WAIT)
        print(f"\nimage {TAG}: built and imported in {built:.1f}s; deployed, ready in {ready:.1f}s")
        yield Deployed(plane, local, system)
    finally:
        problems = local.stop()
        plane.stop()
        assert problems == [], problems


@pytest.fixture
def pods(deployed: Deployed) -> Iterator[Pods]:
    made = Pods(deployed.kubectl)
    yield made
    for kind, name, namespace in reversed(made.created):
        deployed.kubectl("delete", kind, name, "-n", namespace, "--wait=false", "--ignore-not-found",
                         check=False)


def _webhook_pods(deployed: Deployed) -> list[dict[str, Any]]:
    listed = deployed.kubectl("-n", deploy.NAMESPACE, "get", "pods", "-l", WEBHOOK_LABEL, "-o", "json")
    return json.loads(listed.stdout)["items"]


def test_the_daemonset_installs_the_plugin_and_the_webhook_serves_behind_its_service(
    deployed: Deployed,
) -> None:
    plugin = deployed.local_node.cni_bin / "kube-ovn"
    assert plugin.is_file() and plugin.stat().st_mode & 0o111, "install-cni wrote no executable plugin"
    assert deployed.system.daemon_socket.is_socket()

    webhooks = _webhook_pods(deployed)
    assert len(webhooks) == 2 and all(p["status"]["phase"] == "Running" for p in webhooks)
    endpoints = json.loads(deployed.kubectl("-n", deploy.NAMESPACE, "get", "endpoints", deploy.SERVICE,
                                            "-o", "json").stdout)
    ready = [a["ip"] for s in endpoints.get("subsets", []) for a in s.get("addresses", [])]
    assert sorted(ready) == sorted(p["status"]["podIP"] for p in webhooks)
    for kind in ("validatingwebhookconfiguration", "mutatingwebhookconfiguration"):
        config = json.loads(deployed.kubectl("get", kind, "multinic-ipam", "-o", "json").stdout)
        assert config["webhooks"][0]["clientConfig"]["service"]["name"] == deploy.SERVICE
        assert "url" not in config["webhooks"][0]["clientConfig"]

    # Non-root, read-only root filesystem, as the manifests say and the image allows.
    name = webhooks[0]["metadata"]["name"]
    exec_ = ("-n", deploy.NAMESPACE, "exec", name, "--")
    assert deployed.kubectl(*exec_, "id", "-u").stdout.strip() == "65532"
    refused = deployed.kubectl(*exec_, "touch", "/usr/local/probe", check=False)
    assert refused.returncode != 0 and "Read-only file system" in refused.stderr


def test_guide_pods_run_through_the_deployed_system(deployed: Deployed, pods: Pods) -> None:
    pods.apply(EXAMPLES / "pod-samplepod.yaml")
    pods.apply(EXAMPLES / "pod-static-ip.yaml")
    sample = pods.running("samplepod")
    static = pods.running("static-ip")
    address = sample["metadata"]["annotations"][f"{MACVLAN}/ip_address"]
    assert pods.addresses("samplepod", "net1") == [f"{address}/16"]
    assert pods.addresses("static-ip", "net1") == ["172.17.0.100/16"]
    assert static["metadata"]["annotations"][f"{MACVLAN}/ip_address"] == "172.17.0.100"

    manifest = (EXAMPLES / "pod-static-ip.yaml").read_text().replace("name: static-ip", "name: static-ip-2")
    refused = deployed.kubectl("create", "-f", "-", input=manifest, check=False)
    assert refused.returncode != 0
    assert "172.17.0.100 is held by pod default/static-ip" in refused.stderr, refused.stderr

    deployed.kubectl("delete", "pod", "samplepod", "--wait=true", "--timeout=60s")

    def released() -> bool:
        listed = json.loads(deployed.kubectl("get", "ips.kubeovn.io", "-o", "json").stdout)["items"]
        return all(item["spec"].get("ipAddress") != address for item in listed)

    eventually(released, what=f"{address} released after samplepod was deleted")
    done = check_passes(deployed.plane, "macvlan")
    assert done.returncode == 0, done.stdout + done.stderr


class RefusalProbe:
    """Server-side dry-run creates of an annotated pod, one after another, recording refusals."""

    def __init__(self, deployed: Deployed) -> None:
        self.deployed = deployed
        self.refusals: list[tuple[float, str]] = []
        self.attempts = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._pod = (EXAMPLES / "pod-samplepod.yaml").read_text().replace("name: samplepod", "name: probe")

    def __enter__(self) -> RefusalProbe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.is_set():
            done = self.deployed.kubectl("create", "--dry-run=server", "-f", "-", input=self._pod,
                                         check=False)
            self.attempts += 1
            if done.returncode != 0:
                self.refusals.append((time.monotonic(), done.stderr.strip()))
            time.sleep(0.2)


def _pod_names(deployed: Deployed) -> set[str]:
    listed = json.loads(deployed.kubectl("get", "pods", "-n", "default", "-o", "json").stdout)["items"]
    return {pod["metadata"]["name"] for pod in listed}


def _held(deployed: Deployed) -> dict[str, str]:
    listed = json.loads(deployed.kubectl("get", "ips.kubeovn.io", "-o", "json").stdout)["items"]
    return {item["metadata"]["name"]: item["spec"]["ipAddress"] for item in listed}


@pytest.mark.parametrize("tag", [NEXT_TAG, TAG], ids=["upgrade", "rollback"])
def test_rollout_keeps_every_address_and_admits_throughout(deployed: Deployed, tag: str) -> None:
    pods = Pods(deployed.kubectl)
    if pods.get("holder") is None:  # made by the upgrade, kept through the rollback
        pods.apply((EXAMPLES / "pod-samplepod-route.yaml").read_text().replace(
            "name: samplepod-route", "name: holder"))
    pods.running("holder")
    # The earlier tests' pods gone and their addresses released: what is held now stays held.
    eventually(lambda: _pod_names(deployed) == {"holder"}, what="only the holder pod left", timeout=90)
    done = check_passes(deployed.plane, "macvlan")
    assert done.returncode == 0, done.stdout + done.stderr
    held = _held(deployed)
    on_net1 = pods.addresses("holder", "net1")
    if tag != TAG:
        built = deploy.build_image(tag, deployed.local_node)
        print(f"\nimage {tag}: built (cached layers) and imported in {built:.1f}s")

    with RefusalProbe(deployed) as probe:
        took = deployed.system.apply(tag, timeout=ROLLOUT_WAIT)
        finished = time.monotonic()
        time.sleep(2)
    print(f"rollout to {tag}: {took:.1f}s; {len(probe.refusals)} of {probe.attempts} creates refused")
    assert deployed.system.images() == {f"{deploy.IMAGE}:{tag}"}
    assert not [r for r in probe.refusals if r[0] > finished], probe.refusals
    assert not probe.refusals, probe.refusals  # maxUnavailable 0 and the readiness probe: no gap
    assert _held(deployed) == held
    assert pods.addresses("holder", "net1") == on_net1
    done = check_passes(deployed.plane, "macvlan")
    assert done.returncode == 0, done.stdout + done.stderr

