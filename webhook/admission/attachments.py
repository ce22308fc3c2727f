"""A pod's annotations → the attachments this IPAM serves, each with the one Subnet it draws from.

Both webhooks ask this one resolver, so the mutating webhook allocates exactly where the
validating webhook checks (they used to disagree on namespace-bound Subnets, empty-spec NADs
and `logical_switch` naming a foreign Subnet).

Attachments: the primary network (`ovn`, when a default `ovn` Subnet exists and Multus's default
network is not overridden), Multus's default network (eth0), and each `k8s.v1.cni.cncf.io/networks`
item (`net<position>` unless it names its interface) whose NAD uses kube-ovn. NADs that do not use
kube-ovn, or keep their config in node files (no `spec.config`: warned about), are someone else's.

A NAD attached more than once (`net@a,net@b`) has one provider but needs several addresses:
like Kube-OVN, such attachments are told apart by provider plus interface, so their annotation
keys use the provider `<provider>.<interface>` (`macvlan.default.a.kubernetes.io/ip_address`).

The Subnet (Kube-OVN semantics): the one `<key provider>.kubernetes.io/logical_switch` names (it
wins; its provider must be the attachment's or `ovn`); else, of the Subnets with the provider, the
first bound to the pod's namespace (`spec.namespaces`), else the first without a namespace list;
for the primary network the default Subnet stands in for "without a list". Refused only when none fits.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Protocol, TypeVar

from allocator import annotations as keys
from allocator import errors, nad, networks
from webhook.admission.errors import INVALID, AdmissionError
from webhook.cluster.cache import Derived, Object
from webhook.cluster.view import ClusterView

PRIMARY = keys.PRIMARY_PROVIDER
PRIMARY_INTERFACE = "eth0"
PRIMARY_LABEL = "the primary network"
_T = TypeVar("_T")


class AttachmentError(AdmissionError):
    """The pod's networks cannot be served as written (422 malformed annotations, 403 otherwise);
    either webhook answers with it as it is."""


class LiveReads(Protocol):
    """Reads that fall back to the API server when the cache has not seen an object yet
    (`webhook.cluster.store.Store`): an object created a moment before the pod must not refuse it,
    nor an IP object deleted a moment before (`current_ip`, read before a refusal rests on it)."""

    def fetch_nad(self, namespace: str, name: str) -> Object | None: ...

    def fetch_subnet(self, name: str) -> Object | None: ...

    def subnets_for(self, provider: str) -> list[Object]: ...

    def fetch_ippool(self, name: str) -> Object | None: ...

    def current_ip(self, name: str) -> Object | None: ...


@dataclass(frozen=True)
class Attachment:
    """One NIC whose addresses come from this IPAM, and the Subnet they come from."""

    provider: str
    interface: str
    key_provider: str  # the provider part of its annotation keys
    label: str  # for messages: "NetworkAttachmentDefinition default/macvlan", "the primary network"
    selection: networks.NetworkSelection | None  # None for the primary network
    main: bool  # the pod's eth0
    ipam_only: bool  # `ipam.type: kube-ovn` under another plugin (macvlan …), not a kube-ovn NIC
    subnet: Object

    @property
    def subnet_name(self) -> str:
        return (self.subnet.get("metadata") or {}).get("name") or ""

    def key(self, field: str) -> str:
        return keys.key(self.key_provider, field)

    def fields(self, annotations: Mapping[str, str]) -> dict[str, str]:
        """Its `<key provider>.kubernetes.io/<field>` annotations, by field."""
        return keys.provider_annotations(annotations, self.key_provider)


def resolve(
    view: ClusterView,
    annotations: Mapping[str, str],
    namespace: str,
    *,
    live: LiveReads | None = None,
    warn: Callable[[str], None] | None = None,
) -> list[Attachment]:
    """The pod's attachments served by kube-ovn providers (main NIC first), each with its Subnet;
    raises `AttachmentError` with the refusal sentence."""
    reader = Reader(view, live)
    found: list[Attachment] = []
    default_value = annotations.get(keys.DEFAULT_NETWORK)
    if default_value is not None:
        selection = _parsed(lambda: networks.parse_default_network(default_value))
        found += _from_nad(reader, selection, PRIMARY_INTERFACE, main=True, annotation=keys.DEFAULT_NETWORK,
                           warn=warn)
    elif default_primary_subnet(view) is not None:
        found.append(_attachment(PRIMARY, PRIMARY_INTERFACE, PRIMARY_LABEL, None, main=True, ipam_only=False))
    value = annotations.get(keys.NETWORKS)
    if value is not None:
        selections = _parsed(lambda: networks.parse_networks(value, pod_namespace=namespace))
        for index, selection in enumerate(selections, start=1):
            interface = selection.interface or f"net{index}"
            found += _from_nad(reader, selection, interface, main=False, annotation=keys.NETWORKS, warn=warn)
    repeated = Counter(a.provider for a in found)
    keyed = [
        replace(a, key_provider=a.provider if repeated[a.provider] == 1 else f"{a.provider}.{a.interface}")
        for a in found
    ]
    return [replace(a, subnet=_subnet(reader, a, annotations, namespace)) for a in keyed]


def default_primary_subnet(view: ClusterView) -> Object | None:
    """The Subnet with provider ovn and `default: true`; without one the primary network belongs to
    the cluster's own CNI, and `ovn.kubernetes.io/*` annotations are none of our business."""
    return next((s for s in view.subnets_for_provider(PRIMARY) if _spec(s).get("default") is True), None)


class Reader:
    """The cache first, then the live fallbacks when the caller has them: an object applied together
    with the one under review (a NAD, Subnet or IPPool in the same file) may not be cached yet."""

    def __init__(self, view: ClusterView, live: LiveReads | None) -> None:
        self.view = view
        self.live = live

    def nad(self, namespace: str, name: str) -> Object | None:
        found = self.view.nad(namespace, name)
        return found if found is not None or self.live is None else self.live.fetch_nad(namespace, name)

    def subnet(self, name: str) -> Object | None:
        found = self.view.subnet(name)
        return found if found is not None or self.live is None else self.live.fetch_subnet(name)

    def ippool(self, name: str) -> Object | None:
        found = self.view.ippool(name)
        return found if found is not None or self.live is None else self.live.fetch_ippool(name)

    def subnets_for(self, provider: str) -> list[Object]:
        found = self.view.subnets_for_provider(provider)
        return found if found or self.live is None else self.live.subnets_for(provider)


def _parsed(parse: Callable[[], _T]) -> _T:
    """A Multus annotation parsed, its sentence kept; malformed annotations are 422."""
    try:
        return parse()
    except errors.NetworkSelectionError as error:
        raise AttachmentError(str(error), code=INVALID) from None


def _attachment(
    provider: str, interface: str, label: str, selection: networks.NetworkSelection | None, *,
    main: bool, ipam_only: bool,
) -> Attachment:
    """Keyed by its provider alone and without a Subnet yet: `resolve` settles both once it has
    seen every attachment (the key) and their annotations (the Subnet)."""
    return Attachment(provider, interface, provider, label, selection, main, ipam_only, subnet={})


def _from_nad(
    reader: Reader,
    selection: networks.NetworkSelection,
    interface: str,
    *,
    main: bool,
    annotation: str,
    warn: Callable[[str], None] | None,
) -> list[Attachment]:
    label = f"NetworkAttachmentDefinition {selection.namespace}/{selection.name}"
    obj = reader.nad(selection.namespace, selection.name)
    if obj is None:
        raise AttachmentError(
            f"{label}, named in {annotation}, does not exist; create it first or correct the name"
        )
    try:
        config = _nad_config(obj, selection.namespace, selection.name)
    except nad.EmptySpec:
        if warn is not None:
            warn(
                f"{label} has no spec.config, so its addresses come from a CNI config file on each node, "
                "not from this IPAM"
            )
        return []
    except errors.NadError as error:
        raise AttachmentError(f"{label}, named in {annotation}, cannot be used: {error}") from None
    if not config.uses_kube_ovn or config.provider is None:
        return []
    ipam_only = config.mode == nad.MODE_IPAM
    return [_attachment(config.provider, interface, label, selection, main=main, ipam_only=ipam_only)]


def _subnet(
    reader: Reader, attachment: Attachment, annotations: Mapping[str, str], namespace: str
) -> Object:
    """`logical_switch` first; else bound to the namespace, else unrestricted (primary: the default)."""
    switch = attachment.fields(annotations).get(keys.LOGICAL_SWITCH)
    if switch is not None:
        return _named_subnet(reader, attachment, switch, namespace)
    provider = attachment.provider
    candidates = reader.subnets_for(provider)
    bound = [s for s in candidates if namespace in _namespaces(s)]
    if bound:
        return bound[0]
    if provider == PRIMARY:
        default = default_primary_subnet(reader.view)
        if default is None:  # the primary attachment exists only with one; it went away meanwhile
            raise AttachmentError("no Subnet with provider ovn has default: true; create one or retry")
        allowed = _namespaces(default)
        if allowed:
            raise AttachmentError(
                f"the default Subnet {_name(default)} is reserved for namespaces {', '.join(allowed)}; add "
                f"{namespace} to its spec.namespaces, or to those of another Subnet with provider ovn"
            )
        return default
    if not candidates:
        raise AttachmentError(
            f"no Subnet has provider {provider}, which {attachment.label} uses; create one with "
            f"spec.provider: {provider}, or name a Subnet in {attachment.key(keys.LOGICAL_SWITCH)}"
        )
    free = [s for s in candidates if not _namespaces(s)]
    if not free:
        reserved = "; ".join(f"{_name(s)} for {', '.join(_namespaces(s))}" for s in candidates)
        raise AttachmentError(
            f"every Subnet with provider {provider} is reserved for other namespaces "
            f"({reserved}); add {namespace} to the spec.namespaces of one"
        )
    return free[0]


def _named_subnet(reader: Reader, attachment: Attachment, switch: str, namespace: str) -> Object:
    """The Subnet `logical_switch` names: it must exist, be of the attachment's provider or `ovn`
    (the guide's second NICs from an ovn Subnet), and serve the pod's namespace."""
    switch_key = attachment.key(keys.LOGICAL_SWITCH)
    found = reader.subnet(switch) if switch else None
    if found is None:
        raise AttachmentError(
            f"Subnet {keys.quote(switch)}, named by {switch_key}, does not exist; name an existing Subnet "
            f"or drop the annotation to use the Subnet with provider {attachment.provider}",
            code=INVALID,
        )
    provider = _spec(found).get("provider")
    provider = provider if isinstance(provider, str) and provider else PRIMARY
    if provider not in (attachment.provider, PRIMARY):
        raise AttachmentError(
            f"Subnet {switch}, named by {switch_key}, has provider {provider}; name a Subnet with provider "
            f"{attachment.provider} or ovn",
            code=INVALID,
        )
    if attachment.main and attachment.ipam_only and provider == PRIMARY:
        nad_ref = attachment.label.removeprefix("NetworkAttachmentDefinition ")
        raise AttachmentError(
            f"the main NIC from {attachment.label} cannot take its address from Subnet {switch}, whose "
            f"provider is ovn (the guide: unsupported); name a Subnet with provider {attachment.provider} "
            f"in {switch_key}, or attach {nad_ref} through {keys.NETWORKS}"
        )
    allowed = _namespaces(found)
    if allowed and namespace not in allowed:
        raise AttachmentError(
            f"Subnet {switch}, named by {switch_key}, is reserved for namespaces {', '.join(allowed)}; "
            f"use another Subnet or add {namespace} to its spec.namespaces"
        )
    return found


def _spec(obj: Object) -> Mapping:
    spec = obj.get("spec")
    return spec if isinstance(spec, Mapping) else {}


def _name(obj: Object) -> str:
    return (obj.get("metadata") or {}).get("name") or ""


def _namespaces(subnet: Object) -> tuple[str, ...]:
    value = _spec(subnet).get("namespaces")
    return tuple(n for n in value if isinstance(n, str)) if isinstance(value, list) else ()


# A NAD's config parsed once per version of it, not once per pod review.
_nad_config: Derived[nad.NadConfig] = Derived(
    lambda obj, namespace, name: nad.parse_nad(namespace, name, _spec(obj))
)
