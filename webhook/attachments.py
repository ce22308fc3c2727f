"""A pod's annotations → the attachments that need addresses, each bound to one Subnet.

One attachment per kube-ovn-backed network: the primary network (`ovn`, when a default `ovn`
Subnet exists and Multus's default network is not overridden), Multus's default network, and
each `k8s.v1.cni.cncf.io/networks` item whose NAD uses kube-ovn. NADs that do not use kube-ovn
are someone else's business and are skipped.

A NAD attached more than once (`net@a,net@b`) has one provider but needs several addresses:
like Kube-OVN, such attachments are told apart by provider plus interface, so their annotation
keys use the provider `<provider>.<interface>` (`macvlan.default.a.kubernetes.io/ip_address`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from allocator import annotations as keys
from allocator import errors, nad, networks, pools
from webhook.cache import Object
from webhook.store import Claim, PodIdentity, Store

PRIMARY_INTERFACE = "eth0"


@dataclass(frozen=True)
class Attachment:
    """One interface that needs addresses: the claim, and the provider its annotation keys use."""

    key_provider: str
    claim: Claim


@dataclass(frozen=True)
class _Wanted:
    provider: str
    interface: str
    selection: networks.NetworkSelection | None


def identity(pod: Object, namespace: str, name: str = "") -> PodIdentity:
    """The pod's identity at admission (name "" with generateName; the controller owner's kind/UID)."""
    meta = pod.get("metadata") or {}
    controller = next((ref for ref in meta.get("ownerReferences") or [] if ref.get("controller")), None) or {}
    kind = controller.get("kind", "")
    return PodIdentity(
        namespace=namespace,
        name=meta.get("name") or name,
        generate_name=meta.get("generateName") or "",
        owner_kind=kind,
        owner_uid=controller.get("uid", "") if kind == "StatefulSet" else "",
    )


def resolve(pod: Object, who: PodIdentity, store: Store) -> list[Attachment]:
    """Every attachment of `pod` that this IPAM serves, with its subnet and fixed wishes."""
    notes = (pod.get("metadata") or {}).get("annotations") or {}
    wanted: list[_Wanted] = []
    default_network = notes.get(keys.DEFAULT_NETWORK)
    if default_network is not None:
        selection = networks.parse_default_network(default_network)
        provider = _provider(store, selection)
        if provider is not None:
            wanted.append(_Wanted(provider, PRIMARY_INTERFACE, selection))
    elif _primary_subnet(store, who.namespace, notes) is not None:
        wanted.append(_Wanted(keys.PRIMARY_PROVIDER, PRIMARY_INTERFACE, None))
    for index, selection in enumerate(
        networks.parse_networks(notes.get(keys.NETWORKS, ""), pod_namespace=who.namespace), start=1
    ):
        provider = _provider(store, selection)
        if provider is not None:
            wanted.append(_Wanted(provider, selection.interface or f"net{index}", selection))
    repeated = Counter(w.provider for w in wanted)
    ordinal = pools.statefulset_ordinal(who.name) if who.owner_kind == "StatefulSet" and who.name else None
    attachments = []
    for want in wanted:
        key_provider = want.provider if repeated[want.provider] == 1 else f"{want.provider}.{want.interface}"
        inputs = keys.provider_annotations(notes, key_provider)
        subnet = _subnet(store, who, want.provider, inputs.get(keys.LOGICAL_SWITCH), notes)
        claim = Claim(
            subnet=subnet,
            provider=want.provider,
            interface=want.interface,
            mac=inputs.get(keys.MAC_ADDRESS) or (want.selection.mac if want.selection else None) or None,
            ordinal=ordinal,
            **_addresses(store, subnet, key_provider, inputs, want.selection),
        )
        attachments.append(Attachment(key_provider, claim))
    return attachments


def _provider(store: Store, selection: networks.NetworkSelection) -> str | None:
    """The NAD's provider when it uses kube-ovn, else None (another IPAM serves it)."""
    found = store.fetch_nad(selection.namespace, selection.name)
    if found is None:
        raise errors.NadError(
            f"NetworkAttachmentDefinition {selection.namespace}/{selection.name} does not exist; "
            "create it before the pod or remove it from the pod's networks"
        )
    config = nad.parse_nad(selection.namespace, selection.name, found.get("spec") or {})
    return config.provider if config.uses_kube_ovn else None


def _primary_subnet(store: Store, namespace: str, notes: dict[str, str]) -> Object | None:
    """The Subnet serving `ovn` for this pod: only when a default `ovn` Subnet exists at all."""
    ovn = store.subnets_for_provider(keys.PRIMARY_PROVIDER)
    default = [s for s in ovn if (s.get("spec") or {}).get("default") is True]
    if not default:
        return None
    named = keys.provider_annotations(notes, keys.PRIMARY_PROVIDER).get(keys.LOGICAL_SWITCH)
    if named:
        return store.subnet(named) or default[0]
    bound = [s for s in ovn if namespace in ((s.get("spec") or {}).get("namespaces") or [])]
    return (bound or default)[0]


def _subnet(store: Store, who: PodIdentity, provider: str, named: str | None, notes: dict[str, str]) -> str:
    """`logical_switch` first, else the Subnet bound to the provider; checked against namespaces."""
    if named:
        found = store.subnet(named)
        if found is None:
            store.state(named)  # live read on a cache miss; raises when it does not exist
            found = store.subnet(named)
        if found is None:
            raise errors.AllocatorError(f"subnet {named!r} does not exist; name an existing Subnet")
    elif provider == keys.PRIMARY_PROVIDER:
        found = _primary_subnet(store, who.namespace, notes)
    else:
        candidates = store.subnets_for(provider)
        if not candidates:
            raise errors.AllocatorError(
                f"no Subnet has provider {provider}; create a Subnet with spec.provider {provider} or "
                f"set {keys.key(provider, keys.LOGICAL_SWITCH)} to a Subnet name"
            )
        bound = [s for s in candidates if who.namespace in ((s.get("spec") or {}).get("namespaces") or [])]
        found = (bound or candidates)[0]
    assert found is not None
    name = found["metadata"]["name"]
    allowed = (found.get("spec") or {}).get("namespaces") or []
    if allowed and who.namespace not in allowed:
        raise errors.AllocatorError(
            f"subnet {name} is reserved for namespaces {', '.join(allowed)}; namespace {who.namespace} "
            "may not use it — pick another Subnet or add the namespace to its spec.namespaces"
        )
    return name


def _addresses(
    store: Store, subnet: str, key_provider: str, inputs: dict[str, str],
    selection: networks.NetworkSelection | None,
) -> dict:
    """Fixed addresses (`ip_address`, or Multus `ips` with their prefix checked), or pool wishes."""
    if inputs.get(keys.IP_ADDRESS):
        return {"fixed": keys.split_dual(inputs[keys.IP_ADDRESS])}
    if selection is not None and selection.ips:
        return {"fixed": tuple(_strip_prefix(store, subnet, text) for text in selection.ips)}
    if inputs.get(keys.IP_POOL):
        spec = pools.parse_ip_pool(inputs[keys.IP_POOL])
        if spec.ippool_name:
            return {"ippool": spec.ippool_name}
        return {"pool": tuple(spec.entries)}
    return {}


def _strip_prefix(store: Store, subnet: str, text: str) -> str:
    """Multus `ips` carry a prefix length; it must be the subnet's own for that family."""
    address, slash, prefix = text.partition("/")
    if not slash:
        return address
    expected = store.spec_of(subnet).prefix_of(address)  # OutOfRange names the subnet
    if prefix != str(expected):
        raise errors.InvalidAddress(
            f"ips entry {text} has prefix /{prefix} but subnet {subnet} is a /{expected}; "
            f"write {address}/{expected}"
        )
    return address
