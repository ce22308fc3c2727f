"""Read-only questions about the cluster, answered from an `ObjectCache`.

Validation and mutation ask these; they never list the API server on a request's path.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

from allocator.errors import AllocatorError
from allocator.mac import normalise_mac
from webhook.cluster import objects
from webhook.cluster.cache import Names, Object, ObjectCache

MacKey = tuple[str, str]  # (Subnet name, normalised MAC)


class ClusterView:
    """Queries over the cached Subnets, IPs, IPPools, NADs, Pods and StatefulSets."""

    def __init__(self, cache: ObjectCache) -> None:
        self.cache = cache
        self._macs: _MacIndex | None = None
        self._macs_lock = threading.Lock()

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
        if subnet is None:
            return self.cache.list(objects.IPS)
        return [ip for ip in self.each_ip_object() if (ip.get("spec") or {}).get("subnet") == subnet]

    def each_ip_object(self) -> Iterator[Object]:
        """Every IP object, read one at a time (`ObjectCache.each`)."""
        return self.cache.each(objects.IPS)

    def holder(self, subnet: str, address: str) -> Object | None:
        """The IP object that holds `address` in `subnet`, if any (O(1): names are derived)."""
        return self.ip_object(objects.ip_object_name(subnet, address))

    def mac_holders(self, subnet: str, mac: str) -> list[Object]:
        """The IP objects of `subnet` holding `mac` (any accepted spelling), by name.

        A list, not one object: a pod's own object may hold the MAC beside a conflicting one,
        and the caller decides which holders count. O(holders), not O(objects in the Subnet).
        An unusable `mac` is held by nobody.
        """
        try:
            normal = normalise_mac(mac)
        except AllocatorError:
            return []
        with self._macs_lock:
            if self._macs is None:  # built on first use: the node daemon's views never ask
                self._macs = _MacIndex(self.cache)
        return self._macs.holders(subnet, normal)

    def pod(self, namespace: str, name: str) -> Object | None:
        return self.cache.get(objects.PODS, name, namespace)

    def statefulset(self, namespace: str, name: str) -> Object | None:
        return self.cache.get(objects.STATEFULSETS, name, namespace)


class _MacIndex:
    """(Subnet, MAC) → names of the IP objects holding it, kept current by cache events.

    Each event re-reads the object's current state from the cache under this index's lock
    instead of trusting the event's copy: the cache fires handlers outside its own lock, so two
    events for one name (or `subscribe`'s replay racing a delete) may arrive out of order, and the
    last handler to run must see the latest object. Unusable MACs are not indexed: no valid
    wanted MAC could equal them.
    """

    def __init__(self, cache: ObjectCache) -> None:
        self._cache = cache
        self._lock = threading.Lock()
        self._names = Names()  # (Subnet, MAC) → IP object names
        self._key_of: dict[str, MacKey] = {}
        cache.subscribe(objects.IPS, self._on_ip)

    def holders(self, subnet: str, mac: str) -> list[Object]:
        with self._lock:
            names = self._names.get((subnet, mac))
        found = []
        for name in names:
            obj = self._cache.get(objects.IPS, name)
            if obj is not None and mac_key(obj) == (subnet, mac):
                found.append(obj)
        return found

    def _on_ip(self, _event: str, ip: Object) -> None:
        name = _name(ip)
        with self._lock:
            current = self._cache.current(objects.IPS, ip)
            key = mac_key(current) if current is not None else None
            old = self._key_of.pop(name, None)
            if old is not None and old == key:
                self._key_of[name] = old  # unchanged: keep the key the index holds, not a copy
                return
            if old is not None:
                self._names.discard(old, name)
            if key is not None:
                self._key_of[name] = key
                self._names.add(key, name)


def mac_key(ip: Object) -> MacKey | None:
    """(Subnet, normal MAC) an IP object holds; None when it holds no usable one."""
    spec = ip.get("spec") or {}
    held, subnet = spec.get("macAddress"), spec.get("subnet")
    if not held or not isinstance(held, str) or not isinstance(subnet, str):
        return None
    try:
        return subnet, normalise_mac(held)
    except AllocatorError:
        return None


def _name(obj: Object) -> str:
    return (obj.get("metadata") or {}).get("name") or ""
