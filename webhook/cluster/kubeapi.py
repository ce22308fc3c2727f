"""The few API server writes and reads the Store and the Lifecycle make, behind one small interface.

Everything travels as plain camelCase dicts (as the informers cache them), so a fake in tests
(`tests/fakes.py`) can stand in for the API server without a client library.

Requests go out over one keep-alive `http.client` connection per thread (`Connections`), taking
address, TLS and token from the `ApiClient`'s configuration: the client library's own path
(serialisation walk, urllib3 pool, header building) cost about as much CPU per IP object create as
the rest of the mutation, on a machine the API server shares.
"""

from __future__ import annotations

import http.client
import json
import select
import ssl
import threading
import time
import urllib.parse
from typing import Any, Protocol

from webhook.cluster import objects
from webhook.cluster.cache import Object

LEASE_PATH = "/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"
# Items per list request: 10,000 pods come in pieces the API server can serve without one huge
# answer (pages of one list are one consistent snapshot, joined by the `continue` token).
LIST_PAGE = 500
TOKEN_REUSE_SECONDS = 1.0  # how long a token from the configuration's refresh hook is reused


class ApiError(Exception):
    """An API server answer other than success, with its HTTP status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"API server answered {status}: {message}")
        self.status = status


class AlreadyExists(ApiError):  # noqa: N818 (named like the API status reason)
    """409 on create: the name is taken (for an IP object: the address is held)."""


class Conflict(ApiError):  # noqa: N818 (named like the API status reason)
    """409 on update or delete: the object changed since it was read (resourceVersion or UID)."""


class Unreachable(ApiError):  # noqa: N818 (a condition, like the others)
    """No answer: the connection failed, or broke before the answer came (status 0)."""

    def __init__(self, message: str) -> None:
        Exception.__init__(self, message)
        self.status = 0


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
    objects.WHEREABOUTS_IPPOOLS: "/apis/whereabouts.cni.cncf.io/v1alpha1/namespaces/{namespace}/ippools",
    objects.WHEREABOUTS_RESERVATIONS:
        "/apis/whereabouts.cni.cncf.io/v1alpha1/namespaces/{namespace}/overlappingrangeipreservations",
}
_ALL_NAMESPACES = {
    objects.NADS: "/apis/k8s.cni.cncf.io/v1/network-attachment-definitions",
    objects.PODS: "/api/v1/pods",
    objects.STATEFULSETS: "/apis/apps/v1/statefulsets",
    objects.WHEREABOUTS_IPPOOLS: "/apis/whereabouts.cni.cncf.io/v1alpha1/ippools",
    objects.WHEREABOUTS_RESERVATIONS: "/apis/whereabouts.cni.cncf.io/v1alpha1/overlappingrangeipreservations",
}


class Connections:
    """One keep-alive HTTPS connection to the API server per thread, from an ApiClient's configuration.

    A connection the server closed while idle is noticed before reuse and replaced. A request that
    fails while being sent on a reused connection is sent once more on a new one (the server cannot
    have acted on a request it did not fully receive); a lost answer is retried only for GET, since
    a create or patch may have happened.
    """

    IDEMPOTENT = frozenset({"GET"})

    def __init__(self, configuration: Any, *, timeout: float, user_agent: str = "") -> None:
        url = urllib.parse.urlsplit(configuration.host)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"API server address {configuration.host!r} is not an http(s) URL")
        self.configuration = configuration
        self.https = url.scheme == "https"
        self.host = url.hostname
        self.port = url.port or (443 if self.https else 80)
        self.prefix = url.path.rstrip("/")
        self.where = configuration.host
        self.timeout = timeout
        self.user_agent = user_agent
        self.context = _ssl_context(configuration) if self.https else None
        self._local = threading.local()
        self._auth: tuple[str | None, float] = (None, float("-inf"))  # token, when asked (monotonic)

    @classmethod
    def for_client(cls, api_client: Any, *, timeout: float) -> Connections | None:
        """Connections for a real `ApiClient`; None when it must keep its own transport (a proxy)."""
        configuration = getattr(api_client, "configuration", None)
        if not isinstance(getattr(configuration, "host", None), str) or getattr(configuration, "proxy", None):
            return None
        if getattr(configuration, "tls_server_name", None) or isinstance(
            getattr(configuration, "assert_hostname", None), str
        ):
            return None  # a certificate name other than the host's: http.client cannot check it
        agent = (getattr(api_client, "default_headers", None) or {}).get("User-Agent", "")
        try:
            return cls(configuration, timeout=timeout, user_agent=agent)
        except (ValueError, OSError, ssl.SSLError):
            return None

    def request(self, method: str, path: str, body: bytes | None, content_type: str) -> tuple[int, bytes]:
        """Send one request and read its whole answer: (HTTP status, body)."""
        headers = {"Accept": "application/json", "Content-Type": content_type}
        if self.user_agent:
            headers["User-Agent"] = self.user_agent
        token = self._token()
        if token:
            headers["Authorization"] = token
        target = self.prefix + path
        while True:
            connection, reused = self._connection()
            try:
                connection.request(method, target, body=body, headers=headers)
            except (OSError, http.client.HTTPException) as error:
                self._drop()
                if reused:
                    continue  # not fully sent: the server did nothing with it
                raise Unreachable(f"cannot reach the API server at {self.where} ({error})") from error
            try:
                response = connection.getresponse()
                data = response.read()
            except (OSError, http.client.HTTPException) as error:
                self._drop()
                if reused and method in self.IDEMPOTENT:
                    continue
                raise Unreachable(f"the API server at {self.where} did not answer ({error})") from error
            if response.will_close:
                self._drop()
            return response.status, data

    def _token(self) -> str | None:
        """The Authorization value, asked of the configuration at most every `TOKEN_REUSE_SECONDS`:
        its refresh hook reloads the whole kubeconfig (~60 us, twice per admitted pod), and the
        tokens it refreshes are renewed minutes before they expire."""
        now = time.monotonic()
        token, asked = self._auth
        if now - asked >= TOKEN_REUSE_SECONDS:
            token = (self.configuration.auth_settings().get("BearerToken") or {}).get("value")
            self._auth = (token, now)
        return token

    def close(self) -> None:
        """Close this thread's connection (others close when their threads end)."""
        self._drop()

    def _connection(self) -> tuple[http.client.HTTPConnection, bool]:
        connection = getattr(self._local, "connection", None)
        if connection is not None and connection.sock is not None and not _dropped(connection.sock):
            return connection, True
        self._drop()
        if self.https:
            connection = http.client.HTTPSConnection(
                self.host, self.port, timeout=self.timeout, context=self.context
            )
        else:
            connection = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        self._local.connection = connection
        return connection, False

    def _drop(self) -> None:
        connection = getattr(self._local, "connection", None)
        self._local.connection = None
        if connection is not None:
            connection.close()


def _ssl_context(configuration: Any) -> ssl.SSLContext:
    """The TLS settings the client library would use: CA, client certificate, verification, SNI name."""
    context = ssl.create_default_context(
        cafile=configuration.ssl_ca_cert or None, cadata=getattr(configuration, "ca_cert_data", None) or None
    )
    if configuration.cert_file:
        context.load_cert_chain(configuration.cert_file, configuration.key_file or None)
    if not configuration.verify_ssl:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif configuration.assert_hostname is False:  # as the client library: trust the CA alone
        context.check_hostname = False
    return context


def _dropped(sock: Any) -> bool:
    """Has an idle keep-alive connection been closed (readable: EOF or unsolicited bytes)?"""
    poller = select.poll()
    try:
        poller.register(sock, select.POLLIN)
        return bool(poller.poll(0))
    except (OSError, ValueError):
        return True


class KubernetesApi:
    """`Api` over a `kubernetes.client.ApiClient`, speaking JSON directly (no model classes)."""

    def __init__(self, api_client: Any, *, timeout: float = 10.0) -> None:
        self.client = api_client
        self.timeout = timeout
        self.connections = Connections.for_client(api_client, timeout=timeout)

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

    def patch_pod(self, namespace: str, name: str, patch: Object) -> Object:
        """Merge-patch a pod (`adopt` writes annotations); a `metadata.uid` in the patch refuses
        (422, field is immutable) a pod recreated under the same name."""
        path = f"{_PATHS[objects.PODS].format(namespace=namespace)}/{name}"
        return self._call("PATCH", path, body=patch, content_type="application/merge-patch+json")

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
        """Every object of `kind` (all namespaces), read in pages of `LIST_PAGE`."""
        path = _ALL_NAMESPACES.get(kind, _PATHS[kind])
        items: list[Object] = []
        token = ""
        while True:
            query = {"limit": LIST_PAGE, **({"continue": token} if token else {})}
            page = self._call("GET", f"{path}?{urllib.parse.urlencode(query)}")
            items.extend(page.get("items") or [])
            token = (page.get("metadata") or {}).get("continue") or ""
            if not token:
                return items

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
        if self.connections is not None:
            payload = None if body is None else json.dumps(body, separators=(",", ":")).encode()
            status, data = self.connections.request(method, path, payload, content_type)
        else:
            status, data = self._call_through_client(method, path, body, content_type)
        if 200 <= status < 300:
            return json.loads(data) if data else {}
        message = _status_message(data)
        if status == 404:
            raise NotFound(status, message)
        if status == 409:
            raise on_conflict(status, message)
        raise ApiError(status, message)

    def _call_through_client(
        self, method: str, path: str, body: Object | None, content_type: str
    ) -> tuple[int, bytes]:
        """The client library's own transport (proxies, and clients that are not a real ApiClient)."""
        headers = {"Accept": "application/json", "Content-Type": content_type}
        method, url, headers, payload, _ = self.client.param_serialize(
            method=method, resource_path=path, header_params=headers, body=body, auth_settings=["BearerToken"]
        )
        response = self.client.call_api(method, url, header_params=headers, body=payload,
                                        _request_timeout=self.timeout)
        return response.status, response.read()


def _status_message(data: bytes | None) -> str:
    try:
        return str(json.loads(data or b"{}").get("message") or "")
    except ValueError:
        return (data or b"").decode(errors="replace")[:200]
