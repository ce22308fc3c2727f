"""A small cluster for Store, mutate and Lifecycle tests: cache + fake API + the guide's objects."""

from __future__ import annotations

import json

from tests.fakes import FakeApi
from webhook.cluster import objects
from webhook.cluster.informers import server_cache
from webhook.cluster.store import Store

MACVLAN_NAD_CONFIG = json.dumps({
    "cniVersion": "0.3.0", "type": "macvlan", "master": "eth0", "mode": "bridge",
    "ipam": {"type": "kube-ovn", "server_socket": "/run/openvswitch/kube-ovn-daemon.sock",
             "provider": "macvlan.default"},
})
ATTACHNET_NAD_CONFIG = json.dumps({
    "cniVersion": "0.3.0", "type": "kube-ovn", "server_socket": "/run/openvswitch/kube-ovn-daemon.sock",
    "provider": "attachnet.default.ovn",
})


def nad(name: str, config: str, namespace: str = "default") -> dict:
    return {"apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
            "metadata": {"name": name, "namespace": namespace}, "spec": {"config": config}}


def subnet(name: str, cidr: str, *, provider: str = "ovn", gateway: str | None = None,
           exclude: tuple[str, ...] = (), **extra) -> dict:
    spec = {"cidrBlock": cidr, "provider": provider, "excludeIps": list(exclude), **extra}
    if gateway:
        spec["gateway"] = gateway
    return {"apiVersion": "kubeovn.io/v1", "kind": "Subnet", "metadata": {"name": name}, "spec": spec}


class World:
    """One process's view (cache + store) over a shared fake API server."""

    def __init__(self, api: FakeApi | None = None) -> None:
        self.cache = server_cache()  # as the server holds it: compacted, pods and IPs packed
        self.api = api or FakeApi()
        self.api.watchers.append(self.cache)
        for (kind, _, _), obj in list(self.api.objects.items()):
            self.cache.put(kind, obj)
        for obj in list(self.api.ips.values()):
            self.cache.put(objects.IPS, obj)
        self.store = Store(self.cache, api=self.api, clock=lambda: self.now)
        self.now = 1_000_000.0

    def add(self, kind: str, obj: dict) -> dict:
        return self.api.put(kind, obj)

    def guide(self) -> World:
        """The guide's macvlan NAD and Subnet, and the kube-ovn type attachnet NAD and Subnet."""
        self.add(objects.NADS, nad("macvlan", MACVLAN_NAD_CONFIG))
        self.add(objects.NADS, nad("attachnet", ATTACHNET_NAD_CONFIG))
        self.add(objects.SUBNETS, subnet("macvlan", "172.17.0.0/16", provider="macvlan.default",
                                         gateway="172.17.0.1", exclude=("172.17.0.0..172.17.0.10",)))
        self.add(objects.SUBNETS, subnet("attachnet", "172.18.0.0/16", provider="attachnet.default.ovn",
                                         gateway="172.18.0.1", exclude=("172.18.0.0..172.18.0.10",)))
        return self
