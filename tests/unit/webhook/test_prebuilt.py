"""devtools/prebuilt.py: binaries decompressed once into the cache, refused when the checksum differs."""

from __future__ import annotations

import hashlib
import lzma
from pathlib import Path

import pytest

from devtools import prebuilt

PROGRAM = b"#!/bin/sh\necho prebuilt\n"


@pytest.fixture
def folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    source = tmp_path / "shared-bin"
    source.mkdir()
    (source / "tool-v1.xz").write_bytes(lzma.compress(PROGRAM))
    monkeypatch.setenv("MULTINIC_PREBUILT", str(source))
    monkeypatch.setenv("MULTINIC_CACHE", str(tmp_path / "cache"))
    return tmp_path


def _tool(sha256: str) -> prebuilt.Prebuilt:
    return prebuilt.Prebuilt("tool-v1.xz", "tool", "tool-v1", sha256)


def test_decompressed_once_into_the_cache_and_executable(folders: Path) -> None:
    tool = _tool(hashlib.sha256(PROGRAM).hexdigest())
    path = prebuilt.ensure(tool)
    assert path == folders / "cache" / "tool-v1" / "tool"
    assert path.read_bytes() == PROGRAM and path.stat().st_mode & 0o111
    (folders / "shared-bin" / "tool-v1.xz").unlink()
    assert prebuilt.ensure(tool) == path  # cached: the archive is not needed again


def test_a_checksum_mismatch_is_refused_and_leaves_nothing(folders: Path) -> None:
    with pytest.raises(prebuilt.PrebuiltError, match="not the pinned"):
        prebuilt.ensure(_tool("0" * 64))
    assert list((folders / "cache" / "tool-v1").iterdir()) == []


def test_a_missing_archive_says_where_it_was_looked_for(folders: Path) -> None:
    tool = prebuilt.Prebuilt("absent.xz", "absent", "absent-v1", "0" * 64)
    with pytest.raises(prebuilt.PrebuiltError, match=r"absent\.xz is missing: set MULTINIC_PREBUILT"):
        prebuilt.ensure(tool)


def test_an_unknown_api_server_version_names_the_choices() -> None:
    with pytest.raises(prebuilt.PrebuiltError, match=r"choose one of 1\.20, 1\.36"):
        prebuilt.control_plane_dir("1.99")
    assert prebuilt.control_plane_dir("1.20") is None
