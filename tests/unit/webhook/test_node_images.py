"""devtools/node_images.py: the node's one image, an OCI layout named with every guide image; and
webhook/node.for_node, the guide's NAD config as the local node runs it."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

from devtools import node, node_images


def _members(archive: Path) -> dict[str, bytes]:
    with tarfile.open(archive) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]


def test_archive_names_one_image_with_every_guide_image_and_the_pause_image(tmp_path: Path) -> None:
    files = _members(node_images.write_archive(tmp_path / "image.tar"))
    assert json.loads(files["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads(files["index.json"])
    names = [m["annotations"]["io.containerd.image.name"] for m in index["manifests"]]
    assert names == list(node_images.IMAGE_NAMES)
    guide_images = {"docker.io/library/alpine:edge", "docker.io/library/nginx:alpine"}
    assert guide_images | {node_images.PAUSE_IMAGE} <= set(names)
    assert len({m["digest"] for m in index["manifests"]}) == 1
    for digest in {m["digest"] for m in index["manifests"]}:
        manifest = json.loads(files[f"blobs/sha256/{digest.split(':')[1]}"])
        config = json.loads(files[f"blobs/sha256/{manifest['config']['digest'].split(':')[1]}"])
        assert config["config"]["Cmd"] == node_images.SLEEP_FOREVER
        (layer,) = manifest["layers"]
        blob = files[f"blobs/sha256/{layer['digest'].split(':')[1]}"]
        assert len(blob) == layer["size"]
        with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as rootfs:
            members = {m.name: m for m in rootfs.getmembers()}
    assert members["bin/busybox"].isfile() and members["bin/busybox"].mode & 0o111
    for applet in ("sh", "ash", "ip", "sleep", "ls"):
        assert members[f"bin/{applet}"].issym() and members[f"bin/{applet}"].linkname == "busybox"


def test_for_node_puts_macvlan_on_the_node_link_and_our_ipam_on_its_socket() -> None:
    guide = {"cniVersion": "0.3.0", "type": "macvlan", "master": "eth0", "mode": "bridge",
             "ipam": {"type": "kube-ovn", "server_socket": "/run/openvswitch/kube-ovn-daemon.sock",
                      "provider": "macvlan.default"}}
    changed = node.for_node(guide, Path("/tmp/run/kube-ovn-daemon.sock"))
    assert changed["master"] == node.MASTER_LINK
    assert changed["ipam"] == {"type": "kube-ovn", "server_socket": "/tmp/run/kube-ovn-daemon.sock",
                               "provider": "macvlan.default"}
    assert guide["master"] == "eth0"  # the caller's config is left alone
    attachnet = node.for_node({"type": "kube-ovn", "server_socket": "/x", "provider": "a.b.ovn"}, Path("/s"))
    assert attachnet == {"type": "kube-ovn", "server_socket": "/s", "provider": "a.b.ovn"}
