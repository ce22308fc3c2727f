"""Talks to the node daemon: HTTP/1.1 over its unix socket (`server_socket`), JSON both ways."""

from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Mapping
from typing import Any

from cni import errors
from cni.result import Allocation

# The daemon waits up to ~10 s for a missing annotation; leave it room to answer.
DEFAULT_TIMEOUT = 45.0


class UnixHTTPConnection(http.client.HTTPConnection):
    """An `HTTPConnection` whose transport is a unix stream socket instead of TCP."""

    def __init__(self, socket_path: str, timeout: float = DEFAULT_TIMEOUT) -> None:
        super().__init__("localhost", timeout=timeout)
        self.socket_path = socket_path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.socket_path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


def request(socket_path: str, method: str, path: str, body: Mapping[str, Any] | None = None, *,
            timeout: float = DEFAULT_TIMEOUT, about: str = "") -> dict[str, Any]:
    """One call; a daemon error comes back as `CniError` with the daemon's code and message."""
    connection = UnixHTTPConnection(socket_path, timeout)
    try:
        payload = json.dumps(body).encode() if body is not None else None
        connection.request(method, path, body=payload, headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        raw = response.read()
    except OSError as exc:
        raise errors.TryAgainLaterError(
            f"{about}the node daemon at {socket_path} does not answer ({exc.strerror or exc}); "
            "is `multinic-ipam node` running on this node?"
        ) from None
    finally:
        connection.close()
    try:
        data = json.loads(raw or b"{}")
    except ValueError:
        raise errors.CniError(f"{about}the node daemon answered non-JSON: {raw[:200]!r}") from None
    if response.status >= 400 or not isinstance(data, dict):
        if isinstance(data, dict) and "msg" in data:
            raise errors.CniError(str(data["msg"]), details=str(data.get("details") or ""),
                                  code=int(data.get("code") or errors.OTHER))
        raise errors.CniError(f"{about}the node daemon answered HTTP {response.status}: {raw[:200]!r}")
    return data


def allocation(socket_path: str, body: Mapping[str, Any], *, timeout: float = DEFAULT_TIMEOUT) -> Allocation:
    """`POST /v1/allocation`: the addresses, MAC and routes of one pod attachment."""
    about = f"pod {body.get('namespace')}/{body.get('name')} provider {body.get('provider')}: "
    return Allocation.from_json(request(socket_path, "POST", "/v1/allocation", body,
                                        timeout=timeout, about=about))


def healthy(socket_path: str, *, timeout: float = 5.0) -> None:
    """`GET /v1/healthz`, for STATUS; raises `NotAvailable` when the daemon can't serve ADDs."""
    try:
        request(socket_path, "GET", "/v1/healthz", timeout=timeout)
    except errors.CniError as exc:
        raise errors.NotAvailableError(exc.msg, details=exc.details) from None
