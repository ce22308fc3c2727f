"""What only a current API server shows (run with MULTINIC_APISERVER=1.36): `kubectl apply -k manifests/`
applied for real, its policy/v1 PodDisruptionBudget included, and the webhooks' matchConditions
evaluated by the server itself, so pods without our annotations never reach the webhooks."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.ipam_helpers import Kubectl, eventually, get_json, nad_yaml, subnet_yaml
from tests.fixtures.webhook import WebhookServer

pytestmark = [pytest.mark.min_apiserver(1, 28), pytest.mark.both_apiservers]
MANIFESTS = Path(__file__).resolve().parents[2] / "manifests"
NETWORKS = "k8s.v1.cni.cncf.io/networks"
SYSTEM_NAMESPACE = "multinic-ipam"
# What apply -k creates that must not outlive the test (the CRDs stay: the session's objects use them).
WORKLOAD_OBJECTS = ("deployment/multinic-ipam-webhook", "daemonset/multinic-ipam-node",
                    "service/multinic-ipam-webhook", "poddisruptionbudget/multinic-ipam-webhook")
REVIEWS = "multinic_ipam_admission_reviews_total"
ADMISSION = "admissionregistration.k8s.io"


def _plain_pod(name: str, namespace: str, annotations: dict[str, str] | None = None) -> str:
    return json.dumps({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "annotations": annotations or {}},
        "spec": {"containers": [{"name": "c", "image": "docker.io/library/alpine:edge"}]},
    })


@pytest.fixture
def applied_manifests(kubectl: Kubectl, no_webhooks: None) -> Iterator[str]:
    """`kubectl apply -k manifests/` for real; its workloads and webhook configurations go afterwards
    (no_webhooks then puts the session's configurations back)."""
    applied = kubectl("apply", "-k", str(MANIFESTS), "--validate=strict")
    try:
        yield applied.stdout
    finally:
        kubectl("delete", "-n", SYSTEM_NAMESPACE, *WORKLOAD_OBJECTS, "--ignore-not-found", "--wait=false")


def test_apply_k_creates_everything_including_the_policy_v1_pdb(
    kubectl: Kubectl, applied_manifests: str
) -> None:
    for created in ("poddisruptionbudget.policy/multinic-ipam-webhook",
                    "deployment.apps/multinic-ipam-webhook", "daemonset.apps/multinic-ipam-node",
                    f"mutatingwebhookconfiguration.{ADMISSION}/multinic-ipam",
                    f"validatingwebhookconfiguration.{ADMISSION}/multinic-ipam"):
        assert f"{created} " in applied_manifests, applied_manifests
    pdb = get_json(kubectl, "poddisruptionbudgets.v1.policy", "multinic-ipam-webhook", "-n", SYSTEM_NAMESPACE)
    assert pdb["apiVersion"] == "policy/v1" and pdb["spec"]["minAvailable"] == 1
    for kind in ("mutatingwebhookconfiguration", "validatingwebhookconfiguration"):
        (hook,) = get_json(kubectl, kind, "multinic-ipam")["webhooks"]
        assert [c["name"] for c in hook["matchConditions"]] == ["multinic-ipam-annotations"]
    # The webhook's own replicas are created through the configured webhooks (their namespace is excluded).
    eventually(lambda: len(get_json(kubectl, "pods", "-n", SYSTEM_NAMESPACE, "-l",
                                    "app.kubernetes.io/component=webhook")["items"]) == 2,
               what="the Deployment's two webhook pods created")


def test_the_server_sends_only_annotated_pods_to_the_manifests_webhooks(
    kubectl: Kubectl, applied_manifests: str, namespace: str
) -> None:
    # No webhook pod runs here, so anything sent to the webhooks fails (failurePolicy Fail): a pod that
    # is created was never sent.
    kubectl("create", "-f", "-", input=_plain_pod("plain", namespace, {"note": "not ours"}))
    refused = kubectl("create", "-f", "-", check=False,
                      input=_plain_pod("attached", namespace, {NETWORKS: "default/macvlan"}))
    assert refused.returncode != 0
    assert 'failed calling webhook "mutate.multinic-ipam.io"' in refused.stderr


def _pod_reviews(server: WebhookServer) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    status, body = server.get("/metrics")
    assert status == 200
    return sum(sample.value for family in text_string_to_metric_families(body) for sample in family.samples
               if sample.name == REVIEWS and sample.labels.get("kind") == "Pod")


def test_pods_without_our_annotations_never_reach_the_webhook(
    kubectl: Kubectl, webhook_server: WebhookServer, namespace: str
) -> None:
    before = _pod_reviews(webhook_server)
    for index in range(3):
        kubectl("create", "-f", "-", input=_plain_pod(f"plain-{index}", namespace, {"note": "not ours"}))
    assert _pod_reviews(webhook_server) == before

    kubectl("apply", "-f", "-", input=nad_yaml("net", namespace, f"net.{namespace}"))
    kubectl("apply", "-f", "-", input=subnet_yaml(namespace, "10.236.0.0/24", f"net.{namespace}"))
    kubectl("create", "-f", "-", input=_plain_pod("attached", namespace, {NETWORKS: "net"}))
    # Mutation and validation of the one annotated pod.
    assert _pod_reviews(webhook_server) == before + 2
    kubectl("delete", "pods", "--all", "-n", namespace, "--wait=false")
    # Refused while the grace period holds the address; the Subnet is this test's alone.
    kubectl("delete", "subnets.kubeovn.io", namespace, "--wait=false", check=False)
