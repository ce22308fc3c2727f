"""Installation: the CRDs and both webhook configurations, idempotently.

The builders (`validating_configuration`, `mutating_configuration`) are pure functions of the
server version and where the webhook lives, so they are unit-tested without a cluster; `install`
applies them. Applying compares what we want with what the server has (ignoring fields the server
defaults), so a second run changes nothing and says so.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import re
import time
from collections.abc import Iterable, Mapping, Sequence
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
class Change:
    """What install did to one object: `created`, `updated`, `unchanged` or `kept` (not ours)."""

    kind: str
    name: str
    action: str

    def __str__(self) -> str:
        return f"{self.kind} {self.name} {self.action}"


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


# -- comparing with what the server has ------------------------------------------------------------


def is_subset(wanted: Any, live: Any) -> bool:
    """True when every field of `wanted` is in `live` with the same value.

    Fields only the server has (defaults, status, metadata it manages) do not count, so an object
    read back after our own apply compares equal.
    """
    if isinstance(wanted, Mapping):
        return isinstance(live, Mapping) and all(
            key in live and is_subset(value, live[key]) for key, value in wanted.items()
        )
    if isinstance(wanted, list):
        return (
            isinstance(live, list)
            and len(wanted) == len(live)
            and all(is_subset(w, v) for w, v in zip(wanted, live, strict=True))
        )
    return bool(wanted == live)


def server_version(api_client: Any) -> ServerVersion:
    """(major, minor) of the API server; minor strips suffixes like the `+` of `28+`."""
    from kubernetes import client

    info = client.VersionApi(api_client).get_code()
    major = int(re.sub(r"\D", "", info.major) or 0)
    minor = int(re.sub(r"\D.*", "", info.minor) or 0)
    return major, minor


class _Applier:
    """Create-or-replace of cluster-scoped objects through raw JSON (no client model round trips)."""

    def __init__(self, api_client: Any) -> None:
        self.api_client = api_client

    def _call(self, method: str, path: str, body: Any = None) -> dict[str, Any] | None:
        """One request; a 404 on GET is None, any other error status an InstallError."""
        from kubernetes.client.exceptions import ApiException

        method, url, headers, payload, _post = self.api_client.param_serialize(
            method=method,
            resource_path=path,
            header_params={"Accept": "application/json", "Content-Type": "application/json"},
            body=body,
            auth_settings=["BearerToken"],
        )
        try:
            response = self.api_client.call_api(method, url, header_params=headers, body=payload)
        except ApiException as error:
            raise InstallError(f"{method} {path} failed: {error.reason}") from error
        data = response.read()
        if response.status == 404 and method == "GET":
            return None
        if response.status >= 300:
            raise InstallError(f"{method} {path} failed: HTTP {response.status} {_api_message(data)}")
        return dict(json.loads(data))

    def get(self, path: str) -> dict[str, Any] | None:
        return self._call("GET", path)

    def apply(self, collection: str, desired: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """Make `desired` live at `collection/<name>`; returns (action, live object)."""
        name = desired["metadata"]["name"]
        live = self.get(f"{collection}/{name}")
        if live is None:
            return "created", self._call("POST", collection, desired) or {}
        if is_subset(desired, live):
            return "unchanged", live
        body = json.loads(json.dumps(desired))
        body["metadata"]["resourceVersion"] = live["metadata"]["resourceVersion"]
        return "updated", self._call("PUT", f"{collection}/{name}", body) or {}


def _api_message(data: bytes) -> str:
    """The `message` of a Kubernetes Status body, or the body itself."""
    try:
        return str(json.loads(data).get("message"))
    except (TypeError, ValueError, AttributeError):
        return data.decode(errors="replace")[:300]


CRD_COLLECTION = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
VALIDATING_COLLECTION = "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations"
MUTATING_COLLECTION = "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations"


def _established(crd: Mapping[str, Any]) -> bool:
    conditions = crd.get("status", {}).get("conditions") or []
    return any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions)


def apply_crds(api_client: Any, *, timeout: float = 60.0) -> list[Change]:
    """Create or update our CRDs (Multus's only when absent) and wait until all are Established."""
    applier = _Applier(api_client)
    changes: list[Change] = []
    for crd in load_crds():
        name = crd["metadata"]["name"]
        if name == NAD_CRD and applier.get(f"{CRD_COLLECTION}/{name}") is not None:
            changes.append(Change("CustomResourceDefinition", name, "unchanged"))
            continue
        action, _ = applier.apply(CRD_COLLECTION, crd)
        changes.append(Change("CustomResourceDefinition", name, action))
    deadline = time.monotonic() + timeout
    for change in changes:
        while True:
            live = applier.get(f"{CRD_COLLECTION}/{change.name}") or {}
            if _established(live):
                break
            if time.monotonic() > deadline:
                raise InstallError(
                    f"CustomResourceDefinition {change.name} was not Established within {timeout}s"
                )
            time.sleep(0.2)
    return changes


def label_excluded_namespaces(api_client: Any, names: Sequence[str]) -> list[Change]:
    """Label (creating if needed) the namespaces the webhooks must ignore."""
    applier = _Applier(api_client)
    changes = []
    for name in names:
        path = f"/api/v1/namespaces/{name}"
        live = applier.get(path)
        if live is None:
            body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
            body["metadata"]["labels"] = {IGNORE_LABEL: IGNORE_VALUE}
            applier._call("POST", "/api/v1/namespaces", body)
            changes.append(Change("Namespace", name, "created"))
            continue
        labels = live.get("metadata", {}).get("labels") or {}
        if labels.get(IGNORE_LABEL) == IGNORE_VALUE:
            changes.append(Change("Namespace", name, "unchanged"))
            continue
        live["metadata"].setdefault("labels", {})[IGNORE_LABEL] = IGNORE_VALUE
        applier._call("PUT", path, live)
        changes.append(Change("Namespace", name, "updated"))
    return changes


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


def install(api_client: Any, *, target: Target, cert_dir: Path, all_pods: bool = False) -> list[Change]:
    """Everything `multinic-ipam install` does, in order; returns one Change per object."""
    ca_bundle = read_ca_bundle(cert_dir)
    version = server_version(api_client)
    changes = apply_crds(api_client)
    changes += label_excluded_namespaces(api_client, target.excluded_namespaces())
    applier = _Applier(api_client)
    for collection, build in (
        (VALIDATING_COLLECTION, validating_configuration),
        (MUTATING_COLLECTION, mutating_configuration),
    ):
        desired = build(target=target, ca_bundle=ca_bundle, version=version, all_pods=all_pods)
        action, _ = applier.apply(collection, desired)
        changes.append(Change(desired["kind"], CONFIGURATION_NAME, action))
    return changes
