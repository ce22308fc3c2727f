"""The ``ip_pool`` annotation: a list of addresses for a workload's pods, or the name of an IPPool.

Forms, as in Kube-OVN's ``acquireAddress``: ``172.17.0.200,172.17.0.201`` (one address per
entry), except that exactly two addresses of different families (``10.16.0.15,fd00::f``) are one
dual-stack entry; with ``;`` ``10.16.0.15,fd00::f;10.16.0.16,fd00::10`` each entry may be a pair. A
single token that is not an address names an ``ippools.kubeovn.io`` object. Entries are single
addresses only: ranges and CIDRs belong in an IPPool's ``spec.ips`` (``parse_pool_ips``), where
their size is visible.

StatefulSet pods take the entry at their ordinal so a pod keeps its address across restarts;
other pods take the first free entry in order. An entry the subnet can never hand out (its
gateway, an excluded address, …) is skipped, so it never blocks a usable one.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from allocator.addresses import family_name, format_ip, parse_ip
from allocator.errors import InvalidAddress, OutOfRange, PoolExhausted, PoolSpecError

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
    pairs_allowed = ";" in text or _is_dual_pair(text)
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


def choose_entry(
    entries: Sequence[Entry],
    *,
    ordinal: int | None,
    is_free: Callable[[Entry], bool],
    why_unusable: Callable[[str], str],
) -> Entry:
    """The entry a pod gets: its ordinal's for a StatefulSet pod, else the first free usable one.

    ``why_unusable`` is the subnet's rule (``SubnetSpec.why_unusable``); entries with an address it
    refuses are skipped, and only when none is left is the pod refused, naming why."""
    shown = format_entries(entries)
    if ordinal is not None:
        if ordinal >= len(entries):
            raise PoolExhausted(
                f"ip_pool {shown} has {len(entries)} entries, so StatefulSet pod ordinal {ordinal} has no "
                "address; add entries or scale down"
            )
        entry = entries[ordinal]
        reason = _unusable(entry, why_unusable)
        if reason:
            raise OutOfRange(
                f"ip_pool entry {','.join(entry)} for StatefulSet pod ordinal {ordinal} is {reason}; "
                "change that entry to a usable address"
            )
        if not is_free(entry):
            raise PoolExhausted(
                f"ip_pool entry {','.join(entry)} for StatefulSet pod ordinal {ordinal} is held by another "
                "owner; release it or change the pool"
            )
        return entry
    usable = usable_entries(entries, why_unusable)
    for entry in usable:
        if is_free(entry):
            return entry
    paired = any(len(entry) > 1 for entry in usable)
    count = len(usable)
    qualifier = "usable " if count < len(entries) else ""
    if count == 1:
        noun = "entry" if paired else "address"
        raise PoolExhausted(f"the only {qualifier}{noun} of ip_pool {shown} is held; add entries or free it")
    noun = "entries" if paired else "addresses"
    raise PoolExhausted(
        f"all {count} {qualifier}{noun} of ip_pool {shown} are held; add entries or free some"
    )


def usable_entries(entries: Sequence[Entry], why_unusable: Callable[[str], str]) -> list[Entry]:
    """The entries whose every address the subnet may hand out; raises ``PoolSpecError`` naming
    the first reason when there is none."""
    usable = [entry for entry in entries if not _unusable(entry, why_unusable)]
    if not usable and entries:
        entry = entries[0]
        raise PoolSpecError(
            f"no entry of ip_pool {format_entries(entries)} can be handed out: "
            f"{first_unusable(entry, why_unusable)}; list usable addresses of the subnet"
        )
    return usable


def first_unusable(entry: Entry, why_unusable: Callable[[str], str]) -> str:
    """``10.0.0.1 is the gateway of subnet net`` for the first address of ``entry`` refused."""
    for address in entry:
        reason = why_unusable(address)
        if reason:
            return f"{address} is {reason}"
    return ""


def _unusable(entry: Entry, why_unusable: Callable[[str], str]) -> str:
    return next((reason for reason in map(why_unusable, entry) if reason), "")


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


def _is_dual_pair(text: str) -> bool:
    """Exactly two addresses of different families: one dual-stack entry, as in Kube-OVN."""
    parts = [part.strip() for part in text.split(",")]
    if len(parts) != 2:
        return False
    try:
        return parse_ip(parts[0])[0] != parse_ip(parts[1])[0]
    except InvalidAddress:
        return False


def parse_pool_ips(entries: object, *, pool: str = "") -> tuple[tuple[int, int, int], ...]:
    """An IPPool's ``spec.ips`` (``ip``, ``cidr`` or ``a..b`` items) as ``(version, low, high)``
    ranges in order; a bad item raises ``PoolSpecError`` with the reason, naming the item."""
    if entries is None:
        return ()
    if isinstance(entries, str) or not isinstance(entries, Sequence):
        raise PoolSpecError(f"spec.ips of IPPool {pool} is not a list; {_IPS_EXAMPLE} per item")
    return tuple(_pool_range(item, pool) for item in entries)


def parse_pool_ips_leniently(entries: object) -> tuple[tuple[int, int, int], ...]:
    """``parse_pool_ips`` for a stored IPPool: items that do not parse are left out."""
    if isinstance(entries, str) or not isinstance(entries, Sequence):
        return ()
    ranges = []
    for item in entries:
        try:
            ranges.append(_pool_range(item, ""))
        except PoolSpecError:
            continue
    return tuple(ranges)


_IPS_EXAMPLE = "write an IP (172.17.0.200), a CIDR (172.17.0.208/29) or a range (172.17.0.220..172.17.0.230)"


def _pool_range(item: object, pool: str) -> tuple[int, int, int]:
    text = item.strip() if isinstance(item, str) else ""
    shown = f'"{item}"' if isinstance(item, str) else repr(item)

    def bad(reason: str = "") -> PoolSpecError:
        because = f" ({reason})" if reason else ""
        return PoolSpecError(
            f"spec.ips entry {shown} of IPPool {pool} is not a usable IP, CIDR or a..b range{because}; "
            f"{_IPS_EXAMPLE}"
        )

    try:
        if ".." in text:
            first_text, _, last_text = text.partition("..")
            (version, low), (last_version, high) = parse_ip(first_text), parse_ip(last_text)
            if version != last_version:
                raise bad("it mixes IPv4 and IPv6")
            if low > high:
                raise bad(f"it starts after it ends, {first_text.strip()} > {last_text.strip()}")
            return version, low, high
        if "/" in text:
            address, _, prefix = text.partition("/")
            version, value = parse_ip(address)
            top = 32 if version == 4 else 128
            if not (prefix.isascii() and prefix.isdigit()) or int(prefix) > top:
                raise bad()
            size = 1 << (top - int(prefix))
            if value % size:
                network = format_ip(version, value - value % size)
                raise bad(f"it has host bits set; the network is {network}/{prefix}")
            return version, value, value + size - 1
        version, value = parse_ip(text)
        return version, value, value
    except InvalidAddress:
        raise bad() from None


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
