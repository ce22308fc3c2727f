"""CNI errors: the spec's numeric codes, so the runtime (and Multus) can tell retryable from fatal.

A plugin prints `{"cniVersion", "code", "msg", "details"}` on stdout and exits non-zero; every
message names the pod and provider it is about, so a `kubectl describe pod` event is actionable.
"""

from __future__ import annotations

# Codes from the CNI specification (SPEC.md, "Error codes").
INCOMPATIBLE_VERSION = 1
UNSUPPORTED_FIELD = 2
UNKNOWN_CONTAINER = 3
INVALID_ENVIRONMENT = 4
IO_FAILURE = 5
DECODE_FAILURE = 6
INVALID_CONFIG = 7
TRY_AGAIN_LATER = 11
NOT_AVAILABLE = 50
OTHER = 999


class CniError(Exception):
    """An error the plugin reports to its caller as CNI error JSON."""

    code = OTHER

    def __init__(self, msg: str, *, details: str = "", code: int | None = None) -> None:
        super().__init__(msg)
        self.msg = msg
        self.details = details
        if code is not None:
            self.code = code

    def to_json(self, cni_version: str) -> dict[str, object]:
        body: dict[str, object] = {"cniVersion": cni_version, "code": self.code, "msg": self.msg}
        if self.details:
            body["details"] = self.details
        return body


class IncompatibleVersionError(CniError):
    """The requested cniVersion is not one this plugin speaks."""

    code = INCOMPATIBLE_VERSION


class MissingEnvironmentError(CniError):
    """A required CNI_* variable or CNI_ARGS key is missing or malformed."""

    code = INVALID_ENVIRONMENT


class DecodeError(CniError):
    """Stdin is not a JSON object."""

    code = DECODE_FAILURE


class InvalidConfigError(CniError):
    """The network configuration cannot be used (wrong type, missing provider, bad routes …)."""

    code = INVALID_CONFIG


class TryAgainLaterError(CniError):
    """The answer is not there yet (daemon down, pod not annotated yet): the runtime retries."""

    code = TRY_AGAIN_LATER


class NotAvailableError(CniError):
    """STATUS: the node daemon does not answer, so ADDs would fail."""

    code = NOT_AVAILABLE
