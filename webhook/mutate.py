"""Mutating Pod CREATE: decide every address the pod will have and write it into its annotations.

Everything is checked before anything is locked, so a refusal leaks nothing; then each attachment
is reserved (IP object creates); if a later one fails, what this request created is deleted again.
The answer is one JSONPatch that writes the output annotations (user-supplied ones are overwritten)
and the reservation token that binds a not-yet-existing pod to its IP objects.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from allocator import annotations as keys
from allocator import errors, networks, pools
from webhook.admission import attachments, reviews, subnet_fit
from webhook.admission import errors as refusals
from webhook.admission.subnetinfo import SubnetInfo
from webhook.cluster import objects
from webhook.cluster.cache import Object
from webhook.cluster.claims import Claim, Held, PodIdentity
from webhook.cluster.store import Store


@dataclass(frozen=True)
class Wanted:
    """One resolved attachment and what the pod asks of its Subnet."""

    attachment: attachments.Attachment
    claim: Claim

    @property
    def key_provider(self) -> str:
        return self.attachment.key_provider


def review(request: reviews.AdmissionRequest, *, store: Store) -> reviews.Verdict:
    """The verdict for one AdmissionRequest; only Pod CREATE is mutated, everything else passes."""
    if request["kind"].get("kind") != "Pod" or request["operation"] != "CREATE" or request.get("subResource"):
        return reviews.Verdict.allow()
    pod = request.get("object") or {}
    namespace = request.get("namespace") or (pod.get("metadata") or {}).get("namespace") or "default"
    who = identity(pod, namespace, request.get("name") or "")
    notes = (pod.get("metadata") or {}).get("annotations") or {}
    try:
        # warnings are the validating webhook's to give; it resolves the same attachments
        found = attachments.resolve(store, notes, namespace, live=store)
        if not found:
            return reviews.Verdict.allow()
        for attachment in found:  # refusals the validating webhook would give later, before any lock
            subnet_fit.check(attachment, SubnetInfo.of(attachment.subnet), attachment.fields(notes))
        wanted = [Wanted(a, claim(a, who, notes, store)) for a in found]
        for want in wanted:
            store.check(who, want.claim)
        held = _reserve_all(wanted, who, store, dry_run=bool(request.get("dryRun")))
    except refusals.REFUSALS as error:  # each carries its HTTP status
        return reviews.Verdict.refuse(error)
    out = {objects.RESERVATION_ANNOTATION: who.token}
    for want, got in zip(wanted, held, strict=True):
        out.update(output_annotations(want.key_provider, got, store))
    return reviews.Verdict.allow(patch=annotation_patch(pod, out))


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


def claim(attachment: attachments.Attachment, who: PodIdentity, notes: dict[str, str], store: Store) -> Claim:
    """What `attachment` asks of its Subnet: fixed addresses and MAC, or pool wishes."""
    inputs = attachment.fields(notes)
    selection = attachment.selection
    ordinal = pools.statefulset_ordinal(who.name) if who.owner_kind == "StatefulSet" and who.name else None
    return Claim(
        subnet=attachment.subnet_name,
        provider=attachment.provider,
        interface=attachment.interface,
        mac=inputs.get(keys.MAC_ADDRESS) or (selection.mac if selection else None) or None,
        ordinal=ordinal,
        families=keys.parse_ip_family(inputs[keys.IP_FAMILY]) if inputs.get(keys.IP_FAMILY) else None,
        namespace=who.namespace,
        **_addresses(store, attachment.subnet_name, inputs, selection),
    )


def _addresses(
    store: Store, subnet: str, inputs: dict[str, str], selection: networks.NetworkSelection | None
) -> dict:
    """Fixed addresses (`ip_address`, or Multus `ips` with their prefix checked), or pool wishes."""
    if inputs.get(keys.IP_ADDRESS):
        return {"fixed": keys.split_dual(inputs[keys.IP_ADDRESS])}
    if selection is not None and selection.ips:
        return {"fixed": tuple(_strip_prefix(store, subnet, text) for text in selection.ips)}
    if inputs.get(keys.IP_POOL):
        spec = pools.parse_ip_pool(inputs[keys.IP_POOL])
        if spec.ippool_name:
            store.fetch_ippool(spec.ippool_name)  # applied with its pod, it may not be cached yet
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


def _reserve_all(wanted: list[Wanted], who: PodIdentity, store: Store, *, dry_run: bool) -> list[Held]:
    """Reserve every attachment in order; on any failure give back what this request holds."""
    held: list[Held] = []
    try:
        for want in wanted:
            held.append(store.reserve(who, want.claim, dry_run=dry_run))
    except Exception:
        for got in held:
            store.release(got)
        raise
    return held


def output_annotations(provider: str, held: Held, store: Store) -> dict[str, str]:
    """`ip_address`, `mac_address`, `cidr`, `gateway`, `logical_switch`, `allocated` of one attachment."""
    spec = store.spec_of(held.subnet)
    families = {ipaddress.ip_address(address).version for address in held.addresses}
    cidr = ",".join(str(block) for block in spec.cidrs if block.version in families)
    gateway = ",".join(str(gw) for gw in spec.gateways if gw.version in families)
    return {
        keys.key(provider, keys.IP_ADDRESS): ",".join(held.addresses),
        keys.key(provider, keys.MAC_ADDRESS): held.mac,
        keys.key(provider, keys.CIDR): cidr,
        keys.key(provider, keys.GATEWAY): gateway,
        keys.key(provider, keys.LOGICAL_SWITCH): held.subnet,
        keys.key(provider, keys.ALLOCATED): "true",
    }


def annotation_patch(pod: dict, notes: dict[str, str]) -> list[dict]:
    """One JSONPatch setting `notes`; creates the annotations map when the pod has none."""
    if not (pod.get("metadata") or {}).get("annotations"):
        return [{"op": "add", "path": "/metadata/annotations", "value": dict(notes)}]
    return [
        {"op": "add", "path": f"/metadata/annotations/{_escape(name)}", "value": value}
        for name, value in notes.items()
    ]


def _escape(name: str) -> str:
    """JSON Pointer escaping (RFC 6901): `~` → `~0`, `/` → `~1`."""
    return name.replace("~", "~0").replace("/", "~1")
