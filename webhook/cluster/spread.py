"""Where to try when other processes allocate from the same subnet at the same time.

Every process starts from the lowest free address, so in a burst they all race for the same few:
after a lost race the next try jumps a random distance above the lost address (`spread`), and for
a while after a loss (`SubnetState.contended`) even a first try picks one of the few lowest free
addresses at random (`scatter`) instead of the lowest, so the replicas mostly stop colliding. A
process that loses no race (one replica, quiet times) hands out the lowest free address, as Kube-OVN.
"""

from __future__ import annotations

import random

from allocator.addresses import format_ip, parse_ip
from allocator.subnet import Subnet
from webhook.cluster.ipobjects import ordered

SPREAD_SCAN = 4096  # addresses looked at above a lost one before falling back to the lowest free
SCATTER_WIDTH = 64  # a contended first try: one of this many lowest never-used addresses, at random


def spread(
    alloc: Subnet, owner: str, lost: tuple[str, ...], attempt: int, pool: str
) -> tuple[str, ...] | None:
    """A free address a random short way above each lost one (per family), claimed for `owner`.

    `claim` takes exactly the chosen address, so the sequential order of the rest is untouched.
    None when no free address is found close above: the caller falls back to the lowest free one.
    Which addresses are free is the allocator's answer (`Subnet.is_free`), never decided here.
    The caller holds the subnet's lock.
    """
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
            return None
        picked.append(found)
    return _claim_all(alloc, owner, picked)


def scatter(alloc: Subnet, owner: str, families: tuple[int, ...], pool: str) -> tuple[str, ...] | None:
    """One of the `SCATTER_WIDTH` lowest never-used addresses of `pool` at random per family,
    claimed for `owner`; None (nothing claimed) when a family has none left or `owner` already
    holds one: the caller takes the allocator's own candidate then. The caller holds the lock."""
    choices = [(version, alloc.next_never_used(version, SCATTER_WIDTH, pool)) for version in families]
    if any(not values or alloc.held_by(owner, version) is not None for version, values in choices):
        return None
    return _claim_all(alloc, owner, [format_ip(v, random.choice(values)) for v, values in choices])


def _claim_all(alloc: Subnet, owner: str, picked: list[str]) -> tuple[str, ...]:
    """Claim every picked address for `owner` only once all are chosen: a family without a choice
    must not leave the others' addresses released (a released address queues behind the never-used
    ones, which would change the order in which the subnet hands them out)."""
    for address in picked:
        alloc.claim(owner, address)
    return ordered(tuple(picked))
