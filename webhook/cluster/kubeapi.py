"""The few API server writes and reads the Store and the Lifecycle make, behind one small interface.

Everything travels as plain camelCase dicts (as the informers cache them), so a fake in tests
(`tests/fakes.py`) can stand in for the API server without a client library. `KubernetesApi`
speaks through the one `transport.Transport`; its failures are the `errors` hierarchy.
"""

from __future__ import annotations

from typing import Any, Protocol

from webhook.cluster import objects
from webhook.cluster.cache import Object
from webhook.cluster.errors import AlreadyExists, ApiError, Conflict, NotFound, Unreachable
from webhook.cluster.routes import LEASES, ROUTES
from webhook.cluster.transport import MERGE_PATCH, Transport


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


# The errors the Api's callers (store, lifecycle) catch, importable beside the Api.
__all__ = ["AlreadyExists", "Api", "ApiError", "Conflict", "KubernetesApi", "NotFound", "Unreachable"]
_IPS = ROUTES[objects.IPS]


class KubernetesApi:
    """`Api` over the transport, from a `ClusterAccess`, a library `ApiClient` or a `Transport`."""

    def __init__(self, api_client: Any, *, timeout: float = 10.0) -> None:
        self.transport = Transport.for_client(api_client, timeout=timeout)

    def create_ip(self, body: Object) -> Object:
        return self.transport.request("POST", _IPS.at(), body)

    def patch_ip(self, name: str, patch: Object) -> Object:
        return self.transport.request("PATCH", _IPS.at(name=name), patch, MERGE_PATCH)

    def delete_ip(self, name: str, *, resource_version: str | None = None) -> None:
        body: Object = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if resource_version:
            body["preconditions"] = {"resourceVersion": resource_version}
        self.transport.request("DELETE", _IPS.at(name=name), body)

    def patch_pod(self, namespace: str, name: str, patch: Object) -> Object:
        """Merge-patch a pod (`adopt` writes annotations); a `metadata.uid` in the patch refuses
        (422, field is immutable) a pod recreated under the same name."""
        return self.transport.request("PATCH", ROUTES[objects.PODS].at(namespace, name), patch, MERGE_PATCH)

    def patch_subnet_status(self, name: str, status: Object) -> None:
        path = ROUTES[objects.SUBNETS].at(name=name, subresource="status")
        self.transport.request("PATCH", path, {"status": status}, MERGE_PATCH)

    def read(self, kind: str, name: str, namespace: str = "") -> Object | None:
        try:
            return self.transport.request("GET", ROUTES[kind].at(namespace, name))
        except NotFound:
            return None

    def list(self, kind: str) -> list[Object]:
        """Every object of `kind` (all namespaces), read in pages."""
        return self.transport.list(ROUTES[kind].path)[0]

    def read_lease(self, namespace: str, name: str) -> Object | None:
        try:
            return self.transport.request("GET", ROUTES[LEASES].at(namespace, name))
        except NotFound:
            return None

    def create_lease(self, namespace: str, body: Object) -> Object:
        return self.transport.request("POST", ROUTES[LEASES].at(namespace), body)

    def replace_lease(self, namespace: str, body: Object) -> Object:
        path = ROUTES[LEASES].at(namespace, body["metadata"]["name"])
        return self.transport.request("PUT", path, body)
