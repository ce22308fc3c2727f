"""Objects and a retrying kubectl call shared by the admission end-to-end tests."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from typing import Any

import pytest

Kubectl = Callable[..., subprocess.CompletedProcess[str]]
NETWORKS = "k8s.v1.cni.cncf.io/networks"
DEFAULT_NETWORK = "v1.multus-cni.io/default-network"
SOCKET = "/run/openvswitch/kube-ovn-daemon.sock"


def until(
    attempt: Callable[[], subprocess.CompletedProcess[str]],
    done: Callable[[subprocess.CompletedProcess[str]], bool],
    what: str,
    timeout: float = 30.0,
) -> subprocess.CompletedProcess[str]:
    """Repeat a kubectl call until `done` (webhook caches may lag a moment); else fail with its output."""
    deadline = time.monotonic() + timeout
    while True:
        result = attempt()
        if done(result):
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"{what} not reached in {timeout}s; kubectl said:\n{result.stdout}{result.stderr}")
        time.sleep(0.3)


def nad(name: str, namespace: str, config: dict[str, Any] | str | None) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "k8s.cni.cncf.io/v1",
        "kind": "NetworkAttachmentDefinition",
        "metadata": {"name": name, "namespace": namespace},
    }
    if config is not None:
        obj["spec"] = {"config": config if isinstance(config, str) else json.dumps(config)}
    return obj


def subnet(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "kubeovn.io/v1", "kind": "Subnet", "metadata": {"name": name}, "spec": spec}


def ippool(name: str, subnet_name: str, ips: list[str]) -> dict[str, Any]:
    return {
        "apiVersion": "kubeovn.io/v1",
        "kind": "IPPool",
        "metadata": {"name": name},
        "spec": {"subnet": subnet_name, "ips": ips},
    }


def pod(name: str, namespace: str, annotations: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "annotations": annotations},
        "spec": {"containers": [{"name": "c", "image": "docker.io/library/alpine:edge"}]},
    }


def template(name: str, annotations: dict[str, str], **pod_spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"labels": {"app": name}, "annotations": annotations},
        "spec": {"containers": [{"name": "c", "image": "docker.io/library/nginx:alpine"}], **pod_spec},
    }


def workload(kind: str, name: str, namespace: str, annotations: dict[str, str], **spec: Any) -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": kind,
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"selector": {"matchLabels": {"app": name}}, "template": template(name, annotations), **spec},
    }
