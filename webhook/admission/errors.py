"""Refusals and the HTTP status each answers with: every code defined here, once.

A refusal carries its own status: an `AdmissionError` its `code` (raised by the rules and the
attachment resolver through `invalid`, `forbidden`, `conflict`), the allocator's and the store's
errors by their class (`CODES`, most specific class first by inheritance, never by the order of
`except` clauses). `code_of(error)` is the one place a refusal's status is decided
(`reviews.Verdict.refuse` turns a refusal into a denial with it).
"""

from __future__ import annotations

from allocator.errors import AllocatorError
from webhook.cluster.claims import TryAgain

INVALID = 422  # the object itself is malformed (kubectl shows "Invalid")
FORBIDDEN = 403  # well formed, but not allowed here
CONFLICT = 409  # collides with something that already exists (an address, a pool, a CIDR)
TOO_MANY_REQUESTS = 429  # races lost or the API server failed: retrying may succeed

# Errors raised below admission, by class: the most specific class in an error's MRO wins.
CODES: dict[type[Exception], int] = {TryAgain: TOO_MANY_REQUESTS, AllocatorError: FORBIDDEN}


class AdmissionError(Exception):
    """A refusal: `str()` is the one sentence shown to the user, `code` the HTTP status the API
    server relays (422 malformed, 409 collides with something, 403 otherwise)."""

    def __init__(self, message: str, *, code: int = FORBIDDEN) -> None:
        super().__init__(message)
        self.code = code


def invalid(message: str) -> AdmissionError:
    """The object is malformed (422)."""
    return AdmissionError(message, code=INVALID)


def forbidden(message: str) -> AdmissionError:
    """Well formed, but not allowed here (403)."""
    return AdmissionError(message, code=FORBIDDEN)


def conflict(message: str) -> AdmissionError:
    """Collides with something that already exists (409)."""
    return AdmissionError(message, code=CONFLICT)


# What a review answers with a denial; anything else is a bug, answered with a 500.
REFUSALS = (AdmissionError, AllocatorError)


def code_of(error: AdmissionError | AllocatorError) -> int:
    """The HTTP status a refusal answers with."""
    if isinstance(error, AdmissionError):
        return error.code
    return next(CODES[cls] for cls in type(error).__mro__ if cls in CODES)
