"""IPPool rules: a pool names an existing Subnet, its `ips` lie inside it, and no two pools of
one Subnet share an address (Kube-OVN would hand the shared address to either pool's pods)."""

from __future__ import annotations

import re

import netaddr

from allocator import annotations as keys
from webhook.rules import common
from webhook.rules.subnetinfo import SubnetInfo, address_set, parse_range

_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", re.ASCII)
_EXAMPLE = "write an IP (172.17.0.200), a CIDR (172.17.0.208/29) or a range (172.17.0.220..172.17.0.230)"


def check(context: common.Context) -> None:
    if context.operation not in ("CREATE", "UPDATE"):
        return
    pool = context.obj
    name = common.name_of(pool) or context.name
    body = common.spec(pool)
    _check_name(name)
    subnet = _subnet(context, name, body.get("subnet"))
    addresses = _addresses(name, body.get("ips"), subnet)
    if not addresses:
        context.warn(f"IPPool {name} has no ips, so pods bound to it get no address; list some in spec.ips")
    covered_gateways = [g for g in subnet.gateways if g in addresses]
    if covered_gateways:
        context.warn(
            f"IPPool {name} covers {covered_gateways[0]}, the gateway of Subnet {subnet.name}, "
            "which is never handed out"
        )
    _check_overlaps(context, name, subnet, addresses)
    _check_namespaces(name, body.get("namespaces"))


def _check_name(name: str) -> None:
    try:
        keys.parse_address(name)
    except ValueError:
        return
    raise common.invalid(
        f"IPPool name {common.quote(name)} is an IP address, which an ip_pool annotation would read as "
        "an address rather than this pool; choose a name such as pool-1"
    )


def _subnet(context: common.Context, name: str, subnet_name: object) -> SubnetInfo:
    wanted = common.text(subnet_name)
    if not wanted:
        raise common.invalid(f"IPPool {name} has no spec.subnet; name the Subnet its addresses come from")
    obj = context.view.subnet(wanted)
    if obj is None:
        known = ", ".join(common.name_of(s) for s in context.view.subnets()[:5]) or "none exist yet"
        raise common.invalid(
            f"IPPool {name} names Subnet {common.quote(wanted)} in spec.subnet, which does not exist; "
            f"create it first or name an existing one ({known})"
        )
    return SubnetInfo.of(obj)


def _addresses(name: str, entries: object, subnet: SubnetInfo) -> netaddr.IPSet:
    if entries is None:
        return netaddr.IPSet()
    if not isinstance(entries, list):
        raise common.invalid(f"spec.ips of IPPool {name} is not a list; {_EXAMPLE} per item")
    inside = netaddr.IPSet(subnet.networks)
    addresses = netaddr.IPSet()
    for entry in entries:
        shown = common.quote(entry) if isinstance(entry, str) else keys.shorten(entry)
        try:
            entry_set = parse_range(common.text(entry))
        except ValueError as error:
            reason = f" ({error})" if str(error) else ""
            raise common.invalid(
                f"spec.ips entry {shown} of IPPool {name} is not a usable IP, CIDR or a..b range{reason}; "
                f"{_EXAMPLE}"
            ) from None
        outside = entry_set - inside
        if outside:
            raise common.invalid(
                f"spec.ips entry {shown} of IPPool {name} reaches {_first(outside)}, outside Subnet "
                f"{subnet.name} ({subnet.cidr_text}); keep the pool's addresses inside its Subnet"
            )
        addresses |= entry_set
    return addresses


def _check_overlaps(context: common.Context, name: str, subnet: SubnetInfo, addresses: netaddr.IPSet) -> None:
    for other in context.view.ippools(subnet.name):
        other_name = common.name_of(other)
        if other_name == name:
            continue
        other_entries = common.spec(other).get("ips")
        shared = addresses & address_set(other_entries if isinstance(other_entries, list) else [])
        if shared:
            raise common.conflict(
                f"IPPool {name} shares {_first(shared)} with IPPool {other_name} of Subnet {subnet.name}; "
                "give each pool of a Subnet its own addresses"
            )


def _check_namespaces(name: str, namespaces: object) -> None:
    if namespaces is None:
        return
    if not isinstance(namespaces, list):
        raise common.invalid(f"spec.namespaces of IPPool {name} is not a list; list namespace names")
    for namespace in namespaces:
        if not isinstance(namespace, str) or not _DNS_LABEL.fullmatch(namespace):
            raise common.invalid(
                f"spec.namespaces entry {keys.shorten(namespace)} of IPPool {name} is not a namespace name; "
                "use a DNS-1123 label such as ns-1"
            )


def _first(addresses: netaddr.IPSet) -> netaddr.IPAddress:
    return addresses.iter_cidrs()[0][0]
