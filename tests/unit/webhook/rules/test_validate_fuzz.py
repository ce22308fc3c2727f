"""Fuzzing: whatever the annotations, specs or review dicts hold, `review` answers with a Verdict
(a denial has a message and a 4xx code) and never raises, so the app never answers 500."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from webhook import validate
from webhook.admission.reviews import Verdict
from webhook.cluster import objects

from .world import World, guide_world, pod, request

PROVIDERS = ["macvlan.default", "attachnet.default.ovn", "ovn", "vlan.default"]
FIELDS = ["ip_address", "mac_address", "ip_pool", "logical_switch", "routes", "allocated", "cidr"]
KEYS = [f"{p}.kubernetes.io/{f}" for p in PROVIDERS for f in FIELDS] + [
    "k8s.v1.cni.cncf.io/networks",
    "v1.multus-cni.io/default-network",
    objects.RESERVATION_ANNOTATION,
]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
# Values that look almost right: addresses, lists, JSON fragments, pool names.
near_values = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        [
            "default/macvlan",
            "default/attachnet",
            "default/macvlan@net1,default/attachnet",
            '[{"name": "macvlan", "namespace": "default", "default-route": ["172.17.0.1"]}]',
            '[{"name": "macvlan", "ips": ["172.17.0.5/16"], "mac": "02:00:00:00:00:01"}]',
            "172.17.0.100",
            "172.17.0.100,fd00::1",
            "172.17.0.0",
            "00:00:00:53:6B:BB",
            "172.17.0.200,172.17.0.201",
            "pool-1",
            "macvlan",
            "attachnet",
            '[{"dst": "192.168.0.101/24", "gw": "172.17.0.254"}, {"gw": "172.17.0.254"}]',
            '[{"gw": 5}]',
            "[",
        ]
    ),
    json_values.map(json.dumps),
)
annotation_dicts = st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=30), near_values, max_size=6)


def _world() -> World:
    world = guide_world()
    world.example("nad-attachnet.yaml")
    world.example("subnet-attachnet.yaml")
    world.ippool("pool-1", "macvlan", ["172.17.0.200..172.17.0.210"])
    world.hold("macvlan", "172.17.0.100", pod="static-ip", mac="00:00:00:53:6b:bb")
    return world


WORLD = _world()
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _is_answer(verdict: object) -> bool:
    if not isinstance(verdict, Verdict):
        return False
    return verdict.allowed or (bool(verdict.message) and verdict.code in (403, 409, 422))


@FUZZ
@given(annotation_dicts)
def test_random_pod_annotations_get_a_verdict(annotations: dict[str, str]) -> None:
    assert _is_answer(WORLD.review(pod(annotations)))


@FUZZ
@given(annotation_dicts, annotation_dicts)
def test_random_pod_updates_get_a_verdict(old: dict[str, str], new: dict[str, str]) -> None:
    assert _is_answer(WORLD.review(pod(new), operation="UPDATE", old=pod(old)))


@FUZZ
@given(
    annotation_dicts,
    st.sampled_from(["Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob"]),
    json_values,
)
def test_random_workload_templates_get_a_verdict(
    annotations: dict[str, str], kind: str, replicas: Any
) -> None:
    template = {"metadata": {"annotations": annotations}}
    spec: dict[str, Any] = {"replicas": replicas, "parallelism": replicas, "template": template}
    if kind == "CronJob":
        spec = {"jobTemplate": {"spec": spec}}
    api = "batch/v1" if kind in ("Job", "CronJob") else "apps/v1"
    obj = {"apiVersion": api, "kind": kind, "metadata": {"name": "w", "namespace": "default"}, "spec": spec}
    assert _is_answer(WORLD.review(obj))


@FUZZ
@given(
    st.sampled_from(["Subnet", "IPPool", "NetworkAttachmentDefinition"]),
    st.dictionaries(
        st.sampled_from(
            [
                "cidrBlock",
                "gateway",
                "excludeIps",
                "provider",
                "protocol",
                "namespaces",
                "default",
                "subnet",
                "ips",
                "config",
                "private",
                "natOutgoing",
                "vpc",
            ]
        ),
        json_values | near_values,
        max_size=6,
    ),
    st.sampled_from(["CREATE", "UPDATE", "DELETE"]),
)
def test_random_specs_get_a_verdict(kind: str, spec: dict[str, Any], operation: str) -> None:
    api = {"Subnet": "kubeovn.io/v1", "IPPool": "kubeovn.io/v1"}.get(kind, "k8s.cni.cncf.io/v1")
    obj = {
        "apiVersion": api,
        "kind": kind,
        "metadata": {"name": "macvlan", "namespace": "default"},
        "spec": spec,
    }
    old = WORLD.view.subnet("macvlan") if kind == "Subnet" else obj
    new = None if operation == "DELETE" else obj
    assert _is_answer(WORLD.review(new, operation=operation, old=old if operation != "CREATE" else None))


@FUZZ
@given(
    st.dictionaries(
        st.sampled_from(["uid", "kind", "operation", "object", "oldObject", "userInfo", "namespace", "name"]),
        json_values,
    ),
    st.sampled_from(["Pod", "Subnet", "IPPool", "NetworkAttachmentDefinition", "Deployment", "CronJob"]),
    st.sampled_from(["", "kubeovn.io", "apps", "batch", "k8s.cni.cncf.io"]),
    json_values,
)
def test_random_review_dicts_get_a_verdict(raw: dict[str, Any], kind: str, group: str, body: Any) -> None:
    """Shapes parse_review would refuse still never make `review` raise."""
    raw.setdefault("kind", {"group": group, "version": "v1", "kind": kind})
    raw.setdefault("object", {"metadata": {"annotations": body}, "spec": body})
    assert _is_answer(validate.review(raw, view=WORLD.view))


@FUZZ
@given(json_values)
def test_any_json_as_the_request_gets_a_verdict(raw: Any) -> None:
    assert _is_answer(validate.review(raw, view=WORLD.view))


def test_fuzz_world_refuses_and_allows_something() -> None:
    """The fuzzed world is not trivially permissive: the same pod shape can be refused or allowed."""
    assert not WORLD.review(
        pod(
            {
                "k8s.v1.cni.cncf.io/networks": "default/macvlan",
                "macvlan.default.kubernetes.io/ip_address": "172.17.0.100",
            }
        )
    ).allowed
    assert WORLD.review(pod({"k8s.v1.cni.cncf.io/networks": "default/macvlan"})).allowed
    assert request(pod({}))["kind"]["kind"] == "Pod"
