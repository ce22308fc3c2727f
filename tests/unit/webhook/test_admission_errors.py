"""Every refusal carries its HTTP status; `code_of` decides it by class, not by `except` order."""

from __future__ import annotations

import pytest

from allocator import errors as allocator_errors
from webhook.admission import errors
from webhook.admission.attachments import AttachmentError
from webhook.admission.reviews import Verdict
from webhook.cluster.claims import TryAgain


@pytest.mark.parametrize(("error", "code"), [
    (errors.invalid("bad"), 422),
    (errors.forbidden("no"), 403),
    (errors.conflict("taken"), 409),
    (errors.AdmissionError("no"), 403),
    (AttachmentError("malformed", code=errors.INVALID), 422),
    (AttachmentError("not here"), 403),
    (TryAgain("lost 64 races; retry"), 429),  # an AllocatorError, yet its own status
    (allocator_errors.SubnetExhausted("full"), 403),
    (allocator_errors.AllocatorError("no"), 403),
])
def test_each_refusal_carries_its_status(error: Exception, code: int) -> None:
    assert isinstance(error, errors.REFUSALS)
    assert errors.code_of(error) == code
    verdict = Verdict.refuse(error)
    assert (verdict.allowed, verdict.message, verdict.code) == (False, str(error), code)


def test_attachment_errors_are_admission_errors() -> None:
    assert issubclass(AttachmentError, errors.AdmissionError)
    assert not issubclass(AttachmentError, allocator_errors.AllocatorError)
