"""A fixed address whose pod is deleted before the leader bound it is free again at once, not after
the 120 s grace period (issue 9, item 9), on the real control plane with four webhook workers
(replicas: each has its own cache and Lifecycle; one leads).

The grace period here is 120 s, so an address free within a few seconds of the delete can only
have been released because the pod was seen deleted. The measured seconds are printed (`-s`)."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.e2e.ipam_helpers import Kubectl, allocating_server, eventually, get_json, nad_yaml, subnet_yaml
from tests.fixtures.webhook import WebhookServer
from webhook.cluster import objects
from webhook.leader import decisions
from webhook.leader.lease import LEASE_NAME

NETWORKS = "k8s.v1.cni.cncf.io/networks"
GRACE = 120
WORKERS = 4
LEASE = ("kube-system", LEASE_NAME)


@pytest.fixture(scope="module")
def server(control_plane: Any, webhook_server: WebhookServer,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebhookServer]:
    workdir = tmp_path_factory.mktemp("prompt-release")
    with allocating_server(control_plane, webhook_server, workdir, workers=WORKERS, grace=GRACE) as started:
        yield started


@pytest.fixture
def network(server: WebhookServer, kubectl: Kubectl, namespace: str) -> Iterator[Callable[[str], str]]:
    """`network(cidr)`: a NAD and a Subnet (named after the namespace) for it; its provider."""
    provider = f"net.{namespace}"

    def make(cidr: str) -> str:
        kubectl("apply", "-f", "-", input=nad_yaml("net", namespace, provider))
        kubectl("apply", "-f", "-", input=subnet_yaml(namespace, cidr, provider))
        return provider

    yield make
    kubectl("delete", "pods", "--all", "-n", namespace, "--wait=false", check=False)
    eventually(lambda: not get_json(kubectl, "ips.kubeovn.io", "-l", f"{objects.LABEL_SUBNET}={namespace}")
               ["items"], timeout=60, what="the namespace's addresses released")
    kubectl("delete", "subnets.kubeovn.io", namespace, check=False)


def fixed_pod(name: str, namespace: str, provider: str, address: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace,
                         "annotations": {NETWORKS: "net", f"{provider}.kubernetes.io/ip_address": address}},
            "spec": {"containers": [{"name": "c", "image": "docker.io/library/alpine:edge"}]}}


def create(kubectl: Kubectl, pod: dict, *, dry_run: bool = False) -> Any:
    args = ["create", "-f", "-", *(["--dry-run=server"] if dry_run else [])]
    return kubectl(*args, input=json.dumps(pod), check=False)


def seconds_until_admitted(kubectl: Kubectl, pod: dict, since: float, *, timeout: float = GRACE) -> float:
    """Create `pod` (server-side dry run) until admitted; seconds from `since` to that answer."""
    deadline = time.monotonic() + timeout
    while True:
        done = create(kubectl, pod, dry_run=True)
        if done.returncode == 0:
            return time.monotonic() - since
        assert "is held by pod" in done.stderr, done.stderr
        assert time.monotonic() < deadline, f"still refused after {timeout}s: {done.stderr}"
        time.sleep(0.1)


def probe(server: WebhookServer, path: str, pod: dict) -> bool:
    """A dry-run CREATE review of `pod` sent straight to the server on a new connection (so to any
    worker, as the API server's connections are spread); True when allowed."""
    meta = pod["metadata"]
    review = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
        "uid": f"probe-{time.monotonic_ns()}", "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "resource": {"group": "", "version": "v1", "resource": "pods"}, "name": meta["name"],
        "namespace": meta["namespace"], "operation": "CREATE", "userInfo": {"username": "admin"},
        "object": pod, "oldObject": None, "dryRun": True}}
    status, body = server.post(path, review)
    assert status == 200, body
    return body["response"]["allowed"]


def set_lease_holder(kubectl: Kubectl, holder: str) -> None:
    """Make `holder` hold the Lifecycle Lease for an hour ("" hands it back: any replica takes it)."""
    namespace, name = LEASE

    def replaced() -> bool:
        lease = get_json(kubectl, "lease", name, "-n", namespace)
        now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        lease["spec"].update(holderIdentity=holder, leaseDurationSeconds=3600, renewTime=now)
        return kubectl("replace", "-f", "-", input=json.dumps(lease), check=False).returncode == 0

    eventually(replaced, what=f"the Lease held by {holder!r}")  # replicas renew it meanwhile: retry


def test_a_pod_deleted_before_it_was_bound_frees_its_fixed_address_at_once(
        server, webhook_server, kubectl, namespace, network):
    provider = network("10.207.0.0/24")
    address = "10.207.0.50"
    first = fixed_pod("first", namespace, provider, address)
    second = fixed_pod("second", namespace, provider, address)
    eventually(lambda: get_json(kubectl, "lease", "-n", LEASE[0])["items"], what="a replica leading")
    set_lease_holder(kubectl, "e2e-no-leader")  # no replica leads: nothing binds or releases
    try:
        time.sleep(2.5)  # a pass already under way when the Lease moved ends first
        assert create(kubectl, first).returncode == 0
        ip_name = objects.ip_object_name(namespace, address)
        assert get_json(kubectl, "ips.kubeovn.io", ip_name)["spec"]["podUID"] == ""  # unbound
        kubectl("delete", "pod", "first", "-n", namespace, "--wait=false")
        deleted = time.monotonic()
        held = create(kubectl, second, dry_run=True)
        assert held.returncode != 0
        assert f"{address} is held by pod {namespace}/first" in held.stderr
    finally:
        set_lease_holder(kubectl, "")
    handed_back = time.monotonic()
    after_delete = seconds_until_admitted(kubectl, second, deleted)
    print(f"\nunbound reservation of a deleted pod: free {after_delete:.2f}s after the delete, "
          f"{after_delete - (handed_back - deleted):.2f}s after a replica could lead again (grace {GRACE}s)")
    assert after_delete < GRACE / 2, "released by the grace period, not because the pod was seen deleted"
    eventually(lambda: release_reason((server, webhook_server), address) == decisions.DELETED_UNBOUND,
               timeout=5, what="the leader's log naming the rule that released it")
    # Every replica's webhooks (their caches got the IP object's DELETED event) admit the address now.
    answers = [probe(server, path, second) for path in ("/mutate", "/validate") for _ in range(12)]
    assert all(answers), f"{answers.count(False)} of {len(answers)} reviews still refused {address}"
    assert create(kubectl, second).returncode == 0
    assert get_json(kubectl, "pod", "second", "-n", namespace)["metadata"]["annotations"][
        f"{provider}.kubernetes.io/ip_address"] == address


def test_create_then_delete_at_once_frees_the_address_within_seconds(
        server, webhook_server, kubectl, namespace, network):
    """End to end as a user meets it, with a leader: whether or not it bound the reservation in
    between (the leader's log line says which rule released it)."""
    provider = network("10.208.0.0/24")
    measured = []
    for round_ in range(3):
        address = f"10.208.0.{60 + round_}"
        assert create(kubectl, fixed_pod(f"quick-{round_}", namespace, provider, address)).returncode == 0
        kubectl("delete", "pod", f"quick-{round_}", "-n", namespace, "--wait=false")
        deleted = time.monotonic()
        seconds = seconds_until_admitted(kubectl, fixed_pod(f"next-{round_}", namespace, provider, address),
                                         deleted)
        assert seconds < GRACE / 2, "released by the grace period, not because the pod was seen deleted"
        measured.append(f"{seconds:.2f}s ({release_reason((server, webhook_server), address) or '?'})")
    print(f"\ndelete → address free: {'; '.join(measured)} (grace {GRACE}s)")


def release_reason(servers: tuple[WebhookServer, ...], address: str) -> str:
    """Why the leader (a worker of either server: both run Lifecycles on the one Lease) released
    `address`, from its log ("" if the line is not there yet)."""
    marker = f"released {address} ("
    lines = [line for s in servers for line in s.log_tail(100_000).splitlines() if marker in line]
    return lines[-1].partition("): ")[2] if lines else ""
