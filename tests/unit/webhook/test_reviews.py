"""AdmissionReview v1 parsing, verdicts and responses."""

from __future__ import annotations

import base64
import copy
import json
from typing import Any

import pytest

from webhook.admission import reviews


def review(**request_changes: Any) -> dict[str, Any]:
    request: dict[str, Any] = {
        "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
        "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "resource": {"group": "", "version": "v1", "resource": "pods"},
        "namespace": "default",
        "operation": "CREATE",
        "userInfo": {"username": "admin", "groups": ["system:masters"]},
        "object": {"apiVersion": "v1", "kind": "Pod", "metadata": {"generateName": "web-"}},
        "oldObject": None,
        "dryRun": False,
    }
    request.update(request_changes)
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}


def test_parse_returns_the_request() -> None:
    body = review()
    request = reviews.parse_review(body)
    assert request["uid"] == "705ab4f5-6393-11e8-b7cc-42010a800002"
    assert request["kind"]["kind"] == "Pod"
    assert reviews.describe(request) == {"kind": "Pod", "object": "default/web-", "operation": "CREATE"}


def test_describe_cluster_scoped_delete_uses_the_old_object() -> None:
    body = review(
        kind={"group": "kubeovn.io", "version": "v1", "kind": "Subnet"},
        namespace=None, operation="DELETE", name="macvlan", object=None,
        oldObject={"metadata": {"name": "macvlan"}},
    )
    del body["request"]["namespace"]
    request = reviews.parse_review(body)
    assert reviews.describe(request) == {"kind": "Subnet", "object": "macvlan", "operation": "DELETE"}


def without(path: tuple[str, ...]) -> dict[str, Any]:
    body = review()
    target = body
    for part in path[:-1]:
        target = target[part]
    del target[path[-1]]
    return body


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ([], "body must be a JSON object (an AdmissionReview), not an array"),
        ("review", "not a string"),
        (None, "not null"),
        (3, "not a number"),
        ({**review(), "apiVersion": "admission.k8s.io/v1beta1"}, "apiVersion 'admission.k8s.io/v1beta1'"),
        ({**review(), "kind": "Review"}, "kind 'Review' is not supported"),
        ({**review(), "request": "x"}, "request must be an object, not a string"),
        (without(("request",)), "request must be an object, not null"),
        (without(("request", "uid")), "request.uid must be a non-empty string, not None"),
        (review(uid=""), "request.uid must be a non-empty string"),
        (review(uid=7), "request.uid must be a non-empty string, not 7"),
        (without(("request", "kind")), "request.kind must be an object"),
        (review(kind={"group": "", "version": "v1", "kind": ""}), "non-empty kind"),
        (review(kind={"group": "", "version": 1, "kind": "Pod"}), "request.kind must be"),
        (review(requestKind=[]), "request.requestKind must be"),
        (review(resource={"group": ""}), "request.resource must be an object"),
        (review(operation="PATCH"), "'PATCH' is not one of CREATE, UPDATE, DELETE, CONNECT"),
        (without(("request", "operation")), "request.operation None"),
        (review(namespace=5), "request.namespace must be a string, not a number"),
        (review(name=["x"]), "request.name must be a string, not an array"),
        (review(object="pod"), "request.object must be an object or null, not a string"),
        (review(oldObject=[1]), "request.oldObject must be an object or null"),
        (review(object={"metadata": "x"}), "request.object.metadata must be an object"),
        (review(dryRun="yes"), "request.dryRun must be true or false, not 'yes'"),
        (review(userInfo="admin"), "request.userInfo must be an object"),
        (review(userInfo={"username": 1}), "request.userInfo.username must be a string"),
        (review(userInfo={"groups": "a"}), "request.userInfo.groups must be a list of strings"),
    ],
)
def test_malformed_reviews_raise_bad_review(body: Any, fragment: str) -> None:
    original = copy.deepcopy(body)
    with pytest.raises(reviews.BadReview) as caught:
        reviews.parse_review(body)
    assert fragment in str(caught.value)
    assert caught.value.status == 400
    assert body == original  # parsing never changes its input


def test_allowed_response_echoes_the_uid_and_carries_no_status() -> None:
    response = reviews.response_for("abc", reviews.Verdict.allow())
    assert response == {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "response": {"uid": "abc", "allowed": True},
    }


def test_denied_response_has_code_and_message() -> None:
    verdict = reviews.Verdict.deny('provider must be "macvlan.default"', code=422)
    response = reviews.response_for("abc", verdict)["response"]
    assert response["allowed"] is False
    assert response["status"] == {"code": 422, "message": 'provider must be "macvlan.default"'}
    assert reviews.Verdict.deny("no").code == 403


def test_warnings_are_listed() -> None:
    verdict = reviews.Verdict.allow(warnings=["gateway is only used by ovn subnets"])
    response = reviews.response_for("abc", verdict)["response"]
    assert response["warnings"] == ["gateway is only used by ovn subnets"]
    assert "status" not in response


def test_patch_is_base64_json_with_patch_type() -> None:
    patch = [{"op": "add", "path": "/metadata/annotations/a~1b", "value": "10.0.0.2"}]
    response = reviews.response_for("abc", reviews.Verdict.allow(patch=patch))["response"]
    assert response["patchType"] == "JSONPatch"
    assert json.loads(base64.b64decode(response["patch"])) == patch


def test_empty_patch_is_omitted() -> None:
    response = reviews.response_for("abc", reviews.Verdict.allow(patch=[]))["response"]
    assert "patch" not in response and "patchType" not in response


def test_verdicts_are_immutable() -> None:
    verdict = reviews.Verdict.allow(warnings=["w"])
    with pytest.raises(AttributeError):
        verdict.allowed = False  # type: ignore[misc]
    assert verdict.warnings == ("w",)


def test_allocation_summary_names_each_provider_and_address() -> None:
    whole_map = [{"op": "add", "path": "/metadata/annotations", "value": {
        "macvlan.default.kubernetes.io/ip_address": "172.17.0.11",
        "macvlan.default.kubernetes.io/mac_address": "86:3c:a0:e0:d7:15",
        "multinic-ipam.io/reservation": "abc",
    }}]
    assert reviews.allocation_summary(whole_map) == "macvlan.default=172.17.0.11"
    per_key = [
        {"op": "add", "path": "/metadata/annotations/attachnet.default.ovn.kubernetes.io~1ip_address",
         "value": "172.17.0.12,fd00::12"},
        {"op": "add", "path": "/metadata/annotations/ovn.kubernetes.io~1ip_address", "value": "10.16.0.2"},
        {"op": "add", "path": "/metadata/annotations/ovn.kubernetes.io~1cidr", "value": "10.16.0.0/16"},
    ]
    assert reviews.allocation_summary(per_key) == "attachnet.default.ovn=172.17.0.12,fd00::12, ovn=10.16.0.2"
    assert reviews.allocation_summary(None) == ""
