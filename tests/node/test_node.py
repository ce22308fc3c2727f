"""The guide's pods on a real node: kubelet 1.20, containerd and Multus call our `kube-ovn` plugin,
and each pod comes up Running with exactly the addresses and routes the webhook annotated."""

from __future__ import annotations

import time

from tests.node.conftest import EXAMPLES, Pods

MACVLAN = "macvlan.default.kubernetes.io"


def _annotated(pod: dict, field: str) -> str:
    return pod["metadata"]["annotations"][f"{MACVLAN}/{field}"]


def test_guide_samplepod_runs_with_its_annotated_address_on_net1(pods: Pods) -> None:
    began = time.monotonic()
    created = pods.apply(EXAMPLES / "pod-samplepod.yaml")
    pods.running("samplepod")
    print(f"samplepod create -> Running {time.monotonic() - began:.2f}s")
    assert pods.addresses("samplepod", "net1") == [f"{_annotated(created, 'ip_address')}/16"]
