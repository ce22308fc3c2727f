"""The ``ip_pool`` annotation: a list of addresses for a workload's pods, or the name of an IPPool.

Forms, as in Kube-OVN: ``172.17.0.200,172.17.0.201`` (one address per entry), or with ``;``
``10.16.0.15,fd00::f;10.16.0.16,fd00::10`` where an entry may be a dual-stack pair. A single
token that is not an address names an ``ippools.kubeovn.io`` object. Entries are single addresses
only: ranges and CIDRs belong in an IPPool's ``spec.ips``, where their size is visible.

StatefulSet pods take the entry at their ordinal so a pod keeps its address across restarts;
other pods take the first free entry in order.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from allocator.addresses import family_name, format_ip, parse_ip
from allocator.errors import InvalidAddress, PoolExhausted, PoolSpecError

_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_ORDINAL = re.compile(r"-([0-9]+)")
_MAX_NAME = 253

Entry = tuple[str, ...]


@dataclass(frozen=True)
class PoolSpec:
    """A parsed ``ip_pool`` value: address entries in order, or the name of an IPPool."""

    entries: tuple[Entry, ...] = ()
    ippool_name: str | None = None


def parse_ip_pool(value: str) -> PoolSpec:
    """Parse an ``ip_pool`` annotation; bad tokens raise ``PoolSpecError`` naming the token."""
    if not isinstance(value, str) or not value.strip():
        raise PoolSpecError(
            f"ip_pool {value!r} is empty; list addresses like 172.17.0.200,172.17.0.201 or name an IPPool"
        )
    text = value.strip()
    pairs_allowed = ";" in text
    tokens = [token.strip() for token in text.split(";" if pairs_allowed else ",")]
    if len(tokens) == 1 and not pairs_allowed and not _looks_like_address(tokens[0]):
        return PoolSpec(ippool_name=_pool_name(tokens[0]))
    entries: list[Entry] = []
    seen: set[str] = set()
    for token in tokens:
        if not token:
            raise PoolSpecError(
                f"ip_pool {value!r} has an empty entry; remove the doubled or trailing separator"
            )
        entry = _parse_entry(token) if pairs_allowed else (_parse_address(token),)
        for address in entry:
            if address in seen:
                raise PoolSpecError(f"ip_pool {value!r} lists {address} twice; list each address once")
            seen.add(address)
        entries.append(entry)
    return PoolSpec(entries=tuple(entries))


def statefulset_ordinal(pod_name: str) -> int | None:
    """The ordinal of a StatefulSet pod (``web-2`` → 2), or None when the name has none."""
    head, dash, tail = pod_name.rpartition("-")
    if not dash or not head or not _ORDINAL.fullmatch(dash + tail):
        return None
    return int(tail)


def choose_entry(entries: Sequence[Entry], *, ordinal: int | None, is_free: Callable[[Entry], bool]) -> Entry:
    """The entry a pod gets: its ordinal's for a StatefulSet pod, else the first free one."""
    shown = format_entries(entries)
    if ordinal is not None:
        if ordinal >= len(entries):
            raise PoolExhausted(
                f"ip_pool {shown} has {len(entries)} entries, so StatefulSet pod ordinal {ordinal} has no "
                "address; add entries or scale down"
            )
        entry = entries[ordinal]
        if not is_free(entry):
            raise PoolExhausted(
                f"ip_pool entry {','.join(entry)} for StatefulSet pod ordinal {ordinal} is held by another "
                "owner; release it or change the pool"
            )
        return entry
    for entry in entries:
        if is_free(entry):
            return entry
    paired = any(len(entry) > 1 for entry in entries)
    if len(entries) == 1:
        noun = "entry" if paired else "address"
        raise PoolExhausted(f"the only {noun} of ip_pool {shown} is held; add entries or free it")
    noun = "entries" if paired else "addresses"
    raise PoolExhausted(f"all {len(entries)} {noun} of ip_pool {shown} are held; add entries or free some")


def format_entries(entries: Sequence[Entry]) -> str:
    """The annotation text of entries (``;`` form when any entry is a pair)."""
    if any(len(entry) > 1 for entry in entries):
        return ";".join(",".join(entry) for entry in entries)
    return ",".join(entry[0] for entry in entries if entry)


def _parse_entry(token: str) -> Entry:
    parts = [part.strip() for part in token.split(",")]
    if len(parts) > 2 or not all(parts):
        raise PoolSpecError(
            f"ip_pool entry {token!r} must be one address or an IPv4,IPv6 pair like 10.16.0.15,fd00::f"
        )
    parsed = [(parse_ip(address)[0], address) for address in map(_parse_address, parts)]
    if len(parsed) == 2 and parsed[0][0] == parsed[1][0]:
        raise PoolSpecError(
            f"ip_pool entry {token!r} pairs two {family_name(parsed[0][0])} addresses; "
            "a pair is one IPv4 and one IPv6 address like 10.16.0.15,fd00::f"
        )
    return tuple(address for _, address in sorted(parsed))


def _parse_address(token: str) -> str:
    try:
        return format_ip(*parse_ip(token))
    except InvalidAddress:
        hint = " (ranges and CIDRs go in an IPPool's spec.ips)" if ".." in token or "/" in token else ""
        raise PoolSpecError(
            f"ip_pool entry {token!r} is not an IP address{hint}; list addresses like "
            "172.17.0.200,172.17.0.201"
        ) from None


def _looks_like_address(token: str) -> bool:
    """Tokens that are meant as addresses (so a typo is reported, not taken as a pool name)."""
    return bool(re.fullmatch(r"[0-9.]+|.*[:/].*|.*\.\..*", token))


def _pool_name(token: str) -> str:
    if len(token) > _MAX_NAME or not _NAME.fullmatch(token):
        raise PoolSpecError(
            f"ip_pool {token!r} is neither an IP address nor an IPPool name; name an IPPool with lowercase "
            "letters, digits, '-' and '.', or list addresses like 172.17.0.200,172.17.0.201"
        )
    return token
