"""Talks to the node daemon: HTTP/1.1 over its unix socket (`server_socket`), JSON both ways.

A dozen lines of HTTP instead of `http.client`, whose imports (email, ssl) alone took longer
than a whole ADD should: one request per connection (`Connection: close`), read to EOF. The
socket is the C module's: `socket.py` builds its enums of every address family and option at
import, which cost more than the rest of the call (benchmarks/cni.py).
"""

from __future__ import annotations

import _socket

from cni import errors, jsonio
from cni.result import Allocation

TYPE_CHECKING = False  # as in cni.config: no `typing` import at run time
if TYPE_CHECKING:
    from collections.abc import Mapping

# The daemon waits up to ~10 s for a missing annotation; leave it room to answer.
DEFAULT_TIMEOUT = 45.0


def exchange(socket_path: str, method: str, path: str, payload: bytes = b"", *,
             timeout: float = DEFAULT_TIMEOUT) -> tuple[int, bytes]:
    """One HTTP request on a fresh unix-socket connection; (status, body). Raises OSError."""
    head = (f"{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n").encode()
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect(socket_path)
        sock.sendall(head + payload)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    finally:
        sock.close()
    header, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    try:
        status = int(header.split(b" ", 2)[1])
    except (IndexError, ValueError):
        raise ConnectionError(f"not an HTTP response: {header[:80]!r}") from None
    return status, body


def request(socket_path: str, method: str, path: str, body: Mapping[str, object] | None = None, *,
            timeout: float = DEFAULT_TIMEOUT, about: str = "") -> dict[str, object]:
    """One call; a daemon error comes back as `CniError` with the daemon's code and message."""
    payload = jsonio.dumps(body).encode() if body is not None else b""
    try:
        status, raw = exchange(socket_path, method, path, payload, timeout=timeout)
    except OSError as exc:
        raise errors.TryAgainLaterError(
            f"{about}the node daemon at {socket_path} does not answer ({exc.strerror or exc}); "
            "is `multinic-ipam node` running on this node?"
        ) from None
    try:
        data = jsonio.loads(raw or b"{}")
    except ValueError:
        raise errors.CniError(f"{about}the node daemon answered non-JSON: {raw[:200]!r}") from None
    if status >= 400 or not isinstance(data, dict):
        if isinstance(data, dict) and "msg" in data:
            raise errors.CniError(str(data["msg"]), details=str(data.get("details") or ""),
                                  code=int(data.get("code") or errors.OTHER))
        raise errors.CniError(f"{about}the node daemon answered HTTP {status}: {raw[:200]!r}")
    return data


def allocation(socket_path: str, body: Mapping[str, object], *,
               timeout: float = DEFAULT_TIMEOUT) -> Allocation:
    """`POST /v1/allocation`: the addresses, MAC and routes of one pod attachment."""
    about = f"pod {body.get('namespace')}/{body.get('name')} provider {body.get('provider')}: "
    return Allocation.from_json(request(socket_path, "POST", "/v1/allocation", body,
                                        timeout=timeout, about=about))


def healthy(socket_path: str, *, timeout: float = 5.0) -> None:
    """`GET /v1/healthz`, for STATUS; raises `NotAvailableError` when the daemon can't serve ADDs."""
    try:
        request(socket_path, "GET", "/v1/healthz", timeout=timeout)
    except errors.CniError as exc:
        raise errors.NotAvailableError(exc.msg, details=exc.details) from None
