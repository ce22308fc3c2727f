"""`dev up` starts its own control plane, so tests/e2e/test_devenv.py runs first in a session,
before anything starts the session's shared one: one control plane at a time on this machine."""

from __future__ import annotations

import pytest

OWN_CONTROL_PLANE = "test_devenv.py"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: 0 if item.path.name == OWN_CONTROL_PLANE else 1)  # stable: order kept
