"""What an admission asks of the store and what it gets back: the pod, one claim per attachment,
the addresses held, and the one error that means "retry"."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from allocator import errors
from webhook.cluster.cache import Object
from webhook.cluster.ipobjects import holder_text, owner_string


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
        """The allocator's owner string of this pod's `interface` (`ipobjects.owner_string`)."""
        return owner_string(self.namespace, self.name or self.generate_name, provider, interface, self.token)


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


def held_by(address: str, holder: Object, subnet: str) -> errors.AddressConflict:
    """The refusal of an address that IP object `holder` holds for another pod."""
    shown = holder_text(holder)
    return errors.AddressConflict(
        f"{address} is held by {shown}; choose a free address of subnet {subnet} or delete that pod",
        holder=shown,
    )
