"""The guide end to end: every pod and workload of it, applied unchanged with kubectl, gets the
annotations the guide implies from the mutating webhook (tests run in file order: the guide reuses
names, so later sections replace earlier objects)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.ipam_helpers import (
    EXAMPLES,
    Kubectl,
    allocating_server,
    annotations,
    apply_example,
    eventually,
    get_json,
    ip_objects,
    subnet_ips,
)
from tests.fixtures.webhook import WebhookServer
from webhook.cluster import objects

pytestmark = pytest.mark.both_apiservers
MACVLAN = "macvlan.default.kubernetes.io"
ATTACHNET = "attachnet.default.ovn.kubernetes.io"


def _clean(kubectl: Kubectl) -> None:
    kubectl("delete", "deployments", "--all", "-n", "default", "--wait=false", check=False)
    # Pods bound to a node (the CNI tests bind theirs) need a kubelet for a graceful delete.
    kubectl("delete", "pods", "--all", "-n", "default", "--grace-period=0", "--force", check=False)
    eventually(lambda: not get_json(kubectl, "pods", "-n", "default")["items"], what="default emptied")
    kubectl("delete", "ips.kubeovn.io", "-l", f"{objects.LABEL_SUBNET} in (macvlan,attachnet)", check=False)


@pytest.fixture(scope="module")
def guide(control_plane: Any, webhook_server: WebhookServer, kubectl: Kubectl,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebhookServer]:
    # Clean before the server starts: addresses it sees released go to the back of its reuse queue,
    # and these tests expect a subnet whose lowest free address was never handed out.
    _clean(kubectl)
    with allocating_server(control_plane, webhook_server, tmp_path_factory.mktemp("alloc")) as server:
        for name in ("nad-macvlan", "subnet-macvlan", "nad-attachnet", "subnet-attachnet"):
            apply_example(kubectl, f"{name}.yaml")
        try:
            yield server
        finally:
            _clean(kubectl)
            kubectl("delete", "subnets.kubeovn.io", "macvlan", "attachnet", check=False)


def _pods(kubectl: Kubectl, selector: str, count: int) -> list[dict]:
    """The pods matching `selector` once there are exactly `count` of them, else []."""
    pods = get_json(kubectl, "pods", "-n", "default", "-l", selector)["items"]
    return pods if len(pods) == count else []


def _bound(kubectl: Kubectl, subnet: str) -> bool:
    items = subnet_ips(kubectl, subnet)
    return bool(items) and all(ip["spec"].get("podUID") for ip in items)


def _remove_pods_and_wait_released(kubectl: Kubectl, subnet: str) -> None:
    """Delete the pods once their IP objects are bound, then wait for the Lifecycle to release them."""
    eventually(lambda: _bound(kubectl, subnet), what=f"IP objects of {subnet} bound")
    kubectl("delete", "deployments,pods", "--all", "-n", "default", "--wait=false")
    eventually(lambda: not subnet_ips(kubectl, subnet), timeout=45, what=f"IP objects of {subnet} released")


def test_random_address_skips_gateway_and_excluded_range(guide, kubectl):
    apply_example(kubectl, "pod-samplepod.yaml")
    notes = annotations(kubectl, "samplepod")
    assert notes[f"{MACVLAN}/ip_address"] == "172.17.0.11"
    assert notes[f"{MACVLAN}/cidr"] == "172.17.0.0/16"
    assert notes[f"{MACVLAN}/gateway"] == "172.17.0.1"
    assert notes[f"{MACVLAN}/logical_switch"] == "macvlan"
    assert notes[f"{MACVLAN}/allocated"] == "true"
    ip = get_json(kubectl, "ips.kubeovn.io", "macvlan.172.17.0.11")
    assert ip["metadata"]["labels"][objects.LABEL_RESERVATION] == notes[objects.RESERVATION_ANNOTATION]
    assert ip["spec"]["macAddress"] == notes[f"{MACVLAN}/mac_address"]
    eventually(lambda: get_json(kubectl, "ips.kubeovn.io", "macvlan.172.17.0.11")["spec"]["podUID"],
               what="the IP object bound to the pod")


def test_fixed_ip_pod_gets_its_address_and_mac(guide, kubectl):
    apply_example(kubectl, "pod-static-ip.yaml")
    notes = annotations(kubectl, "static-ip")
    assert notes[f"{MACVLAN}/ip_address"] == "172.17.0.100"
    assert notes[f"{MACVLAN}/mac_address"] == "00:00:00:53:6b:bb"
    assert notes["ovn.kubernetes.io/ip_address"] == "10.16.0.15"  # no default ovn Subnet: untouched
    assert "ovn.kubernetes.io/allocated" not in notes


def test_second_pod_asking_a_held_address_is_refused_naming_the_holder(guide, kubectl):
    manifest = (EXAMPLES / "pod-static-ip.yaml").read_text()
    result = kubectl("apply", "-f", "-", input=manifest.replace("name: static-ip", "name: static-ip-2"),
                     check=False)
    assert result.returncode != 0
    assert "172.17.0.100 is held by pod default/static-ip" in result.stderr
    assert not get_json(kubectl, "pods", "-n", "default", "--field-selector", "metadata.name=static-ip-2")[
        "items"
    ]


def test_fixed_ip_pod_recreated_at_once_gets_its_address_and_mac_again(guide, kubectl):
    kubectl("delete", "pod", "static-ip", "-n", "default")
    apply_example(kubectl, "pod-static-ip.yaml")
    notes = annotations(kubectl, "static-ip")
    assert notes[f"{MACVLAN}/ip_address"] == "172.17.0.100"
    assert notes[f"{MACVLAN}/mac_address"] == "00:00:00:53:6b:bb"
    ip = get_json(kubectl, "ips.kubeovn.io", "macvlan.172.17.0.100")
    assert ip["metadata"]["labels"][objects.LABEL_RESERVATION] == notes[objects.RESERVATION_ANNOTATION]


def test_deployment_replicas_get_distinct_pool_addresses(guide, kubectl):
    apply_example(kubectl, "deployment-static-workload.yaml")

    pods = eventually(lambda: _pods(kubectl, "app=static-workload", 2), what="two static-workload pods")
    got = {p["metadata"]["annotations"][f"{MACVLAN}/ip_address"] for p in pods}
    assert len(got) == 2 and got <= {"172.17.0.200", "172.17.0.201", "172.17.0.202"}


def test_default_route_and_main_nic_examples_admit_with_provider_keys(guide, kubectl):
    apply_example(kubectl, "pod-samplepod-route.yaml")
    apply_example(kubectl, "pod-samplepod-macvlan.yaml")
    route = annotations(kubectl, "samplepod-route")
    main = annotations(kubectl, "samplepod-macvlan")
    held = {ip["spec"]["ipAddress"] for ip in subnet_ips(kubectl, "macvlan")}
    assert route[f"{MACVLAN}/ip_address"] in held and main[f"{MACVLAN}/ip_address"] in held
    assert route[f"{MACVLAN}/ip_address"] != main[f"{MACVLAN}/ip_address"]
    main_ip = get_json(kubectl, "ips.kubeovn.io", f"macvlan.{main[f'{MACVLAN}/ip_address']}")
    assert main_ip["spec"]["interface"] == "eth0"


def test_logical_switch_wins_over_the_provider(guide, kubectl):
    _remove_pods_and_wait_released(kubectl, "macvlan")
    apply_example(kubectl, "subnet-macvlan-provider-ovn.yaml")  # now no Subnet has provider macvlan.default
    apply_example(kubectl, "pod-samplepod-logical-switch.yaml")
    notes = annotations(kubectl, "samplepod")
    assert notes[f"{MACVLAN}/logical_switch"] == "macvlan"
    assert notes[f"{MACVLAN}/ip_address"] == "172.17.0.11"
    assert not any(key.startswith("ovn.kubernetes.io/") for key in notes)


def test_kube_ovn_type_attachment_and_custom_routes(guide, kubectl):
    _remove_pods_and_wait_released(kubectl, "macvlan")
    apply_example(kubectl, "pod-samplepod-attachnet.yaml")
    apply_example(kubectl, "pod-custom-routes-attach.yaml")
    apply_example(kubectl, "deployment-custom-routes-attach.yaml")
    sample = annotations(kubectl, "samplepod")
    routes = annotations(kubectl, "custom-routes-attach")
    assert sample[f"{ATTACHNET}/logical_switch"] == "attachnet"
    assert routes[f"{ATTACHNET}/allocated"] == "true"
    assert routes[f"{ATTACHNET}/routes"].strip().startswith("[")  # the user's input stays as written
    replicas = eventually(lambda: _pods(kubectl, "app=nginx", 2), what="two custom-routes-attach replicas")
    addresses = [sample[f"{ATTACHNET}/ip_address"], routes[f"{ATTACHNET}/ip_address"]] + [
        p["metadata"]["annotations"][f"{ATTACHNET}/ip_address"] for p in replicas
    ]
    assert len(set(addresses)) == 4 and all(a.startswith("172.17.0.") for a in addresses)


def test_attachnet_logical_switch_example(guide, kubectl):
    _remove_pods_and_wait_released(kubectl, "attachnet")
    apply_example(kubectl, "subnet-attachnet-provider-ovn.yaml")
    apply_example(kubectl, "pod-samplepod-attachnet-logical-switch.yaml")
    notes = annotations(kubectl, "samplepod")
    assert notes[f"{ATTACHNET}/logical_switch"] == "attachnet"
    assert notes[f"{ATTACHNET}/ip_address"] == "172.17.0.11"


def test_dry_run_answers_the_patch_and_holds_nothing(guide, kubectl):
    before = {ip["metadata"]["name"] for ip in subnet_ips(kubectl, "attachnet")}
    manifest = (EXAMPLES / "pod-samplepod-attachnet-logical-switch.yaml").read_text()
    dry = kubectl("create", "--dry-run=server", "-o", "json", "-f", "-",
                  input=manifest.replace("name: samplepod", "name: dry-pod"))
    notes = json.loads(dry.stdout)["metadata"]["annotations"]
    assert notes[f"{ATTACHNET}/allocated"] == "true"
    assert {ip["metadata"]["name"] for ip in subnet_ips(kubectl, "attachnet")} == before


def test_deleting_every_pod_leaves_no_ip_object_after_the_grace_period(guide, kubectl):
    # a pod refused after mutation reserved for it (the API server checks the object after the
    # mutating webhooks: here an invalid container name): a reservation whose pod never came
    manifest = (EXAMPLES / "pod-samplepod-attachnet-logical-switch.yaml").read_text()
    invalid = manifest.replace("  name: samplepod", "  name: refused-later", 1).replace(
        "- name: samplepod", "- name: Not_A_Label"
    )
    refused = kubectl("apply", "-f", "-", input=invalid, check=False)
    assert refused.returncode != 0 and "Not_A_Label" in refused.stderr, refused.stderr
    unbound = [ip for ip in subnet_ips(kubectl, "attachnet") if ip["spec"].get("podName") == "refused-later"]
    assert unbound, "mutation reserved before the API server refused: a reservation whose pod never came"
    kubectl("delete", "deployments,pods", "--all", "-n", "default", "--wait=false")
    eventually(lambda: not ip_objects(kubectl, f"{objects.LABEL_SUBNET} in (macvlan,attachnet)"),
               timeout=60, what="no IP object left")
