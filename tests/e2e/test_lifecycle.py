"""The Lifecycle on the real control plane: binding, release when pods go, StatefulSet addresses that
survive recreation and go with scale-down, Subnet status, and a SIGKILLed server during a burst."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from tests.e2e.ipam_helpers import (
    Kubectl,
    allocating_server,
    annotations,
    create_pods,
    eventually,
    get_json,
    nad_yaml,
    pod_body,
    subnet_ips,
    subnet_yaml,
)
from tests.fixtures.webhook import WebhookServer
from webhook.cluster import objects

NETWORKS = "k8s.v1.cni.cncf.io/networks"


@pytest.fixture(scope="module")
def server(control_plane: Any, webhook_server: WebhookServer,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebhookServer]:
    workdir = tmp_path_factory.mktemp("life")
    with allocating_server(control_plane, webhook_server, workdir, workers=4) as started:
        yield started


def _network(kubectl: Kubectl, namespace: str, cidr: str) -> str:
    provider = f"net.{namespace}"
    kubectl("apply", "-f", "-", input=nad_yaml("net", namespace, provider))
    kubectl("apply", "-f", "-", input=subnet_yaml(namespace, cidr, provider))
    return provider


def _statefulset(namespace: str, replicas: int) -> str:
    return json.dumps({
        "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "web", "namespace": namespace},
        "spec": {
            "replicas": replicas, "serviceName": "web", "podManagementPolicy": "Parallel",
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}, "annotations": {NETWORKS: "net"}},
                "spec": {"containers": [{"name": "c", "image": "docker.io/library/alpine:edge"}]},
            },
        },
    })


def _pod_address(kubectl: Kubectl, namespace: str, name: str, provider: str) -> str | None:
    found = get_json(kubectl, "pods", "-n", namespace, "--field-selector", f"metadata.name={name}")["items"]
    if not found:
        return None
    return (found[0]["metadata"].get("annotations") or {}).get(f"{provider}.kubernetes.io/ip_address")


@pytest.mark.both_apiservers
def test_pod_addresses_are_bound_then_released_with_the_pod(server, kubectl, namespace):
    provider = _network(kubectl, namespace, "10.203.0.0/24")
    kubectl("run", "solo", "-n", namespace, "--image=docker.io/library/alpine:edge", "--restart=Never",
            f"--annotations={NETWORKS}=net")
    notes = annotations(kubectl, "solo", namespace)
    address = notes[f"{provider}.kubernetes.io/ip_address"]
    uid = get_json(kubectl, "pod", "solo", "-n", namespace)["metadata"]["uid"]
    name = objects.ip_object_name(namespace, address)
    eventually(lambda: get_json(kubectl, "ips.kubeovn.io", name)["spec"].get("podUID") == uid,
               what="the IP object bound to the pod's UID")
    eventually(lambda: (get_json(kubectl, "subnets.kubeovn.io", namespace).get("status") or {})
               .get("v4usingIPs") == 1, what="Subnet status counting the held address")
    kubectl("delete", "pod", "solo", "-n", namespace, "--wait=false")
    eventually(lambda: not subnet_ips(kubectl, namespace), what="the address released")
    kubectl("delete", "subnets.kubeovn.io", namespace, check=False)


@pytest.mark.both_apiservers
def test_statefulset_pod_recreated_keeps_its_address_until_scale_down(server, kubectl, namespace):
    provider = _network(kubectl, namespace, "10.204.0.0/24")
    kubectl("apply", "-f", "-", input=_statefulset(namespace, 2))
    first = eventually(lambda: _pod_address(kubectl, namespace, "web-1", provider), what="web-1 admitted")
    eventually(lambda: all(ip["spec"].get("podUID") for ip in subnet_ips(kubectl, namespace)),
               what="both pods bound")
    old_uid = get_json(kubectl, "pod", "web-1", "-n", namespace)["metadata"]["uid"]
    kubectl("delete", "pod", "web-1", "-n", namespace, "--wait=false")

    def recreated() -> str | None:
        pods = get_json(kubectl, "pods", "-n", namespace, "--field-selector", "metadata.name=web-1")["items"]
        if pods and pods[0]["metadata"]["uid"] != old_uid:
            return pods[0]["metadata"]["annotations"][f"{provider}.kubernetes.io/ip_address"]
        return None

    assert eventually(recreated, what="web-1 recreated") == first
    time.sleep(3)  # a pass of the Lifecycle: the recreated pod must not lose its address to it
    assert _pod_address(kubectl, namespace, "web-1", provider) == first
    assert first in {ip["spec"]["ipAddress"] for ip in subnet_ips(kubectl, namespace)}
    kubectl("scale", "statefulset", "web", "-n", namespace, "--replicas=1")
    eventually(lambda: {ip["spec"]["podName"] for ip in subnet_ips(kubectl, namespace)} == {"web-0"},
               what="web-1's address released after scale-down")
    kubectl("delete", "statefulset", "web", "-n", namespace, "--wait=false")
    eventually(lambda: not subnet_ips(kubectl, namespace), what="addresses released with the StatefulSet")
    kubectl("delete", "subnets.kubeovn.io", namespace, check=False)


def test_sigkill_during_a_burst_leaves_no_address_twice_and_none_leaked(server, kubectl, k8s_api, namespace):
    provider = _network(kubectl, namespace, "10.205.0.0/24")
    bodies = [pod_body(f"b{i}", {NETWORKS: "net"}) for i in range(80)]
    results: list[Any] = []

    def burst() -> None:
        results.extend(create_pods(k8s_api, namespace, bodies, threads=8))

    thread = threading.Thread(target=burst)
    thread.start()
    eventually(lambda: len(subnet_ips(kubectl, namespace)) >= 15, interval=0.05, what="the burst under way")
    os.killpg(server.process.pid, signal.SIGKILL)  # arbiter and every worker, mid-request
    thread.join(timeout=180)
    assert len(results) == 80
    created = [r for r in results if not isinstance(r, ApiException)]
    assert created and len(created) < 80, "the kill should have interrupted the burst"
    server.restart()
    retried = create_pods(k8s_api, namespace, [pod_body("after-restart", {NETWORKS: "net"})])
    assert not isinstance(retried[0], ApiException)
    pods = get_json(kubectl, "pods", "-n", namespace)["items"]
    tokens = {p["metadata"]["annotations"][objects.RESERVATION_ANNOTATION] for p in pods}
    addresses = [p["metadata"]["annotations"][f"{provider}.kubernetes.io/ip_address"] for p in pods]
    assert len(addresses) == len(set(addresses)), "an address is held by two pods"

    def collected() -> bool:
        held = subnet_ips(kubectl, namespace)
        labels = {ip["metadata"]["labels"][objects.LABEL_RESERVATION] for ip in held}
        return labels == tokens and len(held) == len(pods)

    eventually(collected, timeout=60, what="every reservation without a pod collected")
    assert sorted(ip["spec"]["ipAddress"] for ip in subnet_ips(kubectl, namespace)) == sorted(addresses)
    kubectl("delete", "pods", "--all", "-n", namespace, "--wait=false")
    eventually(lambda: not subnet_ips(kubectl, namespace), timeout=60, what="addresses released")
    kubectl("delete", "subnets.kubeovn.io", namespace, check=False)
