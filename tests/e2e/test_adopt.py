"""`multinic-ipam adopt` on the real control plane: a cluster moving from Whereabouts.

Pods are created with no webhook configuration (as before the install), carrying the
network-status annotation as Multus writes it, or only Whereabouts' IPPool and
OverlappingRangeIPReservation records (CRDs made here from Whereabouts' v1alpha1 types). The NAD
still says `whereabouts`; its Subnet (provider `<nad>.<ns>`) exists, as the migration steps say.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

from kubernetes.client.exceptions import ApiException

from tests.e2e.ipam_helpers import (
    Kubectl,
    check_passes,
    create_pods,
    eventually,
    get_json,
    nad_yaml,
    pod_body,
    subnet_yaml,
)
from tests.fixtures.controlplane import webhooks_removed
from webhook.cluster import objects

NETWORKS = "k8s.v1.cni.cncf.io/networks"
NETWORK_STATUS = "k8s.v1.cni.cncf.io/network-status"
WHEREABOUTS = "whereabouts.cni.cncf.io"


def _adopt(plane: Any, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "webhook.cli", "adopt", *args, "--kubeconfig",
                           str(plane.kubeconfig)], capture_output=True, text=True, timeout=120, check=False)


def _whereabouts_network(kubectl: Kubectl, namespace: str, cidr: str) -> str:
    """NAD `wa` still on Whereabouts, and the Subnet that will serve it (provider wa.<ns>)."""
    config = json.dumps({"cniVersion": "0.3.1", "name": "wa", "type": "macvlan", "master": "eth0",
                         "ipam": {"type": "whereabouts", "range": cidr}})
    kubectl("apply", "-f", "-", input=json.dumps({
        "apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
        "metadata": {"name": "wa", "namespace": namespace}, "spec": {"config": config}}))
    provider = f"wa.{namespace}"
    kubectl("apply", "-f", "-", input=subnet_yaml(namespace, cidr, provider))
    eventually(lambda: "v4availableIPs" in (get_json(kubectl, "subnets", namespace).get("status") or {}),
               what="the leader's first Subnet status")
    return provider


def _legacy(name: str, namespace: str, address: str | None, index: int) -> dict:
    """A pod as it runs under Multus + Whereabouts: network-status as Multus writes it (indented)."""
    notes = {NETWORKS: "wa"}
    if address is not None:
        notes[NETWORK_STATUS] = json.dumps([
            {"name": "cbr0", "interface": "eth0", "ips": [f"10.244.0.{index + 2}"],
             "mac": "6e:2a:34:1d:05:88", "default": True, "dns": {}},
            {"name": f"{namespace}/wa", "interface": "net1", "ips": [address],
             "mac": f"0a:58:0a:00:{index // 256:02x}:{index % 256:02x}", "dns": {}},
        ], indent=4)
    return pod_body(name, notes)


def _create_legacy(kubectl: Kubectl, k8s_api: Any, namespace: str, bodies: list[dict]) -> None:
    with webhooks_removed(kubectl):
        for result in create_pods(k8s_api, namespace, bodies, threads=4):
            assert not isinstance(result, ApiException), result


def _objects(kubectl: Kubectl, namespace: str) -> dict[str, Any]:
    """Every object adopt could touch for this namespace: its pods, NADs, IP objects and Subnet."""
    return {
        "pods": get_json(kubectl, "pods", "-n", namespace)["items"],
        "nads": get_json(kubectl, "network-attachment-definitions", "-n", namespace)["items"],
        "ips": get_json(kubectl, "ips", "-l", f"{objects.LABEL_POD_NAMESPACE}={namespace}")["items"],
        "subnet": get_json(kubectl, "subnets", namespace),
    }


def _rows(done: subprocess.CompletedProcess[str]) -> dict[str, dict]:
    return {row["pod"].split("/")[1]: row for row in json.loads(done.stdout)["rows"]}


def test_adopt_holds_running_pods_addresses_and_new_pods_never_get_them(
    control_plane, webhook_server, kubectl, k8s_api, namespace
):
    provider = _whereabouts_network(kubectl, namespace, "10.211.0.0/24")
    used = {f"legacy-{i}": f"10.211.0.{n}" for i, n in enumerate((2, 3, 5, 8, 13, 21, 34, 4, 6, 7))}
    _create_legacy(kubectl, k8s_api, namespace,
                   [_legacy(name, namespace, address, i) for i, (name, address) in enumerate(used.items())])

    before = _objects(kubectl, namespace)
    dry = _adopt(control_plane, "--dry-run", "-n", namespace, "-o", "json")
    assert dry.returncode == 0, dry.stderr
    planned = _rows(dry)
    assert {name: (r["address"], r["subnet"], r["action"]) for name, r in planned.items()} == {
        name: (address, namespace, "hold") for name, address in used.items()}
    assert _objects(kubectl, namespace) == before, "--dry-run changed something"
    table = _adopt(control_plane, "--dry-run", "-n", namespace)
    assert "would hold" in table.stdout and "run without --dry-run" in table.stdout

    done = _adopt(control_plane, "-n", namespace, "-o", "json")
    assert done.returncode == 0, done.stderr
    assert {r["action"] for r in json.loads(done.stdout)["rows"]} == {"held"}
    for pod in get_json(kubectl, "pods", "-n", namespace)["items"]:
        name, notes = pod["metadata"]["name"], pod["metadata"]["annotations"]
        assert notes[f"{provider}.kubernetes.io/ip_address"] == used[name]
        assert notes[f"{provider}.kubernetes.io/allocated"] == "true"
        ip = get_json(kubectl, "ips.kubeovn.io", objects.ip_object_name(namespace, used[name]))
        assert ip["spec"]["podUID"] == pod["metadata"]["uid"] and ip["spec"]["podName"] == name
        assert ip["metadata"]["labels"][objects.LABEL_RESERVATION] == notes[objects.RESERVATION_ANNOTATION]
    eventually(lambda: (get_json(kubectl, "subnets", namespace).get("status") or {}).get("v4usingIPs")
               == len(used), what="Subnet status counting the adopted addresses")

    settled = _objects(kubectl, namespace)
    again = _adopt(control_plane, "-n", namespace, "-o", "json")
    assert again.returncode == 0, again.stderr
    assert {r["action"] for r in json.loads(again.stdout)["rows"]} == {"already held"}
    assert _objects(kubectl, namespace) == settled, "a second adopt changed something"

    # Now the NAD moves to kube-ovn; new pods come from the webhook and avoid every adopted address.
    kubectl("apply", "-f", "-", input=nad_yaml("wa", namespace, provider))
    probe = pod_body("probe", {NETWORKS: "wa"})

    def webhook_allocates() -> bool:
        made = kubectl("create", "--dry-run=server", "-n", namespace, "-o", "json", "-f", "-",
                       input=json.dumps(probe), check=False)
        return made.returncode == 0 and f"{provider}.kubernetes.io/ip_address" in json.loads(made.stdout)[
            "metadata"].get("annotations", {})

    eventually(webhook_allocates, what="the webhook allocating for the switched NAD")
    results = create_pods(k8s_api, namespace, [pod_body(f"new-{i}", {NETWORKS: "wa"}) for i in range(50)],
                          threads=8)
    assert not [r for r in results if isinstance(r, ApiException)]
    given = [r["metadata"]["annotations"][f"{provider}.kubernetes.io/ip_address"] for r in results]
    assert len(set(given)) == 50
    assert not set(given) & set(used.values()), "a new pod was given an adopted address"
    checked = check_passes(control_plane, namespace)
    assert checked.returncode == 0, checked.stdout + checked.stderr

    # Deleting an adopted pod releases its address, like any other.
    name = objects.ip_object_name(namespace, used["legacy-0"])
    kubectl("delete", "pod", "legacy-0", "-n", namespace, "--wait=false")
    eventually(lambda: not kubectl("get", "ips.kubeovn.io", name, "--ignore-not-found", "-o", "name").stdout,
               what="the adopted address released with its pod")
    kubectl("delete", "pods", "--all", "-n", namespace, "--wait=false")
    kubectl("delete", "subnets", namespace, "--wait=false", check=False)


def test_adopt_reports_duplicates_and_misfits_and_holds_for_the_oldest(
    control_plane, webhook_server, kubectl, k8s_api, namespace
):
    _whereabouts_network(kubectl, namespace, "10.212.0.0/24")
    _create_legacy(kubectl, k8s_api, namespace, [_legacy("old", namespace, "10.212.0.50", 1)])
    time.sleep(1.1)  # creation times have whole seconds: "old" is the older one
    _create_legacy(kubectl, k8s_api, namespace, [
        _legacy("young", namespace, "10.212.0.50", 2),
        _legacy("gw", namespace, "10.212.0.1", 3),
        _legacy("far", namespace, "10.99.0.5", 4),
        _legacy("fine", namespace, "10.212.0.51", 5),
    ])
    done = _adopt(control_plane, "-n", namespace)
    assert done.returncode == 1, done.stdout + done.stderr
    conflicts = [line for line in done.stderr.splitlines() if line.startswith("conflict: ")]
    assert len(conflicts) == 3, done.stderr
    duplicate = (f"conflict: 10.212.0.50 in Subnet {namespace} is used by pod {namespace}/old (net1) and by "
                 f"pod {namespace}/young (net1); it is held for {namespace}/old, the oldest; delete "
                 f"{namespace}/young")
    gateway = (f"pod {namespace}/gw uses 10.212.0.1 on net1 (NetworkAttachmentDefinition {namespace}/wa), "
               f"the gateway of Subnet {namespace}")
    assert duplicate in done.stderr and gateway in done.stderr
    assert f"pod {namespace}/far uses 10.99.0.5 on net1" in done.stderr and "outside Subnet" in done.stderr
    old_uid = get_json(kubectl, "pod", "old", "-n", namespace)["metadata"]["uid"]
    held = get_json(kubectl, "ips.kubeovn.io", objects.ip_object_name(namespace, "10.212.0.50"))
    assert held["spec"]["podUID"] == old_uid
    assert get_json(kubectl, "ips.kubeovn.io", objects.ip_object_name(namespace, "10.212.0.51"))["spec"][
        "podName"] == "fine"
    young = get_json(kubectl, "pod", "young", "-n", namespace)["metadata"]["annotations"]
    assert not any(key.startswith(f"wa.{namespace}.kubernetes.io/") for key in young)
    kubectl("delete", "pods", "--all", "-n", namespace, "--wait=false")
    kubectl("delete", "subnets", namespace, "--wait=false", check=False)


def _crd(plural: str, kind: str, spec: dict) -> dict:
    """A CRD of Whereabouts' v1alpha1 group, with the spec schema of its Go types."""
    schema = {"type": "object", "required": ["spec"], "properties": {
        "apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": {"type": "object"},
        "spec": spec}}
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": f"{plural}.{WHEREABOUTS}"},
            "spec": {"group": WHEREABOUTS, "scope": "Namespaced",
                     "names": {"kind": kind, "listKind": f"{kind}List", "plural": plural,
                               "singular": kind.lower()},
                     "versions": [{"name": "v1alpha1", "served": True, "storage": True,
                                   "schema": {"openAPIV3Schema": schema}}]}}


def _whereabouts_crds(kubectl: Kubectl) -> None:
    text = {"type": "string"}
    allocation = {"type": "object", "required": ["id", "podref"],
                  "properties": {"id": text, "podref": text, "ifname": text, "ipamclaimref": text}}
    ippool = {"type": "object", "required": ["range", "allocations"], "properties": {
        "range": text, "allocations": {"type": "object", "additionalProperties": allocation}}}
    reservation = {"type": "object", "required": ["podref"],
                   "properties": {"containerid": text, "podref": text, "ifname": text, "ipamclaimref": text}}
    kinds = (("ippools", "IPPool", ippool),
             ("overlappingrangeipreservations", "OverlappingRangeIPReservation", reservation))
    for plural, kind, spec in kinds:
        kubectl("apply", "-f", "-", input=json.dumps(_crd(plural, kind, spec)))
        kubectl("wait", "--for=condition=established", "--timeout=60s", f"crd/{plural}.{WHEREABOUTS}")


def test_adopt_reads_whereabouts_records_when_network_status_is_missing(
    control_plane, webhook_server, kubectl, k8s_api, namespace
):
    provider = _whereabouts_network(kubectl, namespace, "10.213.0.0/24")
    _whereabouts_crds(kubectl)
    _create_legacy(kubectl, k8s_api, namespace,
                   [_legacy(name, namespace, None, i) for i, name in enumerate(("wb-a", "wb-b", "wb-c"))])
    container = "3f1e9a0c2b7d4e5f8a6b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f"
    kubectl("apply", "-f", "-", input=json.dumps({
        "apiVersion": f"{WHEREABOUTS}/v1alpha1", "kind": "IPPool",
        "metadata": {"name": "10.213.0.0-24", "namespace": namespace},
        "spec": {"range": "10.213.0.0/24", "allocations": {
            "60": {"id": container, "podref": f"{namespace}/wb-a", "ifname": "net1"},
            "61": {"id": container, "podref": f"{namespace}/wb-b", "ifname": "net1"},
            "63": {"id": container, "podref": f"{namespace}/ghost", "ifname": "net1"},
        }}}))
    kubectl("apply", "-f", "-", input=json.dumps({
        "apiVersion": f"{WHEREABOUTS}/v1alpha1", "kind": "OverlappingRangeIPReservation",
        "metadata": {"name": "10.213.0.62", "namespace": namespace},
        "spec": {"containerid": container, "podref": f"{namespace}/wb-c", "ifname": "net1"}}))
    done = _adopt(control_plane, "-n", namespace, "-o", "json")
    assert done.returncode == 0, done.stdout + done.stderr
    rows = _rows(done)
    assert {name: (r["address"], r["action"]) for name, r in rows.items()} == {
        "wb-a": ("10.213.0.60", "held"), "wb-b": ("10.213.0.61", "held"), "wb-c": ("10.213.0.62", "held"),
        "ghost": ("10.213.0.63", "skip")}
    assert rows["wb-a"]["source"] == f"IPPool {namespace}/10.213.0.0-24"
    assert rows["wb-c"]["source"] == f"OverlappingRangeIPReservation {namespace}/10.213.0.62"
    assert rows["ghost"]["note"] == "its pod is gone"
    notes = get_json(kubectl, "pod", "wb-c", "-n", namespace)["metadata"]["annotations"]
    assert notes[f"{provider}.kubernetes.io/ip_address"] == "10.213.0.62"
    assert not kubectl("get", "ips.kubeovn.io", objects.ip_object_name(namespace, "10.213.0.63"),
                       "--ignore-not-found", "-o", "name").stdout
    kubectl("delete", "pods", "--all", "-n", namespace, "--wait=false")
    kubectl("delete", "subnets", namespace, "--wait=false", check=False)
