"""Allocator speed and memory over 100,000 held addresses in an IPv4 /8 and an IPv6 /64.

Prints one JSON object:
``{"ipv4_slash8": {"alloc_us", "claim_us", "release_us", "bytes_per_address"}, "ipv6_slash64": {…}}``

- alloc: sequential ``Subnet.allocate`` of N addresses for N new owners;
- claim: ``Subnet.claim`` of N fixed addresses (given as text, scattered over the block, so the
  free ranges fragment into N extra intervals: the worst case for the interval set);
- release: ``Subnet.release`` of all 2N addresses (given as text), each joining the reuse queue;
- bytes_per_address: tracemalloc growth of the subnet while it went from 0 to 2N held addresses
  (allocated plus claimed), divided by 2N. Owner strings are built before measuring because callers
  own them (they come from pod annotations and IP objects); everything the subnet stores counts.

Timings run without tracemalloc (which slows Python down; the memory pass is a separate run) and
include the loop itself. They are CPU time of this process (``time.process_time``), timed in chunks of
10,000 operations with the median chunk reported: the machine is shared, and wall time there measures
the neighbours' load as much as the allocator.
"""

from __future__ import annotations

import gc
import json
import random
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from allocator.addresses import format_ip
from allocator.subnet import Subnet
from allocator.subnet_spec import SubnetSpec

HELD = 100_000
CHUNK = 10_000
CASES = {
    "ipv4_slash8": ("10.0.0.0/8", 4),
    "ipv6_slash64": ("fd00:10::/64", 6),
}


def _fixed_addresses(subnet: Subnet, family: int, count: int, rng: random.Random) -> list[str]:
    """``count`` distinct addresses high in the block, away from the sequential ones."""
    cidr = subnet.spec.family_cidr(family)
    assert cidr is not None
    base = cidr.first + (cidr.last - cidr.first) // 2
    span = min(cidr.last - base - 1, 1 << 40)
    values = rng.sample(range(base, base + span), count)
    return [format_ip(family, value) for value in values]


def _run(block: str, family: int, *, measure_memory: bool) -> dict[str, float]:
    rng = random.Random(7)
    owners = [f"default/pod-{i}/macvlan.default/net1" for i in range(2 * HELD)]
    subnet = Subnet(SubnetSpec.parse("bench", {"cidrBlock": block}))
    fixed = _fixed_addresses(subnet, family, HELD, rng)
    gc.collect()
    if measure_memory:
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
    allocated: list[str] = []
    alloc_chunks = []
    for chunk in range(0, HELD, CHUNK):
        started = time.process_time()
        allocated += [str(subnet.allocate(owners[i], family)) for i in range(chunk, chunk + CHUNK)]
        alloc_chunks.append(time.process_time() - started)
    claim_chunks = []
    for chunk in range(0, HELD, CHUNK):
        started = time.process_time()
        for i in range(chunk, chunk + CHUNK):
            subnet.claim(owners[HELD + i], fixed[i])
        claim_chunks.append(time.process_time() - started)
    assert subnet.held_count == 2 * HELD
    result: dict[str, float] = {}
    if measure_memory:
        del allocated[:]  # the caller's result strings are not subnet memory
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
        tracemalloc.stop()
        result["bytes_per_address"] = round(grown / (2 * HELD), 1)
        return result
    everything = allocated + fixed
    rng.shuffle(everything)
    release_chunks = []
    for chunk in range(0, len(everything), CHUNK):
        started = time.process_time()
        for address in everything[chunk : chunk + CHUNK]:
            subnet.release(address)
        release_chunks.append(time.process_time() - started)
    assert subnet.held_count == 0
    result["alloc_us"] = _per_op_us(alloc_chunks)
    result["claim_us"] = _per_op_us(claim_chunks)
    result["release_us"] = _per_op_us(release_chunks)
    return result


def _per_op_us(chunk_seconds: list[float]) -> float:
    return round(statistics.median(chunk_seconds) / CHUNK * 1e6, 2)


def main() -> None:
    report = {}
    for name, (block, family) in CASES.items():
        timings = _run(block, family, measure_memory=False)
        memory = _run(block, family, measure_memory=True)
        report[name] = {**timings, **memory}
    print(json.dumps(report))


if __name__ == "__main__":
    main()
