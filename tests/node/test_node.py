"""The guide's pods on a real node: kubelet 1.20, containerd and Multus call our `kube-ovn` plugin,
and each pod comes up Running with exactly the addresses and routes the webhook annotated; deleting a
pod runs CNI DEL and releases its address; restarting kubelet re-runs nothing."""

from __future__ import annotations

import json
import statistics
import time
from typing import Any

from devtools import node
from tests.e2e.ipam_helpers import Kubectl, eventually, subnet_ips
from tests.node.conftest import EXAMPLES, Pods, netns_with_address

MACVLAN = "macvlan.default.kubernetes.io"
NETWORKS = "k8s.v1.cni.cncf.io/networks"


def _annotated(pod: dict[str, Any], field: str) -> str:
    return pod["metadata"]["annotations"][f"{MACVLAN}/{field}"]


def _pod(name: str, networks: str | None) -> str:
    return json.dumps({"apiVersion": "v1", "kind": "Pod",
                       "metadata": {"name": name, "annotations": {NETWORKS: networks} if networks else {}},
                       "spec": {"terminationGracePeriodSeconds": 1,
                                "containers": [{"name": "c", "image": "docker.io/library/alpine:edge"}]}})


def _timed_start(pods: Pods, manifest: Any, name: str) -> tuple[dict[str, Any], float]:
    began = time.monotonic()
    pods.apply(manifest)
    running = pods.running(name)
    return running, time.monotonic() - began


def test_guide_pods_run_with_their_annotated_addresses_on_net1(pods: Pods) -> None:
    samplepod, took = _timed_start(pods, EXAMPLES / "pod-samplepod.yaml", "samplepod")
    print(f"\nguide samplepod: create -> Running {took:.2f}s")
    assert pods.addresses("samplepod", "net1") == [f"{_annotated(samplepod, 'ip_address')}/16"]
    assert pods.default_routes("samplepod") == []  # the cluster network gives eth0 no default route

    # The fixed address; its annotated MAC is not applied: the macvlan plugin takes a MAC only from
    # Multus' own `mac` key of the networks annotation, not from an IPAM result.
    _timed_start(pods, EXAMPLES / "pod-static-ip.yaml", "static-ip")
    assert pods.addresses("static-ip", "net1") == ["172.17.0.100/16"]


def test_guide_default_route_pod_routes_via_the_gateway_on_net1(pods: Pods) -> None:
    route, _ = _timed_start(pods, EXAMPLES / "pod-samplepod-route.yaml", "samplepod-route")
    assert pods.addresses("samplepod-route", "net1") == [f"{_annotated(route, 'ip_address')}/16"]
    assert [line.split()[:5] for line in pods.default_routes("samplepod-route")] == [
        ["default", "via", "172.17.0.1", "dev", "net1"]]


def test_guide_main_nic_pod_gets_eth0_from_the_macvlan_subnet(pods: Pods) -> None:
    main, _ = _timed_start(pods, EXAMPLES / "pod-samplepod-macvlan.yaml", "samplepod-macvlan")
    assert pods.addresses("samplepod-macvlan", "eth0") == [f"{_annotated(main, 'ip_address')}/16"]
    assert [line.split()[:5] for line in pods.default_routes("samplepod-macvlan")] == [
        ["default", "via", "172.17.0.1", "dev", "eth0"]]


def test_guide_kube_ovn_type_pod_runs_with_its_address_mac_and_custom_routes(pods: Pods) -> None:
    pod, _ = _timed_start(pods, EXAMPLES / "pod-custom-routes-attach.yaml", "custom-routes-attach")
    notes = pod["metadata"]["annotations"]
    key = "attachnet.default.ovn.kubernetes.io"
    assert pods.addresses("custom-routes-attach", "net1") == [f"{notes[f'{key}/ip_address']}/16"]
    link = pods.exec("custom-routes-attach", "ip", "-o", "link", "show", "dev", "net1")
    assert f"link/ether {notes[f'{key}/mac_address'].lower()} " in link, link
    routes = pods.exec("custom-routes-attach", "ip", "-4", "route", "show", "dev", "net1").splitlines()
    wanted = {"default via 172.17.0.254", "192.168.0.0/24 via 172.17.0.254"}
    assert {" ".join(r.split()[:3]) for r in routes} >= wanted, routes


def test_guide_deployment_replicas_run_with_pool_addresses(pods: Pods, kubectl: Kubectl) -> None:
    pods.apply(EXAMPLES / "deployment-static-workload.yaml")

    def replicas() -> list[dict[str, Any]]:
        found = json.loads(kubectl("get", "pods", "-l", "app=static-workload", "-o", "json").stdout)["items"]
        running = [p for p in found if p["status"].get("phase") == "Running"]
        return running if len(running) == 2 else []

    running = eventually(replicas, timeout=60, what="both static-workload replicas Running")
    pool = {"172.17.0.200", "172.17.0.201", "172.17.0.202"}
    seen = set()
    for pod in running:
        address = _annotated(pod, "ip_address")
        assert address in pool
        assert pods.addresses(pod["metadata"]["name"], "net1") == [f"{address}/16"]
        seen.add(address)
    assert len(seen) == 2


def _statefulset(replicas: int) -> str:
    return json.dumps({
        "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "web"},
        "spec": {"replicas": replicas, "serviceName": "web", "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"},
                                           "annotations": {NETWORKS: "default/macvlan"}},
                              "spec": {"terminationGracePeriodSeconds": 1, "containers": [
                                  {"name": "c", "image": "docker.io/library/alpine:edge"}]}}},
    })


def test_statefulset_pod_recreated_on_the_node_keeps_its_address(pods: Pods) -> None:
    pods.apply(_statefulset(1))
    first = pods.running("web-0")
    address = _annotated(first, "ip_address")
    assert pods.addresses("web-0", "net1") == [f"{address}/16"]
    pods.kubectl("delete", "pod", "web-0", "--wait=false")

    def recreated_running() -> dict[str, Any] | None:
        pod = pods.get("web-0")
        fresh = pod is not None and pod["metadata"]["uid"] != first["metadata"]["uid"]
        return pod if fresh and pod["status"].get("phase") == "Running" else None  # type: ignore[index]

    again = eventually(recreated_running, timeout=90, what="web-0 recreated and Running")
    assert _annotated(again, "ip_address") == address
    assert pods.addresses("web-0", "net1") == [f"{address}/16"]


def test_deleting_a_pod_runs_cni_del_and_releases_its_address(
    pods: Pods, kubectl: Kubectl, local_node: node.LocalNode
) -> None:
    pod, _ = _timed_start(pods, _pod("short-lived", "default/macvlan"), "short-lived")
    address = _annotated(pod, "ip_address")
    sandbox = netns_with_address(address)
    assert sandbox is not None, f"no pod namespace holds {address}"
    kubectl("delete", "pod", "short-lived", "--wait=false")
    eventually(lambda: netns_with_address(address) is None, timeout=60,
               what=f"net1 with {address} gone (CNI DEL)")
    assert local_node.multus_calls("Del", "default", "short-lived") >= 1  # runtimes may repeat DEL
    eventually(lambda: address not in {ip["spec"]["ipAddress"] for ip in subnet_ips(kubectl, "macvlan")},
               timeout=60, what=f"{address} released")


def test_restarting_kubelet_reruns_no_add_and_keeps_addresses(pods: Pods, local_node: node.LocalNode) -> None:
    pod, _ = _timed_start(pods, _pod("survivor", "default/macvlan"), "survivor")
    address = _annotated(pod, "ip_address")
    assert local_node.multus_calls("Add", "default", "survivor") == 1
    local_node.restart_kubelet()
    time.sleep(8)  # a few pod syncs of the new kubelet
    again = pods.running("survivor")
    assert again["metadata"]["uid"] == pod["metadata"]["uid"]
    assert local_node.multus_calls("Add", "default", "survivor") == 1
    assert pods.addresses("survivor", "net1") == [f"{address}/16"]


def test_pod_start_time_with_and_without_an_attachment(pods: Pods) -> None:
    without, with_attachment = [], []
    for round_ in range(3):  # alternated, so a slow moment of the machine hits both alike
        without.append(_timed_start(pods, _pod(f"plain-{round_}", None), f"plain-{round_}")[1])
        name = f"attached-{round_}"
        with_attachment.append(_timed_start(pods, _pod(name, "default/macvlan"), name)[1])
    print(f"\ncreate -> Running, median of 3: {statistics.median(without):.2f}s without an attachment "
          f"({', '.join(f'{t:.2f}' for t in without)}), {statistics.median(with_attachment):.2f}s with net1 "
          f"({', '.join(f'{t:.2f}' for t in with_attachment)})")
    assert sorted(pods.exec("plain-0", "ls", "/sys/class/net").split()) == ["eth0", "lo"]
    assert sorted(pods.exec("attached-0", "ls", "/sys/class/net").split()) == ["eth0", "lo", "net1"]
