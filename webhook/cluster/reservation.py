"""The reservation protocol: an address is held when `create` of its deterministically named IP
object succeeds. The allocator proposes candidates under the subnet's lock; a lost race
(`AlreadyExists`) marks the address taken and the next candidate is tried (spread out after a
loss), so several processes and replicas never hand out one address twice. Wished-for addresses of
a gone pod of the same name, and a recreated StatefulSet pod's old addresses, are taken over by
resourceVersion-guarded patches."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

from allocator import errors, pools
from allocator.family import SUBNET_BUCKET as SUBNET_POOL
from allocator.mac import normalise_mac
from allocator.subnet import Subnet
from webhook import metrics
from webhook.cluster import objects
from webhook.cluster.cache import Object
from webhook.cluster.claims import Claim, Held, PodIdentity, TryAgain, held_by
from webhook.cluster.ipobjects import address_of, ip_body, ordered, reservation_stamp
from webhook.cluster.kubeapi import AlreadyExists, ApiError, Conflict, NotFound
from webhook.cluster.spread import scatter, spread
from webhook.cluster.subnetstate import SubnetState

if TYPE_CHECKING:
    from webhook.cluster.checks import PreLockChecks
    from webhook.cluster.store import Store

MAX_TRIES = 64


class Reservations:
    """`Store.reserve` and the choices it makes, over the store's cache, API and allocators."""

    def __init__(self, store: Store, checks: PreLockChecks) -> None:
        self.store = store
        self.checks = checks

    def reserve(self, pod: PodIdentity, claim: Claim, *, dry_run: bool = False) -> Held:
        """Hold what `claim` asks for, confirmed by IP object creates; nothing durable when dry_run."""
        store = self.store
        state = store.state(claim.subnet)
        if self.reusable(pod, claim):
            previous = store.identity_objects(pod.namespace, pod.name, claim.provider, claim.interface)
            if dry_run:
                return _held(claim, previous, names=(), created=())
            reused = self._reuse(pod, claim, previous)
            if reused is not None:
                return reused
        if dry_run:
            return self._plan(state, pod, claim)
        owner = pod.owner(claim.provider, claim.interface)
        lost: tuple[str, ...] = ()
        for attempt in range(MAX_TRIES):
            if attempt:
                metrics.ALLOCATION_RETRIES.labels(claim.subnet).inc()
            with state.lock:
                addresses = self._contended_candidate(state, owner, claim, lost, attempt)
                if addresses is None:
                    addresses = self._candidate(state, pod, claim, state.allocator)
                mac = self._mac(state, pod, claim)
            held = self._lock(state, pod, claim, addresses, mac)
            if held is not None:
                return held
            lost = addresses
            if claim.fixed:
                names = [objects.ip_object_name(claim.subnet, a) for a in claim.fixed]
                found = (store.ip_object(n) or store.live(objects.IPS, n) for n in names)
                holder = next(filter(None, found), None)
                if holder is None:
                    raise TryAgain(f"{','.join(claim.fixed)} was just taken; retry to learn by whom")
                raise held_by(','.join(claim.fixed), holder, claim.subnet)
        state.release_mac_of(owner)
        raise TryAgain(
            f"lost {MAX_TRIES} races for an address of subnet {claim.subnet} in a row; "
            "the pod creation can simply be retried"
        )

    # ---- choosing --------------------------------------------------------------------------------

    def _plan(self, state: SubnetState, pod: PodIdentity, claim: Claim) -> Held:
        """What a real reserve would pick, worked out on a scratch copy of the allocator."""
        owner = pod.owner(claim.provider, claim.interface)
        with state.lock:
            scratch = copy.deepcopy(state.allocator)
        addresses = self._candidate(state, pod, claim, scratch)
        mac = normalise_mac(claim.mac) if claim.mac else scratch.allocate_mac(owner)
        return Held(claim.subnet, claim.provider, claim.interface, addresses, mac)

    def _contended_candidate(
        self, state: SubnetState, owner: str, claim: Claim, lost: tuple[str, ...], attempt: int
    ) -> tuple[str, ...] | None:
        """Where to try while other processes allocate from this subnet too (`webhook.cluster.spread`):
        a random short way above a lost race, or, lately contended, one of the lowest free at random;
        None for the allocator's own choice (wished-for addresses, no contention)."""
        if claim.fixed or claim.pool:
            return None
        if lost:
            return spread(state.allocator, owner, lost, attempt, self.bucket(state, claim))
        if state.contended():
            families = state.allocator.families(claim.families)
            return scatter(state.allocator, owner, families, self.bucket(state, claim))
        return None

    def _candidate(
        self, state: SubnetState, pod: PodIdentity, claim: Claim, alloc: Subnet
    ) -> tuple[str, ...]:
        """The next address tuple (one per family asked for) to try, held in `alloc` for the owner."""
        owner = pod.owner(claim.provider, claim.interface)
        if claim.fixed or claim.pool:
            entry = claim.fixed or self.pool_candidate(state, pod, claim, alloc)
            for address in entry:
                if alloc.holder(address) not in (None, owner):
                    alloc.release(address)  # a stale, unknown or gone holder: the create decides
            return ordered(tuple(str(a) for a in alloc.allocate_all(owner, entry, families=claim.families)))
        pool = self.bucket(state, claim)
        return tuple(str(a) for a in alloc.allocate_all(owner, families=claim.families, pool=pool))

    def bucket(self, state: SubnetState, claim: Claim) -> str:
        """Where a claim without fixed addresses or pool entries draws from, as Kube-OVN decides:
        the IPPool it names, else the first IPPool bound to its namespace that has an address left
        for every family asked for (the last one's exhaustion is the refusal), else the subnet."""
        if claim.ippool:
            if not state.allocator.has_pool(claim.ippool):
                raise errors.PoolExhausted(self._pool_exhausted(claim))
            return claim.ippool
        bound = state.allocator.pools_for_namespace(claim.namespace) if claim.namespace else ()
        families = state.allocator.families(claim.families)
        for name in bound:
            if all(state.allocator.available(family, name) for family in families):
                return name
        return bound[-1] if bound else SUBNET_POOL

    def pool_candidate(
        self, state: SubnetState, pod: PodIdentity, claim: Claim, alloc: Subnet
    ) -> tuple[str, ...]:
        """The literal `ip_pool` entry to try next (the allocator's choice and rule); raises
        `PoolExhausted` when none is free."""
        owner = pod.owner(claim.provider, claim.interface)
        store = self.store

        def is_free(entry: tuple[str, ...]) -> bool:
            for address in entry:
                holder = store.holder(claim.subnet, address)
                if holder is not None:
                    if not store.may_take_over(pod, holder, live=True):
                        return False
                elif alloc.holder(address) not in (None, owner):
                    return False
            return True

        return pools.choose_entry(
            claim.pool, ordinal=claim.ordinal, is_free=is_free, why_unusable=state.spec.why_unusable
        )

    def _mac(self, state: SubnetState, pod: PodIdentity, claim: Claim) -> str:
        owner = pod.owner(claim.provider, claim.interface)
        if claim.mac:
            self.checks.check_mac(state, owner, claim.mac, pod)  # free, this owner's, or passing to it
            try:
                return state.allocator.claim_mac(owner, claim.mac)
            except errors.AddressConflict:  # the earlier pod's of this name: passes with its address
                state.allocator.release_mac(claim.mac)
                return state.allocator.claim_mac(owner, claim.mac)
        return state.allocator.allocate_mac(owner)

    # ---- locking in the API server ------------------------------------------------------------------

    def _lock(
        self, state: SubnetState, pod: PodIdentity, claim: Claim, addresses: tuple[str, ...], mac: str
    ) -> Held | None:
        """Create one IP object per address; all or none. None when a race was lost."""
        store = self.store
        owner = pod.owner(claim.provider, claim.interface)
        names: list[str] = []
        created: list[str] = []
        for index, address in enumerate(addresses):
            name = objects.ip_object_name(claim.subnet, address)
            body = self._body(pod, claim, address, mac)
            try:
                obj = store.api.create_ip(body)
                created.append(name)
            except AlreadyExists:
                metrics.LOCK_CONFLICTS.labels(claim.subnet).inc()
                # Only a wished-for address (fixed or pool) can be worth taking over; a sequential
                # candidate lost to a race is simply skipped, without a read.
                obj = self._take_over(pod, name, body) if claim.wished else None
                if obj is None:
                    state.mark_unknown(address, owner)
                    self._undo(state, owner, created, addresses[index + 1 :])
                    return None
            except ApiError as error:
                self._undo(state, owner, created, addresses[index:])
                raise TryAgain(
                    f"the API server refused to record {address} ({error}); retry the pod"
                ) from None
            names.append(name)
            store.cache.put(objects.IPS, obj)
        return Held(
            claim.subnet, claim.provider, claim.interface, addresses, mac, tuple(names), tuple(created)
        )

    def _undo(self, state: SubnetState, owner: str, created: list[str], pending: tuple[str, ...]) -> None:
        """Give back what one failed attempt holds: its created objects and its local marks."""
        for name in created:
            self.store.delete(name)
        with state.lock:
            for address in pending:
                if state.allocator.holder(address) == owner:
                    state.allocator.release(address)
        state.release_mac_of(owner)

    def _body(self, pod: PodIdentity, claim: Claim, address: str, mac: str) -> Object:
        return ip_body(
            subnet=claim.subnet, provider=claim.provider, interface=claim.interface, address=address,
            mac=mac, namespace=pod.namespace, pod_name=pod.name, generate_name=pod.generate_name,
            owner_kind=pod.owner_kind, owner_uid=pod.owner_uid, token=pod.token, annotations=self._stamp(),
        )

    def _stamp(self) -> dict[str, str]:
        return reservation_stamp(self.store.clock(), self.store.grace)

    def _take_over(self, pod: PodIdentity, name: str, body: Object) -> Object | None:
        """Relabel an IP object left by an earlier pod of the same name (gone), guarded by resourceVersion."""
        existing = self.store.live(objects.IPS, name)
        if existing is None or not self.store.may_take_over(pod, existing, live=True):
            return None
        patch = {
            "metadata": {
                "resourceVersion": existing["metadata"].get("resourceVersion"),
                "labels": body["metadata"]["labels"],
                "annotations": body["metadata"]["annotations"],
            },
            "spec": body["spec"],
        }
        try:
            return self.store.api.patch_ip(name, patch)
        except (Conflict, NotFound):
            return None

    # ---- StatefulSet reuse ---------------------------------------------------------------------------

    def reusable(self, pod: PodIdentity, claim: Claim) -> bool:
        """A StatefulSet pod whose earlier incarnation's addresses (same subnet, same wish) remain."""
        if pod.owner_kind != "StatefulSet" or not pod.name:
            return False
        previous = self.store.identity_objects(pod.namespace, pod.name, claim.provider, claim.interface)
        if not previous or any((p.get("spec") or {}).get("subnet") != claim.subnet for p in previous):
            return False
        held = {address_of(p) for p in previous}
        return not claim.fixed or held == set(claim.fixed)

    def _reuse(self, pod: PodIdentity, claim: Claim, previous: list[Object]) -> Held | None:
        """A recreated StatefulSet pod gets the addresses of its earlier incarnation back."""
        names = []
        for ip in previous:
            meta = ip["metadata"]
            patch = {
                "metadata": {
                    "resourceVersion": meta.get("resourceVersion"),
                    "labels": {objects.LABEL_RESERVATION: pod.token},
                    "annotations": self._stamp(),
                },
                "spec": {"podUID": "", "ownerUID": pod.owner_uid},
            }
            try:
                updated = self.store.api.patch_ip(meta["name"], patch)
            except (Conflict, NotFound):
                return None
            self.store.cache.put(objects.IPS, updated)
            names.append(meta["name"])
        return _held(claim, previous, names=tuple(names), created=())

    def _pool_exhausted(self, claim: Claim) -> str:
        """Why a named IPPool is not a pool of the claim's subnet."""
        pool = self.store.ippool(claim.ippool)
        if pool is None:  # not "no free address": there is no pool at all
            return (f"IPPool {claim.ippool}, named by ip_pool, does not exist; create it or list addresses "
                    "like 172.17.0.200,172.17.0.201")
        owner = (pool.get("spec") or {}).get("subnet") or "(none)"
        return (f"IPPool {claim.ippool}, named by ip_pool, belongs to Subnet {owner}, but this attachment "
                f"draws from Subnet {claim.subnet}; name a pool of that Subnet")


def _held(claim: Claim, ips: list[Object], *, names: tuple[str, ...], created: tuple[str, ...]) -> Held:
    addresses = ordered(tuple(address_of(ip) for ip in ips))
    mac = next(((ip.get("spec") or {}).get("macAddress", "") for ip in ips), "")
    return Held(claim.subnet, claim.provider, claim.interface, addresses, mac, names, created)
