"""IPPool rules: a pool names an existing Subnet, its `ips` lie inside it, and no two pools of
one Subnet share an address (Kube-OVN would hand the shared address to either pool's pods)."""

from __future__ import annotations

import re

from allocator import annotations as keys
from allocator import pools
from allocator.addresses import format_ip
from allocator.errors import PoolSpecError
from webhook.admission import errors
from webhook.admission.rules import common
from webhook.admission.subnetinfo import SubnetInfo

_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", re.ASCII)
Ranges = tuple[tuple[int, int, int], ...]


def check(context: common.Context) -> None:
    if context.operation not in ("CREATE", "UPDATE"):
        return
    pool = context.obj
    name = common.name_of(pool) or context.name
    body = common.spec(pool)
    _check_name(name)
    subnet = _subnet(context, name, body.get("subnet"))
    try:
        ranges = pools.parse_pool_ips(body.get("ips"), pool=name)
    except PoolSpecError as error:
        raise errors.invalid(str(error)) from None
    if not ranges:
        context.warn(f"IPPool {name} has no ips, so pods bound to it get no address; list some in spec.ips")
    _check_inside(name, ranges, subnet, body.get("ips"))
    _warn_unusable(context, name, ranges, subnet)
    _check_overlaps(context, name, subnet, ranges)
    _check_namespaces(name, body.get("namespaces"))


def _check_name(name: str) -> None:
    try:
        keys.parse_address(name)
    except ValueError:
        return
    raise errors.invalid(
        f"IPPool name {common.quote(name)} is an IP address, which an ip_pool annotation would read as "
        "an address rather than this pool; choose a name such as pool-1"
    )


def _subnet(context: common.Context, name: str, subnet_name: object) -> SubnetInfo:
    wanted = common.text(subnet_name)
    if not wanted:
        raise errors.invalid(f"IPPool {name} has no spec.subnet; name the Subnet its addresses come from")
    obj = context.reads.subnet(wanted)
    if obj is None:
        known = ", ".join(common.name_of(s) for s in context.view.subnets()[:5]) or "none exist yet"
        raise errors.invalid(
            f"IPPool {name} names Subnet {common.quote(wanted)} in spec.subnet, which does not exist; "
            f"create it first or name an existing one ({known})"
        )
    return SubnetInfo.of(obj)


def _check_inside(name: str, ranges: Ranges, subnet: SubnetInfo, items: object) -> None:
    for item, (version, low, high) in zip(items if isinstance(items, list) else [], ranges, strict=False):
        block = next((n for n in subnet.networks if n.version == version), None)
        if block is not None and block.first <= low and high <= block.last:
            continue
        reach = low if block is None or not block.first <= low <= block.last else block.last + 1
        shown = common.quote(item) if isinstance(item, str) else keys.shorten(item)
        raise errors.invalid(
            f"spec.ips entry {shown} of IPPool {name} reaches {format_ip(version, reach)}, outside Subnet "
            f"{subnet.name} ({subnet.cidr_text}); keep the pool's addresses inside its Subnet"
        )


def _warn_unusable(context: common.Context, name: str, ranges: Ranges, subnet: SubnetInfo) -> None:
    """Addresses the Subnet never hands out (its gateway, network or excluded ones) are skipped by
    the allocator; a pool that covers them is allowed (a CIDR item covers its network address)."""
    spec = subnet.spec
    if spec is None:
        return
    for version, low, high in ranges:
        rule = spec.rules.get(version)
        value = rule.first_unusable(low, high) if rule is not None else None
        if value is not None:
            context.warn(
                f"IPPool {name} covers {format_ip(version, value)}, {rule.why_not(value)}, which is never "
                "handed out; its other addresses are"
            )
            return


def _check_overlaps(context: common.Context, name: str, subnet: SubnetInfo, ranges: Ranges) -> None:
    for other in context.view.ippools(subnet.name):
        other_name = common.name_of(other)
        if other_name == name:
            continue
        theirs = pools.parse_pool_ips_leniently(common.spec(other).get("ips"))
        shared = _first_shared(ranges, theirs)
        if shared is not None:
            raise errors.conflict(
                f"IPPool {name} shares {shared} with IPPool {other_name} of Subnet {subnet.name}; "
                "give each pool of a Subnet its own addresses"
            )


def _first_shared(mine: Ranges, theirs: Ranges) -> str | None:
    shared = [
        (version, max(low, other_low))
        for version, low, high in mine
        for other_version, other_low, other_high in theirs
        if version == other_version and low <= other_high and other_low <= high
    ]
    return format_ip(*min(shared)) if shared else None


def _check_namespaces(name: str, namespaces: object) -> None:
    if namespaces is None:
        return
    if not isinstance(namespaces, list):
        raise errors.invalid(f"spec.namespaces of IPPool {name} is not a list; list namespace names")
    for namespace in namespaces:
        if not isinstance(namespace, str) or not _DNS_LABEL.fullmatch(namespace):
            raise errors.invalid(
                f"spec.namespaces entry {keys.shorten(namespace)} of IPPool {name} is not a namespace name; "
                "use a DNS-1123 label such as ns-1"
            )
