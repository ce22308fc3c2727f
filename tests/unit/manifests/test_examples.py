"""manifests/examples/ holds every YAML block of the guide, verbatim, one per file.

The guide's text lost its indentation, so "verbatim" is checked line by line with leading
whitespace ignored: each file must be a contiguous run of the guide's lines, starting at one of
its `apiVersion:` lines, and together the files must cover every block.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
EXAMPLES = REPO / "manifests" / "examples"
GUIDE_CANDIDATES = (
    REPO.parent / "shared" / "seed" / "000_62c650eeffdac34b.txt",
    Path("/work/shared/seed/000_62c650eeffdac34b.txt"),
)


def _guide_lines() -> list[str]:
    guide = next(path for path in GUIDE_CANDIDATES if path.is_file())
    return [line.strip() for line in guide.read_text().splitlines()]


def _example_files() -> list[Path]:
    return sorted(EXAMPLES.glob("*.yaml"))


def _block_start(file_lines: list[str], guide: list[str]) -> int | None:
    """Index in the guide where the file's lines appear contiguously, or None."""
    for start, line in enumerate(guide):
        if line == file_lines[0] and guide[start : start + len(file_lines)] == file_lines:
            return start
    return None


def _file_lines(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


@pytest.mark.parametrize("path", _example_files(), ids=lambda p: p.name)
def test_each_example_is_a_verbatim_block_of_the_guide(path: Path) -> None:
    guide = _guide_lines()
    lines = _file_lines(path)
    assert lines[0].startswith("apiVersion:"), f"{path.name} must start at an apiVersion line"
    start = _block_start(lines, guide)
    assert start is not None, f"{path.name} is not a contiguous block of the guide"
    following = guide[start + len(lines)] if start + len(lines) < len(guide) else ""
    # The block ends where the guide's YAML ends: the next line is prose or a new document.
    assert not following.startswith(("-", "name:", "image:", "command:", "spec:")), (
        f"{path.name} stops early; the guide continues with {following!r}"
    )


@pytest.mark.parametrize("path", _example_files(), ids=lambda p: p.name)
def test_each_example_is_one_kubernetes_object(path: Path) -> None:
    documents = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    assert len(documents) == 1
    obj = documents[0]
    assert obj["apiVersion"] and obj["kind"] and obj["metadata"]["name"]


def test_every_block_of_the_guide_has_its_file() -> None:
    guide = _guide_lines()
    block_starts = {i for i, line in enumerate(guide) if line.startswith("apiVersion:")}
    covered = {_block_start(_file_lines(path), guide) for path in _example_files()}
    missing = sorted(block_starts - covered)
    assert not missing, f"guide blocks without an example file start at lines {missing}"
    assert len(_example_files()) == len(block_starts) == 17


def test_alternatives_share_names_as_the_guide_does() -> None:
    """The guide's Subnets with provider ovn replace, not add to, the NAD-provider ones."""
    def name(file: str) -> tuple[str, str]:
        obj = yaml.safe_load((EXAMPLES / file).read_text())
        return obj["metadata"]["name"], obj["spec"]["provider"]

    assert name("subnet-macvlan.yaml") == ("macvlan", "macvlan.default")
    assert name("subnet-macvlan-provider-ovn.yaml") == ("macvlan", "ovn")
    assert name("subnet-attachnet.yaml") == ("attachnet", "attachnet.default.ovn")
    assert name("subnet-attachnet-provider-ovn.yaml") == ("attachnet", "ovn")
