"""The guide's YAML documents (manifests/examples/, checked verbatim by tests/unit/manifests),
for tests that must accept every one of them unchanged."""

from __future__ import annotations

import pathlib
from typing import Any

import yaml

EXAMPLES = pathlib.Path(__file__).resolve().parents[4] / "manifests" / "examples"

# Files the guide itself presents as refused (its "Compatibility Issues" section).
REFUSED = frozenset({"nad-empty-spec-refused.yaml"})


def path(name: str) -> pathlib.Path:
    return EXAMPLES / name


def load(name: str) -> dict[str, Any]:
    """The one object in `manifests/examples/<name>`."""
    return yaml.safe_load(path(name).read_text())


def names(prefix: str = "") -> list[str]:
    """Example file names starting with `prefix` (`nad-`, `subnet-`, `pod-`, `deployment-`)."""
    return sorted(p.name for p in EXAMPLES.glob(f"{prefix}*.yaml"))
