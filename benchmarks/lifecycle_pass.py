"""Time of one Lifecycle pass as held addresses grow, in process (fake API server, no HTTP).

Holds --held bound addresses (default 10,000: each admitted, its pod created, bound by a pass), then
times passes: with no change since the last one ("idle"), and after --arrivals pods arrived
("arrivals": admitted and created, bound by that pass), the leader's work while pods keep coming;
and, when the Lifecycle has them, full passes (its periodic safety net).

Prints one JSON object: ``{"held", "arrivals", "idle_ms", "arrivals_ms", "full_ms"}``, medians
of --passes passes in milliseconds ("full_ms" is null for a Lifecycle without full passes).
"""

from __future__ import annotations

import argparse
import inspect
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.unit.webhook.world import World  # noqa: E402
from webhook.cluster import objects  # noqa: E402
from webhook.cluster.claims import Claim, PodIdentity  # noqa: E402
from webhook.leader import lifecycle  # noqa: E402

CLAIM = Claim(subnet="macvlan", provider="macvlan.default", interface="net1")


def arrive(world: World, name: str) -> None:
    """A pod admitted (its address reserved) and then created, as the webhook and kubelet see it."""
    who = PodIdentity("default", name)
    world.store.reserve(who, CLAIM)
    world.add(objects.PODS, {
        "metadata": {"name": name, "namespace": "default",
                     "annotations": {objects.RESERVATION_ANNOTATION: who.token}},
        "spec": {"restartPolicy": "Always"}, "status": {"phase": "Running"},
    })


def timed(call) -> float:
    start = time.perf_counter()
    call()
    return (time.perf_counter() - start) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--held", type=int, default=10_000)
    parser.add_argument("--arrivals", type=int, default=10)
    parser.add_argument("--passes", type=int, default=20)
    args = parser.parse_args()
    world = World().guide()
    cycle = lifecycle.Lifecycle(store=world.store, identity="bench", namespace="kube-system",
                                clock=lambda: world.now, grace=120)
    assert cycle.acquire()
    for index in range(args.held):
        arrive(world, f"held-{index}")
    first = cycle.reconcile()
    assert first.bound == args.held, first
    idle = [timed(cycle.reconcile) for _ in range(args.passes)]
    arrivals = []
    for round_ in range(args.passes):
        for index in range(args.arrivals):
            arrive(world, f"new-{round_}-{index}")
        start = time.perf_counter()
        result = cycle.reconcile()
        arrivals.append((time.perf_counter() - start) * 1000)
        assert result.bound == args.arrivals, result
    full = None
    if "full" in inspect.signature(cycle.reconcile).parameters:
        full = statistics.median(timed(lambda: cycle.reconcile(full=True)) for _ in range(5))
    cycle.stop()
    print(json.dumps({
        "held": args.held, "arrivals": args.arrivals,
        "idle_ms": round(statistics.median(idle), 3),
        "arrivals_ms": round(statistics.median(arrivals), 3),
        "full_ms": None if full is None else round(full, 3),
    }))


if __name__ == "__main__":
    main()
