"""Subnet rules: a valid spec (`allocator.subnet_spec.SubnetSpec`), a provider that can name a NAD, no
overlap with a Subnet serving the same provider, and no change or deletion that would strand an
address a pod holds (the pod would keep using an address the Subnet no longer accounts for)."""

from __future__ import annotations

import re
from typing import Any

import netaddr

from allocator import nad
from allocator.errors import AllocatorError, NadError
from allocator.subnet_spec import SubnetSpec
from webhook.admission import errors
from webhook.admission.rules import common
from webhook.admission.subnetinfo import PRIMARY, SubnetInfo

_LABEL = r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?"
_PROVIDER = re.compile(rf"{_LABEL}\.{_LABEL}(\.ovn)?", re.ASCII)
# The guide: "The gateway, private, and nat fields are only valid for networks with provider type ovn".
_OVN_ONLY_FIELDS = ("gateway", "private", "natOutgoing")


def check(context: common.Context) -> None:
    if context.operation == "DELETE":
        _check_delete(context)
        return
    if context.operation not in ("CREATE", "UPDATE"):
        return
    if common.spec_unchanged(context):
        return
    name = common.name_of(context.obj) or context.name
    body = common.spec(context.obj)
    try:
        parsed = SubnetSpec.parse(name, body)
    except AllocatorError as error:
        raise errors.invalid(str(error)) from None
    _check_provider(context, name, parsed.provider)
    _warn_ovn_only_fields(context, name, parsed.provider, body)
    _warn_default_ovn(context, name, parsed.provider, body)
    info = SubnetInfo.of(context.obj)
    if context.operation == "CREATE" or _placement_changed(info, SubnetInfo.of(context.old)):
        _check_overlap(context, name, parsed, info.vpc)
    if context.operation == "UPDATE":
        _check_stranding(context, name, parsed, SubnetInfo.of(context.old))


def _check_provider(context: common.Context, name: str, provider: str) -> None:
    if provider == PRIMARY:
        return
    if not _PROVIDER.fullmatch(provider):
        raise errors.invalid(
            f"provider {common.quote(provider)} of Subnet {name} is not ovn, <nad>.<namespace> or "
            "<nad>.<namespace>.ovn (lower-case DNS-1123 labels); write e.g. macvlan.default"
        )
    nad_name, namespace = provider.split(".")[:2]
    nad_obj = context.view.nad(namespace, nad_name)
    if nad_obj is None:
        context.warn(
            f"no NetworkAttachmentDefinition {namespace}/{nad_name} exists yet, so no pod reaches Subnet "
            f"{name} through provider {provider} until it does"
        )
        return
    try:
        config = nad.parse_nad(namespace, nad_name, common.spec(nad_obj))
    except NadError:
        return  # the NAD's own problem, refused or reported where it is used
    if not config.uses_kube_ovn:
        context.warn(
            f"NetworkAttachmentDefinition {namespace}/{nad_name} does not use kube-ovn IPAM, so Subnet "
            f"{name} serves none of its pods"
        )
    elif config.provider != provider:
        context.warn(
            f"NetworkAttachmentDefinition {namespace}/{nad_name} declares provider {config.provider}, not "
            f"{provider}, so its pods never select Subnet {name} by provider; set provider: {config.provider}"
        )


def _warn_ovn_only_fields(context: common.Context, name: str, provider: str, body: Any) -> None:
    if provider == PRIMARY:
        return
    used = [f for f in _OVN_ONLY_FIELDS if body.get(f) not in (None, "", False)]
    if not used:
        return
    effects = []
    if "gateway" in used:
        effects.append("the gateway is only kept out of allocation and reported to the CNI plugin")
    inert = [f for f in used if f != "gateway"]
    if inert:
        effects.append(f"{' and '.join(inert)} {'has' if len(inert) == 1 else 'have'} no effect")
    verb = "is" if len(used) == 1 else "are"
    context.warn(
        f"Subnet {name} sets {', '.join(used)}, which the guide says {verb} only valid for provider ovn; "
        f"with provider {provider}, {' and '.join(effects)}"
    )


def _warn_default_ovn(context: common.Context, name: str, provider: str, body: Any) -> None:
    """A default provider-ovn Subnet serves pods that carry no annotation at all, and on 1.28+ the
    mutating webhook's matchConditions (`webhook.operator.configurations.match_conditions`) keep exactly
    those pods away unless it was installed with `--all-pods`; this review cannot see how it was installed."""
    if provider != PRIMARY or body.get("default") is not True:
        return
    context.warn(
        f"Subnet {name} is the default for provider ovn, so pods without any annotation take their "
        "address from it; on API servers 1.28 and later such pods reach the mutating webhook only when "
        "it was installed with multinic-ipam install --all-pods"
    )


def _placement_changed(new: SubnetInfo, old: SubnetInfo) -> bool:
    return (new.networks, new.provider, new.vpc) != (old.networks, old.provider, old.vpc)


def _check_overlap(context: common.Context, name: str, parsed: SubnetSpec, vpc: str) -> None:
    """Two Subnets of one attachment provider serve one network: an overlap would hand the same
    address out twice on it, so it is refused. Provider-ovn Subnets selected by `logical_switch`
    serve different NADs (the guide gives its macvlan and attachnet ovn Subnets the same block),
    so there an overlap in one VPC only warns."""
    for other_obj in context.view.subnets_for_provider(parsed.provider):
        other = SubnetInfo.of(other_obj)
        if other.name == name or (parsed.provider == PRIMARY and other.vpc != vpc):
            continue
        for cidr in parsed.cidrs:
            clash = next((n for n in other.networks if n.version == cidr.version and _overlap(n, cidr)), None)
            if clash is None:
                continue
            if parsed.provider == PRIMARY:
                context.warn(
                    f"cidrBlock {cidr} of Subnet {name} overlaps {clash} of Subnet {other.name}, "
                    f"also provider ovn in VPC {vpc}: pods of both may get the same address, "
                    "which is only safe when they attach different networks"
                )
                continue
            raise errors.conflict(
                f"cidrBlock {cidr} of Subnet {name} overlaps {clash} of Subnet {other.name}, which has "
                f"the same provider {parsed.provider}; choose a block that does not overlap it"
            )


def _overlap(a: netaddr.IPNetwork, b: netaddr.IPNetwork) -> bool:
    return a.first <= b.last and b.first <= a.last


def _check_stranding(context: common.Context, name: str, parsed: SubnetSpec, old: SubnetInfo) -> None:
    """Every held address stays inside, off the gateway and out of newly excluded ranges: one pass
    over the Subnet's IP objects with integer comparisons (a /16 may hold tens of thousands)."""
    held = context.view.ip_objects(name)
    if not held:
        return
    if parsed.provider != old.provider:
        raise errors.forbidden(
            f"Subnet {name} cannot change provider from {old.provider} to {parsed.provider} while it has "
            f"{common.describe_held(held)}; delete those pods first"
        )
    rules = parsed.rules
    was = old.spec.rules if old.spec is not None else {}
    outside, on_gateway, newly = [], [], []
    for ip_object in held:
        for version, value in common.ip_object_values(ip_object):
            rule = rules.get(version)
            if rule is None or not rule.cidr.first <= value <= rule.cidr.last:
                outside.append(ip_object)
            elif value == rule.gateway:
                on_gateway.append(ip_object)
            elif value in rule.excluded and not (version in was and value in was[version].excluded):
                newly.append(ip_object)
    if outside:
        raise errors.forbidden(
            f"cidrBlock {parsed.cidr_block} of Subnet {name} would leave "
            f"{common.describe_held(outside)}, outside it; keep them inside or delete those pods first"
        )
    if on_gateway:
        raise errors.forbidden(
            f"gateway {','.join(str(g) for g in parsed.gateways)} of Subnet {name} would be one of "
            f"{common.describe_held(on_gateway)}; choose a free address as the gateway"
        )
    if newly:
        raise errors.forbidden(
            f"excludeIps of Subnet {name} would newly exclude {common.describe_held(newly)}; "
            "leave held addresses out of excludeIps or delete those pods first"
        )


def _check_delete(context: common.Context) -> None:
    name = context.name
    held = context.view.ip_objects(name)
    if held:
        raise errors.forbidden(
            f"Subnet {name} still has {common.describe_held(held)}; delete those pods "
            "(or their workloads) first"
        )
    pools = [common.name_of(p) for p in context.view.ippools(name)]
    if pools:
        context.warn(f"IPPool {', '.join(pools)} still names Subnet {name}; delete or repoint it")
