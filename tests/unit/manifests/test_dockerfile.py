"""A lint-level check of the Dockerfile (docker cannot run here): multi-stage, slim, non-root."""

from __future__ import annotations

import fnmatch
import json
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs with continuation lines joined and comments dropped."""
    text = (REPO / "Dockerfile").read_text().replace("\\\n", " ")
    result = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            keyword, _, rest = stripped.partition(" ")
            result.append((keyword.upper(), rest.strip()))
    return result


def _dockerignore() -> list[str]:
    lines = (REPO / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def _arg_defaults() -> dict[str, str]:
    """The global build arguments' defaults (scripts/build-image.sh overrides BASE)."""
    pairs = [args.partition("=") for keyword, args in _instructions() if keyword == "ARG"]
    return {name: default for name, _, default in pairs}


def test_multi_stage_on_slim_pinned_bases() -> None:
    stages = [args for keyword, args in _instructions() if keyword == "FROM"]
    assert len(stages) >= 2
    defaults = _arg_defaults()
    for stage in stages:
        image = stage.split()[0]
        if image.startswith("${") and image.endswith("}"):
            image = defaults[image[2:-1]]
        assert ":" in image and not image.endswith(":latest"), f"pin the base image tag: {image}"
        assert "slim" in image, f"{image} is not a slim base"
    assert " AS " in stages[0].upper(), "the build stage needs a name the runtime stage copies from"


def test_runtime_runs_as_a_numeric_non_root_user() -> None:
    instructions = _instructions()
    last_from = max(i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM")
    users = [args for keyword, args in instructions[last_from:] if keyword == "USER"]
    assert users, "the runtime stage must set USER"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0, "USER must be numeric (runAsNonRoot checks it) and not 0"


def test_entrypoint_is_the_declared_console_script() -> None:
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    entrypoints = [json.loads(args) for keyword, args in _instructions() if keyword == "ENTRYPOINT"]
    assert entrypoints and entrypoints[-1][0] in scripts


def test_copied_sources_exist_and_are_not_ignored() -> None:
    ignored = _dockerignore()
    for keyword, args in _instructions():
        if keyword != "COPY" or "--from" in args:
            continue
        *sources, _destination = args.split()
        for source in sources:
            path = source.rstrip("/")
            assert (REPO / path).exists(), f"COPY {source}: no such file in the repository"
            assert not any(fnmatch.fnmatch(path, pattern) for pattern in ignored), f"{source} is ignored"
    assert not any(keyword == "ADD" for keyword, _ in _instructions()), "use COPY; ADD fetches URLs"


def test_dockerignore_keeps_local_state_out_of_the_context() -> None:
    ignored = set(_dockerignore())
    assert {".git", ".venv", ".run", "tests"} <= ignored
