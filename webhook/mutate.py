"""Mutating Pod CREATE: decide every address the pod will have and write it into its annotations.

Everything is checked before anything is locked, so a refusal leaks nothing; then each attachment
is reserved (IP object creates); if a later one fails, what this request created is deleted again.
The answer is one JSONPatch that writes the output annotations (user-supplied ones are overwritten)
and the reservation token that binds a not-yet-existing pod to its IP objects.
"""

from __future__ import annotations

import ipaddress

from allocator import annotations as keys
from allocator import errors
from webhook import attachments, objects, reviews
from webhook.store import Held, PodIdentity, Store, TryAgain


def review(request: reviews.AdmissionRequest, *, store: Store) -> reviews.Verdict:
    """The verdict for one AdmissionRequest; only Pod CREATE is mutated, everything else passes."""
    if request["kind"].get("kind") != "Pod" or request["operation"] != "CREATE" or request.get("subResource"):
        return reviews.Verdict.allow()
    pod = request.get("object") or {}
    namespace = request.get("namespace") or (pod.get("metadata") or {}).get("namespace") or "default"
    who = attachments.identity(pod, namespace, request.get("name") or "")
    try:
        wanted = attachments.resolve(pod, who, store)
        if not wanted:
            return reviews.Verdict.allow()
        for attachment in wanted:
            store.check(who, attachment.claim)
        held = _reserve_all(wanted, who, store, dry_run=bool(request.get("dryRun")))
    except TryAgain as error:
        return reviews.Verdict.deny(str(error), code=429)
    except errors.AllocatorError as error:
        return reviews.Verdict.deny(str(error))
    notes = {objects.RESERVATION_ANNOTATION: who.token}
    for attachment, got in zip(wanted, held, strict=True):
        notes.update(output_annotations(attachment.key_provider, got, store))
    return reviews.Verdict.allow(patch=annotation_patch(pod, notes))


def _reserve_all(
    wanted: list[attachments.Attachment], who: PodIdentity, store: Store, *, dry_run: bool
) -> list[Held]:
    """Reserve every attachment in order; on any failure give back what this request holds."""
    held: list[Held] = []
    try:
        for attachment in wanted:
            held.append(store.reserve(who, attachment.claim, dry_run=dry_run))
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
