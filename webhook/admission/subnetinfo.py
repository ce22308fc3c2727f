"""A Subnet object read leniently for the rules that consult it (pods, pools, overlaps); which
addresses it may hand out is the allocator's rule, reached through `SubnetInfo.spec`.

The Subnet's own CREATE/UPDATE is validated strictly by `allocator.subnet_spec.SubnetSpec`; objects
already stored were admitted that way, so here a part that does not parse is skipped rather
than refused: a pod must not be blamed for a Subnet it did not write.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import netaddr

from allocator import annotations as keys
from allocator.errors import AllocatorError
from allocator.subnet_spec import SubnetSpec
from allocator.usable import usable_bounds
from webhook.admission.rules import common
from webhook.cluster.cache import Derived

PRIMARY = keys.PRIMARY_PROVIDER
DEFAULT_VPC = "ovn-cluster"


@dataclass(frozen=True)
class SubnetInfo:
    """What the rules need from one Subnet: name, provider, CIDRs, gateways, exclusions."""

    name: str
    provider: str
    networks: tuple[netaddr.IPNetwork, ...]
    gateways: tuple[netaddr.IPAddress, ...]
    namespaces: tuple[str, ...]
    default: bool
    vpc: str
    raw: Any = field(default=None, compare=False, repr=False)

    @classmethod
    def of(cls, obj: Any) -> SubnetInfo:
        """The Subnet `obj` read leniently; once per version of it (each pod review asks)."""
        return _read(obj)

    @classmethod
    def read(cls, obj: Any) -> SubnetInfo:
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
        provider = common.text(body.get("provider")) or PRIMARY
        return cls(
            name=common.name_of(obj),
            provider=provider,
            networks=tuple(networks),
            gateways=tuple(gateways),
            namespaces=tuple(n for n in body.get("namespaces") or () if isinstance(n, str))
            if isinstance(body.get("namespaces"), list)
            else (),
            default=body.get("default") is True,
            vpc=common.text(body.get("vpc")) or DEFAULT_VPC,
            raw=body,
        )

    @property
    def cidr_text(self) -> str:
        return ",".join(str(n) for n in self.networks)

    def network_for(self, address: netaddr.IPAddress) -> netaddr.IPNetwork | None:
        return next((n for n in self.networks if n.version == address.version and address in n), None)

    @cached_property
    def spec(self) -> SubnetSpec | None:
        """The Subnet as the allocator reads it (its rules: `SubnetSpec.why_unusable`, families),
        or None when it does not parse; then the store refuses pods of it with the reason.
        Parsed on first use, once per `SubnetInfo`."""
        try:
            return SubnetSpec.parse(self.name, self.raw)
        except AllocatorError:
            return None


_read: Derived[SubnetInfo] = Derived(SubnetInfo.read)
