"""The few API server writes and reads the Store and the Lifecycle make, behind one small interface.

Everything travels as plain camelCase dicts (as the informers cache them), so a fake in tests
(`tests/fakes.py`) can stand in for the API server without a client library.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

from webhook import objects
from webhook.cache import Object

LEASE_PATH = "/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"


class ApiError(Exception):
    """An API server answer other than success, with its HTTP status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"API server answered {status}: {message}")
        self.status = status


class AlreadyExists(ApiError):  # noqa: N818 (named like the API status reason)
    """409 on create: the name is taken (for an IP object: the address is held)."""


class Conflict(ApiError):  # noqa: N818 (named like the API status reason)
    """409 on update or delete: the object changed since it was read (resourceVersion or UID)."""


class NotFound(ApiError):  # noqa: N818 (named like the API status reason)
    """404: the object does not exist (any more)."""


class Api(Protocol):
    """What the Store and the Lifecycle need from the API server."""

    def create_ip(self, body: Object) -> Object: ...

    def patch_ip(self, name: str, patch: Object) -> Object:
        """Merge-patch; a `metadata.resourceVersion` in the patch makes it conditional."""

    def delete_ip(self, name: str, *, resource_version: str | None = None) -> None: ...

    def patch_subnet_status(self, name: str, status: Object) -> None: ...

    def read(self, kind: str, name: str, namespace: str = "") -> Object | None:
        """A live read (pods, statefulsets, subnets, NADs), bypassing the cache; None when absent."""

    def list(self, kind: str) -> list[Object]: ...

    def read_lease(self, namespace: str, name: str) -> Object | None: ...

    def create_lease(self, namespace: str, body: Object) -> Object: ...

    def replace_lease(self, namespace: str, body: Object) -> Object:
        """Update guarded by the body's `metadata.resourceVersion` (Conflict when it moved on)."""


_PATHS = {
    objects.SUBNETS: "/apis/kubeovn.io/v1/subnets",
    objects.IPS: "/apis/kubeovn.io/v1/ips",
    objects.IPPOOLS: "/apis/kubeovn.io/v1/ippools",
    objects.NADS: "/apis/k8s.cni.cncf.io/v1/namespaces/{namespace}/network-attachment-definitions",
    objects.PODS: "/api/v1/namespaces/{namespace}/pods",
    objects.STATEFULSETS: "/apis/apps/v1/namespaces/{namespace}/statefulsets",
}
_ALL_NAMESPACES = {
    objects.NADS: "/apis/k8s.cni.cncf.io/v1/network-attachment-definitions",
    objects.PODS: "/api/v1/pods",
    objects.STATEFULSETS: "/apis/apps/v1/statefulsets",
}


class KubernetesApi:
    """`Api` over a `kubernetes.client.ApiClient`, speaking JSON directly (no model classes)."""

    def __init__(self, api_client: Any, *, timeout: float = 10.0) -> None:
        self.client = api_client
        self.timeout = timeout

    def create_ip(self, body: Object) -> Object:
        return self._call("POST", _PATHS[objects.IPS], body=body, on_conflict=AlreadyExists)

    def patch_ip(self, name: str, patch: Object) -> Object:
        return self._call(
            "PATCH", f"{_PATHS[objects.IPS]}/{name}", body=patch, content_type="application/merge-patch+json"
        )

    def delete_ip(self, name: str, *, resource_version: str | None = None) -> None:
        body: Object = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if resource_version:
            body["preconditions"] = {"resourceVersion": resource_version}
        self._call("DELETE", f"{_PATHS[objects.IPS]}/{name}", body=body)

    def patch_subnet_status(self, name: str, status: Object) -> None:
        self._call(
            "PATCH",
            f"{_PATHS[objects.SUBNETS]}/{name}/status",
            body={"status": status},
            content_type="application/merge-patch+json",
        )

    def read(self, kind: str, name: str, namespace: str = "") -> Object | None:
        try:
            return self._call("GET", f"{_PATHS[kind].format(namespace=namespace)}/{name}")
        except NotFound:
            return None

    def list(self, kind: str) -> list[Object]:
        path = _ALL_NAMESPACES.get(kind, _PATHS[kind])
        return list(self._call("GET", path).get("items") or [])

    def read_lease(self, namespace: str, name: str) -> Object | None:
        try:
            return self._call("GET", f"{LEASE_PATH.format(namespace=namespace)}/{name}")
        except NotFound:
            return None

    def create_lease(self, namespace: str, body: Object) -> Object:
        path = LEASE_PATH.format(namespace=namespace)
        return self._call("POST", path, body=body, on_conflict=AlreadyExists)

    def replace_lease(self, namespace: str, body: Object) -> Object:
        name = body["metadata"]["name"]
        return self._call("PUT", f"{LEASE_PATH.format(namespace=namespace)}/{name}", body=body)

    def _call(
        self,
        method: str,
        path: str,
        *,
        body: Object | None = None,
        content_type: str = "application/json",
        on_conflict: type[ApiError] = Conflict,
    ) -> Object:
        headers = {"Accept": "application/json", "Content-Type": content_type}
        method, url, headers, payload, _ = self.client.param_serialize(
            method=method, resource_path=path, header_params=headers, body=body, auth_settings=["BearerToken"]
        )
        response = self.client.call_api(method, url, header_params=headers, body=payload,
                                        _request_timeout=self.timeout)
        data = response.read()
        status = response.status
        if 200 <= status < 300:
            return json.loads(data) if data else {}
        message = _status_message(data)
        if status == 404:
            raise NotFound(status, message)
        if status == 409:
            raise on_conflict(status, message)
        raise ApiError(status, message)


def _status_message(data: bytes | None) -> str:
    try:
        return str(json.loads(data or b"{}").get("message") or "")
    except ValueError:
        return (data or b"").decode(errors="replace")[:200]
