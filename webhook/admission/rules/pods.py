"""Pod rules. CREATE: the networks parse, each NAD exists, and what the annotations ask of each
kube-ovn attachment fits its Subnet: fixed addresses and MACs free (or this pod's own), pool
entries inside, route gateways and default-route gateways inside (`webhook.admission.subnet_fit`, which the
mutating webhook checks before it locks anything; here they are the second line). UPDATE: the allocation
annotations are frozen except for the system's own identity, or anyone allowed to update a pod
could point the CNI at another pod's address.

The mutating webhook runs first: at CREATE the output annotations (`ip_address`, `allocated` …) and
`multinic-ipam.io/reservation` are already there, and the IP objects labelled with that
reservation are this pod's own, not a conflict.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import netaddr

from allocator import annotations as keys
from allocator import mac, pools
from allocator.errors import AllocatorError, ParseError, PoolSpecError
from allocator.family import PoolDef
from allocator.subnet import Subnet
from webhook.admission import attachments, errors, subnet_fit
from webhook.admission.attachments import Attachment
from webhook.admission.rules import common
from webhook.admission.subnetinfo import PRIMARY, SubnetInfo
from webhook.cluster import objects
from webhook.cluster.view import mac_key

Owns = Callable[[Any], bool]  # does this IP object belong to the pod (or workload) under review?

ALLOCATION_FIELDS = frozenset(keys.INPUT_FIELDS + keys.OUTPUT_FIELDS)
_SUFFIX = ".kubernetes.io/"


def check(context: common.Context) -> None:
    if context.operation == "CREATE":
        _check_create(context)
    elif context.operation == "UPDATE":
        _check_update(context)


def _check_create(context: common.Context) -> None:
    pod_meta = common.meta(context.obj)
    annotations = common.string_annotations(pod_meta)
    namespace = context.namespace
    name = common.text(pod_meta.get("name")) or common.text(context.request.get("name"))
    reservation = annotations.get(objects.RESERVATION_ANNOTATION, "")

    def owns(ip_object: Any) -> bool:
        labels = common.mapping(common.meta(ip_object).get("labels"))
        if reservation and labels.get(objects.LABEL_RESERVATION) == reservation:
            return True
        body = common.spec(ip_object)
        return bool(name) and body.get("namespace") == namespace and body.get("podName") == name

    check_annotations(context, annotations, namespace=namespace, owns=owns)


def check_annotations(
    context: common.Context, annotations: Mapping[str, str], *, namespace: str, owns: Owns
) -> list[Attachment]:
    """Every CREATE rule on one set of pod annotations (a pod's or a pod template's), over the
    attachments and Subnets the mutating webhook allocates from (`webhook.admission.attachments`)."""
    found = attachments.resolve(
        context.view, annotations, namespace, live=context.live, warn=context.warn
    )
    for attachment in found:
        subnet = SubnetInfo.of(attachment.subnet)
        fields = attachment.fields(annotations)
        _check_addresses(context, attachment, subnet, fields, owns)
        _check_mac(context, attachment, subnet, fields, owns)
        subnet_fit.check_pool_entries(attachment, subnet, fields, warn=context.warn)
        subnet_fit.check_ip_family(attachment, subnet, fields)
        _check_ippool(context, attachment, subnet, fields)
        subnet_fit.check_routes(attachment, subnet, fields)
        subnet_fit.check_default_route(attachment, subnet)
    _warn_unused_providers(context, annotations, found)
    return found


def _check_addresses(
    context: common.Context,
    attachment: Attachment,
    subnet: SubnetInfo,
    fields: Mapping[str, str],
    owns: Owns,
) -> None:
    key = attachment.key(keys.IP_ADDRESS)
    if keys.IP_ADDRESS in fields:
        value = fields[keys.IP_ADDRESS]
        try:
            parts = keys.split_dual(value)
        except ParseError as error:
            raise errors.invalid(f"{key} is not usable: {error}") from None
        addresses = [_address(key, part) for part in parts]
        if len(addresses) == 2 and addresses[0].version == addresses[1].version:
            raise errors.invalid(
                f"{key} {common.quote(value)} gives two IPv{addresses[0].version} addresses; a dual-stack "
                "value is one IPv4 and one IPv6 address, such as 172.17.0.100,fd00:10::100"
            )
        for address in addresses:
            _check_claim(context, key, address, subnet, owns)
    selection = attachment.selection
    if selection is not None:
        where = f"ips of {selection.key} in {keys.NETWORKS}"
        for text in selection.ips:
            address = netaddr.IPAddress(text.partition("/")[0])
            _check_claim(context, where, address, subnet, owns)
            _check_prefix(where, text, address, subnet)


def _address(key: str, text: str) -> netaddr.IPAddress:
    try:
        return keys.parse_address(text)
    except ValueError:
        raise errors.invalid(
            f"{key} {common.quote(text)} is not an IP address; write one like 172.17.0.100 "
            '(or "IPv4,IPv6" for dual stack)'
        ) from None


def _check_claim(
    context: common.Context, where: str, address: netaddr.IPAddress, subnet: SubnetInfo, owns: Owns
) -> None:
    if subnet.network_for(address) is None:
        raise errors.invalid(
            f"{where} {address} is outside {subnet_fit.describe(subnet)}; choose an address inside it"
        )
    reason = subnet.spec.why_unusable(address, fixed=True) if subnet.spec is not None else ""
    if reason:
        raise errors.invalid(f"{where} {address} is {reason}; choose another address")
    cached = context.view.holder(subnet.name, str(address))
    holder = cached if cached is None or owns(cached) else context.confirmed(cached)
    if holder is not None and not owns(holder):
        raise errors.conflict(
            f"{address} is held by {common.describe_holder(holder)}; choose a free address of Subnet "
            f"{subnet.name} or delete that pod first"
        )


def _check_prefix(where: str, text: str, address: netaddr.IPAddress, subnet: SubnetInfo) -> None:
    """Multus `ips` carry a prefix length, which must be the Subnet's own (the NIC gets it)."""
    _, slash, prefix = text.partition("/")
    network = subnet.network_for(address)
    if slash and network is not None and int(prefix) != network.prefixlen:
        raise errors.invalid(
            f"{where} {text} has prefix /{prefix}, but its Subnet is {network}; "
            f"write {address}/{network.prefixlen}"
        )


def _check_mac(
    context: common.Context,
    attachment: Attachment,
    subnet: SubnetInfo,
    fields: Mapping[str, str],
    owns: Owns,
) -> None:
    wanted = []
    if keys.MAC_ADDRESS in fields:
        wanted.append((attachment.key(keys.MAC_ADDRESS), fields[keys.MAC_ADDRESS]))
    if attachment.selection is not None and attachment.selection.mac:
        wanted.append((f"mac of {attachment.selection.key} in {keys.NETWORKS}", attachment.selection.mac))
    for where, text in wanted:
        try:
            normal = mac.normalise_mac(text)
        except AllocatorError as error:
            raise errors.invalid(f"{where} is not usable: {error}") from None
        for cached in context.view.mac_holders(subnet.name, normal):
            holder = cached if owns(cached) else context.confirmed(cached)
            if holder is None or owns(holder) or mac_key(holder) != (subnet.name, normal):
                continue  # this pod's own, or released since the cache saw it
            raise errors.conflict(
                f"MAC {normal} from {where} is held by {common.describe_holder(holder)} in "
                f"Subnet {subnet.name}; choose another MAC or leave it out to get a random one"
            )


def _check_ippool(
    context: common.Context, attachment: Attachment, subnet: SubnetInfo, fields: Mapping[str, str]
) -> None:
    """An `ip_pool` naming an IPPool: it exists and belongs to the attachment's Subnet (its listed
    entries are `subnet_fit`'s, which the mutating webhook checks too)."""
    if keys.IP_POOL not in fields:
        return
    key = attachment.key(keys.IP_POOL)
    pool = pools.parse_ip_pool(fields[keys.IP_POOL])  # parses: subnet_fit.check_pool_entries ran first
    if pool.ippool_name is None:
        return
    obj = context.reads.ippool(pool.ippool_name)
    if obj is None:
        raise errors.invalid(
            f"IPPool {pool.ippool_name}, named by {key}, does not exist; create it or list addresses "
            "like 172.17.0.200,172.17.0.201"
        )
    subnet_name = common.text(common.spec(obj).get("subnet"))
    if subnet_name != subnet.name:
        raise errors.invalid(
            f"IPPool {pool.ippool_name}, named by {key}, belongs to Subnet {subnet_name or '(none)'}, "
            f"but this attachment draws from {subnet_fit.describe(subnet)}; name a pool of that Subnet"
        )


def pool_size(context: common.Context, value: str, subnet: SubnetInfo | None = None) -> int | None:
    """How many pods an `ip_pool` value can serve: its entries the Subnet can hand out, or the
    addresses an IPPool has for every family of its Subnet (None when that is not known)."""
    try:
        pool = pools.parse_ip_pool(value)
    except PoolSpecError:
        return None
    spec = subnet.spec if subnet is not None else None
    if pool.ippool_name is None:
        if spec is None:
            return len(pool.entries)
        return len([e for e in pool.entries if not pools.first_unusable(e, spec.why_unusable)])
    obj = context.view.ippool(pool.ippool_name)
    subnet_obj = context.view.subnet(common.text(common.spec(obj).get("subnet"))) if obj else None
    spec = SubnetInfo.of(subnet_obj).spec if subnet_obj is not None else None
    if obj is None or spec is None:
        return None
    allocator = Subnet(spec)
    ranges = pools.parse_pool_ips_leniently(common.spec(obj).get("ips"))
    allocator.set_pools([PoolDef(pool.ippool_name, ranges)])
    return min(allocator.available(family, pool.ippool_name) for family in spec.families_for())


def _warn_unused_providers(
    context: common.Context, annotations: Mapping[str, str], found: list[Attachment]
) -> None:
    used = {a.key_provider for a in found} | {PRIMARY}
    for key in sorted(annotations):
        provider, sep, field = key.rpartition(_SUFFIX)
        if sep and provider and field in keys.INPUT_FIELDS and provider not in used:
            context.warn(
                f"{key} is ignored: no network of this pod uses provider {provider} with kube-ovn IPAM"
            )
            return


def allocation_keys(annotations: Mapping[str, str], *, manage_primary: bool) -> set[str]:
    """The annotations that decide a pod's addresses (inputs, outputs, networks, reservation)."""
    found = {objects.RESERVATION_ANNOTATION, keys.NETWORKS, keys.DEFAULT_NETWORK} & set(annotations)
    for key in annotations:
        provider, sep, field = key.rpartition(_SUFFIX)
        if sep and provider and field in ALLOCATION_FIELDS and (manage_primary or provider != PRIMARY):
            found.add(key)
    return found


def _check_update(context: common.Context) -> None:
    if context.username in context.system_users:
        return
    new = common.string_annotations(common.meta(context.obj))
    old = common.string_annotations(common.meta(context.old))
    manage_primary = attachments.default_primary_subnet(context.view) is not None
    watched = allocation_keys(new, manage_primary=manage_primary) | allocation_keys(
        old, manage_primary=manage_primary
    )
    changed = sorted(
        key for key in watched if new.get(key) != old.get(key) and not _adopting(context, key, old, new)
    )
    if not changed:
        return
    key = changed[0]
    was = common.quote(old[key]) if key in old else "unset"
    now = common.quote(new[key]) if key in new else "removed"
    raise errors.forbidden(
        f"annotation {key} decides the pod's addresses and cannot change after creation (was {was}, "
        f"now {now}); delete the pod and create it with the new value"
    )


def _adopting(context: common.Context, key: str, old: Mapping[str, str], new: Mapping[str, str]) -> bool:
    """`multinic-ipam adopt` adds the output annotations and the reservation of addresses a running
    pod already uses, once IP objects hold them for it. Only additions pass, and only when every
    address the provider's `ip_address` names is held for this very pod in its `logical_switch`
    (a reservation: when every IP object labelled with it is this pod's), so no pod can point the
    CNI at an address it does not hold."""
    if key in old:
        return False
    pod_meta = common.meta(context.obj)
    identity = (context.namespace, common.text(pod_meta.get("name")))
    uid = common.text(pod_meta.get("uid"))

    def this_pods(ip_object: Any) -> bool:
        body = common.spec(ip_object)
        mine = (body.get("namespace"), body.get("podName")) == identity
        return mine and body.get("podUID") in ("", None, uid)

    if key == objects.RESERVATION_ANNOTATION:
        labelled = [
            ip for ip in context.view.each_ip_object()
            if common.mapping(common.meta(ip).get("labels")).get(objects.LABEL_RESERVATION) == new[key]
        ]
        return bool(labelled) and all(this_pods(ip) for ip in labelled)
    provider, sep, field = key.rpartition(_SUFFIX)
    if not sep or field not in keys.OUTPUT_FIELDS:
        return False
    subnet = new.get(keys.key(provider, keys.LOGICAL_SWITCH), "")
    try:
        held = [context.view.holder(subnet, address)
                for address in keys.split_dual(new.get(keys.key(provider, keys.IP_ADDRESS), ""))]
    except (ParseError, ValueError):
        return False
    return bool(subnet) and all(ip is not None and this_pods(ip) for ip in held)
