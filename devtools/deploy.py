"""The system deployed on a local node as the README's "Deploying to a cluster" tells users to: the
image built from the Dockerfile (scripts/build-image.sh) and imported into the node's containerd, the
webhook's certificate Secret, `kubectl apply -k` of a one-node overlay of manifests/, `install
--service` for the caBundle, the rollouts, then the guide's NADs (as the node runs them) and Subnets.

The webhook is reached through its Service for real: the node runs kube-proxy (devtools/node.py,
`deployed=True`), built from the same Debian source tree as the rest of the control plane.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from devtools import node

REPO = Path(__file__).resolve().parents[1]
MANIFESTS = REPO / "manifests"
EXAMPLES = MANIFESTS / "examples"
BUILD_IMAGE = REPO / "scripts" / "build-image.sh"
IMAGE = "ghcr.io/multinic-ipam/multinic-ipam"
NAMESPACE = "multinic-ipam"
SERVICE = "multinic-ipam-webhook"
DAEMONSET = "multinic-ipam-node"
SERVICE_HOSTS = (f"{SERVICE}.{NAMESPACE}.svc", f"{SERVICE}.{NAMESPACE}.svc.cluster.local")
GUIDE_NADS = ("nad-macvlan.yaml", "nad-attachnet.yaml")
GUIDE_SUBNETS = ("subnet-macvlan.yaml", "subnet-attachnet.yaml")
Kubectl = Callable[..., subprocess.CompletedProcess[str]]


class DeployError(RuntimeError):
    """The image could not be built or the system not deployed; the message says what failed."""


def image_tag() -> str:
    """The project's version, the tag `scripts/build-image.sh` gives by default."""
    for line in (REPO / "pyproject.toml").read_text().splitlines():
        if line.startswith("version = "):
            return line.split('"')[1]
    raise DeployError("pyproject.toml names no version")


def build_image(tag: str, local_node: node.LocalNode) -> float:
    """scripts/build-image.sh for `tag`, imported into the node's containerd; returns the seconds taken."""
    began = time.monotonic()
    done = subprocess.run(
        ["bash", str(BUILD_IMAGE), "--tag", tag, "--containerd", str(local_node.containerd_socket),
         "--snapshotter", node.SNAPSHOTTER], capture_output=True, text=True, timeout=1800, check=False)
    if done.returncode != 0:
        raise DeployError(f"scripts/build-image.sh failed: {_last_lines(done.stderr or done.stdout)}")
    return time.monotonic() - began


def write_overlay(folder: Path, local_node: node.LocalNode, tag: str, server: tuple[int, int]) -> Path:
    """The one-node overlay: the image tag, and the DaemonSet's two host folders where this node keeps
    them (its CNI plugins and the daemon's socket live in the node's work folder, not in the host's
    /opt/cni/bin and /run/openvswitch). Servers before 1.21 know PodDisruptionBudget only as v1beta1
    and no `matchConditions` (which they would drop anyway)."""
    folder.mkdir(parents=True, exist_ok=True)
    volumes = [{"name": "cni-bin", "hostPath": {"path": str(local_node.cni_bin)}},
               {"name": "run-openvswitch", "hostPath": {"path": str(local_node.daemon_socket_dir)}}]
    patches: list[dict[str, Any]] = [{"patch": yaml.safe_dump({
        "apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": DAEMONSET, "namespace": NAMESPACE},
        "spec": {"template": {"spec": {"volumes": volumes}}}})}]
    if server < (1, 21):
        patches.append({"target": {"kind": "PodDisruptionBudget"},
                        "patch": yaml.safe_dump([{"op": "replace", "path": "/apiVersion",
                                                  "value": "policy/v1beta1"}])})
        for kind in ("ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"):
            patches.append({"target": {"kind": kind},
                            "patch": yaml.safe_dump([{"op": "remove",
                                                      "path": "/webhooks/0/matchConditions"}])})
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
        "resources": [os.path.relpath(MANIFESTS, folder)],
        "images": [{"name": IMAGE, "newTag": tag}],
        "patches": patches,
    }
    (folder / "kustomization.yaml").write_text(yaml.safe_dump(kustomization, sort_keys=False))
    return folder


@dataclass
class Deployment:
    """The deployed system on one node: where its certificates and overlays are, how long it took."""

    kubectl: Kubectl
    local_node: node.LocalNode
    kubeconfig: Path
    workdir: Path
    server: tuple[int, int]

    @property
    def cert_dir(self) -> Path:
        return self.workdir / "webhook-certs"

    @property
    def daemon_socket(self) -> Path:
        return self.local_node.daemon_socket_dir / "kube-ovn-daemon.sock"

    def install(self, tag: str, timeout: float = 300.0) -> float:
        """Every step of the README's "Deploying to a cluster"; returns seconds from the first step
        until the rollouts finished and the webhook admits through its Service."""
        began = time.monotonic()
        _cli("certs", "--cert-dir", str(self.cert_dir), "--hosts", ",".join(SERVICE_HOSTS))
        if self.kubectl("get", "namespace", NAMESPACE, "--ignore-not-found", "-o", "name").stdout == "":
            self.kubectl("create", "namespace", NAMESPACE)
        self.kubectl("-n", NAMESPACE, "create", "secret", "tls", f"{SERVICE}-tls",
                     f"--cert={self.cert_dir / 'tls.crt'}", f"--key={self.cert_dir / 'tls.key'}")
        self.apply(tag, timeout)
        _cli("install", "--kubeconfig", str(self.kubeconfig), "--service", f"{NAMESPACE}/{SERVICE}",
             "--cert-dir", str(self.cert_dir))
        self._apply_guide(time.monotonic() + timeout)
        return time.monotonic() - began

    def apply(self, tag: str, timeout: float = 300.0) -> float:
        """`kubectl apply -k` of the overlay for `tag` (an install, an upgrade or a rollback), then
        both rollouts; returns the seconds from the apply until both finished."""
        overlay = write_overlay(self.workdir / f"overlay-{tag}", self.local_node, tag, self.server)
        began = time.monotonic()
        self.kubectl("apply", "-k", str(overlay))
        for workload in (f"deployment/{SERVICE}", f"daemonset/{DAEMONSET}"):
            done = self.kubectl("-n", NAMESPACE, "rollout", "status", workload, f"--timeout={int(timeout)}s",
                                check=False, timeout=timeout + 30)
            if done.returncode != 0:
                raise DeployError(f"{workload} did not roll out within {timeout:.0f}s: "
                                  f"{done.stderr.strip()}\n{self.describe()}")
        return time.monotonic() - began

    def images(self) -> set[str]:
        """The images the system's pods run now (pods being stopped, as after a rollout, left out)."""
        pods = json.loads(self.kubectl("-n", NAMESPACE, "get", "pods", "-o", "json").stdout)["items"]
        return {c["image"] for p in pods if not p["metadata"].get("deletionTimestamp")
                for c in p["spec"]["containers"]}

    def describe(self) -> str:
        """The system's pods, their recent events and the webhook's last log lines (of the previous
        container when it restarted), for failure messages."""
        pods = self.kubectl("-n", NAMESPACE, "get", "pods", "-o", "wide", check=False).stdout
        events = self.kubectl("-n", NAMESPACE, "get", "events", "--sort-by=.lastTimestamp",
                              check=False).stdout
        logs = ""
        for previous in ("--previous", "--timestamps"):
            logs = logs or self.kubectl("-n", NAMESPACE, "logs", f"deployment/{SERVICE}", previous,
                                        "--tail=20", check=False).stdout
        return pods + "\n" + "\n".join(events.splitlines()[-15:]) + "\nwebhook log:\n" + logs

    def _apply_guide(self, deadline: float) -> None:
        """The guide's NADs as this node runs them (its master link, the DaemonSet's socket), and
        Subnets; the first create through a webhook just installed may be refused for a moment."""
        documents = []
        for name in GUIDE_NADS:
            nad = yaml.safe_load((EXAMPLES / name).read_text())
            config = node.for_node(json.loads(nad["spec"]["config"]), self.daemon_socket)
            nad["spec"]["config"] = json.dumps(config)
            documents.append(json.dumps(nad))
        documents += [(EXAMPLES / name).read_text() for name in GUIDE_SUBNETS]
        for document in documents:
            while True:
                done = self.kubectl("apply", "-f", "-", input=document, check=False)
                if done.returncode == 0:
                    break
                if time.monotonic() > deadline:
                    raise DeployError(f"the guide's objects were refused: {done.stderr.strip()}\n"
                                      f"{self.describe()}")
                time.sleep(1)


def _cli(*args: str) -> None:
    done = subprocess.run([sys.executable, "-m", "webhook.cli", *args], capture_output=True, text=True,
                          timeout=120, check=False, cwd=REPO)
    if done.returncode != 0:
        raise DeployError(f"`multinic-ipam {args[0]}` failed: {_last_lines(done.stderr or done.stdout)}")


def _last_lines(text: str, count: int = 15) -> str:
    return "\n".join(text.strip().splitlines()[-count:]) or "no output"
