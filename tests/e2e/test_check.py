"""`multinic-ipam check` on the real control plane: pods admitted through the webhook pass; a forged
second holder of an address, and a pod carrying another pod's address, are reported by name."""

from __future__ import annotations

import json
from typing import Any

from devtools.controlplane import ControlPlane
from tests.e2e.ipam_helpers import (
    Kubectl,
    check_passes,
    eventually,
    get_json,
    nad_yaml,
    run_check,
    subnet_ips,
    subnet_yaml,
)
from tests.fixtures.webhook import WebhookServer
from webhook.cluster import objects
from webhook.operator import invariants

NETWORKS = "k8s.v1.cni.cncf.io/networks"


def _pod(name: str, annotations: dict[str, str]) -> str:
    return json.dumps({"apiVersion": "v1", "kind": "Pod",
                       "metadata": {"name": name, "annotations": annotations},
                       "spec": {"containers": [{"name": "c", "image": "docker.io/library/alpine:edge"}]}})


def test_check_passes_on_admitted_pods_and_names_forged_violations(
    control_plane: ControlPlane, webhook_server: WebhookServer, kubectl: Kubectl, namespace: str
) -> None:
    provider = f"net.{namespace}"
    kubectl("apply", "-f", "-", input=nad_yaml("net", namespace, provider))
    kubectl("apply", "-f", "-", input=subnet_yaml(namespace, "10.230.0.0/24", provider))
    for name in ("a", "b"):
        kubectl("apply", "-n", namespace, "-f", "-", input=_pod(name, {NETWORKS: "net"}))
    clean = check_passes(control_plane, namespace)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert clean.stdout.startswith("OK: 2 IP objects")

    pod_a = get_json(kubectl, "pod", "a", "-n", namespace)
    notes = pod_a["metadata"]["annotations"]
    address = notes[f"{provider}.kubernetes.io/ip_address"]
    (held,) = [ip for ip in subnet_ips(kubectl, namespace) if ip["spec"]["ipAddress"] == address]
    # A second IP object for a's address, misnamed so the API server's name lock cannot stop it,
    # held for a itself (so the leader keeps it), and a pod whose annotations claim a's address.
    forged_ip: dict[str, Any] = {
        "apiVersion": objects.API_VERSION, "kind": "IP",
        "metadata": {"name": f"forged-{namespace}", "labels": held["metadata"]["labels"]},
        "spec": held["spec"],
    }
    kubectl("create", "-f", "-", input=json.dumps(forged_ip))
    copied = {key: value for key, value in notes.items() if key.startswith(f"{provider}.kubernetes.io/")}
    kubectl("apply", "-n", namespace, "-f", "-", input=_pod("copycat", copied))
    try:
        found = run_check(control_plane, namespace, "--output", "json", "--confirm", "1")
        assert found.returncode == 1, found.stderr
        report = json.loads(found.stdout)
        assert not report["ok"]
        by_kind = {v["invariant"]: v for v in report["violations"]}
        assert set(by_kind) == {invariants.HELD_TWICE, invariants.WRITTEN_TWICE, invariants.UNHELD}
        assert by_kind[invariants.HELD_TWICE]["objects"] == [
            f"ip/forged-{namespace}", f"ip/{held['metadata']['name']}"]
        assert by_kind[invariants.WRITTEN_TWICE]["message"] == (
            f"{address} in subnet {namespace} is written into the annotations of 2 live pods: "
            f"{namespace}/a, {namespace}/copycat")
        assert by_kind[invariants.UNHELD]["message"].startswith(f"pod {namespace}/copycat has {address}")
        text = run_check(control_plane, namespace, "--confirm", "0")
        assert text.returncode == 1
        assert "3 violation(s)" in text.stdout
    finally:
        # Everything goes, the forged object first (deleting it keeps a's address held: the store
        # indexes every object of an address).
        kubectl("delete", "ips.kubeovn.io", f"forged-{namespace}", "--ignore-not-found")
        kubectl("delete", "pods", "--all", "-n", namespace, "--wait=false")
        eventually(lambda: not subnet_ips(kubectl, namespace), timeout=60, what="addresses released")
        kubectl("delete", "subnets.kubeovn.io", namespace, check=False)
