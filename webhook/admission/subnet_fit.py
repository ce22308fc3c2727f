"""What a pod's annotations ask of an attachment's Subnet that the Subnet alone can answer: pool
entries it can hand out, an `ip_family` it has, route gateways and `default-route` gateways inside it.
Which addresses a Subnet can hand out and which families it has are the allocator's rules
(`SubnetSpec.why_unusable`, `SubnetSpec.families_for`, `pools.usable_entries`); this module only asks.

Both webhooks call these. The mutating webhook runs first and locks addresses (IP object creates);
a pod it admits but the validating webhook then refuses would keep its reservation until the
grace period, so these refusals must come before anything is locked. The validating rules call
them again for workloads (which mutation never sees) and as a second line for pods.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import netaddr

from allocator import annotations as keys
from allocator import pools
from allocator.errors import AllocatorError, ParseError, PoolSpecError, RoutesError
from webhook.admission.attachments import Attachment, AttachmentError
from webhook.admission.errors import INVALID
from webhook.admission.subnetinfo import SubnetInfo

Warn = Callable[[str], None]


def check(
    attachment: Attachment, subnet: SubnetInfo, fields: Mapping[str, str], *, warn: Warn | None = None
) -> None:
    """Every check here on one attachment; `fields` are its annotations by field
    (`attachment.fields(annotations)`). Raises `AttachmentError` (422) with the refusal."""
    check_pool_entries(attachment, subnet, fields, warn=warn)
    check_ip_family(attachment, subnet, fields)
    check_routes(attachment, subnet, fields)
    check_default_route(attachment, subnet)


def check_pool_entries(
    attachment: Attachment, subnet: SubnetInfo, fields: Mapping[str, str], *, warn: Warn | None = None
) -> None:
    """An `ip_pool` that parses, with at least one entry the Subnet can hand out; entries it never
    can are skipped by the allocator, and `warn` says so (an IPPool name is checked by the callers:
    it needs the cluster)."""
    if keys.IP_POOL not in fields:
        return
    key = attachment.key(keys.IP_POOL)
    try:
        pool = pools.parse_ip_pool(fields[keys.IP_POOL])
    except PoolSpecError as error:
        raise AttachmentError(f"{key} is not usable: {error}", code=INVALID) from None
    spec = subnet.spec
    if spec is None or not pool.entries:
        return
    try:
        usable = pools.usable_entries(pool.entries, spec.why_unusable)
    except PoolSpecError as error:
        raise AttachmentError(f"{key} is not usable: {error}", code=INVALID) from None
    skipped = [entry for entry in pool.entries if entry not in usable]
    if skipped and warn is not None:
        warn(
            f"{key} entry {pools.first_unusable(skipped[0], spec.why_unusable)}, so "
            f"{len(skipped)} of its {len(pool.entries)} entries are never handed out"
        )


def check_ip_family(attachment: Attachment, subnet: SubnetInfo, fields: Mapping[str, str]) -> None:
    """An `ip_family` of IPv4, IPv6 or dual that the Subnet has."""
    if keys.IP_FAMILY not in fields:
        return
    key = attachment.key(keys.IP_FAMILY)
    try:
        families = keys.parse_ip_family(fields[keys.IP_FAMILY])
        if subnet.spec is not None:
            subnet.spec.families_for(families)
    except (ParseError, AllocatorError) as error:
        raise AttachmentError(f"{key} is not usable: {error}", code=INVALID) from None


def check_routes(attachment: Attachment, subnet: SubnetInfo, fields: Mapping[str, str]) -> None:
    """A `routes` annotation that parses, every gateway in it inside the Subnet."""
    if keys.ROUTES not in fields:
        return
    key = attachment.key(keys.ROUTES)
    try:
        routes = keys.parse_routes(fields[keys.ROUTES])
    except RoutesError as error:
        raise AttachmentError(f"{key} is not usable: {error}", code=INVALID) from None
    for route in routes:
        if route.gw is None or subnet.network_for(route.gw) is not None:
            continue
        target = "the default route" if route.is_default else f"the route to {route.dst}"
        raise AttachmentError(
            f"{target} in {key} goes via {route.gw}, outside {describe(subnet)}; "
            "use a gateway inside the Subnet",
            code=INVALID,
        )


def check_default_route(attachment: Attachment, subnet: SubnetInfo) -> None:
    """Multus `default-route` gateways of the attachment's selection inside the Subnet."""
    selection = attachment.selection
    if selection is None:
        return
    for text in selection.default_route:
        gateway = netaddr.IPAddress(text)
        if subnet.network_for(gateway) is None:
            example = next((str(g) for g in subnet.gateways if g.version == gateway.version), "")
            hint = f", such as its gateway {example}" if example else ""
            raise AttachmentError(
                f"default-route gateway {gateway} of {selection.key} in {keys.NETWORKS} is outside "
                f"{describe(subnet)}; use an address inside it{hint}",
                code=INVALID,
            )


def describe(subnet: SubnetInfo) -> str:
    """`Subnet macvlan (172.17.0.0/16)` in a refusal."""
    return f"Subnet {subnet.name} ({subnet.cidr_text})"
