"""The store's indexes, kept in step with the cache: one `SubnetState` per Subnet (its IPPools
split in, its IP objects held), the IP objects of each named pod attachment, pods by reservation token.

Cache handlers run after the cache lock is released, so events of one object may arrive out of
order; each handler re-reads the cache under one lock, so the last one wins.
"""

from __future__ import annotations

import threading

from allocator import errors, pools
from allocator.family import PoolDef
from webhook.cluster import objects
from webhook.cluster.cache import Names, Object, ObjectCache
from webhook.cluster.ipobjects import name_of, token_of
from webhook.cluster.subnetstate import Applied, SubnetState
from webhook.cluster.view import ClusterView

Identity = tuple[str, str, str, str]  # (namespace, pod, provider, interface)


class CacheSync:
    """Subscribes to the cache of `view` and keeps the per-Subnet allocators and lookups current."""

    def __init__(self, view: ClusterView) -> None:
        self.view = view
        self.cache: ObjectCache = view.cache
        self._states: dict[str, SubnetState] = {}
        self._broken: dict[str, str] = {}  # subnet → why its spec cannot be used
        self._guard = threading.RLock()
        self._by_identity = Names()  # identity → IP object names
        self._pods_by_token: dict[str, tuple[str, str]] = {}
        self._indexed: dict[str, Identity] = {}  # IP object name → its identity
        self._applied: dict[str, Applied] = {}  # IP object name → what the allocators hold for it
        self._pool_subnets: dict[str, str] = {}  # IPPool name → its subnet, to re-split on change
        self._holding = Names()  # (subnet, address) → IP object names
        self._sync = threading.RLock()
        self.cache.subscribe(objects.SUBNETS, self._on_subnet)
        self.cache.subscribe(objects.IPPOOLS, self._on_ippool)
        self.cache.subscribe(objects.IPS, self._on_ip)
        self.cache.subscribe(objects.PODS, self._on_pod)

    # ---- lookups ------------------------------------------------------------------------------

    def state(self, subnet: str) -> tuple[SubnetState | None, str | None]:
        """The allocator state of `subnet` as cached, and why its spec cannot be used (or None)."""
        with self._guard:
            return self._states.get(subnet), self._broken.get(subnet)

    def identity_names(self, identity: Identity) -> list[str]:
        """The IP objects of a named pod's attachment, by name."""
        with self._guard:
            return self._by_identity.get(identity)

    def pod_of_token(self, token: str) -> tuple[str, str] | None:
        """(namespace, name) of the cached pod carrying reservation `token`."""
        with self._guard:
            return self._pods_by_token.get(token)

    # ---- cache events -------------------------------------------------------------------------

    def _on_subnet(self, event: str, subnet: Object) -> None:
        name = name_of(subnet)
        with self._sync:
            current = self.cache.get(objects.SUBNETS, name)
            spec = (current or {}).get("spec") or {}
            with self._guard:
                known = self._states.get(name)
                if current is None:
                    self._states.pop(name, None)
                    self._broken.pop(name, None)
                    return
                if known is not None and known.raw == spec:
                    return
                try:
                    state = SubnetState(name, spec)
                except errors.AllocatorError as error:
                    self._states.pop(name, None)
                    self._broken[name] = str(error)
                    return
                self._broken.pop(name, None)
                # Published while its lock is held, so no reserve sees it before the held addresses are in.
                state.lock.acquire()
                self._states[name] = state
            try:
                state.allocator.set_pools(self._pool_defs(name))
                for ip in self.view.ip_objects(name):
                    applied = Applied.of(ip)
                    if applied is not None:  # its own event records it in _applied, now or soon
                        state.hold(applied)
            finally:
                state.lock.release()

    def _on_ippool(self, event: str, pool: Object) -> None:
        name = name_of(pool)
        with self._sync:
            current = self.cache.get(objects.IPPOOLS, name)
            subnet = ((current or {}).get("spec") or {}).get("subnet", "")
            with self._guard:
                before = self._pool_subnets.pop(name, "")
                if current is not None:
                    self._pool_subnets[name] = subnet
            for affected in {before, subnet} - {""}:
                state = self._states.get(affected)
                if state is not None:
                    with state.lock:
                        state.allocator.set_pools(self._pool_defs(affected))

    def _pool_defs(self, subnet: str) -> list[PoolDef]:
        """The cached IPPools of `subnet` as the allocator takes them (stored items that do not
        parse are left out: the validating webhook refuses them on apply)."""
        defs = []
        for pool in self.view.ippools(subnet):
            spec = pool.get("spec") or {}
            namespaces = spec.get("namespaces") if isinstance(spec.get("namespaces"), list) else []
            defs.append(PoolDef(
                name=name_of(pool),
                ranges=pools.parse_pool_ips_leniently(spec.get("ips")),
                namespaces=tuple(n for n in namespaces if isinstance(n, str)),
            ))
        return defs

    def _on_ip(self, event: str, ip: Object) -> None:
        name = name_of(ip)
        with self._sync:
            current = self.cache.current(objects.IPS, ip)
            self._index(name, current)
            new, old = Applied.of(current), self._applied.get(name)
            if new == old:
                return
            if old is not None:
                del self._applied[name]
                self._holding.discard((old.subnet, old.address), name)
                others = self._holding.get((old.subnet, old.address))
                state = self._states.get(old.subnet)
                if state is not None:
                    with state.lock:
                        state.unhold(old)
                        # a hand-made second object of the address keeps it held
                        for other in others:
                            state.hold(self._applied[other])
            if new is not None:
                self._applied[name] = new
                self._holding.add((new.subnet, new.address), name)
                state = self._states.get(new.subnet)
                if state is not None:
                    with state.lock:
                        state.hold(new)

    def _index(self, name: str, ip: Object | None) -> None:
        """The identity index of one IP object (a named pod's attachment), as the cache holds it now."""
        with self._guard:
            old = self._indexed.pop(name, None)
            if old is not None:
                self._by_identity.discard(old, name)
            if ip is None:
                return
            spec = ip.get("spec") or {}
            identity = (spec.get("namespace", ""), spec.get("podName", ""), spec.get("provider", ""),
                        spec.get("interface", ""))
            if identity[1]:
                self._indexed[name] = identity
                self._by_identity.add(identity, name)

    def _on_pod(self, event: str, pod: Object) -> None:
        meta = pod.get("metadata") or {}
        token = (meta.get("annotations") or {}).get(objects.RESERVATION_ANNOTATION)
        if not token:
            return
        namespace, name = meta.get("namespace", ""), meta.get("name", "")
        with self._sync, self._guard:
            current = self.cache.current(objects.PODS, pod)
            if current is not None and token_of(current) == token:
                self._pods_by_token[token] = (namespace, name)
            elif self._pods_by_token.get(token) == (namespace, name):
                del self._pods_by_token[token]
