"""A hand-filled cluster for rule tests: NADs, Subnets, IPPools and IP objects in an `ObjectCache`,
and AdmissionReview requests built around objects, so each test reads as the situation it checks."""

from __future__ import annotations

import copy
import json
from typing import Any

from webhook import validate
from webhook.admission.reviews import Verdict
from webhook.cluster import objects
from webhook.cluster.claims import TryAgain
from webhook.cluster.informers import server_cache
from webhook.cluster.view import ClusterView

from . import guide

SYSTEM_USER = "system:serviceaccount:multinic-ipam:multinic-ipam"

_GROUPS = {
    "v1": "",
    "apps/v1": "apps",
    "batch/v1": "batch",
    "kubeovn.io/v1": "kubeovn.io",
    "k8s.cni.cncf.io/v1": "k8s.cni.cncf.io",
}


class World:
    """What the webhook's caches would hold."""

    def __init__(self) -> None:
        self.cache = server_cache()  # as the server holds it: compacted, pods and IPs packed
        self.view = ClusterView(self.cache)

    # -- objects ---------------------------------------------------------------------------
    def put(self, obj: dict[str, Any]) -> dict[str, Any]:
        kind = {
            "NetworkAttachmentDefinition": objects.NADS,
            "Subnet": objects.SUBNETS,
            "IPPool": objects.IPPOOLS,
            "IP": objects.IPS,
            "Pod": objects.PODS,
        }[obj["kind"]]
        self.cache.put(kind, obj)
        return obj

    def example(self, name: str) -> dict[str, Any]:
        """Store the guide's example file `name` (a NAD or Subnet), as `kubectl apply` would."""
        obj = guide.load(name)
        if obj["kind"] == "NetworkAttachmentDefinition":
            obj["metadata"].setdefault("namespace", "default")
        return self.put(obj)

    def nad(self, name: str, config: dict[str, Any] | str | None, namespace: str = "default") -> dict:
        return self.put(nad(name, config, namespace))

    def subnet(self, name: str, **spec: Any) -> dict[str, Any]:
        return self.put(subnet(name, **spec))

    def ippool(self, name: str, subnet_name: str, ips: list[str]) -> dict[str, Any]:
        return self.put(
            {
                "apiVersion": "kubeovn.io/v1",
                "kind": "IPPool",
                "metadata": {"name": name},
                "spec": {"subnet": subnet_name, "ips": ips},
            }
        )

    def hold(
        self,
        subnet_name: str,
        address: str,
        *,
        pod: str = "",
        namespace: str = "default",
        generate_name: str = "",
        reservation: str = "r-other",
        mac: str = "",
    ) -> dict[str, Any]:
        """An IP object: `address` of `subnet_name` held for a pod."""
        family = "v6IPAddress" if ":" in address else "v4IPAddress"
        return self.put(
            {
                "apiVersion": "kubeovn.io/v1",
                "kind": "IP",
                "metadata": {
                    "name": objects.ip_object_name(subnet_name, address),
                    "labels": {
                        objects.LABEL_SUBNET: subnet_name,
                        objects.LABEL_POD_NAMESPACE: namespace,
                        objects.LABEL_RESERVATION: reservation,
                    },
                },
                "spec": {
                    "subnet": subnet_name,
                    "ipAddress": address,
                    family: address,
                    "macAddress": mac,
                    "namespace": namespace,
                    "podName": pod,
                    "generateName": generate_name,
                },
            }
        )

    # -- reviews ---------------------------------------------------------------------------
    def review(
        self,
        obj: dict[str, Any] | None,
        *,
        operation: str = "CREATE",
        old: dict[str, Any] | None = None,
        username: str = "jane",
        system_users: frozenset[str] = frozenset({SYSTEM_USER}),
        live: LiveReads | None = None,
    ) -> Verdict:
        return validate.review(
            request(obj, operation=operation, old=old, username=username),
            view=self.view,
            system_users=system_users,
            live=live,
        )


class LiveReads:
    """The API server as `Store` reads it on a cache miss: objects the watch has not delivered yet."""

    def __init__(
        self, *, nads: tuple[dict, ...] = (), subnets: tuple[dict, ...] = (), ippools: tuple[dict, ...] = (),
        ips: tuple[dict, ...] = (), unreachable: bool = False,
    ) -> None:
        self.nads = {(n["metadata"]["namespace"], n["metadata"]["name"]): n for n in nads}
        self.subnets = {s["metadata"]["name"]: s for s in subnets}
        self.ippools = {p["metadata"]["name"]: p for p in ippools}
        self.ips = {i["metadata"]["name"]: i for i in ips}
        self.unreachable = unreachable
        self.asked: list[str] = []

    def fetch_ippool(self, name: str) -> dict | None:
        self.asked.append(f"ippool {name}")
        return self.ippools.get(name)

    def current_ip(self, name: str) -> dict | None:
        self.asked.append(f"ip {name}")
        if self.unreachable:
            raise TryAgain(f"could not read ips {name} (connection refused); retry the pod")
        return self.ips.get(name)

    def fetch_nad(self, namespace: str, name: str) -> dict | None:
        self.asked.append(f"nad {namespace}/{name}")
        return self.nads.get((namespace, name))

    def fetch_subnet(self, name: str) -> dict | None:
        self.asked.append(f"subnet {name}")
        return self.subnets.get(name)

    def subnets_for(self, provider: str) -> list[dict]:
        self.asked.append(f"subnets for {provider}")
        return [s for s in self.subnets.values() if s["spec"].get("provider") == provider]


def request(
    obj: dict[str, Any] | None,
    *,
    operation: str = "CREATE",
    old: dict[str, Any] | None = None,
    username: str = "jane",
) -> dict[str, Any]:
    """The AdmissionReview v1 `request` the API server would send for `obj` (or `old` on DELETE)."""
    subject = obj if obj is not None else old
    assert subject is not None
    meta = subject.get("metadata") or {}
    body: dict[str, Any] = {
        "uid": "7f1c0000-0000-0000-0000-000000000001",
        "kind": {"group": _GROUPS[subject["apiVersion"]], "version": "v1", "kind": subject["kind"]},
        "operation": operation,
        "userInfo": {"username": username},
        "object": copy.deepcopy(obj),
        "oldObject": copy.deepcopy(old),
    }
    if meta.get("name"):
        body["name"] = meta["name"]
    if subject["kind"] not in ("Subnet", "IPPool", "IP"):
        body["namespace"] = meta.get("namespace", "default")
    return body


def nad(name: str, config: dict[str, Any] | str | None, namespace: str = "default") -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "k8s.cni.cncf.io/v1",
        "kind": "NetworkAttachmentDefinition",
        "metadata": {"name": name, "namespace": namespace},
    }
    if config is not None:
        obj["spec"] = {"config": config if isinstance(config, str) else json.dumps(config)}
    return obj


def macvlan_config(provider: str = "macvlan.default", **ipam: Any) -> dict[str, Any]:
    return {
        "cniVersion": "0.3.0",
        "type": "macvlan",
        "master": "eth0",
        "mode": "bridge",
        "ipam": {
            "type": "kube-ovn",
            "server_socket": "/run/openvswitch/kube-ovn-daemon.sock",
            "provider": provider,
            **ipam,
        },
    }


def kube_ovn_config(provider: str = "attachnet.default.ovn") -> dict[str, Any]:
    return {
        "cniVersion": "0.3.0",
        "type": "kube-ovn",
        "server_socket": "/run/openvswitch/kube-ovn-daemon.sock",
        "provider": provider,
    }


def subnet(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "kubeovn.io/v1", "kind": "Subnet", "metadata": {"name": name}, "spec": spec}


def pod(annotations: dict[str, str], *, name: str = "p", namespace: str = "default") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "annotations": dict(annotations)},
        "spec": {"containers": [{"name": "c", "image": "docker.io/library/alpine:edge"}]},
    }


def deployment(
    annotations: dict[str, str], *, name: str = "web", replicas: int | None = 2, **spec: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "selector": {"matchLabels": {"app": name}},
        "template": {
            "metadata": {"labels": {"app": name}, "annotations": dict(annotations)},
            "spec": {"containers": [{"name": "c", "image": "docker.io/library/nginx:alpine"}]},
        },
        **spec,
    }
    if replicas is not None:
        body["replicas"] = replicas
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "default"},
        "spec": body,
    }


def guide_world() -> World:
    """The guide's first setup: NAD macvlan and Subnet macvlan (provider macvlan.default)."""
    world = World()
    world.example("nad-macvlan.yaml")
    world.example("subnet-macvlan.yaml")
    return world
