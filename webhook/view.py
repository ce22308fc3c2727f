"""Read-only questions about the cluster, answered from an `ObjectCache`.

Validation and mutation ask these; they never list the API server on a request's path.
"""

from __future__ import annotations

from webhook import objects
from webhook.cache import Object, ObjectCache


class ClusterView:
    """Queries over the cached Subnets, IPs, IPPools, NADs, Pods and StatefulSets."""

    def __init__(self, cache: ObjectCache) -> None:
        self.cache = cache

    def nad(self, namespace: str, name: str) -> Object | None:
        return self.cache.get(objects.NADS, name, namespace)

    def subnet(self, name: str) -> Object | None:
        return self.cache.get(objects.SUBNETS, name)

    def subnets(self) -> list[Object]:
        return sorted(self.cache.list(objects.SUBNETS), key=_name)

    def subnets_for_provider(self, provider: str) -> list[Object]:
        """Subnets whose `spec.provider` (default `ovn`) equals `provider`, by name."""
        return [s for s in self.subnets() if (s.get("spec") or {}).get("provider", "ovn") == provider]

    def ippool(self, name: str) -> Object | None:
        return self.cache.get(objects.IPPOOLS, name)

    def ippools(self, subnet: str | None = None) -> list[Object]:
        pools = sorted(self.cache.list(objects.IPPOOLS), key=_name)
        if subnet is None:
            return pools
        return [p for p in pools if (p.get("spec") or {}).get("subnet") == subnet]

    def ip_object(self, name: str) -> Object | None:
        return self.cache.get(objects.IPS, name)

    def ip_objects(self, subnet: str | None = None) -> list[Object]:
        ips = self.cache.list(objects.IPS)
        if subnet is None:
            return ips
        return [ip for ip in ips if (ip.get("spec") or {}).get("subnet") == subnet]

    def holder(self, subnet: str, address: str) -> Object | None:
        """The IP object that holds `address` in `subnet`, if any (O(1): names are derived)."""
        return self.ip_object(objects.ip_object_name(subnet, address))

    def pod(self, namespace: str, name: str) -> Object | None:
        return self.cache.get(objects.PODS, name, namespace)

    def statefulset(self, namespace: str, name: str) -> Object | None:
        return self.cache.get(objects.STATEFULSETS, name, namespace)


def _name(obj: Object) -> str:
    return (obj.get("metadata") or {}).get("name") or ""
