"""Third-party binaries no package registry carries: Multus' thin plugin and the 1.36 control plane.

They come xz-compressed from the project's `shared/bin` folder (beside the repository; the
`MULTINIC_PREBUILT` variable names another), and are decompressed once into the build cache after
their sha256 is checked, so a changed or truncated file is refused rather than run.
"""

from __future__ import annotations

import hashlib
import lzma
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from devtools.controlplane import cache_dir

REPO = Path(__file__).resolve().parents[1]
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Prebuilt:
    """One binary: its compressed file name, the program name it is installed as, its checksum."""

    archive: str
    program: str
    version: str
    sha256: str


MULTUS = Prebuilt("multus-v4.3.0.xz", "multus", "multus-v4.3.0",
                  "4040a9b04f9064bf59b58b9bac1fe3e5be7ca49eab33c07e46bb03f671daa180")
# The API server versions tests can run against besides the Debian-built 1.20 (the default).
CONTROL_PLANES: dict[str, tuple[Prebuilt, ...]] = {
    "1.36": (
        Prebuilt("kube-apiserver-v1.36.2.xz", "kube-apiserver", "kubernetes-v1.36.2",
                 "e52a53c31d1384e4ebfdf087d295e41d85197a0b7653ea5704565a5d93647afa"),
        Prebuilt("kube-controller-manager-v1.36.2.xz", "kube-controller-manager", "kubernetes-v1.36.2",
                 "199bbcf5e7892e1f149bb66882c86bf2f951d0427cee42dedf4e18e51a4b876f"),
    ),
}
DEFAULT_APISERVER = "1.20"


class PrebuiltError(RuntimeError):
    """A prebuilt binary is missing or does not match its checksum; the message says what to do."""


def source_dir() -> Path:
    """Where the compressed binaries are: `MULTINIC_PREBUILT`, else `shared/bin` beside the repository."""
    return Path(os.environ.get("MULTINIC_PREBUILT") or REPO.parent / "shared" / "bin")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def ensure(binary: Prebuilt) -> Path:
    """The cached, checked executable, decompressed from `source_dir()` on first use."""
    target = cache_dir() / binary.version / binary.program
    if target.is_file() and _sha256(target) == binary.sha256:
        return target
    archive = source_dir() / binary.archive
    if not archive.is_file():
        raise PrebuiltError(f"{archive} is missing: set MULTINIC_PREBUILT to the folder holding "
                            f"{binary.archive}, or put {binary.program} {binary.version} at {target}")
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=f".{binary.program}-", dir=target.parent)
    partial = Path(name)
    try:
        digest = hashlib.sha256()
        with lzma.open(archive) as source, os.fdopen(handle, "wb") as sink:
            while chunk := source.read(_CHUNK):
                digest.update(chunk)
                sink.write(chunk)
        if digest.hexdigest() != binary.sha256:
            raise PrebuiltError(f"{archive} decompresses to sha256 {digest.hexdigest()}, not the pinned "
                                f"{binary.sha256}: replace it with the file the project ships")
        partial.chmod(0o755)
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    return target


def control_plane_dir(version: str) -> Path | None:
    """The folder holding kube-apiserver and kube-controller-manager `version` (None: the 1.20 build).

    etcd and kubectl are not in it: `controlplane.find_binaries` takes them from PATH."""
    if version == DEFAULT_APISERVER:
        return None
    if version not in CONTROL_PLANES:
        known = ", ".join([DEFAULT_APISERVER, *CONTROL_PLANES])
        raise PrebuiltError(f"no API server {version!r} to test against; choose one of {known}")
    folders = {ensure(binary).parent for binary in CONTROL_PLANES[version]}
    (folder,) = folders
    return folder
