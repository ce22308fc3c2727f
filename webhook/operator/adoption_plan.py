"""`multinic-ipam adopt`'s plan: one `Row` per address (pod, interface, address, Subnet, action),
and per pod and attachment the writes that carry it out (`PodPlan`, `AttachmentPlan`).

`webhook.operator.adoption.plan` fills it, `webhook.operator.adopter.apply` carries it out,
`--dry-run` prints its rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from allocator import annotations as keys
from webhook.admission.attachments import Attachment
from webhook.cluster.cache import Object

HOLD = "hold"  # create the IP object (and annotate, bind)
HELD = "already held"  # nothing to do
BIND = "bind"  # our IP object exists for this pod but is not tied to its UID yet
ANNOTATE = "annotate"  # held, but the pod lacks our output annotations
CONFLICT = "conflict"  # not held by this pod; a sentence says why and what to do
SKIP = "skip"  # not ours to hold (pod gone, NAD not served)



@dataclass(frozen=True)
class Row:
    """One address of one pod's interface and what adopt does with it."""

    pod: str  # namespace/name
    interface: str
    address: str
    subnet: str  # "" when none
    action: str
    source: str  # network-status, IPPool ns/name, OverlappingRangeIPReservation ns/name
    note: str = ""

    def as_dict(self) -> dict[str, str]:
        return dict(self.__dict__)


@dataclass
class AttachmentPlan:
    """What to do for one attachment of one pod."""

    attachment: Attachment
    hold: list[str] = field(default_factory=list)  # addresses to lock with new IP objects
    held: list[str] = field(default_factory=list)  # addresses this pod's IP objects already hold
    unbound: list[str] = field(default_factory=list)  # names of those not bound to its UID yet
    mac: str | None = None  # as Multus reported it

    def missing_annotations(self, notes: Mapping[str, str]) -> bool:
        return any(self.attachment.key(f) not in notes for f in keys.OUTPUT_FIELDS)


@dataclass
class PodPlan:
    pod: Object
    attachments: list[AttachmentPlan] = field(default_factory=list)

    @property
    def ref(self) -> str:
        return pod_ref(self.pod)

    def needs_writes(self) -> bool:
        notes = notes_of(self.pod)
        return any(a.hold or a.unbound or (a.held and a.missing_annotations(notes)) for a in self.attachments)


@dataclass
class Plan:
    rows: list[Row] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    pods: list[PodPlan] = field(default_factory=list)

    @property
    def changes(self) -> bool:
        return any(p.needs_writes() for p in self.pods)


def age_of(pod: Object) -> tuple[str, str, str]:
    """Oldest first: creation time, then namespace and name."""
    meta = meta_of(pod)
    return meta.get("creationTimestamp") or "", meta.get("namespace") or "", meta.get("name") or ""


def meta_of(obj: Object) -> Mapping:
    return obj.get("metadata") or {}


def notes_of(pod: Object) -> Mapping[str, str]:
    return meta_of(pod).get("annotations") or {}


def uid_of(pod: Object) -> str:
    return meta_of(pod).get("uid") or ""


def pod_ref(pod: Object) -> str:
    """`namespace/name`, as rows and sentences show a pod."""
    meta = meta_of(pod)
    return f"{meta.get('namespace', '')}/{meta.get('name', '')}"
