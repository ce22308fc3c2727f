"""The one error hierarchy for API server answers, read from the Kubernetes `Status` object.

An `ApiError` carries the HTTP status and the Status body's `reason` and `message`; a subclass
per condition lets callers catch what they handle (modelled on kopf's `_cogs.clients.errors`).
`retriable` marks answers worth asking again after a pause (throttled, timed out, unreachable).
"""

from __future__ import annotations

import json


class ApiError(Exception):
    """An API server answer other than success: HTTP `status`, Status `reason` and `message`."""

    retriable = False

    def __init__(self, status: int, message: str, *, reason: str = "") -> None:
        super().__init__(f"API server answered {status}: {message}")
        self.status = status
        self.reason = reason
        self.message = message


class NotFound(ApiError):  # noqa: N818 (named like the Status reason)
    """404: the object (or the kind's API: a CRD not installed) does not exist."""


class AlreadyExists(ApiError):  # noqa: N818 (named like the Status reason)
    """409 on create: the name is taken (for an IP object: the address is held)."""


class Conflict(ApiError):  # noqa: N818 (named like the Status reason)
    """409 on update or delete: the object changed since it was read (resourceVersion or UID)."""


class Gone(ApiError):  # noqa: N818 (named like the Status reason, HTTP 410)
    """410: the resourceVersion a watch starts from is compacted away; relist."""


class Invalid(ApiError):  # noqa: N818 (named like the Status reason)
    """422: the object breaks a schema or immutability rule."""


class Forbidden(ApiError):  # noqa: N818 (named like the Status reason)
    """403: RBAC (or an admission webhook) refuses the request."""


class Unauthorized(ApiError):  # noqa: N818 (named like the Status reason)
    """401: the credentials are missing, expired or unknown."""


class TooManyRequests(ApiError):  # noqa: N818 (named like the Status reason)
    """429: API priority and fairness throttled the request."""

    retriable = True


class ServerTimeout(ApiError):  # noqa: N818 (named like the Status reason)
    """504, or a Status with reason Timeout/ServerTimeout: the server gave up; ask again."""

    retriable = True


class Unreachable(ApiError):  # noqa: N818 (a condition, like the others)
    """No answer: the connection failed, or broke before the answer came (status 0)."""

    retriable = True

    def __init__(self, message: str) -> None:
        Exception.__init__(self, message)
        self.status = 0
        self.reason = ""
        self.message = message


_BY_STATUS: dict[int, type[ApiError]] = {
    401: Unauthorized, 403: Forbidden, 404: NotFound, 410: Gone, 422: Invalid, 429: TooManyRequests,
    504: ServerTimeout,
}
_BY_REASON: dict[str, type[ApiError]] = {
    "AlreadyExists": AlreadyExists, "Conflict": Conflict, "Timeout": ServerTimeout,
    "ServerTimeout": ServerTimeout, "Expired": Gone,
}


def status_error(status: int, data: bytes | None, *, creating: bool = False) -> ApiError:
    """The exception for a non-2xx answer whose body is (usually) a Status object. A 409 without a
    reason is AlreadyExists on create (`creating`) and Conflict otherwise."""
    reason, message = _status_fields(data)
    cls = _BY_REASON.get(reason) or _BY_STATUS.get(status) or ApiError
    if status == 409 and cls is ApiError:
        cls = AlreadyExists if creating else Conflict
    return cls(status, message, reason=reason)


def status_object_error(status: dict[str, object]) -> ApiError:
    """The exception for a Status delivered inside a watch stream's ERROR event."""
    code = status.get("code")
    return status_error(code if isinstance(code, int) else 500, json.dumps(status).encode())


def _status_fields(data: bytes | None) -> tuple[str, str]:
    try:
        body = json.loads(data or b"{}")
    except ValueError:
        return "", (data or b"").decode(errors="replace")[:300]
    if not isinstance(body, dict):
        return "", str(body)[:300]
    return str(body.get("reason") or ""), str(body.get("message") or "")
