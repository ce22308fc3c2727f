"""How full a subnet is: exact per-family counts of addresses left to hand out and addresses held."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from allocator.family import Family


@dataclass(frozen=True)
class Usage:
    """Exact per-family counts: addresses left to hand out, and addresses held."""

    v4_available: int
    v4_using: int
    v6_available: int
    v6_using: int


def usage_of(families: Mapping[int, Family]) -> Usage:
    """Count a subnet's families; available excludes gateway, excluded, network and last addresses."""
    v4, v6 = families.get(4), families.get(6)
    return Usage(
        v4_available=0 if v4 is None else v4.available,
        v4_using=0 if v4 is None else len(v4.held),
        v6_available=0 if v6 is None else v6.available,
        v6_using=0 if v6 is None else len(v6.held),
    )


def held_count(families: Mapping[int, Family]) -> int:
    """How many addresses are held, all families together."""
    return sum(len(state.held) for state in families.values())
