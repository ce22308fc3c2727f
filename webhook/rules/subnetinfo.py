"""A Subnet object read leniently for the rules that consult it (pods, pools, overlaps).

The Subnet's own CREATE/UPDATE is validated strictly by `allocator.subnet.SubnetSpec`; objects
already stored were admitted that way, so here a part that does not parse is skipped rather
than refused: a pod must not be blamed for a Subnet it did not write.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import netaddr

from allocator import annotations as keys
from allocator.subnet import usable_bounds
from webhook.rules import common

PRIMARY = keys.PRIMARY_PROVIDER
DEFAULT_VPC = "ovn-cluster"


@dataclass(frozen=True)
class SubnetInfo:
    """What the rules need from one Subnet: name, provider, CIDRs, gateways, exclusions."""

    name: str
    provider: str
    networks: tuple[netaddr.IPNetwork, ...]
    gateways: tuple[netaddr.IPAddress, ...]
    excluded: netaddr.IPSet
    namespaces: tuple[str, ...]
    default: bool
    vpc: str

    @classmethod
    def of(cls, obj: Any) -> SubnetInfo:
        body = common.spec(obj)
        networks = []
        for part in common.text(body.get("cidrBlock")).split(","):
            try:
                networks.append(keys.parse_interface(part.strip()).cidr)
            except ValueError:
                continue
        gateways = []
        for part in common.text(body.get("gateway")).split(","):
            try:
                gateways.append(keys.parse_address(part.strip()))
            except ValueError:
                continue
        if not gateways:  # Kube-OVN's default: the first usable address of each block
            gateways = [netaddr.IPAddress(usable_bounds(n)[0], n.version) for n in networks]
        excludes = body.get("excludeIps")
        provider = common.text(body.get("provider")) or PRIMARY
        return cls(
            name=common.name_of(obj),
            provider=provider,
            networks=tuple(networks),
            gateways=tuple(gateways),
            excluded=address_set(excludes if isinstance(excludes, list) else []),
            namespaces=tuple(n for n in body.get("namespaces") or () if isinstance(n, str))
            if isinstance(body.get("namespaces"), list)
            else (),
            default=body.get("default") is True,
            vpc=common.text(body.get("vpc")) or DEFAULT_VPC,
        )

    @property
    def cidr_text(self) -> str:
        return ",".join(str(n) for n in self.networks)

    def network_for(self, address: netaddr.IPAddress) -> netaddr.IPNetwork | None:
        return next((n for n in self.networks if n.version == address.version and address in n), None)

    def reserved_reason(self, address: netaddr.IPAddress) -> str:
        """Why `address` can never be a pod's in this Subnet ("" if it can); the allocator's rule:
        network, last address (broadcast) and gateway are never a pod's, except in a /31 or /127."""
        network = self.network_for(address)
        if network is None:
            return f"outside Subnet {self.name} ({self.cidr_text})"
        if address in self.gateways:
            return f"the gateway of Subnet {self.name}"
        low, high = usable_bounds(network)
        if int(address) < low:
            return f"the network address of Subnet {self.name} ({network})"
        if int(address) > high:
            what = "broadcast" if network.version == 4 else "last"
            return f"the {what} address of Subnet {self.name} ({network})"
        return ""


def address_set(entries: list[Any]) -> netaddr.IPSet:
    """Entries written as an IP, a CIDR or `a..b` (excludeIps, IPPool ips); bad ones skipped."""
    result = netaddr.IPSet()
    for entry in entries:
        try:
            result.update(parse_range(common.text(entry)))
        except ValueError:
            continue
    return result


def parse_range(entry: str) -> netaddr.IPSet:
    """One `ip`, `cidr` or `a..b` entry. ValueError's text is the reason in words, or "" when
    the entry is simply not written as any of the three."""
    entry = entry.strip()
    try:
        if ".." in entry:
            first_text, _, last_text = entry.partition("..")
            first, last = keys.parse_address(first_text.strip()), keys.parse_address(last_text.strip())
        elif "/" in entry:
            network = keys.parse_interface(entry)
        else:
            return netaddr.IPSet([keys.parse_address(entry)])
    except ValueError:
        raise ValueError("") from None
    if ".." in entry:
        if first.version != last.version:
            raise ValueError("it mixes IPv4 and IPv6")
        if first > last:
            raise ValueError(f"it starts after it ends, {first} > {last}")
        return netaddr.IPSet(netaddr.IPRange(first, last))
    if network.ip != network.network:
        raise ValueError(f"it has host bits set; the network is {network.cidr}")
    return netaddr.IPSet([network])
