"""What `multinic-ipam check` verifies: the promises of the store, as pure functions over lists.

Each function takes plain objects (IP objects, pods, Subnets) and returns `Violation`s, one
sentence each naming the objects involved, so the unit tests feed them a fixture per violation and
the command feeds them one list of each kind (`webhook.operator.ops.load`). Nothing here re-derives a rule:
whether an IP object is still needed is `webhook.leader.decisions.decide_one`, the Lifecycle's own rule;
what the Subnet status should say is `webhook.leader.status.subnet_status`, the leader's own counters.

A check is a snapshot of lists taken one after another, not one consistent read: run it when pods
are not being created or deleted, or run it again; a finding that persists is real.
"""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass

from allocator import annotations as keys
from webhook.cluster import objects
from webhook.cluster.cache import Object
from webhook.cluster.ipobjects import address_of, holder_text, token_of
from webhook.leader import decisions

HELD_TWICE = "address-held-twice"
WRITTEN_TWICE = "address-in-two-pods"
UNNEEDED = "ip-object-not-needed"
UNHELD = "annotation-without-ip-object"
STATUS = "subnet-status"

_ALLOCATED_SUFFIX = keys.key("", keys.ALLOCATED)  # ".kubernetes.io/allocated"


@dataclass(frozen=True)
class Violation:
    """One broken invariant: which one, a sentence, and the objects (`kind/[ns/]name`) involved."""

    invariant: str
    message: str
    objects: tuple[str, ...]

    def as_dict(self) -> dict[str, object]:
        return {"invariant": self.invariant, "message": self.message, "objects": list(self.objects)}


@dataclass(frozen=True)
class Allocation:
    """One address a pod's annotations say it was given (`allocated: "true"`)."""

    pod: Object
    provider: str  # the annotation provider (`<nad>.<ns>`, maybe with `.ovn` or `.<ifname>`)
    subnet: str
    address: str


def check_all(
    *,
    ips: list[Object],
    pods: list[Object],
    subnets: list[Object],
    expected_status: Mapping[str, Mapping[str, int]],
    facts: decisions.Facts,
    now: float,
    default_grace: float,
    scope: Collection[str] | None = None,
) -> list[Violation]:
    """Every invariant over one snapshot, in a stable order; `scope` limits it to those Subnets
    (their IP objects, the pod addresses they hand out, their status)."""
    live = [pod for pod in pods if not decisions.terminated(pod)]
    allocations = pod_allocations(live)
    if scope is not None:
        ips = [ip for ip in ips if (ip.get("spec") or {}).get("subnet", "") in scope]
        allocations = [a for a in allocations if a.subnet in scope]
        subnets = [s for s in subnets if _name(s) in scope]
    return [
        *held_twice(ips),
        *written_twice(allocations),
        *not_needed(ips, facts, now=now, default_grace=default_grace),
        *unheld(allocations, {_name(ip): ip for ip in ips}),
        *status_mismatches(subnets, expected_status),
    ]


def pod_allocations(pods: Iterable[Object]) -> list[Allocation]:
    """Every address the pods' `<provider>.kubernetes.io/allocated: "true"` attachments carry."""
    found = []
    for pod in pods:
        notes = (pod.get("metadata") or {}).get("annotations") or {}
        for name, value in sorted(notes.items()):
            if not name.endswith(_ALLOCATED_SUFFIX) or value != "true":
                continue
            provider = name[: -len(_ALLOCATED_SUFFIX)]
            fields = keys.provider_annotations(notes, provider)
            subnet = fields.get(keys.LOGICAL_SWITCH, "")
            for address in fields.get(keys.IP_ADDRESS, "").split(","):
                if address.strip():
                    found.append(Allocation(pod, provider, subnet, _normal(address.strip())))
    return found


def held_twice(ips: Iterable[Object]) -> list[Violation]:
    """No address of a Subnet is held by two IP objects (possible only when one is misnamed)."""
    by_address: dict[tuple[str, str], list[Object]] = defaultdict(list)
    for ip in ips:
        address = address_of(ip)
        if address:
            by_address[((ip.get("spec") or {}).get("subnet", ""), _normal(address))].append(ip)
    found = []
    for (subnet, address), holders in sorted(by_address.items()):
        if len(holders) > 1:
            holders.sort(key=_name)
            shown = ", ".join(f"{_name(ip)} ({holder_text(ip)})" for ip in holders)
            found.append(Violation(
                HELD_TWICE,
                f"{address} in subnet {subnet} is held by {len(holders)} IP objects: {shown}",
                tuple(f"ip/{_name(ip)}" for ip in holders),
            ))
    return found


def written_twice(allocations: Iterable[Allocation]) -> list[Violation]:
    """No address of a Subnet is written into the annotations of two live pods."""
    by_address: dict[tuple[str, str], set[str]] = defaultdict(set)
    for allocation in allocations:
        by_address[(allocation.subnet, allocation.address)].add(_pod_name(allocation.pod))
    found = []
    for (subnet, address), pods in sorted(by_address.items()):
        if len(pods) > 1:
            names = sorted(pods)
            found.append(Violation(
                WRITTEN_TWICE,
                f"{address} in subnet {subnet} is written into the annotations of {len(names)} live pods: "
                f"{', '.join(names)}",
                tuple(f"pod/{name}" for name in names),
            ))
    return found


def not_needed(
    ips: Iterable[Object], facts: decisions.Facts, *, now: float, default_grace: float
) -> list[Violation]:
    """Every IP object belongs to a live pod, a StatefulSet slot or a reservation in its grace
    period: exactly the objects for which the Lifecycle's rule decides no release."""
    found = []
    for ip in sorted(ips, key=_name):
        decision = decisions.decide_one(ip, facts, now=now, default_grace=default_grace)
        if isinstance(decision, decisions.Release):
            spec = ip.get("spec") or {}
            found.append(Violation(
                UNNEEDED,
                f"IP object {_name(ip)} holds {address_of(ip)} in subnet {spec.get('subnet', '')} for "
                f"{holder_text(ip)}, but {decision.reason}",
                (f"ip/{_name(ip)}",),
            ))
    return found


def unheld(allocations: Iterable[Allocation], ips_by_name: Mapping[str, Object]) -> list[Violation]:
    """Every address in a live pod's allocated annotations has its IP object, held for that pod."""
    found = []
    for allocation in allocations:
        pod = _pod_name(allocation.pod)
        where = f"pod {pod} has {allocation.address} in {keys.key(allocation.provider, keys.IP_ADDRESS)}"
        if not allocation.subnet:
            found.append(Violation(
                UNHELD,
                f"{where} but no {keys.key(allocation.provider, keys.LOGICAL_SWITCH)} naming its Subnet",
                (f"pod/{pod}",),
            ))
            continue
        try:
            name = objects.ip_object_name(allocation.subnet, allocation.address)
        except ValueError:
            found.append(Violation(UNHELD, f"{where} but that is not an IP address", (f"pod/{pod}",)))
            continue
        ip = ips_by_name.get(name)
        if ip is None:
            found.append(Violation(
                UNHELD, f"{where} but no IP object {name} holds it in subnet {allocation.subnet}",
                (f"pod/{pod}",),
            ))
        elif not _belongs(ip, allocation.pod):
            found.append(Violation(
                UNHELD,
                f"{where} but IP object {name} holds it in subnet {allocation.subnet} for {holder_text(ip)}",
                (f"pod/{pod}", f"ip/{name}"),
            ))
    return found


def status_mismatches(
    subnets: Iterable[Object], expected: Mapping[str, Mapping[str, int]]
) -> list[Violation]:
    """Each Subnet's status counters equal what its IP objects make (`expected`, by Subnet name);
    a Subnet missing from `expected` (an unusable spec) gets no counters and is not compared."""
    found = []
    for subnet in sorted(subnets, key=_name):
        want = expected.get(_name(subnet))
        if want is None:
            continue
        status = subnet.get("status") or {}
        wrong = [field for field, value in want.items() if status.get(field) != value]
        if wrong:
            says = ", ".join(f"{field}={_shown(status.get(field))}" for field in wrong)
            makes = ", ".join(f"{field}={want[field]}" for field in wrong)
            found.append(Violation(
                STATUS,
                f"Subnet {_name(subnet)} status says {says} but its IP objects make {makes}",
                (f"subnet/{_name(subnet)}",),
            ))
    return found


def _belongs(ip: Object, pod: Object) -> bool:
    """The IP object is held for this pod: same reservation token, or bound to its UID."""
    spec = ip.get("spec") or {}
    meta = pod.get("metadata") or {}
    if spec.get("namespace", "") != meta.get("namespace", ""):
        return False
    token = token_of(ip)
    if token and token == token_of(pod):
        return True
    return bool(spec.get("podUID")) and spec.get("podUID") == meta.get("uid")


def _normal(address: str) -> str:
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return address  # written as found: a violation names it as the pod or object spells it


def _shown(value: object) -> str:
    return "(none)" if value is None else str(value)


def _name(obj: Object) -> str:
    return (obj.get("metadata") or {}).get("name", "")


def _pod_name(pod: Object) -> str:
    meta = pod.get("metadata") or {}
    return f"{meta.get('namespace', '')}/{meta.get('name', '')}"
