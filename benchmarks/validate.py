"""Cost of one validating review (`webhook.validate.review`, in process) with 10,000 held addresses.

Prints one JSON object, each value the median CPU microseconds per review over 5 runs of as many
reviews as fit in 0.2 s of CPU:
``{"pod_create_us", "pod_create_fixed_ip_us", "pod_create_fixed_mac_us", "pod_update_us",
"workload_us", "subnet_update_us", "subnet_delete_refused_us", "ippool_create_us", "held"}``

- pod_create: the guide's samplepod (networks default/macvlan), allocation annotations as the
  mutating webhook leaves them; fixed_ip looks the holder up by name (O(1)); fixed_mac asks the
  view's (Subnet, MAC) index (O(1); it scanned the Subnet's IP objects before: ~15,800 us here);
- subnet_update: a cidrBlock change checked against every held address; subnet_delete: refused;
- CPU time (`time.process_time`), since the machine is shared and wall time tracks the neighbours.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.unit.webhook.rules import guide
from tests.unit.webhook.rules.world import World, pod, request, subnet
from webhook import validate

HELD = 10_000
RUN_SECONDS = 0.2
RUNS = 5
NETWORKS = "k8s.v1.cni.cncf.io/networks"


def _world() -> World:
    world = World()
    world.example("nad-macvlan.yaml")
    world.subnet("macvlan", provider="macvlan.default", cidrBlock="172.17.0.0/16", gateway="172.17.0.1")
    for index in range(HELD):
        address = f"172.17.{(index + 20) // 250}.{(index + 20) % 250 + 2}"
        world.hold(
            "macvlan", address, pod=f"p{index}", mac=f"02:00:00:00:{index // 256:02x}:{index % 256:02x}"
        )
    return world


def _median_us(review: Callable[[], object]) -> float:
    samples = []
    for _ in range(RUNS):
        count, start = 0, time.process_time()
        while (elapsed := time.process_time() - start) < RUN_SECONDS:
            review()
            count += 1
        samples.append(elapsed / count * 1e6)
    return round(statistics.median(samples), 1)


def main() -> None:
    world = _world()
    view = world.view

    def timed(obj: dict, **kwargs: object) -> float:
        body = request(obj, **kwargs)  # type: ignore[arg-type]
        verdict = validate.review(body, view=view)
        assert verdict.allowed or kwargs.get("operation") in ("UPDATE", "DELETE"), verdict.message
        return _median_us(lambda: validate.review(body, view=view))

    base = {NETWORKS: "default/macvlan", "macvlan.default.kubernetes.io/allocated": "true"}
    old_subnet = world.view.subnet("macvlan")
    report = {
        "held": HELD,
        "pod_create_us": timed(guide.load("pod-samplepod.yaml")),
        "pod_create_fixed_ip_us": timed(
            pod({**base, "macvlan.default.kubernetes.io/ip_address": "172.17.250.9"})
        ),
        "pod_create_fixed_mac_us": timed(
            pod({**base, "macvlan.default.kubernetes.io/mac_address": "02:aa:00:00:00:01"})
        ),
        "pod_update_us": timed(
            pod({**base, "team": "b"}), operation="UPDATE", old=pod({**base, "team": "a"})
        ),
        "workload_us": timed(guide.load("deployment-static-workload.yaml")),
        "subnet_update_us": timed(
            subnet("macvlan", provider="macvlan.default", cidrBlock="172.16.0.0/15"),
            operation="UPDATE",
            old=old_subnet,
        ),
        "subnet_delete_refused_us": timed(None, operation="DELETE", old=old_subnet),
        "ippool_create_us": timed(
            {
                "apiVersion": "kubeovn.io/v1",
                "kind": "IPPool",
                "metadata": {"name": "pool-1"},
                "spec": {"subnet": "macvlan", "ips": ["172.17.100.0/24", "172.17.101.1..172.17.101.50"]},
            }
        ),
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
