"""A scale-down frees its addresses in seconds (issue 12): 300 bound pods deleted at once on the real
control plane, through `serve` with its leader; the seconds until every address is free and the
releases per second are printed (`-s`), not asserted (the machine is shared)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.ipam_helpers import Kubectl, allocating_server, create_pods, nad_yaml, pod_body, subnet_yaml
from tests.fixtures.webhook import WebhookServer
from webhook.cluster import objects

NETWORKS = "k8s.v1.cni.cncf.io/networks"
PODS = int(os.environ.get("MULTINIC_IPAM_BULK_PODS", "300"))


@pytest.fixture(scope="module")
def server(control_plane: Any, webhook_server: WebhookServer,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebhookServer]:
    workdir = tmp_path_factory.mktemp("bulk-release")
    with allocating_server(control_plane, webhook_server, workdir, workers=2) as started:
        yield started


def _held(k8s_api: Any, subnet: str) -> list[dict]:
    from kubernetes import client

    return client.CustomObjectsApi(k8s_api).list_cluster_custom_object(
        "kubeovn.io", "v1", "ips", label_selector=f"{objects.LABEL_SUBNET}={subnet}")["items"]


def _until(check: Any, timeout: float, what: str) -> float:
    """Poll `check()` every 0.1 s until true; seconds it took."""
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < timeout, f"{what} not reached within {timeout}s"
        time.sleep(0.1)
    return time.monotonic() - started


def test_deleting_many_bound_pods_at_once_frees_every_address(server, kubectl: Kubectl, k8s_api, namespace):
    from kubernetes import client

    provider = f"net.{namespace}"
    kubectl("apply", "-f", "-", input=nad_yaml("net", namespace, provider))
    kubectl("apply", "-f", "-", input=subnet_yaml(namespace, "10.209.0.0/22", provider))
    created = create_pods(k8s_api, namespace, [pod_body(f"s{i:04d}", {NETWORKS: "net"}) for i in range(PODS)])
    assert all(isinstance(pod, dict) for pod in created), [p for p in created if not isinstance(p, dict)][:3]
    bound = _until(lambda: sum(bool(ip["spec"].get("podUID")) for ip in _held(k8s_api, namespace)) == PODS,
                   timeout=300, what=f"all {PODS} addresses bound")
    started = time.monotonic()
    client.CoreV1Api(k8s_api).delete_collection_namespaced_pod(namespace)  # a scale-down to zero
    deleted = time.monotonic() - started
    left = len(_held(k8s_api, namespace))
    after = _until(lambda: not _held(k8s_api, namespace), timeout=900, what="every address free")
    freed = deleted + after
    print(f"\nbulk release: {PODS} bound pods deleted in one call ({deleted:.2f}s); every address free "
          f"{freed:.2f}s after the delete began ({PODS / freed:.0f} releases/s); {left} still held when the "
          f"call returned, free {after:.2f}s later; binding all {PODS} took {bound:.1f}s after the creations")
    kubectl("delete", "subnets.kubeovn.io", namespace, check=False)
