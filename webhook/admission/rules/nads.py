"""NetworkAttachmentDefinition rules: the config must be readable here (not an empty spec whose
config sits in files on the nodes, not broken JSON), and a NAD that uses kube-ovn must declare
exactly the provider derived from its name, with an absolute `server_socket`. The sentences
come from `allocator.nad`; NADs that do not use kube-ovn are the cluster CNI's business."""

from __future__ import annotations

from allocator import annotations as keys
from allocator import nad
from allocator.errors import NadError
from webhook.admission import errors
from webhook.admission.rules import common


def check(context: common.Context) -> None:
    if context.operation not in ("CREATE", "UPDATE") or common.spec_unchanged(context):
        return
    namespace = context.namespace
    name = common.name_of(context.obj) or context.name
    spec = common.mapping(context.obj.get("spec")) if "spec" in context.obj else None
    try:
        config = nad.parse_nad(namespace, name, spec)
    except NadError as error:
        raise errors.invalid(str(error)) from None
    if not config.uses_kube_ovn or config.provider is None:
        return
    provider = config.provider
    if not context.view.subnets_for_provider(provider):
        context.warn(
            f"no Subnet has provider {provider} yet, so pods attaching {namespace}/{name} are refused unless "
            f"they name one in {keys.key(provider, keys.LOGICAL_SWITCH)}; create a Subnet with "
            f"spec.provider: {provider}"
        )
