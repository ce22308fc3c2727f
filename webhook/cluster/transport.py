"""The one way to talk to the API server: requests, paged lists and watches over `http.client`.

Address, TLS, proxy and token come from the `ClusterAccess` that `connection.connect` loads (a
kubeconfig, exec plugins included, or the in-cluster service account); a `kubernetes` library
`ApiClient`, as tests and devtools build, is read the same way (the product never imports it).
Requests go out over one keep-alive connection per thread: the library's own path (serialisation
walk, urllib3 pool, header building) cost about as much CPU per IP object create as the rest of
the mutation, on a machine the API server shares. Every failure is one of `errors`' exceptions.
"""

from __future__ import annotations

import contextlib
import http.client
import select
import socket
import ssl
import threading
import time
import urllib.parse
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from webhook import codec
from webhook.cluster.credentials import Certificate, ConnectError, Credentials
from webhook.cluster.errors import Unreachable, status_error, status_object_error
from webhook.cluster.kubeconfig import ClusterAccess

Object = dict[str, Any]
Query = Mapping[str, Any]
# Items per list request: 10,000 pods come in pieces the API server can serve without one huge
# answer (pages of one list are one consistent snapshot, joined by the `continue` token).
LIST_PAGE = 500
TOKEN_REUSE_SECONDS = 1.0  # how long an Authorization value from the credentials is reused
CHUNK = 65536  # bytes read from a watch stream at a time
JSON = "application/json"
MERGE_PATCH = "application/merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"  # server-side apply; JSON is YAML


class Transport:
    """Requests to one API server, one keep-alive connection per thread.

    A connection the server closed while idle is noticed before reuse and replaced. A request that
    fails while being sent on a reused connection is sent once more on a new one (the server cannot
    have acted on a request it did not fully receive); a lost answer is retried only for GET, since
    a create or patch may have happened.
    """

    IDEMPOTENT = frozenset({"GET"})

    def __init__(self, access: ClusterAccess, *, timeout: float) -> None:
        url = urllib.parse.urlsplit(access.server)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"API server address {access.server!r} is not an http(s) URL")
        self.access = access
        self.https = url.scheme == "https"
        self.host = url.hostname
        self.port = url.port or (443 if self.https else 80)
        self.prefix = url.path.rstrip("/")
        self.where = access.server
        self.timeout = timeout
        self.user_agent = access.user_agent
        self.server_name = access.tls_server_name or self.host
        proxy = urllib.parse.urlsplit(access.proxy_url or "")
        self.proxy = (proxy.hostname, proxy.port or 80) if proxy.hostname else None
        self.proxy_headers = dict(access.proxy_headers)
        self._local = threading.local()
        self._auth: tuple[str | None, float] = (None, float("-inf"))  # token, when asked (monotonic)

    @classmethod
    def for_client(cls, client: Any, *, timeout: float) -> Transport:
        """A Transport for a `ClusterAccess` or a library `ApiClient`, or a Transport as is."""
        if isinstance(client, Transport):
            return client
        if isinstance(client, ClusterAccess):
            return cls(client, timeout=timeout)
        return cls(access_of(client), timeout=timeout)

    # -- requests ----------------------------------------------------------------------------------

    def request(self, method: str, path: str, body: Any = None, content_type: str = JSON,
                query: Query | None = None) -> Object:
        """One request; the decoded answer, or the `errors` exception for its Status."""
        payload = None if body is None else codec.dumps(body)
        status, data = self.send(method, self.target(path, query), payload, content_type)
        if 200 <= status < 300:
            return codec.loads(data) if data else {}
        raise status_error(status, data, creating=method == "POST")

    def list(self, path: str, query: Query | None = None) -> tuple[list[Object], str]:
        """Every item at `path`, read in pages of `LIST_PAGE`; (items, the list's resourceVersion)."""
        items: list[Object] = []
        token = ""
        while True:
            page = self.request("GET", path, query={**(query or {}), "limit": LIST_PAGE,
                                                    **({"continue": token} if token else {})})
            items.extend(page.get("items") or [])
            meta = page.get("metadata") or {}
            token = meta.get("continue") or ""
            if not token:
                return items, str(meta.get("resourceVersion") or "")

    def watch(self, path: str, query: Query, *, timeout: float) -> Watch:
        """Open a watch of `path` on a connection of its own (so `Watch.close` can interrupt it)."""
        connection = self._new_connection(self.timeout)  # to connect and have the answer begin
        try:
            target = self.target(path, {**query, "watch": "true"})
            connection.request("GET", target, headers=self._headers(JSON))
            response = connection.getresponse()
            if connection.sock is not None:
                connection.sock.settimeout(timeout)  # then the events, which may be minutes apart
        except (OSError, http.client.HTTPException) as error:
            connection.close()
            raise Unreachable(f"cannot watch {path} at {self.where} ({error})") from error
        if response.status != 200:
            data = response.read()
            connection.close()
            raise status_error(response.status, data)
        return Watch(connection, response)

    def target(self, path: str, query: Query | None = None) -> str:
        """The request target: the server's path prefix, `path`, the query (absolute via a proxy)."""
        target = self.prefix + path + (f"?{urllib.parse.urlencode(query)}" if query else "")
        if self.proxy and not self.https:
            return f"http://{self.host}:{self.port}{target}"
        return target

    def send(self, method: str, target: str, body: bytes | None, content_type: str) -> tuple[int, bytes]:
        """Send one request on this thread's connection and read its whole answer: (status, body)."""
        headers = self._headers(content_type)
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

    def close(self) -> None:
        """Close this thread's connection (others close when their threads end)."""
        self._drop()

    # -- connections and credentials ----------------------------------------------------------------

    def _headers(self, content_type: str) -> dict[str, str]:
        headers = {"Accept": JSON, "Content-Type": content_type}
        if self.user_agent:
            headers["User-Agent"] = self.user_agent
        token = self._token()
        if token:
            headers["Authorization"] = token
        return headers

    def _token(self) -> str | None:
        """The Authorization value, asked of the credentials at most every `TOKEN_REUSE_SECONDS`
        (an `ApiClient`'s refresh hook reloads the whole kubeconfig, ~60 us, twice per admitted pod;
        rotated tokens are renewed minutes before they expire)."""
        now = time.monotonic()
        token, asked = self._auth
        if now - asked >= TOKEN_REUSE_SECONDS:
            try:
                token = self.access.authorization()
            except ConnectError as error:  # an exec plugin failed to renew its credential
                raise Unreachable(f"no credentials for the API server at {self.where} ({error})") from error
            self._auth = (token, now)
        return token

    def _connection(self) -> tuple[http.client.HTTPConnection, bool]:
        connection = getattr(self._local, "connection", None)
        if connection is not None and connection.sock is not None and not _dropped(connection.sock):
            return connection, True
        self._drop()
        connection = self._new_connection(self.timeout)
        self._local.connection = connection
        return connection, False

    def _new_connection(self, timeout: float) -> http.client.HTTPConnection:
        host, port = self.proxy or (self.host, self.port)
        if not self.https:
            return http.client.HTTPConnection(host, port, timeout=timeout)
        try:
            context = self.access.ssl_context()  # the same one until a client certificate is renewed
        except (ConnectError, OSError, ValueError) as error:
            raise Unreachable(f"no TLS credentials for the API server at {self.where} ({error})") from error
        connection = _HTTPSConnection(host, port, timeout=timeout, context=context,
                                      server_name=self.server_name)
        if self.proxy:
            connection.set_tunnel(self.host, self.port, headers=self.proxy_headers)
        return connection

    def _drop(self) -> None:
        connection = getattr(self._local, "connection", None)
        self._local.connection = None
        if connection is not None:
            connection.close()


class Watch:
    """An open watch: its events in order; `close` (from any thread) ends a quiet one at once."""

    def __init__(self, connection: http.client.HTTPConnection, response: http.client.HTTPResponse) -> None:
        self.connection = connection
        self.response = response
        self.closed = False

    def events(self) -> Iterator[Object]:
        """Each event (`type`, `object`) until the server ends the watch; an ERROR event raises
        its Status as an `errors` exception (410 Gone: relist)."""
        for line in lines(self._chunks()):
            event = codec.loads(line)
            if event.get("type") == "ERROR":
                raise status_object_error(event.get("object") or {})
            yield event

    def _chunks(self) -> Iterator[bytes]:
        while True:
            try:
                chunk = self.response.read1(CHUNK)
            except (OSError, ValueError, AttributeError, http.client.HTTPException) as error:
                if self.closed:  # closed under the read (AttributeError: by another thread)
                    return
                raise Unreachable(f"the watch broke off ({error!r})") from error
            if not chunk:
                return
            yield chunk

    def close(self) -> None:
        self.closed = True
        sock = self.connection.sock
        if sock is not None:
            with contextlib.suppress(OSError):  # already closed by the server
                socket.socket.shutdown(sock, socket.SHUT_RDWR)  # wakes a read blocked in another thread
        self.connection.close()


def lines(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """The non-blank newline-delimited lines of a byte stream, however it is cut into chunks.
    Linear: a line's pieces are joined once, when its newline arrives."""
    pending: list[bytes] = []
    for chunk in chunks:
        start = 0
        while (end := chunk.find(b"\n", start)) >= 0:
            if pending:
                pending.append(chunk[start:end])
                line = b"".join(pending)
                pending.clear()
            else:
                line = chunk[start:end]
            if line.strip():
                yield line
            start = end + 1
        if start < len(chunk):
            pending.append(chunk[start:])
    rest = b"".join(pending)
    if rest.strip():
        yield rest


class _HTTPSConnection(http.client.HTTPSConnection):
    """HTTPS whose certificate is checked against `server_name` (the kubeconfig's
    `tls-server-name`, else the host), also through a proxy's CONNECT tunnel."""

    def __init__(self, host: str, port: int, *, timeout: float, context: ssl.SSLContext,
                 server_name: str) -> None:
        super().__init__(host, port, timeout=timeout, context=context)
        self.server_name = server_name

    def connect(self) -> None:
        http.client.HTTPConnection.connect(self)  # TCP, and the tunnel when there is a proxy
        self.sock = self._context.wrap_socket(self.sock, server_hostname=self.server_name)  # type: ignore[attr-defined]


def access_of(api_client: Any) -> ClusterAccess:
    """The `ClusterAccess` of a `kubernetes` library `ApiClient` (duck-typed: its `configuration`
    and User-Agent), with the TLS settings that library would use."""
    c = api_client.configuration
    name = getattr(c, "tls_server_name", None) or getattr(c, "assert_hostname", None)
    return ClusterAccess(
        server=getattr(c, "host", None) or "",
        ca_file=c.ssl_ca_cert or None,
        ca_data=getattr(c, "ca_cert_data", None) or None,
        insecure=not c.verify_ssl,
        check_hostname=c.assert_hostname is not False,  # False: as the library, trust the CA alone
        tls_server_name=name if isinstance(name, str) and name else None,
        proxy_url=getattr(c, "proxy", None) or None,
        proxy_headers=dict(getattr(c, "proxy_headers", None) or {}),
        user_agent=(getattr(api_client, "default_headers", None) or {}).get("User-Agent", ""),
        credentials=_LibraryCredentials(c),
    )


class _LibraryCredentials(Credentials):
    """An `ApiClient` configuration's token (through its refresh hook) and client certificate."""

    def __init__(self, configuration: Any) -> None:
        self.configuration = configuration

    def authorization(self) -> str | None:
        return (self.configuration.auth_settings().get("BearerToken") or {}).get("value")

    def certificate(self) -> Certificate | None:
        cert = self.configuration.cert_file
        return (cert, self.configuration.key_file or None) if cert else None


def _dropped(sock: Any) -> bool:
    """Has an idle keep-alive connection been closed (readable: EOF or unsolicited bytes)?"""
    poller = select.poll()
    try:
        poller.register(sock, select.POLLIN)
        return bool(poller.poll(0))
    except (OSError, ValueError):
        return True
