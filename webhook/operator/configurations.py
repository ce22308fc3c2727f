"""What `install` applies: our CRDs and both webhook configurations, built as plain dicts.

The builders (`validating_configuration`, `mutating_configuration`) are pure functions of the
server version and where the webhook lives (`Target`), so they are unit-tested without a cluster;
`webhook.operator.install` applies them.
"""

from __future__ import annotations

import base64
import dataclasses
import re
from collections.abc import Iterable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from webhook.cluster import objects

CONFIGURATION_NAME = "multinic-ipam"
VALIDATING_WEBHOOK = "validate.multinic-ipam.io"
MUTATING_WEBHOOK = "mutate.multinic-ipam.io"
VALIDATE_PATH = "/validate"
MUTATE_PATH = "/mutate"
# The mutating webhook writes IP objects (one API round trip each) before it answers; 10s leaves
# room for a few conflicts and retries while staying far below kubectl's and the API server's
# own request timeouts (and the 30s maximum).
TIMEOUT_SECONDS = 10
MANAGED_BY = {"app.kubernetes.io/managed-by": "multinic-ipam"}
# Namespaces the webhooks must never see carry this label. `kubernetes.io/metadata.name` exists
# only from 1.21, so install labels the namespaces itself to cover older servers too.
IGNORE_LABEL = "multinic-ipam.io/webhook"
IGNORE_VALUE = "ignore"
ALWAYS_EXCLUDED = ("kube-system",)
NAD_CRD = "network-attachment-definitions.k8s.cni.cncf.io"

# Pod annotations that make a pod ours: Multus selections, our per-provider inputs and outputs, and
# our reservation marker. On servers with matchConditions, other pods never reach the webhooks.
NETWORK_ANNOTATIONS = ("k8s.v1.cni.cncf.io/networks", "v1.multus-cni.io/default-network")
PROVIDER_FIELDS = ("ip_address", "mac_address", "ip_pool", "logical_switch", "routes", "allocated")
WORKLOAD_RESOURCES = {
    "apps": ("deployments", "replicasets", "statefulsets", "daemonsets"),
    "batch": ("jobs", "cronjobs"),
}
ServerVersion = tuple[int, int]


class InstallError(RuntimeError):
    """Installation cannot proceed; the message names the bad input or the failed step."""


@dataclasses.dataclass(frozen=True)
class Target:
    """Where the API server reaches the webhook: a URL, or a Service (namespace, name, port 443)."""

    url: str | None = None
    service_namespace: str | None = None
    service_name: str | None = None

    @classmethod
    def parse(cls, *, url: str | None = None, service: str | None = None) -> Target:
        if (url is None) == (service is None):
            raise InstallError("give exactly one of --url https://HOST:PORT or --service NAMESPACE/NAME")
        if url is not None:
            if not re.fullmatch(r"https://[^/\s?#]+(:\d+)?/?", url):
                raise InstallError(
                    f"--url {url!r} is not accepted; give the webhook's base address as "
                    "https://HOST:PORT (no path: /validate and /mutate are added)"
                )
            return cls(url=url.rstrip("/"))
        assert service is not None
        namespace, _, name = service.partition("/")
        dns_label = r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?"
        if not (re.fullmatch(dns_label, namespace) and re.fullmatch(dns_label, name)):
            raise InstallError(
                f"--service {service!r} is not accepted; give NAMESPACE/NAME of the webhook's Service, "
                "both DNS-1123 labels (for example multinic-ipam/multinic-ipam-webhook)"
            )
        return cls(service_namespace=namespace, service_name=name)

    def client_config(self, path: str, ca_bundle: bytes) -> dict[str, Any]:
        config: dict[str, Any] = {"caBundle": base64.b64encode(ca_bundle).decode()}
        if self.url is not None:
            config["url"] = f"{self.url}{path}"
        else:
            config["service"] = {
                "namespace": self.service_namespace,
                "name": self.service_name,
                "path": path,
                "port": 443,
            }
        return config

    def excluded_namespaces(self) -> tuple[str, ...]:
        """kube-system, plus the webhook's own namespace: a webhook must not guard its own pods."""
        own = (self.service_namespace,) if self.service_namespace else ()
        return tuple(dict.fromkeys((*ALWAYS_EXCLUDED, *own)))


# -- CRDs ----------------------------------------------------------------------------------------


def load_crds() -> list[dict[str, Any]]:
    """The CRD manifests shipped in `webhook/crds/`, sorted by name."""
    folder = resources.files("webhook") / "crds"
    documents = []
    for entry in sorted(folder.iterdir(), key=lambda item: item.name):
        if entry.name.endswith(".yaml"):
            documents.append(yaml.safe_load(entry.read_text()))
    return documents


# -- webhook configurations ------------------------------------------------------------------------


def namespace_selector(excluded: Sequence[str], version: ServerVersion) -> dict[str, Any]:
    """Select every namespace but the excluded ones: by our label, and by name from 1.21 on."""
    expressions: list[dict[str, Any]] = [
        {"key": IGNORE_LABEL, "operator": "NotIn", "values": [IGNORE_VALUE]}
    ]
    if version >= (1, 21):
        expressions.append(
            {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": list(excluded)}
        )
    return {"matchExpressions": expressions}


def _rule(group: str, resources_: Iterable[str], operations: Sequence[str], scope: str) -> dict[str, Any]:
    return {
        "apiGroups": [group],
        "apiVersions": ["*"],
        "operations": list(operations),
        "resources": list(resources_),
        "scope": scope,
    }


def validating_rules() -> list[dict[str, Any]]:
    create_update = ("CREATE", "UPDATE")
    with_delete = ("CREATE", "UPDATE", "DELETE")
    return [
        _rule(objects.NAD_GROUP, [objects.NADS], create_update, "Namespaced"),
        _rule(objects.GROUP, [objects.SUBNETS, objects.IPPOOLS], with_delete, "Cluster"),
        _rule("", [objects.PODS], create_update, "Namespaced"),
        *(_rule(group, names, create_update, "Namespaced") for group, names in WORKLOAD_RESOURCES.items()),
    ]


def mutating_rules() -> list[dict[str, Any]]:
    return [_rule("", [objects.PODS], ("CREATE",), "Namespaced")]


def _annotations_ours(metadata: str) -> str:
    """CEL: the metadata at `metadata` carries one of our annotations."""
    keys = " || ".join(f"k == '{key}'" for key in (*NETWORK_ANNOTATIONS, objects.RESERVATION_ANNOTATION))
    suffix = "|".join(PROVIDER_FIELDS)
    return (
        f"(has({metadata}.annotations) && {metadata}.annotations.exists(k, {keys} || "
        f"k.matches('\\\\.kubernetes\\\\.io/({suffix})$')))"
    )


def pod_match_expression() -> str:
    """CEL for matchConditions: pods (new or old object) and pod templates carrying our annotations.

    Anything that is not a pod or a workload (NADs, Subnets, IPPools) always matches. The old pod
    counts too, so removing our annotations from a pod is still reviewed. Guards use
    `request.operation` rather than `object != null`: pods and workloads are only registered for
    CREATE and UPDATE, and a comparison with null is what older CEL evaluators trip over (an error
    in a match condition would fall back to failurePolicy, which is Fail).
    """
    pod = _annotations_ours("object.metadata")
    old_pod = f"(request.operation == 'UPDATE' && {_annotations_ours('oldObject.metadata')})"
    template = "object.spec.template"
    workload = f"(has({template}) && has({template}.metadata) && {_annotations_ours(template + '.metadata')})"
    cron = "object.spec.jobTemplate"
    cronjob = (
        f"(has({cron}) && has({cron}.spec) && has({cron}.spec.template) && "
        f"has({cron}.spec.template.metadata) && {_annotations_ours(cron + '.spec.template.metadata')})"
    )
    templated = ", ".join(f"'{name}'" for name in (*WORKLOAD_RESOURCES["apps"], "jobs"))
    return (
        f"request.resource.resource == 'pods' ? ({pod} || {old_pod}) : "
        f"request.resource.resource == 'cronjobs' ? {cronjob} : "
        f"request.resource.resource in [{templated}] ? {workload} : true"
    )


def match_conditions(version: ServerVersion, *, all_pods: bool = False) -> list[dict[str, str]] | None:
    """matchConditions for servers that have them (1.28 on); None before, or when every pod must come.

    `all_pods` is for clusters where a Subnet with provider `ovn` and `default: true` gives pods
    without any annotation their primary address: those pods must reach the mutating webhook too.
    """
    if version < (1, 28) or all_pods:
        return None
    return [{"name": "multinic-ipam-annotations", "expression": pod_match_expression()}]


def _webhook(
    name: str,
    path: str,
    rules: list[dict[str, Any]],
    *,
    target: Target,
    ca_bundle: bytes,
    version: ServerVersion,
    side_effects: str,
    all_pods: bool = False,
) -> dict[str, Any]:
    hook: dict[str, Any] = {
        "name": name,
        "clientConfig": target.client_config(path, ca_bundle),
        "rules": rules,
        "admissionReviewVersions": ["v1"],
        "failurePolicy": "Fail",
        "matchPolicy": "Equivalent",
        "sideEffects": side_effects,
        "timeoutSeconds": TIMEOUT_SECONDS,
        "namespaceSelector": namespace_selector(target.excluded_namespaces(), version),
        "objectSelector": {},
    }
    conditions = match_conditions(version, all_pods=all_pods)
    if conditions is not None:
        hook["matchConditions"] = conditions
    return hook


def validating_configuration(
    *, target: Target, ca_bundle: bytes, version: ServerVersion, all_pods: bool = False
) -> dict[str, Any]:
    hook = _webhook(
        VALIDATING_WEBHOOK,
        VALIDATE_PATH,
        validating_rules(),
        target=target,
        ca_bundle=ca_bundle,
        version=version,
        side_effects="None",
        all_pods=all_pods,
    )
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": CONFIGURATION_NAME, "labels": dict(MANAGED_BY)},
        "webhooks": [hook],
    }


def mutating_configuration(
    *, target: Target, ca_bundle: bytes, version: ServerVersion, all_pods: bool = False
) -> dict[str, Any]:
    hook = _webhook(
        MUTATING_WEBHOOK,
        MUTATE_PATH,
        mutating_rules(),
        target=target,
        ca_bundle=ca_bundle,
        version=version,
        side_effects="NoneOnDryRun",
        all_pods=all_pods,
    )
    # Our patch only adds annotations, which no later mutating webhook is expected to undo.
    hook["reinvocationPolicy"] = "Never"
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": CONFIGURATION_NAME, "labels": dict(MANAGED_BY)},
        "webhooks": [hook],
    }


def read_ca_bundle(cert_dir: Path) -> bytes:
    """`ca.crt` from the certificate folder, checked to be PEM so a wrong folder fails here."""
    path = Path(cert_dir) / "ca.crt"
    try:
        data = path.read_bytes()
    except OSError as error:
        raise InstallError(
            f"cannot read {path} ({error.strerror}); --cert-dir must hold the ca.crt written by "
            "`multinic-ipam certs`"
        ) from error
    if b"-----BEGIN CERTIFICATE-----" not in data:
        raise InstallError(f"{path} is not a PEM certificate; --cert-dir must hold the CA's ca.crt")
    return data


def describe_scope(version: ServerVersion, target: Target, *, all_pods: bool = False) -> str:
    """One line telling the operator which requests will reach the webhooks on this server."""
    excluded = ", ".join(target.excluded_namespaces())
    if all_pods:
        return (
            f"API server {version[0]}.{version[1]}: --all-pods, so every pod and workload outside "
            f"{excluded} reaches the webhooks (needed for a default provider-ovn Subnet)"
        )
    if match_conditions(version) is not None:
        return (
            f"API server {version[0]}.{version[1]}: only pods and workloads carrying Multus or "
            f"multinic-ipam annotations reach the webhooks (matchConditions); {excluded} never do"
        )
    return (
        f"API server {version[0]}.{version[1]}: no matchConditions before 1.28, so every pod and "
        f"workload outside {excluded} reaches the webhooks"
    )
