"""Validating admission: `review(request, *, view) -> Verdict`, pure over the request and a
`ClusterView`.

Each kind has its rules in `webhook.admission.rules.<kind>`; a rule raises an `AdmissionError`
(`webhook.admission.errors`, which carries its HTTP status) with one sentence
(what is wrong, the offending value, what would be accepted) or records warnings for what is
allowed but dubious. Kinds we have no rules for are allowed untouched.
"""

from __future__ import annotations

from collections.abc import Callable

from webhook.admission import errors
from webhook.admission.attachments import LiveReads
from webhook.admission.reviews import AdmissionRequest, Verdict
from webhook.admission.rules import common, ippools, nads, pods, subnets, workloads
from webhook.cluster.view import ClusterView

Rule = Callable[[common.Context], None]

RULES: dict[tuple[str, str], Rule] = {
    ("k8s.cni.cncf.io", "NetworkAttachmentDefinition"): nads.check,
    ("kubeovn.io", "Subnet"): subnets.check,
    ("kubeovn.io", "IPPool"): ippools.check,
    ("", "Pod"): pods.check,
    **{(group, kind): workloads.check for group, kind in workloads.KINDS},
}


def review(
    request: AdmissionRequest,
    *,
    view: ClusterView,
    system_users: frozenset[str] = frozenset(),
    live: LiveReads | None = None,
) -> Verdict:
    """Decide one admission request.

    `system_users` are the usernames (the webhook's own service account,
    `system:serviceaccount:<ns>:<sa>`) allowed to change a pod's allocation annotations after
    creation; everyone else is refused, or they could point the CNI at another pod's address.
    `live` (the mutating webhook's `Store`) reads a NAD or Subnet the cache has not seen yet, as
    mutation does, so a NAD applied together with its pod is not refused here after mutation
    already allocated for it.
    """
    context = common.Context(request, view=view, system_users=system_users, live=live)
    kind = common.mapping(context.request.get("kind"))
    rule = RULES.get((common.text(kind.get("group")), common.text(kind.get("kind"))))
    if rule is None:
        return Verdict.allow()
    try:
        rule(context)
    except errors.REFUSALS as denial:  # also TryAgain: a live read the API server did not answer
        return Verdict.refuse(denial)
    return Verdict.allow(warnings=context.warnings)
