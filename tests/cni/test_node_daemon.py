"""The node daemon against the real API server: its pod watch, direct reads, and the bounded wait
for a pod that the webhook did not annotate (one created before the webhook was installed)."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from cni import podwatch
from tests.cni.conftest import NODE_NAME, Rig
from tests.cni.test_reference_plugins import Call, nad_conf, pod_yaml


def on_node(manifest: str, node: str) -> str:
    pod = json.loads(manifest)
    pod["spec"]["nodeName"] = node
    return json.dumps(pod)


def test_pod_watch_caches_this_nodes_pods_and_reads_others(rig: Rig, k8s_api: Any) -> None:
    pods = podwatch.KubernetesPods(k8s_api, "watch-node")
    pods.start()
    try:
        rig.create_pod(on_node(pod_yaml("on-watch-node", ""), "watch-node"))
        rig.create_pod(pod_yaml("elsewhere", ""))
        deadline = time.monotonic() + 30
        while pods.cached("default", "on-watch-node") is None and time.monotonic() < deadline:
            pods.wait_for_change(0.5)
        cached = pods.cached("default", "on-watch-node")
        assert cached is not None and cached["spec"]["nodeName"] == "watch-node"
        assert pods.cached("default", "elsewhere") is None
        read = pods.read("default", "elsewhere")
        assert read is not None and read["metadata"]["name"] == "elsewhere"
        assert pods.read("default", "never-created") is None
    finally:
        pods.stop()


def test_add_for_a_pod_on_this_node_is_answered_from_the_watch(rig: Rig) -> None:
    pod = rig.create_pod(on_node(pod_yaml("scheduled", "default/macvlan"), NODE_NAME))
    master, _ = rig.veth_pair()
    netns = rig.sandbox()
    call = Call(rig, "macvlan", nad_conf("nad-macvlan.yaml", rig.socket, master=master), netns, pod)
    code, result = call("ADD")
    assert code == 0, result
    address = pod["metadata"]["annotations"]["macvlan.default.kubernetes.io/ip_address"]
    assert netns.addresses("net1") == [f"{address}/16"]


def test_add_waits_for_annotations_that_arrive_during_the_call(rig: Rig) -> None:
    # The webhooks never see kube-system: such a pod is like one created before they were installed.
    manifest = json.loads(pod_yaml("late", "default/macvlan"))
    manifest["metadata"]["namespace"] = "kube-system"
    pod = rig.create_pod(json.dumps(manifest))
    assert "macvlan.default.kubernetes.io/allocated" not in pod["metadata"]["annotations"]
    master, _ = rig.veth_pair()
    netns = rig.sandbox()
    call = Call(rig, "macvlan", nad_conf("nad-macvlan.yaml", rig.socket, master=master), netns, pod)
    outcome: dict[str, Any] = {}
    worker = threading.Thread(target=lambda: outcome.update(answer=call("ADD")))
    worker.start()
    time.sleep(0.5)  # the daemon is waiting (up to --wait-seconds 2) when the annotations land
    notes = {"ip_address": "172.17.3.3", "cidr": "172.17.0.0/16", "gateway": "172.17.0.1",
             "mac_address": "00:00:00:aa:bb:cc", "logical_switch": "macvlan", "allocated": "true"}
    rig.kubectl("annotate", "-n", "kube-system", "pod", "late",
                *[f"macvlan.default.kubernetes.io/{k}={v}" for k, v in notes.items()])
    worker.join(60)
    code, result = outcome["answer"]
    assert code == 0, result
    assert netns.addresses("net1") == ["172.17.3.3/16"]


def test_add_for_a_pod_the_webhook_never_saw_fails_after_the_wait_with_code_11(rig: Rig) -> None:
    manifest = json.loads(pod_yaml("never", "default/macvlan"))
    manifest["metadata"]["namespace"] = "kube-system"
    pod = rig.create_pod(json.dumps(manifest))
    netns = rig.sandbox()
    master, _ = rig.veth_pair()
    call = Call(rig, "macvlan", nad_conf("nad-macvlan.yaml", rig.socket, master=master), netns, pod)
    code, error = call("ADD")
    assert code != 0 and error is not None
    assert (error["code"], error["msg"]) == (11, "pod kube-system/never has no address for provider "
                                                 "macvlan.default; is the admission webhook installed?")


def test_pod_watch_and_answers_survive_an_api_server_outage(rig: Rig, control_plane: Any) -> None:
    from urllib.parse import urlparse

    import yaml
    from kubernetes import config

    from cni import daemon
    from tests.cni.proxy import CuttableProxy

    server = urlparse(control_plane.server)
    proxy = CuttableProxy((server.hostname, server.port))
    proxy.restore()
    kubeconfig = yaml.safe_load(control_plane.kubeconfig.read_text())
    for cluster in kubeconfig["clusters"]:
        cluster["cluster"]["server"] = f"https://127.0.0.1:{proxy.port}"
    api = config.new_client_from_config_dict(kubeconfig)
    pods = podwatch.KubernetesPods(api, "outage-node")
    pods.start()
    try:
        rig.create_pod(on_node(pod_yaml("before-outage", "default/macvlan"), "outage-node"))
        assert wait_cached(pods, "before-outage")

        proxy.cut()
        rig.create_pod(on_node(pod_yaml("during-outage", "default/macvlan"), "outage-node"))
        responder = daemon.Responder(pods, wait_seconds=1)
        answer = responder.answer({"namespace": "default", "name": "before-outage",
                                   "provider": "macvlan.default"})  # from the cache, API down
        assert answer["ips"][0]["address"].endswith("/16")
        time.sleep(2)  # the watch has failed and is retrying against a closed port
        assert pods.cached("default", "during-outage") is None

        proxy.restore()
        assert wait_cached(pods, "during-outage")
        answer = daemon.Responder(pods, wait_seconds=10).answer(
            {"namespace": "default", "name": "during-outage", "provider": "macvlan.default"})
        assert answer["ips"][0]["address"].startswith("172.17.")
    finally:
        pods.stop()
        proxy.cut()
        api.close()


def wait_cached(pods: podwatch.KubernetesPods, name: str, timeout: float = 60) -> bool:
    deadline = time.monotonic() + timeout
    while pods.cached("default", name) is None and time.monotonic() < deadline:
        pods.wait_for_change(0.5)
    return pods.cached("default", name) is not None
