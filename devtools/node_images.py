"""Container images for the local node, made here because no registry is reachable.

One OCI image holds Debian's static busybox with a link per applet (`sh`, `ash`, `ip`, `sleep`...)
and, by default, sleeps until killed. It is tagged with every name the guide's examples use, and
is also the node's pause image: the guide's YAML runs unchanged and `kubectl exec ... ip addr`
works inside its pods.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import subprocess
import tarfile
from pathlib import Path

BUSYBOX = Path("/bin/busybox")
PAUSE_IMAGE = "localhost/multinic-ipam/pause:1"
# The images the guide's examples name (manifests/examples), and a plain busybox for anything else.
EXAMPLE_IMAGES = ("docker.io/library/alpine:edge", "docker.io/library/nginx:alpine",
                  "docker.io/library/busybox:stable")
IMAGE_NAMES = (PAUSE_IMAGE, *EXAMPLE_IMAGES)
SLEEP_FOREVER = ["/bin/sh", "-c", "trap 'exit 0' TERM INT; sleep 2147483647 & wait"]
_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
_OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
_OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


class ImageError(RuntimeError):
    """The node's image could not be made or imported; the message says what to do."""


def _applets() -> list[str]:
    if not BUSYBOX.is_file():
        raise ImageError(f"{BUSYBOX} is missing: install Debian's busybox-static (scripts/setup.sh does)")
    listed = subprocess.run([str(BUSYBOX), "--list"], capture_output=True, text=True, check=True, timeout=30)
    return sorted({name for name in listed.stdout.split() if name and "/" not in name and name != "busybox"})


def _layer() -> bytes:
    """A gzipped tar: /bin/busybox, a symlink per applet, and the folders a container runtime mounts on."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for folder in ("bin", "dev", "etc", "proc", "root", "sys", "tmp", "var", "var/run"):
            info = tarfile.TarInfo(folder)
            info.type, info.mode = tarfile.DIRTYPE, 0o1777 if folder == "tmp" else 0o755
            tar.addfile(info)
        data = BUSYBOX.read_bytes()
        info = tarfile.TarInfo("bin/busybox")
        info.size, info.mode = len(data), 0o755
        tar.addfile(info, io.BytesIO(data))
        for applet in _applets():
            info = tarfile.TarInfo(f"bin/{applet}")
            info.type, info.linkname = tarfile.SYMTYPE, "busybox"
            tar.addfile(info)
        for name, text in (("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n"), ("etc/group", "root:x:0:\n")):
            encoded = text.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(encoded), 0o644
            tar.addfile(info, io.BytesIO(encoded))
    return raw.getvalue()


def _blob(blobs: dict[str, bytes], data: bytes) -> dict[str, object]:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    blobs[digest] = data
    return {"digest": digest, "size": len(data)}


def write_archive(path: Path, names: tuple[str, ...] = IMAGE_NAMES) -> Path:
    """An OCI image layout tarball holding the image once, named with every one of `names`."""
    uncompressed = _layer()
    layer = gzip.compress(uncompressed, mtime=0)
    blobs: dict[str, bytes] = {}
    config = {
        "architecture": "amd64", "os": "linux",
        "config": {"Cmd": SLEEP_FOREVER, "Env": ["PATH=/bin"], "WorkingDir": "/"},
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(uncompressed).hexdigest()]},
    }
    manifest = {
        "schemaVersion": 2, "mediaType": _OCI_MANIFEST,
        "config": {"mediaType": _OCI_CONFIG, **_blob(blobs, json.dumps(config).encode())},
        "layers": [{"mediaType": _OCI_LAYER, **_blob(blobs, layer)}],
    }
    described = {"mediaType": _OCI_MANIFEST, **_blob(blobs, json.dumps(manifest).encode()),
                 "platform": {"architecture": "amd64", "os": "linux"}}
    index = {"schemaVersion": 2, "manifests": [
        {**described, "annotations": {"io.containerd.image.name": name,
                                      "org.opencontainers.image.ref.name": name.rsplit(":", 1)[1]}}
        for name in names
    ]}
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w") as tar:
        files = {"oci-layout": json.dumps({"imageLayoutVersion": "1.0.0"}).encode(),
                 "index.json": json.dumps(index).encode()}
        files.update({f"blobs/sha256/{digest.split(':', 1)[1]}": data for digest, data in blobs.items()})
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return path


def import_archive(archive: Path, address: Path, snapshotter: str) -> None:
    """`ctr -n k8s.io images import` into the node's containerd (the namespace its CRI plugin reads)."""
    done = subprocess.run(
        ["ctr", "--address", str(address), "-n", "k8s.io", "images", "import", "--snapshotter", snapshotter,
         str(archive)],
        capture_output=True, text=True, timeout=120, check=False,
    )
    if done.returncode != 0:
        raise ImageError(f"ctr could not import {archive}: {done.stderr.strip() or done.stdout.strip()}")
