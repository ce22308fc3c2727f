"""The Kubernetes-backed store: IP objects are the locks, the allocator picks the candidates.

Every process keeps one `SubnetState` per Subnet, rebuilt from the cache and kept in step with the
cached IP objects (`webhook.cluster.cachesync`). It only proposes addresses: an address is held when
`create` of its deterministically named IP object succeeds (`webhook.cluster.reservation`), so several
processes and replicas never hand out one address twice, and a restart rebuilds everything from the
API server. `Store` is the facade admission, the leader and the operator tools use; a cache miss
here is answered by a live read (the object was just created).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from allocator import errors
from allocator.subnet_spec import SubnetSpec
from webhook import metrics
from webhook.cluster import objects
from webhook.cluster.cache import Object, ObjectCache
from webhook.cluster.cachesync import CacheSync
from webhook.cluster.checks import PreLockChecks
from webhook.cluster.claims import Claim, Held, PodIdentity, TryAgain
from webhook.cluster.ipobjects import token_of
from webhook.cluster.kubeapi import Api, ApiError, Conflict, KubernetesApi, NotFound, Unreachable
from webhook.cluster.reservation import Reservations
from webhook.cluster.subnetstate import SubnetState
from webhook.cluster.view import ClusterView
from webhook.settings import DEFAULT_GRACE


class Store(ClusterView):
    """A `ClusterView` that can also hold and free addresses in the API server."""

    def __init__(
        self,
        cache: ObjectCache,
        api_client: object | None = None,
        *,
        api: Api | None = None,
        clock: Callable[[], float] = time.time,
        grace: float = DEFAULT_GRACE,
    ) -> None:
        super().__init__(cache)
        self.grace = grace
        if api is None:
            api = KubernetesApi(api_client)
        self.api = api
        self.clock = clock
        self.indexes = CacheSync(self)
        self.checks = PreLockChecks(self)
        self.reservations = Reservations(self, self.checks)

    # ---- lookups, with live reads on a cache miss ------------------------------------------------

    def state(self, subnet: str) -> SubnetState:
        """The allocator state of `subnet`; a cache miss is answered by a live read (just created)."""
        state, broken = self.indexes.state(subnet)
        if state is None and broken is None and self.subnet(subnet) is None:
            self.fetch_subnet(subnet)
            state, broken = self.indexes.state(subnet)
        if broken is not None:
            raise errors.InvalidCIDR(broken)
        if state is None:
            raise errors.AllocatorError(
                f"subnet {subnet!r} does not exist; create it or name an existing Subnet"
            )
        return state

    def spec_of(self, subnet: str) -> SubnetSpec:
        return self.state(subnet).spec

    def fetch_nad(self, namespace: str, name: str) -> Object | None:
        return self._fetch(objects.NADS, name, namespace)

    def fetch_subnet(self, name: str) -> Object | None:
        return self._fetch(objects.SUBNETS, name)

    def fetch_ippool(self, name: str) -> Object | None:
        return self._fetch(objects.IPPOOLS, name)

    def _fetch(self, kind: str, name: str, namespace: str = "") -> Object | None:
        """From the cache, or live when the cache has not seen it yet (applied a moment ago, maybe in
        the same file as the pod); cached then, so the indexes (a Subnet's allocator and its pools)
        have it before it is used."""
        found = self.cache.get(kind, name, namespace)
        if found is None:
            found = self.live(kind, name, namespace)
            if found is not None and self.cache.get(kind, name, namespace) is None:
                self.cache.put(kind, found)
        return found

    def subnets_for(self, provider: str) -> list[Object]:
        """Subnets bound to `provider`; on a miss the Subnets are relisted once (cache lag)."""
        found = self.subnets_for_provider(provider)
        if not found:
            try:
                live = self.api.list(objects.SUBNETS)
            except ApiError:
                live = []
            for subnet in live:
                if self.subnet(subnet["metadata"]["name"]) is None:
                    self.cache.put(objects.SUBNETS, subnet)
            found = self.subnets_for_provider(provider)
        return found

    def identity_objects(self, namespace: str, pod: str, provider: str, interface: str) -> list[Object]:
        """IP objects of an earlier incarnation of a named pod's attachment (StatefulSet reuse)."""
        names = self.indexes.identity_names((namespace, pod, provider, interface))
        return [ip for ip in (self.ip_object(n) for n in names) if ip is not None]

    def pod_for_token(self, token: str) -> Object | None:
        where = self.indexes.pod_of_token(token)
        return self.pod(*where) if where else None

    def current_ip(self, name: str) -> Object | None:
        """An IP object as the API server has it now; None when it is gone. What a refusal rests
        on: the cache may lag behind a release another replica made (its watch restarting)."""
        return self.live(objects.IPS, name)

    def live(self, kind: str, name: str, namespace: str = "") -> Object | None:
        """A live read; None when absent. Unanswered, it must not pass for "absent" (a take-over
        would hand out the address of a pod that may live): the request is refused, to be retried."""
        try:
            return self.api.read(kind, name, namespace)
        except Unreachable as error:
            raise TryAgain(f"could not read {kind} {name} ({error}); retry the pod") from None
        except ApiError:
            return None

    def may_take_over(self, pod: PodIdentity, holder: Object, *, live: bool = False) -> bool:
        """An address held for this very pod name whose earlier pod is gone may pass to the new one."""
        spec = holder.get("spec") or {}
        if not pod.name or (spec.get("namespace"), spec.get("podName")) != (pod.namespace, pod.name):
            return False
        if token_of(holder) == pod.token:
            return True
        if spec.get("podType") == "StatefulSet" and pod.owner_kind == "StatefulSet":
            return True
        if live:
            current = self.live(objects.PODS, pod.name, pod.namespace)
        else:
            current = self.pod(pod.namespace, pod.name)
        return current is None or token_of(current) != token_of(holder)

    # ---- holding and freeing -------------------------------------------------------------------

    def check(self, pod: PodIdentity, claim: Claim) -> None:
        """Raise the refusal `reserve` would end with, without holding anything."""
        self.checks.check(pod, claim)

    @metrics.timed_allocation
    def reserve(self, pod: PodIdentity, claim: Claim, *, dry_run: bool = False) -> Held:
        """Hold what `claim` asks for, confirmed by IP object creates; nothing durable when dry_run."""
        return self.reservations.reserve(pod, claim, dry_run=dry_run)

    def release(self, held: Held) -> None:
        """Undo a reservation of this request (a later attachment failed): delete what it created."""
        for name in held.created:
            self.delete(name)

    def delete(self, name: str, *, resource_version: str | None = None) -> bool:
        """Delete an IP object (the address becomes free); False when it changed meanwhile."""
        ip = self.ip_object(name)
        try:
            self.api.delete_ip(name, resource_version=resource_version)
        except NotFound:
            pass
        except Conflict:
            return False
        if ip is not None:
            self.cache.delete(objects.IPS, ip)
        return True
