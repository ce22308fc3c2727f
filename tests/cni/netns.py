"""Network namespaces, links and CNI plugin calls for the netns end-to-end tests (root only)."""

from __future__ import annotations

import json
import secrets
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

REFERENCE_PLUGINS = Path("/usr/lib/cni")
# What a node's container runtime has on PATH: the system python3, not a developer's pyenv shims.
NODE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=60)
    if check and done.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} failed: {done.stderr.strip()}")
    return done


def unique(prefix: str) -> str:
    """A short unique name (link names are at most 15 characters)."""
    return f"{prefix}{secrets.token_hex(4)}"[:15]


class Netns:
    """A named netns (`ip netns add`), the pod sandbox Multus would be handed."""

    def __init__(self) -> None:
        self.name = unique("mnt")
        sh("ip", "netns", "add", self.name)

    @property
    def path(self) -> str:
        return f"/var/run/netns/{self.name}"

    def ip(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return sh("ip", "-n", self.name, *args, check=check)

    def addresses(self, ifname: str) -> list[str]:
        """Global addresses of `ifname` as `a/p`, in kernel order."""
        links = json.loads(self.ip("-j", "addr", "show", "dev", ifname).stdout)
        return [f"{a['local']}/{a['prefixlen']}" for link in links for a in link["addr_info"]
                if a.get("scope") == "global"]

    def routes(self, ifname: str, family: str = "-4") -> list[tuple[str, str]]:
        """(dst, gateway) of the routes via a gateway on `ifname`."""
        shown = json.loads(self.ip("-j", family, "route", "show", "dev", ifname).stdout)
        return [(r["dst"], r["gateway"]) for r in shown if "gateway" in r]

    def link(self, ifname: str) -> dict[str, Any]:
        return json.loads(self.ip("-j", "link", "show", "dev", ifname).stdout)[0]

    def has_link(self, ifname: str) -> bool:
        return self.ip("link", "show", "dev", ifname, check=False).returncode == 0

    def delete(self) -> None:
        sh("ip", "netns", "del", self.name, check=False)


def host_has_link(name: str) -> bool:
    return sh("ip", "link", "show", "dev", name, check=False).returncode == 0


def run_plugin(plugin: str, command: str, conf: Mapping[str, Any], *, netns: Netns | None, pod: str,
               namespace: str, plugin_dir: Path, ifname: str = "net1", uid: str = "",
               container_id: str = "", path_prefix: str = "") -> tuple[int, dict[str, Any] | None]:
    """Call a reference plugin (or ours) the way Multus does; returns (exit code, stdout JSON).

    `path_prefix` goes in front of PATH (a fake `ovs-vsctl`, for instance)."""
    path = NODE_PATH
    env = {
        "PATH": f"{path_prefix}:{path}" if path_prefix else path,
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": container_id or f"ctr-{pod}",
        "CNI_NETNS": netns.path if netns else "",
        "CNI_IFNAME": ifname,
        "CNI_ARGS": f"IgnoreUnknown=1;K8S_POD_NAMESPACE={namespace};K8S_POD_NAME={pod};"
                    f"K8S_POD_INFRA_CONTAINER_ID=ctr-{pod};K8S_POD_UID={uid}",
        "CNI_PATH": f"{REFERENCE_PLUGINS}:{plugin_dir}",
    }
    executable = plugin_dir / plugin if plugin == "kube-ovn" else REFERENCE_PLUGINS / plugin
    done = subprocess.run([str(executable)], input=json.dumps(conf), capture_output=True, text=True,
                          env=env, check=False, timeout=120)
    return done.returncode, json.loads(done.stdout) if done.stdout.strip() else None
