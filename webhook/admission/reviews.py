"""AdmissionReview v1: the request the API server sends, the verdict we reach, the response we return.

Framework-free, so `validate.py` and `mutate.py` stay pure functions `request -> Verdict` and the
Flask layer only parses, dispatches and serialises. A review that is not a well-formed
AdmissionReview v1 raises `BadReview`, which the app answers with HTTP 400 and one sentence.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, NotRequired, TypedDict

from allocator.errors import AllocatorError
from webhook import codec
from webhook.admission import errors

API_VERSION = "admission.k8s.io/v1"
KIND = "AdmissionReview"
OPERATIONS = ("CREATE", "UPDATE", "DELETE", "CONNECT")

Operation = Literal["CREATE", "UPDATE", "DELETE", "CONNECT"]
JsonPatch = list[dict[str, Any]]


class GroupVersionKind(TypedDict):
    group: str
    version: str
    kind: str


class GroupVersionResource(TypedDict):
    group: str
    version: str
    resource: str


class UserInfo(TypedDict, total=False):
    username: str
    uid: str
    groups: list[str]
    extra: dict[str, list[str]]


class AdmissionRequest(TypedDict):
    uid: str
    kind: GroupVersionKind
    resource: NotRequired[GroupVersionResource]
    subResource: NotRequired[str]
    requestKind: NotRequired[GroupVersionKind]
    requestResource: NotRequired[GroupVersionResource]
    requestSubResource: NotRequired[str]
    name: NotRequired[str]  # absent on CREATE with generateName
    namespace: NotRequired[str]  # absent for cluster-scoped objects
    operation: Operation
    userInfo: NotRequired[UserInfo]
    object: NotRequired[dict[str, Any] | None]
    oldObject: NotRequired[dict[str, Any] | None]
    dryRun: NotRequired[bool]
    options: NotRequired[dict[str, Any] | None]


class Status(TypedDict):
    code: int
    message: str


class AdmissionResponse(TypedDict):
    uid: str
    allowed: bool
    status: NotRequired[Status]
    warnings: NotRequired[list[str]]
    patch: NotRequired[str]  # base64 of the JSON-encoded JSONPatch
    patchType: NotRequired[Literal["JSONPatch"]]


class AdmissionReview(TypedDict):
    apiVersion: str
    kind: str
    request: NotRequired[AdmissionRequest]
    response: NotRequired[AdmissionResponse]


class BadReview(ValueError):  # noqa: N818 - the name is the interface other modules use
    """The body is not a well-formed AdmissionReview v1 request (HTTP 400)."""

    status = 400


@dataclass(frozen=True)
class Verdict:
    """What a webhook decided about one request."""

    allowed: bool
    message: str = ""
    code: int = errors.FORBIDDEN
    warnings: tuple[str, ...] = ()
    patch: JsonPatch | None = None

    @classmethod
    def allow(cls, warnings: Sequence[str] = (), patch: JsonPatch | None = None) -> Verdict:
        return cls(allowed=True, code=200, warnings=tuple(warnings), patch=patch)

    @classmethod
    def deny(cls, message: str, code: int = errors.FORBIDDEN) -> Verdict:
        return cls(allowed=False, message=message, code=code)

    @classmethod
    def refuse(cls, error: errors.AdmissionError | AllocatorError) -> Verdict:
        """The denial of a refusal (`errors.REFUSALS`): its sentence, with the status it carries."""
        return cls.deny(str(error), code=errors.code_of(error))


def parse_review(body: Any) -> AdmissionRequest:
    """The request inside an AdmissionReview v1 body, checked field by field."""
    if not isinstance(body, dict):
        raise BadReview(f"body must be a JSON object (an AdmissionReview), not {_json_type(body)}")
    if body.get("apiVersion") != API_VERSION:
        raise BadReview(f"apiVersion {body.get('apiVersion')!r} is not supported; send {API_VERSION!r}")
    if body.get("kind") != KIND:
        raise BadReview(f"kind {body.get('kind')!r} is not supported; send {KIND!r}")
    request = body.get("request")
    if not isinstance(request, dict):
        raise BadReview(f"request must be an object, not {_json_type(request)}")
    uid = request.get("uid")
    if not isinstance(uid, str) or not uid:
        raise BadReview(f"request.uid must be a non-empty string, not {uid!r}")
    _check_gvk(request, "kind", required=True)
    _check_gvk(request, "requestKind", required=False)
    for field in ("resource", "requestResource"):
        value = request.get(field)
        if value is not None and not _strings(value, ("group", "version", "resource")):
            raise BadReview(f"request.{field} must be an object with string group, version and resource")
    operation = request.get("operation")
    if operation not in OPERATIONS:
        raise BadReview(f"request.operation {operation!r} is not one of {', '.join(OPERATIONS)}")
    for field in ("name", "namespace", "subResource", "requestSubResource"):
        value = request.get(field)
        if value is not None and not isinstance(value, str):
            raise BadReview(f"request.{field} must be a string, not {_json_type(value)}")
    for field in ("object", "oldObject", "options"):
        value = request.get(field)
        if value is not None and not isinstance(value, dict):
            raise BadReview(f"request.{field} must be an object or null, not {_json_type(value)}")
    for field in ("object", "oldObject"):
        value = request.get(field)
        if value is not None and not isinstance(value.get("metadata", {}), dict):
            raise BadReview(f"request.{field}.metadata must be an object")
    dry_run = request.get("dryRun")
    if dry_run is not None and not isinstance(dry_run, bool):
        raise BadReview(f"request.dryRun must be true or false, not {dry_run!r}")
    _check_user_info(request.get("userInfo"))
    return request  # type: ignore[return-value]  # checked above


def response_for(request_uid: str, verdict: Verdict) -> AdmissionReview:
    """The AdmissionReview v1 response for `verdict`, echoing the request's uid."""
    response: AdmissionResponse = {"uid": request_uid, "allowed": verdict.allowed}
    if not verdict.allowed:
        response["status"] = {"code": verdict.code, "message": verdict.message}
    if verdict.warnings:
        response["warnings"] = list(verdict.warnings)
    if verdict.patch:
        encoded = codec.dumps(verdict.patch)
        response["patch"] = base64.b64encode(encoded).decode("ascii")
        response["patchType"] = "JSONPatch"
    return {"apiVersion": API_VERSION, "kind": KIND, "response": response}


def describe(request: AdmissionRequest) -> dict[str, str]:
    """kind, namespace/name and operation of a request, for log lines and metric labels."""
    obj = request.get("object") or request.get("oldObject") or {}
    meta = obj.get("metadata") or {}
    name = request.get("name") or meta.get("name") or meta.get("generateName") or ""
    namespace = request.get("namespace") or ""
    return {
        "kind": request["kind"]["kind"],
        "object": f"{namespace}/{name}" if namespace else name,
        "operation": request["operation"],
    }


def allocation_summary(patch: list[dict[str, Any]] | None) -> str:
    """`macvlan.default=172.17.0.11, …` from a mutation patch: what a pod was given, for log lines."""
    given = []
    for operation in patch or ():
        path, value = operation.get("path", ""), operation.get("value")
        values = value.items() if path == "/metadata/annotations" and isinstance(value, dict) else [
            (path.removeprefix("/metadata/annotations/").replace("~1", "/").replace("~0", "~"), value)
        ]
        for key, text in values:
            provider, _, field = str(key).rpartition(".kubernetes.io/")
            if field == "ip_address" and provider:
                given.append(f"{provider}={text}")
    return ", ".join(given)


def _check_gvk(request: dict[str, Any], field: str, *, required: bool) -> None:
    value = request.get(field)
    if value is None and not required:
        return
    if not _strings(value, ("group", "version", "kind")) or not value["kind"]:
        raise BadReview(
            f"request.{field} must be an object with string group, version and a non-empty kind, "
            f"not {_short(value)}"
        )


def _check_user_info(value: Any) -> None:
    if value is None:
        return
    if not isinstance(value, dict):
        raise BadReview(f"request.userInfo must be an object, not {_json_type(value)}")
    for field in ("username", "uid"):
        if field in value and not isinstance(value[field], str):
            raise BadReview(f"request.userInfo.{field} must be a string")
    groups = value.get("groups")
    if groups is not None and (not isinstance(groups, list) or not all(isinstance(g, str) for g in groups)):
        raise BadReview("request.userInfo.groups must be a list of strings")


def _strings(value: Any, fields: tuple[str, ...]) -> bool:
    return isinstance(value, dict) and all(isinstance(value.get(f), str) for f in fields)


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number")


def _short(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
