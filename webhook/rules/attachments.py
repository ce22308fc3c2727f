"""Which networks a pod (or pod template) asks this IPAM for, and from which Subnets.

An `Attachment` is one NIC served by a kube-ovn provider: a NAD from
`k8s.v1.cni.cncf.io/networks` or `v1.multus-cni.io/default-network` whose config uses kube-ovn,
or the primary network (provider `ovn`) when a default ovn Subnet exists. NADs that do not use
kube-ovn are the cluster CNI's business and are left alone.

Annotation keys follow the mutating webhook (`webhook.attachments`): `<provider>.kubernetes.io/…`,
or `<provider>.<interface>.kubernetes.io/…` for a provider attached more than once.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, replace

from allocator import annotations as keys
from allocator import nad, networks
from allocator.errors import NadError, NetworkSelectionError
from webhook.rules import common
from webhook.rules.subnetinfo import PRIMARY, SubnetInfo

PRIMARY_INTERFACE = "eth0"


@dataclass(frozen=True)
class Attachment:
    """One NIC whose addresses come from this IPAM."""

    provider: str
    interface: str
    label: str  # for messages: "NetworkAttachmentDefinition default/macvlan", "the primary network"
    selection: networks.NetworkSelection | None
    main: bool  # the pod's eth0
    ipam_only: bool  # `ipam.type: kube-ovn` under another plugin (macvlan …), not a kube-ovn NIC
    key_provider: str = ""  # the provider part of its annotation keys; set by `resolve`

    def key(self, field: str) -> str:
        return keys.key(self.key_provider or self.provider, field)

    def fields(self, annotations: Mapping[str, str]) -> dict[str, str]:
        """Its `<key provider>.kubernetes.io/<field>` annotations, by field."""
        return keys.provider_annotations(annotations, self.key_provider or self.provider)


def default_primary_subnet(context: common.Context) -> SubnetInfo | None:
    """The Subnet with provider ovn and `default: true`; without one the primary network belongs to
    the cluster's own CNI, and `ovn.kubernetes.io/*` annotations are none of our business."""
    for obj in context.view.subnets_for_provider(PRIMARY):
        if common.spec(obj).get("default") is True:
            return SubnetInfo.of(obj)
    return None


def resolve(context: common.Context, annotations: Mapping[str, str], namespace: str) -> list[Attachment]:
    """The pod's attachments served by kube-ovn providers, main NIC first."""
    found: list[Attachment] = []
    default_value = annotations.get(keys.DEFAULT_NETWORK)
    if default_value is not None:
        try:
            selection = networks.parse_default_network(default_value)
        except NetworkSelectionError as error:
            raise common.invalid(str(error)) from None
        found += _from_nad(context, selection, PRIMARY_INTERFACE, main=True, annotation=keys.DEFAULT_NETWORK)
    elif default_primary_subnet(context) is not None:
        primary = "the primary network"
        found.append(
            Attachment(PRIMARY, PRIMARY_INTERFACE, primary, selection=None, main=True, ipam_only=False)
        )
    value = annotations.get(keys.NETWORKS)
    if value is not None:
        try:
            selections = networks.parse_networks(value, pod_namespace=namespace)
        except NetworkSelectionError as error:
            raise common.invalid(str(error)) from None
        for index, selection in enumerate(selections, start=1):
            interface = selection.interface or f"net{index}"
            found += _from_nad(context, selection, interface, main=False, annotation=keys.NETWORKS)
    repeated = Counter(a.provider for a in found)
    return [
        replace(a, key_provider=a.provider if repeated[a.provider] == 1 else f"{a.provider}.{a.interface}")
        for a in found
    ]


def _from_nad(
    context: common.Context,
    selection: networks.NetworkSelection,
    interface: str,
    *,
    main: bool,
    annotation: str,
) -> list[Attachment]:
    label = f"NetworkAttachmentDefinition {selection.namespace}/{selection.name}"
    obj = context.view.nad(selection.namespace, selection.name)
    if obj is None:
        raise common.AdmissionError(
            f"{label}, named in {annotation}, does not exist; create it first or correct the name"
        )
    try:
        config = nad.parse_nad(selection.namespace, selection.name, common.spec(obj))
    except nad.EmptySpec:
        context.warn(
            f"{label} has no spec.config, so its addresses come from a CNI config file on each node, "
            "not from this IPAM"
        )
        return []
    except NadError as error:
        raise common.AdmissionError(f"{label}, named in {annotation}, cannot be used: {error}") from None
    if not config.uses_kube_ovn or config.provider is None:
        return []
    return [
        Attachment(
            config.provider,
            interface,
            label,
            selection=selection,
            main=main,
            ipam_only=config.mode == nad.MODE_IPAM,
        )
    ]


def subnets(
    context: common.Context, attachment: Attachment, annotations: Mapping[str, str], namespace: str
) -> list[SubnetInfo]:
    """The Subnets the attachment may draw from: the one named by `logical_switch` (it wins), else
    those with its provider (namespace-bound ones first), else the default ovn Subnet."""
    fields = attachment.fields(annotations)
    switch_key = attachment.key(keys.LOGICAL_SWITCH)
    switch = fields.get(keys.LOGICAL_SWITCH)
    if switch is not None:
        obj = context.view.subnet(switch)
        if obj is None:
            raise common.invalid(
                f"Subnet {common.quote(switch)}, named by {switch_key}, does not exist; name an existing "
                f"Subnet or drop the annotation to use the Subnet with provider {attachment.provider}"
            )
        info = SubnetInfo.of(obj)
        if info.provider not in (attachment.provider, PRIMARY):
            raise common.invalid(
                f"Subnet {switch}, named by {switch_key}, has provider {info.provider}; name a Subnet "
                f"with provider {attachment.provider} or ovn"
            )
        if attachment.main and attachment.ipam_only and info.provider == PRIMARY:
            nad_ref = attachment.label.removeprefix("NetworkAttachmentDefinition ")
            raise common.AdmissionError(
                f"the main NIC from {attachment.label} cannot take its address from Subnet {switch}, "
                f"whose provider is ovn (the guide: unsupported); name a Subnet with provider "
                f"{attachment.provider} in {switch_key}, or attach {nad_ref} through {keys.NETWORKS}"
            )
        if info.namespaces and namespace not in info.namespaces:
            raise common.AdmissionError(
                f"Subnet {switch}, named by {switch_key}, is reserved for namespaces "
                f"{', '.join(info.namespaces)}; use another Subnet or add {namespace} to its spec.namespaces"
            )
        return [info]
    candidates = [SubnetInfo.of(obj) for obj in context.view.subnets_for_provider(attachment.provider)]
    if attachment.provider == PRIMARY:
        bound = [c for c in candidates if namespace in c.namespaces]
        primary = default_primary_subnet(context)
        return bound or ([primary] if primary else [])
    if not candidates:
        raise common.AdmissionError(
            f"no Subnet has provider {attachment.provider}, which {attachment.label} uses; "
            f"create one with spec.provider: {attachment.provider}"
        )
    usable = [c for c in candidates if namespace in c.namespaces] or [
        c for c in candidates if not c.namespaces
    ]
    if not usable:
        reserved = "; ".join(f"{c.name} for {', '.join(c.namespaces)}" for c in candidates)
        raise common.AdmissionError(
            f"every Subnet with provider {attachment.provider} is reserved for other namespaces "
            f"({reserved}); add {namespace} to the spec.namespaces of one"
        )
    return usable
