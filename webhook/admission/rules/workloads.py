"""Workload rules (Deployment, ReplicaSet, StatefulSet, DaemonSet, Job, CronJob): the pod rules on
the pod template, plus what only the replica count reveals.

Decisions:
- A fixed address held by a pod of this same workload is not a conflict: on an UPDATE the old
  pods still hold it. "Of this workload" means a pod in the workload's namespace whose name (or
  generateName) starts with `<name>-` of the workload or of its controller (a Deployment's
  ReplicaSets name pods `<deployment>-<hash>-…`, a CronJob's Jobs `<cronjob>-<time>-…`).
- A fixed `ip_address` with more than one replica (Deployment/ReplicaSet/StatefulSet `replicas`,
  Job `parallelism`) is refused, and on a DaemonSet always: it runs one pod per node, and only
  one pod can hold an address. `ip_pool` is the way to give a workload fixed addresses.
- An `ip_pool` with fewer entries than replicas is allowed with a warning (the extra pods wait).
- A Deployment with a fixed address and the RollingUpdate strategy gets a warning: the surge pod
  cannot get the address the old pod still holds, so the rollout stalls; use Recreate.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from allocator import annotations as keys
from webhook.admission import errors
from webhook.admission.attachments import Attachment
from webhook.admission.rules import common, pods
from webhook.admission.subnetinfo import SubnetInfo

KINDS = (
    ("apps", "Deployment"),
    ("apps", "ReplicaSet"),
    ("apps", "StatefulSet"),
    ("apps", "DaemonSet"),
    ("batch", "Job"),
    ("batch", "CronJob"),
)


def check(context: common.Context) -> None:
    if context.operation not in ("CREATE", "UPDATE") or common.spec_unchanged(context):
        return
    kind = common.text(common.mapping(context.request.get("kind")).get("kind"))
    workload = context.obj
    name = common.name_of(workload) or context.name
    namespace = context.namespace
    body = common.spec(workload)
    template = _template(kind, body)
    annotations = common.string_annotations(common.meta(template))
    prefixes = tuple(f"{n}-" for n in (name, *_controller_names(workload)) if n)

    def owns(ip_object: Any) -> bool:
        held = common.spec(ip_object)
        pod = common.text(held.get("podName")) or common.text(held.get("generateName"))
        return held.get("namespace") == namespace and pod.startswith(prefixes)

    found = pods.check_annotations(context, annotations, namespace=namespace, owns=owns)
    replicas = _replicas(kind, body)
    subject = f"{kind} {namespace}/{name}"
    for attachment in found:
        _check_fixed(attachment, annotations, kind=kind, subject=subject, replicas=replicas)
        _warn_small_pool(context, attachment, annotations, subject=subject, replicas=replicas)
        if kind == "Deployment" and _fixed_value(attachment, annotations) and _rolling(body):
            context.warn(
                f"{subject} fixes {attachment.key(keys.IP_ADDRESS)} with the RollingUpdate strategy, whose "
                "surge pod cannot get the address the old pod still holds; set strategy.type: Recreate"
            )


def _template(kind: str, body: Mapping[str, Any]) -> Mapping[str, Any]:
    if kind == "CronJob":
        job = common.spec(common.mapping(body.get("jobTemplate")))
        return common.mapping(job.get("template"))
    return common.mapping(body.get("template"))


def _controller_names(workload: Mapping[str, Any]) -> list[str]:
    owners = common.meta(workload).get("ownerReferences")
    if not isinstance(owners, list):
        return []
    return [common.text(common.mapping(o).get("name")) for o in owners if common.mapping(o).get("controller")]


def _replicas(kind: str, body: Mapping[str, Any]) -> int | None:
    """Pods running at once; None for a DaemonSet (one per node, unknowable here)."""
    if kind == "DaemonSet":
        return None
    if kind in ("Job", "CronJob"):
        job = common.spec(common.mapping(body.get("jobTemplate"))) if kind == "CronJob" else body
        value = job.get("parallelism", 1)
    else:
        value = body.get("replicas", 1)
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 1


def _fixed_value(attachment: Attachment, annotations: Mapping[str, str]) -> str:
    value = annotations.get(attachment.key(keys.IP_ADDRESS), "")
    if not value and attachment.selection is not None:
        value = ",".join(attachment.selection.ips)
    return value


def _check_fixed(
    attachment: Attachment, annotations: Mapping[str, str], *, kind: str, subject: str, replicas: int | None
) -> None:
    value = _fixed_value(attachment, annotations)
    if not value or (replicas is not None and replicas <= 1):
        return
    pool_key = attachment.key(keys.IP_POOL)
    if replicas is None:
        raise errors.forbidden(
            f"{subject} fixes {attachment.key(keys.IP_ADDRESS)} to {value}, but a {kind} runs a pod on "
            f"every node and only one pod can hold an address; list one address per node in {pool_key}"
        )
    raise errors.forbidden(
        f"{subject} has {replicas} replicas but fixes {attachment.key(keys.IP_ADDRESS)} to {value}, which "
        f"only one pod can hold; use {pool_key} with at least {replicas} addresses, or one replica"
    )


def _warn_small_pool(
    context: common.Context,
    attachment: Attachment,
    annotations: Mapping[str, str],
    *,
    subject: str,
    replicas: int | None,
) -> None:
    value = annotations.get(attachment.key(keys.IP_POOL))
    if value is None or replicas is None:
        return
    size = pods.pool_size(context, value, SubnetInfo.of(attachment.subnet))
    if size is not None and size < replicas:
        context.warn(
            f"{subject} has {replicas} replicas but {attachment.key(keys.IP_POOL)} has only {size} "
            f"address{'es' if size != 1 else ''}, so {replicas - size} pod(s) will wait for a free one"
        )


def _rolling(body: Mapping[str, Any]) -> bool:
    strategy = common.mapping(body.get("strategy"))
    return common.text(strategy.get("type")) in ("", "RollingUpdate")
