"""The Kubernetes-backed store: IP objects are the locks, the allocator picks the candidates.

Every process keeps one `allocator.Subnet` per Subnet, rebuilt from the cache and kept in step
with the cached IP objects. It only proposes addresses: an address is held when `create` of its
deterministically named IP object succeeds. A lost race (`AlreadyExists`) marks the address taken
and the next candidate is tried, so several processes and replicas never hand out one address twice,
and a restart rebuilds everything from the API server.
"""

from __future__ import annotations

import contextlib
import copy
import ipaddress
import random
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from allocator import errors, pools
from allocator.addresses import format_ip, parse_ip
from allocator.family import SUBNET_BUCKET as SUBNET_POOL
from allocator.family import PoolDef
from allocator.mac import normalise_mac
from allocator.subnet import Subnet
from allocator.subnet_spec import SubnetSpec
from webhook import metrics
from webhook.cluster import objects
from webhook.cluster.cache import Names, Object, ObjectCache
from webhook.cluster.kubeapi import (
    AlreadyExists,
    Api,
    ApiError,
    Conflict,
    KubernetesApi,
    NotFound,
    Unreachable,
)
from webhook.cluster.view import ClusterView
from webhook.settings import DEFAULT_GRACE

# When the reservation was made or last taken over (epoch seconds): the Lifecycle's grace period
# for pods that never come to exist counts from here (a taken-over object keeps its old creationTimestamp).
RESERVED_AT_ANNOTATION = "multinic-ipam.io/reserved-at"
# How long that reservation may wait for its pod, as the admitting process was configured: the
# leader honours it, so each replica's configured grace period travels with its reservations.
GRACE_ANNOTATION = "multinic-ipam.io/grace-seconds"
UNKNOWN_OWNER = "?"  # a lost race: held by someone this process has not heard of yet
MAX_TRIES = 64
SPREAD_SCAN = 4096  # addresses looked at above a lost one before falling back to the lowest free


class TryAgain(errors.AllocatorError):
    """Too many lost races in a row, or the API server failed: the client should retry."""


def new_token() -> str:
    """A random reservation token: pod annotation and IP object label alike."""
    return secrets.token_hex(8)


@dataclass(frozen=True)
class PodIdentity:
    """Who asks: the pod being admitted, as far as it is known at admission."""

    namespace: str
    name: str  # "" for a generateName pod
    generate_name: str = ""
    owner_kind: str = ""  # controller kind: StatefulSet, ReplicaSet, …
    owner_uid: str = ""  # the StatefulSet's UID for StatefulSet pods
    token: str = field(default_factory=new_token)

    @property
    def shown(self) -> str:
        return f"{self.namespace}/{self.name or self.generate_name + '*'}"

    def owner(self, provider: str, interface: str) -> str:
        """The allocator's owner string: `<ns>/<pod or generateName>/<provider>/<ifname>#<token>`."""
        return f"{self.namespace}/{self.name or self.generate_name}/{provider}/{interface}#{self.token}"


@dataclass(frozen=True)
class Claim:
    """What one attachment asks of one subnet."""

    subnet: str
    provider: str
    interface: str
    fixed: tuple[str, ...] = ()  # exact addresses (one per family)
    pool: tuple[tuple[str, ...], ...] = ()  # `ip_pool` entries, each one address per family
    ippool: str = ""  # or an IPPool by name
    ordinal: int | None = None  # StatefulSet ordinal, for pool entry choice
    mac: str | None = None
    families: tuple[int, ...] | None = None  # `ip_family`: the IP versions asked for (None: the subnet's)
    namespace: str = ""  # the pod's namespace: IPPools bound to it by `spec.namespaces` apply

    @property
    def wished(self) -> bool:
        """Fixed addresses or literal pool entries: worth taking over from a gone pod of this name."""
        return bool(self.fixed or self.pool)


@dataclass(frozen=True)
class Held:
    """What a claim got: addresses (one per family, v4 first), MAC and the IP objects locking them."""

    subnet: str
    provider: str
    interface: str
    addresses: tuple[str, ...]
    mac: str
    names: tuple[str, ...] = ()  # IP objects this request created or took over
    created: tuple[str, ...] = ()  # of those, the ones it created (deleted again on rollback)


def owner_of(ip: Object) -> str:
    """The allocator owner string an IP object stands for (matches `PodIdentity.owner`)."""
    spec = ip.get("spec") or {}
    token = ((ip.get("metadata") or {}).get("labels") or {}).get(objects.LABEL_RESERVATION, "")
    pod = spec.get("podName") or spec.get("generateName") or ""
    return f"{spec.get('namespace', '')}/{pod}/{spec.get('provider', '')}/{spec.get('interface', '')}#{token}"


def _name(obj: Object) -> str:
    return (obj.get("metadata") or {}).get("name", "")


def address_of(ip: Object) -> str:
    spec = ip.get("spec") or {}
    return spec.get("v4IPAddress") or spec.get("v6IPAddress") or spec.get("ipAddress") or ""


def token_of(obj: Object) -> str:
    meta = obj.get("metadata") or {}
    return (meta.get("labels") or {}).get(objects.LABEL_RESERVATION, "") or (
        meta.get("annotations") or {}
    ).get(objects.RESERVATION_ANNOTATION, "")


def holder_text(ip: Object) -> str:
    """`pod ns/name` (or `ns/generateName*`) for a refusal message."""
    spec = ip.get("spec") or {}
    pod = spec.get("podName") or (spec.get("generateName", "") + "*")
    return f"pod {spec.get('namespace', '')}/{pod}"


@dataclass(frozen=True)
class _Applied:
    """What the allocators hold for one IP object: compared to its cached version on every event."""

    name: str
    subnet: str
    address: str
    owner: str
    mac: str  # normalised, "" for none or unreadable

    @classmethod
    def of(cls, ip: Object | None) -> _Applied | None:
        if ip is None:
            return None
        mac = (ip.get("spec") or {}).get("macAddress") or ""
        try:
            mac = normalise_mac(mac) if mac else ""
        except errors.AllocatorError:
            mac = ""
        subnet = (ip.get("spec") or {}).get("subnet", "")
        return cls(_name(ip), subnet, address_of(ip), owner_of(ip), mac)


class _SubnetState:
    """One subnet's allocator, its lock and the raw spec it was built from."""

    def __init__(self, name: str, spec: Object) -> None:
        self.raw = dict(spec)
        self.spec = SubnetSpec.parse(name, spec)
        self.allocator = Subnet(self.spec)
        self.lock = threading.RLock()
        self.mac_refs = Names()  # normalised MAC → the IP objects holding it


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
        self._states: dict[str, _SubnetState] = {}
        self._broken: dict[str, str] = {}  # subnet → why its spec cannot be used
        self._guard = threading.RLock()
        self._by_identity = Names()  # (namespace, pod, provider, interface) → IP object names
        self._pods_by_token: dict[str, tuple[str, str]] = {}
        self._indexed: dict[str, tuple[str, str, str, str]] = {}  # IP object name → its identity
        self._applied: dict[str, _Applied] = {}  # IP object name → what the allocators hold for it
        self._pool_subnets: dict[str, str] = {}  # IPPool name → its subnet, to re-split on change
        self._holding = Names()  # (subnet, address) → IP object names
        # Handlers run after the cache lock is released, so events of one object may arrive out
        # of order; each handler re-reads the cache under this lock, so the last one wins.
        self._sync = threading.RLock()
        cache.subscribe(objects.SUBNETS, self._on_subnet)
        cache.subscribe(objects.IPPOOLS, self._on_ippool)
        cache.subscribe(objects.IPS, self._on_ip)
        cache.subscribe(objects.PODS, self._on_pod)

    # ---- indexes fed by the cache ------------------------------------------------------------

    def _on_subnet(self, event: str, subnet: Object) -> None:
        name = (subnet.get("metadata") or {}).get("name", "")
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
                    state = _SubnetState(name, spec)
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
                for ip in self.ip_objects(name):
                    applied = _Applied.of(ip)
                    if applied is not None:  # its own event records it in _applied, now or soon
                        self._hold(state, applied)
            finally:
                state.lock.release()

    def _on_ippool(self, event: str, pool: Object) -> None:
        name = _name(pool)
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
        for pool in self.ippools(subnet):
            spec = pool.get("spec") or {}
            namespaces = spec.get("namespaces") if isinstance(spec.get("namespaces"), list) else []
            defs.append(PoolDef(
                name=_name(pool),
                ranges=pools.parse_pool_ips_leniently(spec.get("ips")),
                namespaces=tuple(n for n in namespaces if isinstance(n, str)),
            ))
        return defs

    def _on_ip(self, event: str, ip: Object) -> None:
        name = _name(ip)
        with self._sync:
            current = self.cache.get(objects.IPS, name)
            self._index(name, current)
            new, old = _Applied.of(current), self._applied.get(name)
            if new == old:
                return
            if old is not None:
                del self._applied[name]
                self._holding.discard((old.subnet, old.address), name)
                others = self._holding.get((old.subnet, old.address))
                state = self._states.get(old.subnet)
                if state is not None:
                    with state.lock:
                        self._unhold(state, old)
                        # a hand-made second object of the address keeps it held
                        for other in others:
                            self._hold(state, self._applied[other])
            if new is not None:
                self._applied[name] = new
                self._holding.add((new.subnet, new.address), name)
                state = self._states.get(new.subnet)
                if state is not None:
                    with state.lock:
                        self._hold(state, new)

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
            current = self.cache.get(objects.PODS, name, namespace)
            if current is not None and token_of(current) == token:
                self._pods_by_token[token] = (namespace, name)
            elif self._pods_by_token.get(token) == (namespace, name):
                del self._pods_by_token[token]

    def _hold(self, state: _SubnetState, held: _Applied) -> None:
        """Record a cached IP object in the allocator (idempotent; its owner wins over a guess)."""
        alloc = state.allocator
        with contextlib.suppress(errors.AllocatorError):  # a hand-made object with a bad address
            if held.address and state.spec.contains(held.address):
                current = alloc.holder(held.address)
                if current not in (None, held.owner):
                    alloc.release(held.address)
                alloc.mark_held(held.owner, held.address)
        if held.mac:
            try:
                alloc.mark_mac_held(held.owner, held.mac)
            except errors.AddressConflict:  # a guess of this process loses to the object
                alloc.release_mac(held.mac)
                alloc.mark_mac_held(held.owner, held.mac)
            state.mac_refs.add(held.mac, held.name)

    def _unhold(self, state: _SubnetState, held: _Applied) -> None:
        alloc = state.allocator
        with contextlib.suppress(errors.AllocatorError):
            if held.address and alloc.holder(held.address) in (held.owner, UNKNOWN_OWNER):
                alloc.release(held.address)
        if not held.mac:
            return
        if held.mac in state.mac_refs:
            state.mac_refs.discard(held.mac, held.name)
            if held.mac not in state.mac_refs:
                alloc.release_mac(held.mac)

    # ---- lookups --------------------------------------------------------------------------------

    def state(self, subnet: str) -> _SubnetState:
        """The allocator state of `subnet`; a cache miss is answered by a live read (just created)."""
        with self._guard:
            state = self._states.get(subnet)
            broken = self._broken.get(subnet)
        if state is None and broken is None and self.subnet(subnet) is None:
            live = self._live(objects.SUBNETS, subnet)
            if live is not None and self.subnet(subnet) is None:
                self.cache.put(objects.SUBNETS, live)
            with self._guard:
                state = self._states.get(subnet)
                broken = self._broken.get(subnet)
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
        """The NAD from the cache, or live when the cache has not seen it yet."""
        nad = self.nad(namespace, name)
        if nad is None:
            nad = self._live(objects.NADS, name, namespace)
            if nad is not None and self.nad(namespace, name) is None:
                self.cache.put(objects.NADS, nad)
        return nad

    def fetch_subnet(self, name: str) -> Object | None:
        """The Subnet from the cache, or live when the cache has not seen it yet (just created)."""
        subnet = self.subnet(name)
        if subnet is None:
            subnet = self._live(objects.SUBNETS, name)
            if subnet is not None and self.subnet(name) is None:
                self.cache.put(objects.SUBNETS, subnet)
        return subnet

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
        with self._guard:
            names = self._by_identity.get((namespace, pod, provider, interface))
        return [ip for ip in (self.ip_object(n) for n in names) if ip is not None]

    def pod_for_token(self, token: str) -> Object | None:
        with self._guard:
            where = self._pods_by_token.get(token)
        return self.pod(*where) if where else None

    def _live(self, kind: str, name: str, namespace: str = "") -> Object | None:
        """A live read; None when absent. Unanswered, it must not pass for "absent" (a take-over
        would hand out the address of a pod that may live): the request is refused, to be retried."""
        try:
            return self.api.read(kind, name, namespace)
        except Unreachable as error:
            raise TryAgain(f"could not read {kind} {name} ({error}); retry the pod") from None
        except ApiError:
            return None

    # ---- checks before anything is locked -----------------------------------------------------

    def check(self, pod: PodIdentity, claim: Claim) -> None:
        """Raise the refusal `reserve` would end with, without holding anything."""
        state = self.state(claim.subnet)
        if self._reusable(pod, claim):
            return
        owner = pod.owner(claim.provider, claim.interface)
        held_by_others = self._check_fixed_holders(state, pod, claim) if claim.fixed else set()
        with state.lock:
            alloc = state.allocator
            families = alloc.families(claim.families)  # an ip_family the subnet cannot give is refused
            if claim.fixed:
                self._check_fixed(state, claim, owner, skip=held_by_others)
                allocated = set(families) - {ipaddress.ip_address(a).version for a in claim.fixed}
                pool = SUBNET_POOL
            elif claim.pool:
                self._pool_candidate(state, pod, claim, alloc)
                allocated, pool = set(), SUBNET_POOL
            else:
                allocated, pool = set(families), self._bucket(state, claim)
            for family in allocated:
                if alloc.available(family, pool) == 0 and alloc.held_by(owner, family) is None:
                    alloc.allocate(owner, family, pool)  # raises the exhaustion sentence
            if claim.mac:  # after the addresses: a held address is the more useful sentence
                self._check_mac(state, owner, claim.mac, pod)

    def _check_fixed_holders(self, state: _SubnetState, pod: PodIdentity, claim: Claim) -> set[str]:
        """Refuse fixed addresses held by other pods (outside the subnet lock: this may read live);
        return those held for this very pod name by a gone pod, which pass to it."""
        bad = next((a for a in claim.fixed if not _is_address(a)), None)
        if bad is not None:  # unchecked user text; ipaddress's ValueError here was a 500
            raise errors.InvalidAddress(
                f"fixed address {bad!r} for subnet {claim.subnet} is not an IP address; write one like "
                '172.17.0.100 (or "IPv4,IPv6" for dual stack)'
            )
        families = [ipaddress.ip_address(a).version for a in claim.fixed]
        if len(set(families)) != len(families):
            raise errors.InvalidAddress(
                f"{','.join(claim.fixed)} names two IPv{families[0]} addresses; give at most one per family"
            )
        passing = set()
        for address in claim.fixed:
            holder = self.holder(claim.subnet, address)
            if holder is not None:
                if not self._may_take_over(pod, holder, live=True):
                    raise _held_by(address, holder, claim.subnet)
                passing.add(address)
        return passing

    def _check_fixed(self, state: _SubnetState, claim: Claim, owner: str, *, skip: set[str]) -> None:
        """The allocator's checks of fixed addresses (range, gateway, a race just lost)."""
        for address in claim.fixed:
            if address not in skip:
                try:
                    state.allocator.check_claim(owner, address)
                except errors.AddressConflict as error:
                    holder = state.allocator.holder(address)
                    if holder is None:  # the gateway
                        raise
                    if holder == UNKNOWN_OWNER:
                        raise TryAgain(
                            f"{address} was just taken in subnet {claim.subnet}; retry to learn by whom"
                        ) from None
                    raise errors.AddressConflict(  # being reserved by another request right now
                        f"{address} is held by {_owner_pod(holder)}; choose a free address of subnet "
                        f"{claim.subnet} or delete that pod",
                        holder=_owner_pod(holder),
                    ) from error

    def _check_mac(self, state: _SubnetState, owner: str, mac: str, pod: PodIdentity) -> str:
        try:
            return state.allocator.check_mac(owner, mac)
        except errors.AddressConflict as error:
            if self._mac_passes_to(state, pod, mac):
                return _normal_mac(mac)
            raise errors.AddressConflict(
                f"MAC {_normal_mac(mac)} is held by {_owner_pod(error.holder or '')} in subnet "
                f"{state.spec.name}; choose another MAC or omit it to get a random one",
                holder=error.holder,
            ) from None

    # ---- reserving ---------------------------------------------------------------------------

    @metrics.timed_allocation
    def reserve(self, pod: PodIdentity, claim: Claim, *, dry_run: bool = False) -> Held:
        """Hold what `claim` asks for, confirmed by IP object creates; nothing durable when dry_run."""
        state = self.state(claim.subnet)
        if self._reusable(pod, claim):
            previous = self.identity_objects(pod.namespace, pod.name, claim.provider, claim.interface)
            if dry_run:
                return self._held(claim, previous, names=(), created=())
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
                addresses = None
                if lost and not (claim.fixed or claim.pool):
                    addresses = self._spread(state, owner, lost, attempt, self._bucket(state, claim))
                if addresses is None:
                    addresses = self._candidate(state, pod, claim, state.allocator)
                mac = self._mac(state, pod, claim)
            held = self._lock(state, pod, claim, addresses, mac)
            if held is not None:
                return held
            lost = addresses
            if claim.fixed:
                names = [objects.ip_object_name(claim.subnet, a) for a in claim.fixed]
                found = (self.ip_object(n) or self._live(objects.IPS, n) for n in names)
                holder = next(filter(None, found), None)
                if holder is None:
                    raise TryAgain(f"{','.join(claim.fixed)} was just taken; retry to learn by whom")
                raise _held_by(','.join(claim.fixed), holder, claim.subnet)
        self._release_mac(state, owner)
        raise TryAgain(
            f"lost {MAX_TRIES} races for an address of subnet {claim.subnet} in a row; "
            "the pod creation can simply be retried"
        )

    def _plan(self, state: _SubnetState, pod: PodIdentity, claim: Claim) -> Held:
        """What a real reserve would pick, worked out on a scratch copy of the allocator."""
        owner = pod.owner(claim.provider, claim.interface)
        with state.lock:
            scratch = copy.deepcopy(state.allocator)
        addresses = self._candidate(state, pod, claim, scratch)
        mac = _normal_mac(claim.mac) if claim.mac else scratch.allocate_mac(owner)
        return Held(claim.subnet, claim.provider, claim.interface, addresses, mac)

    def _candidate(
        self, state: _SubnetState, pod: PodIdentity, claim: Claim, alloc: Subnet
    ) -> tuple[str, ...]:
        """The next address tuple (one per family asked for) to try, held in `alloc` for the owner."""
        owner = pod.owner(claim.provider, claim.interface)
        if claim.fixed or claim.pool:
            entry = claim.fixed or self._pool_candidate(state, pod, claim, alloc)
            for address in entry:
                if alloc.holder(address) not in (None, owner):
                    alloc.release(address)  # a stale, unknown or gone holder: the create decides
            return _ordered(tuple(str(a) for a in alloc.allocate_all(owner, entry, families=claim.families)))
        pool = self._bucket(state, claim)
        return tuple(str(a) for a in alloc.allocate_all(owner, families=claim.families, pool=pool))

    def _bucket(self, state: _SubnetState, claim: Claim) -> str:
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

    def _spread(
        self, state: _SubnetState, owner: str, lost: tuple[str, ...], attempt: int, pool: str
    ) -> tuple[str, ...] | None:
        """After a lost race, a free address a random short way above the lost one (per family).

        Every process starts from the lowest free address, so in a burst they all race for the
        same few; jumping a random distance after a loss spreads them out. `claim` takes exactly
        the chosen address, so the sequential order of the rest is untouched. None when no free
        address is found close above: the caller falls back to the lowest free one. Which
        addresses are free is the allocator's answer (`Subnet.is_free`), never decided here.
        """
        alloc = state.allocator
        picked: list[str] = []
        for address in lost:
            version, value = parse_ip(address)
            skip = random.randrange(4 * attempt)
            found = None
            for current in range(value + 1, value + 1 + SPREAD_SCAN):
                if not alloc.is_free(version, current, pool):
                    continue
                if skip == 0:
                    found = format_ip(version, current)
                    break
                skip -= 1
            if found is None:
                return self._unpick(alloc, picked)
            alloc.claim(owner, found)
            picked.append(found)
        return _ordered(tuple(picked))

    @staticmethod
    def _unpick(alloc: Subnet, picked: list[str]) -> None:
        for address in picked:
            alloc.release(address)

    def _pool_candidate(
        self, state: _SubnetState, pod: PodIdentity, claim: Claim, alloc: Subnet
    ) -> tuple[str, ...]:
        """The literal `ip_pool` entry to try next (the allocator's choice and rule); raises
        `PoolExhausted` when none is free."""
        owner = pod.owner(claim.provider, claim.interface)

        def is_free(entry: tuple[str, ...]) -> bool:
            for address in entry:
                holder = self.holder(claim.subnet, address)
                if holder is not None:
                    if not self._may_take_over(pod, holder, live=True):
                        return False
                elif alloc.holder(address) not in (None, owner):
                    return False
            return True

        return pools.choose_entry(
            claim.pool, ordinal=claim.ordinal, is_free=is_free, why_unusable=state.spec.why_unusable
        )

    def _mac(self, state: _SubnetState, pod: PodIdentity, claim: Claim) -> str:
        owner = pod.owner(claim.provider, claim.interface)
        if claim.mac:
            self._check_mac(state, owner, claim.mac, pod)  # free, this owner's, or passing to it
            try:
                return state.allocator.claim_mac(owner, claim.mac)
            except errors.AddressConflict:  # the earlier pod's of this name: passes with its address
                state.allocator.release_mac(claim.mac)
                return state.allocator.claim_mac(owner, claim.mac)
        return state.allocator.allocate_mac(owner)

    def _mac_passes_to(self, state: _SubnetState, pod: PodIdentity, mac: str) -> bool:
        """A MAC held only by IP objects of an earlier pod of this name passes to the new pod."""
        names = state.mac_refs.get(_normal_mac(mac))
        holders = [self.ip_object(name) for name in names]
        return bool(holders) and all(h is not None and self._may_take_over(pod, h) for h in holders)

    def _release_mac(self, state: _SubnetState, owner: str) -> None:
        with state.lock:
            mac = state.allocator.mac_of(owner)
            if mac is not None and mac not in state.mac_refs:
                state.allocator.release_mac(mac)

    def _lock(
        self, state: _SubnetState, pod: PodIdentity, claim: Claim, addresses: tuple[str, ...], mac: str
    ) -> Held | None:
        """Create one IP object per address; all or none. None when a race was lost."""
        owner = pod.owner(claim.provider, claim.interface)
        names: list[str] = []
        created: list[str] = []
        for index, address in enumerate(addresses):
            name = objects.ip_object_name(claim.subnet, address)
            body = self._body(pod, claim, address, mac)
            try:
                obj = self.api.create_ip(body)
                created.append(name)
            except AlreadyExists:
                metrics.LOCK_CONFLICTS.labels(claim.subnet).inc()
                # Only a wished-for address (fixed or pool) can be worth taking over; a sequential
                # candidate lost to a race is simply skipped, without a read.
                obj = self._take_over(pod, name, body) if claim.wished else None
                if obj is None:
                    self._mark_unknown(state, address, owner)
                    self._undo(state, owner, names, created, addresses[index + 1 :])
                    return None
            except ApiError as error:
                self._undo(state, owner, names, created, addresses[index:])
                raise TryAgain(
                    f"the API server refused to record {address} ({error}); retry the pod"
                ) from None
            names.append(name)
            self.cache.put(objects.IPS, obj)
        return Held(
            claim.subnet, claim.provider, claim.interface, addresses, mac, tuple(names), tuple(created)
        )

    def _undo(
        self, state: _SubnetState, owner: str, names: list[str], created: list[str], pending: tuple[str, ...]
    ) -> None:
        """Give back what one failed attempt holds: its created objects and its local marks."""
        for name in created:
            self.delete(name)
        with state.lock:
            for address in pending:
                if state.allocator.holder(address) == owner:
                    state.allocator.release(address)
        self._release_mac(state, owner)

    def _body(self, pod: PodIdentity, claim: Claim, address: str, mac: str) -> Object:
        version = ipaddress.ip_address(address).version
        return {
            "apiVersion": objects.API_VERSION,
            "kind": "IP",
            "metadata": {
                "name": objects.ip_object_name(claim.subnet, address),
                "labels": {
                    objects.LABEL_SUBNET: claim.subnet,
                    objects.LABEL_POD_NAMESPACE: pod.namespace,
                    objects.LABEL_RESERVATION: pod.token,
                },
                "annotations": self._stamp(),
            },
            "spec": {
                "subnet": claim.subnet,
                "provider": claim.provider,
                "ipAddress": address,
                f"v{version}IPAddress": address,
                "macAddress": mac,
                "namespace": pod.namespace,
                "podName": pod.name,
                "generateName": pod.generate_name,
                "podUID": "",
                "podType": pod.owner_kind,
                "ownerUID": pod.owner_uid,
                "interface": claim.interface,
            },
        }

    def _stamp(self) -> dict[str, str]:
        return {RESERVED_AT_ANNOTATION: f"{self.clock():.3f}", GRACE_ANNOTATION: f"{self.grace:g}"}

    def _take_over(self, pod: PodIdentity, name: str, body: Object) -> Object | None:
        """Relabel an IP object left by an earlier pod of the same name (gone), guarded by resourceVersion."""
        existing = self._live(objects.IPS, name)
        if existing is None or not self._may_take_over(pod, existing, live=True):
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
            return self.api.patch_ip(name, patch)
        except (Conflict, NotFound):
            return None

    def _may_take_over(self, pod: PodIdentity, holder: Object, *, live: bool = False) -> bool:
        """An address held for this very pod name whose earlier pod is gone may pass to the new one."""
        spec = holder.get("spec") or {}
        if not pod.name or (spec.get("namespace"), spec.get("podName")) != (pod.namespace, pod.name):
            return False
        if token_of(holder) == pod.token:
            return True
        if spec.get("podType") == "StatefulSet" and pod.owner_kind == "StatefulSet":
            return True
        if live:
            current = self._live(objects.PODS, pod.name, pod.namespace)
        else:
            current = self.pod(pod.namespace, pod.name)
        return current is None or token_of(current) != token_of(holder)

    def _reusable(self, pod: PodIdentity, claim: Claim) -> bool:
        """A StatefulSet pod whose earlier incarnation's addresses (same subnet, same wish) remain."""
        if pod.owner_kind != "StatefulSet" or not pod.name:
            return False
        previous = self.identity_objects(pod.namespace, pod.name, claim.provider, claim.interface)
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
                updated = self.api.patch_ip(meta["name"], patch)
            except (Conflict, NotFound):
                return None
            self.cache.put(objects.IPS, updated)
            names.append(meta["name"])
        return self._held(claim, previous, names=tuple(names), created=())

    def _held(
        self, claim: Claim, ips: list[Object], *, names: tuple[str, ...], created: tuple[str, ...]
    ) -> Held:
        addresses = _ordered(tuple(address_of(ip) for ip in ips))
        mac = next(((ip.get("spec") or {}).get("macAddress", "") for ip in ips), "")
        return Held(claim.subnet, claim.provider, claim.interface, addresses, mac, names, created)

    def _mark_unknown(self, state: _SubnetState, address: str, owner: str) -> None:
        """A lost race: someone else holds `address`; the watch will say who."""
        with state.lock, contextlib.suppress(errors.AllocatorError):
            if state.allocator.holder(address) == owner:
                state.allocator.release(address)
            if state.allocator.holder(address) is None:
                state.allocator.mark_held(UNKNOWN_OWNER, address)

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

    # ---- messages -----------------------------------------------------------------------------

    def _pool_exhausted(self, claim: Claim) -> str:
        """Why a named IPPool is not a pool of the claim's subnet."""
        pool = self.ippool(claim.ippool)
        if pool is None:  # not "no free address": there is no pool at all
            return (f"IPPool {claim.ippool}, named by ip_pool, does not exist; create it or list addresses "
                    "like 172.17.0.200,172.17.0.201")
        owner = (pool.get("spec") or {}).get("subnet") or "(none)"
        return (f"IPPool {claim.ippool}, named by ip_pool, belongs to Subnet {owner}, but this attachment "
                f"draws from Subnet {claim.subnet}; name a pool of that Subnet")


def _held_by(address: str, holder: Object, subnet: str) -> errors.AddressConflict:
    shown = holder_text(holder)
    return errors.AddressConflict(
        f"{address} is held by {shown}; choose a free address of subnet {subnet} or delete that pod",
        holder=shown,
    )


def _owner_pod(owner: str) -> str:
    """`pod ns/name` from an allocator owner string `<ns>/<pod>/<provider>/<ifname>#<token>`."""
    if owner == UNKNOWN_OWNER:
        return "another pod"
    namespace, _, rest = owner.partition("/")
    return f"pod {namespace}/{rest.partition('/')[0]}"


def _ordered(addresses: tuple[str, ...]) -> tuple[str, ...]:
    """IPv4 first, then IPv6, as Kube-OVN writes dual-stack values."""
    return tuple(sorted(addresses, key=lambda a: ipaddress.ip_address(a).version))


def _normal_mac(mac: str) -> str:
    return normalise_mac(mac)


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
