"""One Subnet's allocator as this process keeps it: built from the Subnet's spec, fed the cached IP
objects, guarded by one lock that every reader and writer takes (`with state.lock:`)."""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass

from allocator import errors
from allocator.mac import normalise_mac
from allocator.subnet import Subnet
from allocator.subnet_spec import SubnetSpec
from allocator.usage import Usage
from webhook.cluster.cache import Names, Object
from webhook.cluster.ipobjects import UNKNOWN_OWNER, address_of, name_of, owner_of


@dataclass(frozen=True, slots=True)  # one per held address
class Applied:
    """What the allocator holds for one IP object: compared to its cached version on every event."""

    name: str
    subnet: str
    address: str
    owner: str
    mac: str  # normalised, "" for none or unreadable

    @classmethod
    def of(cls, ip: Object | None) -> Applied | None:
        if ip is None:
            return None
        mac = (ip.get("spec") or {}).get("macAddress") or ""
        try:
            mac = normalise_mac(mac) if mac else ""
        except errors.AllocatorError:
            mac = ""
        subnet = (ip.get("spec") or {}).get("subnet", "")
        return cls(name_of(ip), subnet, address_of(ip), owner_of(ip), mac)


CONTENDED_SECONDS = 10.0  # after a lost race, how long first tries are scattered (`spread.scatter`)


class SubnetState:
    """One subnet's allocator, its lock and the raw spec it was built from.

    `hold`/`unhold` expect the caller to hold `lock`; the other methods take it themselves.
    """

    def __init__(self, name: str, spec: Object) -> None:
        self.raw = dict(spec)
        self.spec = SubnetSpec.parse(name, spec)
        self.allocator = Subnet(self.spec)
        self.lock = threading.RLock()
        self.mac_refs = Names()  # normalised MAC → the IP objects holding it
        self._contended_until = 0.0  # time.monotonic() until which others are taken to allocate too

    def contended(self) -> bool:
        """Has this process lost a race for an address of this subnet within `CONTENDED_SECONDS`?"""
        return time.monotonic() < self._contended_until

    def usage(self) -> Usage:
        """Addresses used and available per family, read under the lock."""
        with self.lock:
            return self.allocator.usage()

    def hold(self, held: Applied) -> None:
        """Record a cached IP object in the allocator (idempotent; its owner wins over a guess)."""
        alloc = self.allocator
        with contextlib.suppress(errors.AllocatorError):  # a hand-made object with a bad address
            if held.address and self.spec.contains(held.address):
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
            self.mac_refs.add(held.mac, held.name)

    def unhold(self, held: Applied) -> None:
        """Forget a cached IP object that changed or went (a guess of a lost race goes too)."""
        alloc = self.allocator
        with contextlib.suppress(errors.AllocatorError):
            if held.address and alloc.holder(held.address) in (held.owner, UNKNOWN_OWNER):
                alloc.release(held.address)
        if not held.mac:
            return
        if held.mac in self.mac_refs:
            self.mac_refs.discard(held.mac, held.name)
            if held.mac not in self.mac_refs:
                alloc.release_mac(held.mac)

    def mark_unknown(self, address: str, owner: str) -> None:
        """A lost race: someone else holds `address`; the watch will say who."""
        self._contended_until = time.monotonic() + CONTENDED_SECONDS
        with self.lock, contextlib.suppress(errors.AllocatorError):
            if self.allocator.holder(address) == owner:
                self.allocator.release(address)
            if self.allocator.holder(address) is None:
                self.allocator.mark_held(UNKNOWN_OWNER, address)

    def release_mac_of(self, owner: str) -> None:
        """Give back `owner`'s MAC unless an IP object holds it."""
        with self.lock:
            mac = self.allocator.mac_of(owner)
            if mac is not None and mac not in self.mac_refs:
                self.allocator.release_mac(mac)
