"""Installation: the CRDs and both webhook configurations, by server-side apply, idempotently.

Each object is applied whole (PATCH `application/apply-patch+yaml`, field manager `multinic-ipam`,
`force`: install owns what it writes) through the one transport. The server merges, so a second
run writes nothing; comparing the resourceVersion before and after says which objects changed.
What is applied is built in `webhook.operator.configurations`.
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from webhook.cluster.errors import ApiError, NotFound
from webhook.cluster.routes import CRDS, MUTATING_WEBHOOKS, NAMESPACES, ROUTES, VALIDATING_WEBHOOKS
from webhook.cluster.transport import APPLY_PATCH, Transport
from webhook.operator.configurations import (
    IGNORE_LABEL,
    IGNORE_VALUE,
    NAD_CRD,
    InstallError,
    ServerVersion,
    Target,
    load_crds,
    mutating_configuration,
    read_ca_bundle,
    validating_configuration,
)

FIELD_MANAGER = "multinic-ipam"
TIMEOUT = 30.0  # seconds for one request


@dataclasses.dataclass(frozen=True)
class Change:
    """What install did to one object: `created`, `updated` or `unchanged`."""

    kind: str
    name: str
    action: str

    def __str__(self) -> str:
        return f"{self.kind} {self.name} {self.action}"


class _Applier:
    """Server-side apply of cluster-scoped objects; API errors become one-sentence InstallErrors."""

    def __init__(self, api_client: Any) -> None:
        self.transport = Transport.for_client(api_client, timeout=TIMEOUT)

    def call(self, method: str, path: str, body: Any = None, content_type: str = "application/json",
             query: Mapping[str, str] | None = None) -> dict[str, Any]:
        try:
            return self.transport.request(method, path, body, content_type, query)
        except ApiError as error:
            raise InstallError(f"{method} {path} failed: {error}") from error

    def get(self, path: str) -> dict[str, Any] | None:
        """The live object at `path`; None when it does not exist."""
        try:
            return self.transport.request("GET", path)
        except NotFound:
            return None
        except ApiError as error:
            raise InstallError(f"GET {path} failed: {error}") from error

    def apply(self, kind: str, desired: dict[str, Any]) -> Change:
        """Make `desired` live; created, updated, or unchanged (the apply wrote nothing)."""
        name = desired["metadata"]["name"]
        path = ROUTES[kind].at(name=name)
        live = self.get(path)
        applied = self.call("PATCH", path, desired, APPLY_PATCH, {"fieldManager": FIELD_MANAGER,
                                                                  "force": "true"})
        if live is None:
            action = "created"
        elif _version(applied) == _version(live):
            action = "unchanged"
        else:
            action = "updated"
        return Change(ROUTES[kind].kind, name, action)


def _version(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")


def server_version(api_client: Any) -> ServerVersion:
    """(major, minor) of the API server; minor strips suffixes like the `+` of `28+`."""
    info = _Applier(api_client).call("GET", "/version")
    major = int(re.sub(r"\D", "", str(info.get("major", ""))) or 0)
    minor = int(re.sub(r"\D.*", "", str(info.get("minor", ""))) or 0)
    return major, minor


def _established(crd: Mapping[str, Any]) -> bool:
    conditions = crd.get("status", {}).get("conditions") or []
    return any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions)


def apply_crds(api_client: Any, *, timeout: float = 60.0) -> list[Change]:
    """Apply our CRDs (Multus's only when absent) and wait until all are Established."""
    applier = _Applier(api_client)
    changes: list[Change] = []
    for crd in load_crds():
        name = crd["metadata"]["name"]
        if name == NAD_CRD and applier.get(ROUTES[CRDS].at(name=name)) is not None:
            changes.append(Change("CustomResourceDefinition", name, "unchanged"))
            continue
        changes.append(applier.apply(CRDS, crd))
    deadline = time.monotonic() + timeout
    for change in changes:
        while not _established(applier.get(ROUTES[CRDS].at(name=change.name)) or {}):
            if time.monotonic() > deadline:
                raise InstallError(
                    f"CustomResourceDefinition {change.name} was not Established within {timeout}s"
                )
            time.sleep(0.2)
    return changes


def label_excluded_namespaces(api_client: Any, names: Sequence[str]) -> list[Change]:
    """Label (creating if needed) the namespaces the webhooks must ignore."""
    applier = _Applier(api_client)
    return [
        applier.apply(NAMESPACES, {"apiVersion": "v1", "kind": "Namespace",
                                   "metadata": {"name": name, "labels": {IGNORE_LABEL: IGNORE_VALUE}}})
        for name in names
    ]


def install(api_client: Any, *, target: Target, cert_dir: Path, all_pods: bool = False) -> list[Change]:
    """Everything `multinic-ipam install` does, in order; returns one Change per object."""
    ca_bundle = read_ca_bundle(cert_dir)
    version = server_version(api_client)
    changes = apply_crds(api_client)
    changes += label_excluded_namespaces(api_client, target.excluded_namespaces())
    applier = _Applier(api_client)
    for kind, build in ((VALIDATING_WEBHOOKS, validating_configuration),
                        (MUTATING_WEBHOOKS, mutating_configuration)):
        changes.append(applier.apply(kind, build(target=target, ca_bundle=ca_bundle, version=version,
                                                 all_pods=all_pods)))
    return changes
