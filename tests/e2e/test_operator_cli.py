"""The operator's CLI (`status`, `who-has`, `gc`) and `kubectl ipam` against a real API server.

The IP objects here are written the way the store writes them, for a live pod, a pod that is gone
and a reservation whose pod never came; the CLI must read them as the webhook would.
"""

from __future__ import annotations

import datetime
import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from devtools.controlplane import ControlPlane, KubectlError
from webhook import settings
from webhook.cluster import objects
from webhook.leader.lease import LEASE_NAME

VENV_BIN = Path(sys.executable).parent


def _cli(plane: ControlPlane, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "webhook.cli", *args, "--kubeconfig", str(plane.kubeconfig)],
        capture_output=True, text=True, timeout=60, check=False,
    )


def _ip_object(
    subnet: str, provider: str, address: str, *, namespace: str, pod: str, uid: str
) -> dict[str, Any]:
    version = 6 if ":" in address else 4
    body: dict[str, Any] = {
        "apiVersion": objects.API_VERSION,
        "kind": "IP",
        "metadata": {
            "name": objects.ip_object_name(subnet, address),
            "labels": {objects.LABEL_SUBNET: subnet, objects.LABEL_POD_NAMESPACE: namespace,
                       objects.LABEL_RESERVATION: secrets.token_hex(8)},
        },
        "spec": {
            "subnet": subnet, "provider": provider, "ipAddress": address, f"v{version}IPAddress": address,
            "macAddress": "0a:00:00:00:00:01", "namespace": namespace, "podName": pod, "podUID": uid,
            "interface": "net1",
        },
    }
    # Unset fields are left out rather than sent as "" (the store writes "" for unbound pods).
    body["spec"] = {key: value for key, value in body["spec"].items() if value}
    return body


class Scene:
    """A dual-stack Subnet (unique name, provider and CIDRs) with three IP objects in it."""

    def __init__(self, kubectl: Callable[..., Any], namespace: str) -> None:
        suffix = secrets.token_hex(3)
        octet = int(suffix[:2], 16)
        self.subnet = f"ops-{suffix}"
        self.provider = f"ops{suffix}.{namespace}"
        self.namespace = namespace
        self.v4_cidr = f"10.{octet}.{int(suffix[2:4], 16)}.0/24"
        prefix = self.v4_cidr.rsplit(".", 1)[0]
        v6_prefix = f"fd00:{suffix[:4]}:{suffix[4:]}:"
        self.v6_cidr = f"{v6_prefix}:/120"
        self.live = f"{prefix}.21"
        self.gone = f"{prefix}.22"
        self.never = f"{prefix}.23"
        self.live_v6 = f"{v6_prefix}:21"
        self.free = f"{prefix}.99"
        kubectl("apply", "-f", "-", input=json.dumps({
            "apiVersion": objects.API_VERSION, "kind": "Subnet", "metadata": {"name": self.subnet},
            "spec": {"protocol": "Dual", "provider": self.provider,
                     "cidrBlock": f"{self.v4_cidr},{self.v6_cidr}", "gateway": f"{prefix}.1,{v6_prefix}:1",
                     "excludeIps": [f"{prefix}.2..{prefix}.10"]},
        }))
        kubectl("apply", "-f", "-", input=json.dumps({
            "apiVersion": objects.API_VERSION, "kind": "IPPool", "metadata": {"name": f"{self.subnet}-pool"},
            "spec": {"subnet": self.subnet, "ips": [f"{prefix}.200", f"{prefix}.201"]},
        }))
        kubectl("run", "holder", "-n", namespace, "--image=docker.io/library/alpine:edge", "--restart=Never")
        uid = kubectl("get", "pod", "holder", "-n", namespace, "-o", "jsonpath={.metadata.uid}").stdout
        self.objects = [
            _ip_object(self.subnet, self.provider, self.live, namespace=namespace, pod="holder", uid=uid),
            _ip_object(self.subnet, self.provider, self.live_v6, namespace=namespace, pod="holder", uid=uid),
            _ip_object(self.subnet, self.provider, self.gone, namespace=namespace, pod="departed",
                       uid="00000000-0000-0000-0000-000000000000"),
            _ip_object(self.subnet, self.provider, self.never, namespace=namespace, pod="", uid=""),
        ]
        for body in self.objects:
            kubectl("create", "-f", "-", input=json.dumps(body))

    def exists(self, kubectl: Callable[..., Any], address: str) -> bool:
        name = objects.ip_object_name(self.subnet, address)
        return kubectl("get", "ips", name, "--ignore-not-found", "-o", "name").stdout.strip() != ""


@pytest.fixture
def lifecycle_paused(kubectl: Callable[..., Any]) -> Iterator[None]:
    """Hold the Lifecycle's Lease, so a webhook server running in this session releases nothing
    of this test's garbage before the CLI has looked at it; deleting the Lease hands it back."""
    namespaces = {"kube-system", os.environ.get(settings.NAMESPACE_ENV) or "kube-system"}
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    for namespace in namespaces:
        held = json.dumps({
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": LEASE_NAME, "namespace": namespace},
            "spec": {"holderIdentity": "operator-cli-test", "leaseDurationSeconds": 600,
                     "acquireTime": now, "renewTime": now},
        })
        # A running server may create the Lease between kubectl's read and its create (AlreadyExists);
        # applied again, kubectl finds it and takes it over.
        for attempt in range(3):
            try:
                kubectl("apply", "-f", "-", input=held)
                break
            except KubectlError as error:
                if attempt == 2 or "AlreadyExists" not in str(error):
                    raise
    time.sleep(3)  # a pass a leader had already begun finishes
    yield
    for namespace in namespaces:
        kubectl("delete", "lease", LEASE_NAME, "-n", namespace, "--ignore-not-found", check=False)


@pytest.fixture
def scene(kubectl: Callable[..., Any], namespace: str, lifecycle_paused: None) -> Iterator[Scene]:
    made = Scene(kubectl, namespace)
    yield made
    for body in made.objects:
        kubectl("delete", "ips", body["metadata"]["name"], "--ignore-not-found", check=False)
    kubectl("delete", "ippools", f"{made.subnet}-pool", "--ignore-not-found", check=False)
    kubectl("delete", "subnets", made.subnet, "--ignore-not-found", check=False)


def test_status_shows_usage_per_family_and_pools(control_plane: ControlPlane, scene: Scene) -> None:
    done = _cli(control_plane, "status")
    assert done.returncode == 0, done.stderr
    row = next(line for line in done.stdout.splitlines() if line.startswith(scene.subnet + " "))
    cells = row.split()
    # /24: 254 usable, minus the gateway and the nine excluded .2-.10 = 244; three v4 held.
    # /120: 255 usable (no broadcast in IPv6, network excluded), minus the gateway = 254; one held.
    assert cells[:3] == [scene.subnet, scene.provider, f"{scene.v4_cidr},{scene.v6_cidr}"]
    assert cells[3:7] == ["3", "241", "1", "252"]
    assert cells[7] == f"{scene.subnet}-pool(2)"
    assert done.stdout.splitlines()[0].split()[:3] == ["SUBNET", "PROVIDER", "CIDR"]


def test_status_json(control_plane: ControlPlane, scene: Scene) -> None:
    done = _cli(control_plane, "status", "-o", "json")
    assert done.returncode == 0, done.stderr
    row = next(r for r in json.loads(done.stdout) if r["name"] == scene.subnet)
    assert row["v4"] == {"used": 3, "available": 241}
    assert row["v6"] == {"used": 1, "available": 252}
    assert row["protocol"] == "Dual"


def test_who_has_names_pod_provider_subnet_and_since(control_plane: ControlPlane, scene: Scene,
                                                      kubectl: Callable[..., Any]) -> None:
    done = _cli(control_plane, "who-has", scene.live, "-o", "json")
    assert done.returncode == 0, done.stderr
    [holding] = json.loads(done.stdout)
    name = objects.ip_object_name(scene.subnet, scene.live)
    created = kubectl("get", "ips", name, "-o", "jsonpath={.metadata.creationTimestamp}").stdout
    assert holding["pod"] == f"{scene.namespace}/holder"
    assert holding["provider"] == scene.provider
    assert holding["subnet"] == scene.subnet
    assert holding["since"] == created
    assert holding["bound"] is True
    table = _cli(control_plane, "who-has", scene.live_v6)
    assert table.returncode == 0 and f"{scene.namespace}/holder" in table.stdout
    assert scene.live_v6 in table.stdout and "ago)" in table.stdout


def test_who_has_says_when_nobody_holds_it(control_plane: ControlPlane, scene: Scene) -> None:
    free = _cli(control_plane, "who-has", scene.free)
    assert free.returncode == 1
    assert f"Nobody holds {scene.free}; it is free in subnet {scene.subnet}." in free.stderr
    outside = _cli(control_plane, "who-has", "198.51.100.7")
    assert outside.returncode == 1 and "no Subnet contains it" in outside.stderr
    bad = _cli(control_plane, "who-has", "172.17.0.300")
    assert bad.returncode == 2
    assert "'172.17.0.300' is not an IP address" in bad.stderr


def test_gc_dry_run_says_what_and_why_then_gc_releases(control_plane: ControlPlane, scene: Scene,
                                                       kubectl: Callable[..., Any]) -> None:
    dry = _cli(control_plane, "gc", "--dry-run", "--grace", "0", "-o", "json")
    assert dry.returncode == 0, dry.stderr
    ours = {d["address"]: d for d in json.loads(dry.stdout) if d["subnet"] == scene.subnet}
    assert set(ours) == {scene.gone, scene.never}
    assert ours[scene.gone]["reason"] == "its pod is gone"
    assert ours[scene.never]["reason"] == "its pod never came to exist"
    assert all(d["action"] == "release" and d["done"] is False for d in ours.values())
    assert all(scene.exists(kubectl, a) for a in (scene.live, scene.gone, scene.never))

    table = _cli(control_plane, "gc", "--dry-run", "--grace", "0")
    assert "would release" in table.stdout and "run without --dry-run" in table.stdout

    real = _cli(control_plane, "gc", "--grace", "0", "-o", "json")
    assert real.returncode == 0, real.stderr
    done = {d["address"]: d for d in json.loads(real.stdout) if d["subnet"] == scene.subnet}
    assert set(done) == {scene.gone, scene.never} and all(d["done"] for d in done.values())
    assert scene.exists(kubectl, scene.live) and scene.exists(kubectl, scene.live_v6)
    assert not scene.exists(kubectl, scene.gone) and not scene.exists(kubectl, scene.never)


def test_gc_keeps_young_reservations_within_the_grace_period(
    control_plane: ControlPlane, scene: Scene
) -> None:
    dry = _cli(control_plane, "gc", "--dry-run", "--grace", "3600", "-o", "json")
    assert dry.returncode == 0, dry.stderr
    ours = {d["address"] for d in json.loads(dry.stdout) if d["subnet"] == scene.subnet}
    assert ours == {scene.gone}


def test_kubectl_ipam_plugin(control_plane: ControlPlane, scene: Scene) -> None:
    env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    done = subprocess.run(
        [str(control_plane.kubectl_path), "ipam", "status", "--kubeconfig", str(control_plane.kubeconfig)],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )
    assert done.returncode == 0, done.stderr
    assert any(line.startswith(scene.subnet + " ") for line in done.stdout.splitlines())
    usage = subprocess.run(
        [str(control_plane.kubectl_path), "ipam", "who-has"], capture_output=True, text=True, env=env,
        timeout=60, check=False,
    )
    assert usage.returncode == 2 and "usage: kubectl ipam who-has" in usage.stderr


def test_a_missing_kubeconfig_is_named(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "webhook.cli", "status", "--kubeconfig", str(tmp_path / "nope")],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert done.returncode == 1
    assert f"--kubeconfig {tmp_path / 'nope'} does not exist" in done.stderr
