"""Refusals worked out before anything is locked: what `Store.reserve` would end with, without
holding anything (fixed addresses held by others, the allocator's range and gateway checks,
exhaustion, a MAC in use)."""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING

from allocator import errors
from allocator.family import SUBNET_BUCKET as SUBNET_POOL
from allocator.mac import normalise_mac
from webhook.cluster import objects
from webhook.cluster.claims import Claim, PodIdentity, TryAgain, held_by
from webhook.cluster.ipobjects import UNKNOWN_OWNER, owner_text
from webhook.cluster.subnetstate import SubnetState
from webhook.cluster.view import mac_key

if TYPE_CHECKING:
    from webhook.cluster.store import Store


class PreLockChecks:
    """The checks `Store.check` runs, over the store's cache, live reads and allocators."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def check(self, pod: PodIdentity, claim: Claim) -> None:
        """Raise the refusal `reserve` would end with, without holding anything."""
        store = self.store
        state = store.state(claim.subnet)
        reservations = store.reservations
        if reservations.reusable(pod, claim):
            return
        owner = pod.owner(claim.provider, claim.interface)
        held_by_others = self._check_fixed_holders(pod, claim) if claim.fixed else set()
        with state.lock:
            alloc = state.allocator
            families = alloc.families(claim.families)  # an ip_family the subnet cannot give is refused
            if claim.fixed:
                self._check_fixed(state, claim, owner, skip=held_by_others)
                allocated = set(families) - {ipaddress.ip_address(a).version for a in claim.fixed}
                pool = SUBNET_POOL
            elif claim.pool:
                reservations.pool_candidate(state, pod, claim, alloc)
                allocated, pool = set(), SUBNET_POOL
            else:
                allocated, pool = set(families), reservations.bucket(state, claim)
            for family in allocated:
                if alloc.available(family, pool) == 0 and alloc.held_by(owner, family) is None:
                    alloc.allocate(owner, family, pool)  # raises the exhaustion sentence
            if claim.mac:  # after the addresses: a held address is the more useful sentence
                self.check_mac(state, owner, claim.mac, pod)

    def _check_fixed_holders(self, pod: PodIdentity, claim: Claim) -> set[str]:
        """Refuse fixed addresses held by other pods (outside the subnet lock: this reads live);
        return those whose cached holder does not count: released since the cache saw it, or held
        for this very pod name by a gone pod (they pass to it). The create decides either way."""
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
            cached = self.store.holder(claim.subnet, address)
            if cached is None:
                continue
            holder = cached
            if not self.store.may_take_over(pod, holder, live=True):
                holder = self.store.current_ip(objects.ip_object_name(claim.subnet, address))
            if holder is not None and not self.store.may_take_over(pod, holder, live=True):
                raise held_by(address, holder, claim.subnet)
            passing.add(address)
        return passing

    @staticmethod
    def _check_fixed(state: SubnetState, claim: Claim, owner: str, *, skip: set[str]) -> None:
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
                        f"{address} is held by {owner_text(holder)}; choose a free address of subnet "
                        f"{claim.subnet} or delete that pod",
                        holder=owner_text(holder),
                    ) from error

    def check_mac(self, state: SubnetState, owner: str, mac: str, pod: PodIdentity) -> str:
        """Refuse a MAC held by another pod (one held by a gone pod of this name passes to it)."""
        try:
            return state.allocator.check_mac(owner, mac)
        except errors.AddressConflict as error:
            if self._mac_passes_to(state, pod, mac):
                return normalise_mac(mac)
            raise errors.AddressConflict(
                f"MAC {normalise_mac(mac)} is held by {owner_text(error.holder or '')} in subnet "
                f"{state.spec.name}; choose another MAC or omit it to get a random one",
                holder=error.holder,
            ) from None

    def _mac_passes_to(self, state: SubnetState, pod: PodIdentity, mac: str) -> bool:
        """A MAC held only by IP objects of an earlier pod of this name, or by IP objects released
        since the cache saw them, passes to the new pod."""
        key = (state.spec.name, normalise_mac(mac))
        names = state.mac_refs.get(key[1])
        return bool(names) and all(self._mac_passes_from(pod, name, key) for name in names)

    def _mac_passes_from(self, pod: PodIdentity, name: str, key: tuple[str, str]) -> bool:
        """The IP object `name` no longer holds the MAC `key`, or passes it to this pod."""
        cached = self.store.ip_object(name)
        if cached is not None and self.store.may_take_over(pod, cached):
            return True
        holder = self.store.current_ip(name)
        return holder is None or mac_key(holder) != key or self.store.may_take_over(pod, holder, live=True)


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
