"""Parallel pod creations through `serve --workers 4`: every pod holds its own address, and a subnet
with exactly N free addresses admits exactly N pods."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from tests.e2e.ipam_helpers import (
    Kubectl,
    allocating_server,
    create_pods,
    eventually,
    held_addresses,
    nad_yaml,
    pod_body,
    subnet_ips,
    subnet_yaml,
)
from tests.fixtures.webhook import WebhookServer

NETWORKS = "k8s.v1.cni.cncf.io/networks"


@pytest.fixture(scope="module")
def four_workers(control_plane: Any, webhook_server: WebhookServer,
                 tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebhookServer]:
    workdir = tmp_path_factory.mktemp("conc")
    with allocating_server(control_plane, webhook_server, workdir, workers=4) as server:
        assert len(server.worker_pids()) == 4
        yield server


def _network(kubectl: Kubectl, namespace: str, cidr: str, exclude: tuple[str, ...] = ()) -> str:
    """A NAD `net` in `namespace` and a Subnet (named like the namespace) for its provider."""
    provider = f"net.{namespace}"
    kubectl("apply", "-f", "-", input=nad_yaml("net", namespace, provider))
    kubectl("apply", "-f", "-", input=subnet_yaml(namespace, cidr, provider, exclude=exclude))
    return provider


def _tear_down(kubectl: Kubectl, namespace: str) -> None:
    kubectl("delete", "pods", "--all", "-n", namespace, "--wait=false")
    eventually(lambda: not subnet_ips(kubectl, namespace), timeout=90, what="addresses released")
    kubectl("delete", "subnets.kubeovn.io", namespace, check=False)


def test_200_parallel_pods_each_hold_a_distinct_address(four_workers, kubectl, k8s_api, namespace):
    provider = _network(kubectl, namespace, "10.201.0.0/24")
    bodies = [pod_body(f"p{i}", {NETWORKS: "net"}) for i in range(200)]
    results = create_pods(k8s_api, namespace, bodies, threads=24)
    failures = [r for r in results if isinstance(r, ApiException)]
    assert not failures, f"{len(failures)} creations failed, e.g. {failures[0].status} {failures[0].body}"
    addresses = held_addresses(results, provider)
    assert all(addresses) and len(set(addresses)) == 200
    objects_ = subnet_ips(kubectl, namespace)
    assert sorted(ip["spec"]["ipAddress"] for ip in objects_) == sorted(addresses)
    _tear_down(kubectl, namespace)


def test_exactly_n_free_addresses_admit_n_pods_and_refuse_the_next(four_workers, kubectl, k8s_api, namespace):
    # /28 without network, broadcast and gateway (.1) is .2-.14; excluding .12-.14 leaves exactly 10.
    provider = _network(kubectl, namespace, "10.202.0.0/28", exclude=("10.202.0.12..10.202.0.14",))
    results = create_pods(k8s_api, namespace, [pod_body(f"n{i}", {NETWORKS: "net"}) for i in range(10)],
                          threads=10)
    assert not [r for r in results if isinstance(r, ApiException)]
    assert sorted(held_addresses(results, provider), key=lambda a: int(a.rsplit(".", 1)[1])) == [
        f"10.202.0.{i}" for i in range(2, 12)
    ]
    (refused,) = create_pods(k8s_api, namespace, [pod_body("one-too-many", {NETWORKS: "net"})])
    assert isinstance(refused, ApiException)
    assert f"subnet {namespace} has no free IPv4 address left" in refused.body
    assert len(subnet_ips(kubectl, namespace)) == 10
    _tear_down(kubectl, namespace)
