"""The operator's questions (`status`, `who-has`, `gc`, `check`), answered the way the webhook answers them.

One list of each kind fills an `ObjectCache` and a `Store` over it, so usage comes from the same
allocator state the webhook allocates from, and `gc` runs the Lifecycle's own decide step
(`--dry-run` stops there) and act step. No watches: a CLI run is a snapshot.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from webhook import settings
from webhook.cluster import objects
from webhook.cluster.cache import Object, ObjectCache

STATUS_KINDS = (objects.SUBNETS, objects.IPS, objects.IPPOOLS)
ALL_KINDS = (objects.SUBNETS, objects.IPS, objects.IPPOOLS, objects.NADS, objects.PODS, objects.STATEFULSETS)


class OpsError(RuntimeError):
    """The question cannot be answered; the message says why and what to do."""


# -- connecting and loading -------------------------------------------------------------------------


def kubeconfig_path(explicit: str | None) -> str | None:
    """`--kubeconfig`, else `$KUBECONFIG` (its first file), else ~/.kube/config; None = in-cluster."""
    if explicit:
        if not Path(explicit).is_file():
            raise OpsError(f"--kubeconfig {explicit} does not exist; give the path of a kubeconfig file")
        return explicit
    first = settings.kubeconfig_from_env()
    if first:
        return first
    default = Path.home() / ".kube" / "config"
    return str(default) if default.is_file() else None


def connect(kubeconfig: str | None) -> Any:
    """The `ClusterAccess` of `kubeconfig`, or of the pod's service account when None (as the webhook's)."""
    from webhook.cluster import connection

    try:
        return connection.connect(kubeconfig)
    except connection.ConnectError as error:
        raise OpsError(str(error)) from None


def load(api_client: Any, kinds: Sequence[str] = ALL_KINDS, *, grace: float = settings.DEFAULT_GRACE) -> Any:
    """A `Store` over a cache filled by one (paged) list of each of `kinds`; `grace` as the webhook's."""
    from webhook.cluster.errors import ApiError, NotFound
    from webhook.cluster.kubeapi import KubernetesApi
    from webhook.cluster.store import Store

    try:
        api = KubernetesApi(api_client, timeout=30.0)
    except ValueError as error:  # no usable server address in the configuration
        raise OpsError(str(error)) from None
    cache = ObjectCache()
    store = Store(cache, api=api, grace=grace)
    for kind in kinds:
        try:
            items = api.list(kind)
        except NotFound:
            items = []  # the CRD is not installed: nothing of that kind exists
        except ApiError as error:  # also Unreachable: refused, TLS, DNS (its message names the server)
            raise OpsError(f"cannot list {kind}: {error}") from None
        cache.replace(kind, items)
    return store


# -- status -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FamilyUsage:
    used: int
    available: int


@dataclass(frozen=True)
class SubnetUsage:
    """One row of `multinic-ipam status`."""

    name: str
    provider: str
    cidr: str
    protocol: str
    v4: FamilyUsage | None
    v6: FamilyUsage | None
    pools: tuple[str, ...]
    problem: str = ""

    def as_dict(self) -> dict[str, Any]:
        def family(usage: FamilyUsage | None) -> dict[str, int] | None:
            return None if usage is None else {"used": usage.used, "available": usage.available}

        return {
            "name": self.name, "provider": self.provider, "cidr": self.cidr, "protocol": self.protocol,
            "v4": family(self.v4), "v6": family(self.v6), "pools": list(self.pools), "problem": self.problem,
        }


def subnet_usage(store: Any) -> list[SubnetUsage]:
    """Every Subnet with its usage per family, from the allocator the webhook itself would build."""
    from allocator.errors import AllocatorError

    rows = []
    for subnet in store.subnets():
        name = subnet["metadata"]["name"]
        spec = subnet.get("spec") or {}
        pools = tuple(_pool_text(pool) for pool in store.ippools(subnet=name))
        base = {"name": name, "provider": spec.get("provider", "ovn"), "cidr": spec.get("cidrBlock", ""),
                "protocol": spec.get("protocol", "")}
        try:
            state = store.state(name)
        except AllocatorError as error:
            rows.append(SubnetUsage(**base, v4=None, v6=None, pools=pools, problem=str(error)))
            continue
        usage = state.usage()
        families = {cidr.version for cidr in state.spec.cidrs}
        base["protocol"] = state.spec.protocol
        rows.append(
            SubnetUsage(
                **base,
                v4=FamilyUsage(usage.v4_using, usage.v4_available) if 4 in families else None,
                v6=FamilyUsage(usage.v6_using, usage.v6_available) if 6 in families else None,
                pools=pools,
            )
        )
    return rows


def _pool_text(pool: Object) -> str:
    ips = (pool.get("spec") or {}).get("ips") or []
    return f"{pool['metadata']['name']}({len(ips)})"


# -- who-has ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Holding:
    """Who holds an address, as `multinic-ipam who-has` prints it."""

    address: str
    subnet: str
    provider: str
    pod: str
    interface: str
    mac: str
    since: str
    bound: bool
    ip_object: str

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def parse_address(text: str) -> str:
    """The normalised address, or an OpsError naming the bad value."""
    try:
        return str(ipaddress.ip_address(text.strip()))
    except ValueError:
        raise OpsError(f"{text!r} is not an IP address; give one like 172.17.0.11 or fd00::11") from None


def who_has(store: Any, address: str) -> tuple[list[Holding], list[str]]:
    """(holdings of `address`, names of the Subnets whose CIDR contains it)."""
    from webhook.cluster.ipobjects import address_of

    ip = ipaddress.ip_address(address)
    holdings, containing = [], []
    for subnet in store.subnets():
        name = subnet["metadata"]["name"]
        if _contains(subnet, ip):
            containing.append(name)
        obj = store.holder(name, address)
        if obj is None:
            continue
        spec = obj.get("spec") or {}
        pod = spec.get("podName") or (spec.get("generateName", "") + "*")
        held = [a for a in address_of(obj).split(",") if a]
        shown = next((a for a in held if ipaddress.ip_address(a) == ip), address)
        holdings.append(
            Holding(
                address=shown, subnet=name, provider=spec.get("provider", ""),
                pod=f"{spec.get('namespace', '')}/{pod}", interface=spec.get("interface", ""),
                mac=spec.get("macAddress", ""), since=obj["metadata"].get("creationTimestamp", ""),
                bound=bool(spec.get("podUID")), ip_object=obj["metadata"]["name"],
            )
        )
    return holdings, containing


def _contains(subnet: Object, ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    for block in str((subnet.get("spec") or {}).get("cidrBlock", "")).split(","):
        try:
            if ip in ipaddress.ip_network(block.strip(), strict=False):
                return True
        except ValueError:
            continue
    return False


def age(timestamp: str, now: float | None = None) -> str:
    """'3m12s ago'-style age of an RFC 3339 timestamp (empty when unknown)."""
    if not timestamp:
        return ""
    then = dt.datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()
    seconds = int((now if now is not None else dt.datetime.now(dt.UTC).timestamp()) - then)
    if seconds < 0:
        return "just now"
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [(days, "d"), (hours, "h"), (minutes, "m"), (secs, "s")]
    shown = [f"{value}{unit}" for value, unit in parts if value][:2] or ["0s"]
    return "".join(shown) + " ago"


# -- gc -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Decision:
    """What the Lifecycle decided for one IP object."""

    action: str  # "release" or "bind"
    ip_object: str
    address: str
    subnet: str
    pod: str
    reason: str
    done: bool

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def collect_garbage(store: Any, *, dry_run: bool, grace: float | None = None) -> list[Decision]:
    """One Lifecycle pass over every IP object: its decisions, carried out unless `dry_run`."""
    from webhook.leader.actions import Outcome
    from webhook.leader.lifecycle import Lifecycle

    lifecycle = Lifecycle(store=store, identity="multinic-ipam-gc", grace=grace)
    ips = {ip["metadata"]["name"]: ip for ip in store.ip_objects()}  # act deletes released ones
    planned = lifecycle.decide(list(ips.values()))
    outcomes = [Outcome(d, None) for d in planned] if dry_run else lifecycle.act(planned)
    return [_row(ips[o.planned.ip_name], o.done or o.planned, done=o.done is not None) for o in outcomes]


def _row(ip: Object, decision: Any, *, done: bool) -> Decision:
    """A `Decision` row for `decision` (a `webhook.leader.decisions` Release or Bind) on `ip`."""
    from webhook.cluster.ipobjects import address_of, holder_text
    from webhook.leader.decisions import Bind

    spec = ip.get("spec") or {}
    if isinstance(decision, Bind):
        action, why = "bind", f"its pod {spec.get('namespace', '')}/{decision.pod_name} exists now"
    else:
        action, why = "release", decision.reason
    return Decision(action, decision.ip_name, address_of(ip), spec.get("subnet", ""),
                    holder_text(ip).removeprefix("pod "), why, done)


# -- check ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckResult:
    """What `multinic-ipam check` found, and how much it looked at."""

    violations: list[Any]  # webhook.operator.invariants.Violation
    counts: dict[str, int]

    def as_dict(self) -> dict[str, Any]:
        return {"ok": not self.violations, "counts": self.counts,
                "violations": [v.as_dict() for v in self.violations]}


def confirmed(first: CheckResult, second: CheckResult) -> CheckResult:
    """`second`'s violations that `first` also found (same invariant, same objects): what a
    moment's churn explains (a pod deleted just before its address was released, a reservation
    whose pod was being created) is found once, not twice."""
    seen = {(v.invariant, v.objects) for v in first.violations}
    return CheckResult([v for v in second.violations if (v.invariant, v.objects) in seen], second.counts)


def check(store: Any, *, now: float | None = None, subnets: Sequence[str] = ()) -> CheckResult:
    """Every invariant over the listed objects (only those of `subnets` when given); the
    Lifecycle's own rules and Subnet counters decide."""
    from webhook.leader.status import subnet_status
    from webhook.operator import invariants

    known = {s["metadata"]["name"] for s in store.subnets()}
    missing = sorted(set(subnets) - known)
    if missing:
        raise OpsError(f"no Subnet named {', '.join(missing)}; list them with `multinic-ipam status`")
    scope = set(subnets) if subnets else None

    def in_scope(obj: Object) -> bool:
        return scope is None or (obj.get("spec") or {}).get("subnet") in scope

    listed = [s for s in store.subnets() if scope is None or s["metadata"]["name"] in scope]
    expected = {}
    for subnet in listed:
        status = subnet_status(store, subnet["metadata"]["name"])
        if status is not None:
            expected[subnet["metadata"]["name"]] = status
    ips, pods = [ip for ip in store.ip_objects() if in_scope(ip)], store.cache.list(objects.PODS)
    violations = invariants.check_all(
        ips=ips, pods=pods, subnets=listed, expected_status=expected, facts=store,
        now=time.time() if now is None else now, default_grace=store.grace, scope=scope,
    )
    counts = {"ips": len(ips), "pods": len(pods), "subnets": len(listed),
              "ippools": sum(in_scope(pool) for pool in store.ippools())}
    return CheckResult(violations, counts)


# -- tables -------------------------------------------------------------------------------------------


def table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """Left-aligned columns separated by two spaces, like kubectl's."""
    all_rows = [list(header), *([str(cell) for cell in row] for row in rows)]
    widths = [max(len(row[i]) for row in all_rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
             for row in all_rows]
    return "\n".join(lines)
