"""After a lost race for an address, where to try next: a free one a random short way above.

Every process starts from the lowest free address, so in a burst they all race for the same few;
jumping a random distance after a loss spreads them out.
"""

from __future__ import annotations

import random

from allocator.addresses import format_ip, parse_ip
from allocator.subnet import Subnet
from webhook.cluster.ipobjects import ordered

SPREAD_SCAN = 4096  # addresses looked at above a lost one before falling back to the lowest free


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
            for taken in picked:
                alloc.release(taken)
            return None
        alloc.claim(owner, found)
        picked.append(found)
    return ordered(tuple(picked))
