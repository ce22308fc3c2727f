"""The veth of a `type: kube-ovn` attachment, made with iproute2 (`ip`, `nsenter`) so that the
plugin stays standard-library only.

The host end is named after the pod (deterministic, so DEL finds it without state); the container
end is created directly inside the pod's netns as CNI_IFNAME, so it never clashes on the host.
"""

from __future__ import annotations

import dataclasses
import hashlib
import ipaddress
import json
import os
import re
import shutil
import subprocess
from collections.abc import Sequence

from cni import errors
from cni.result import Allocation

IFNAMSIZ = 15
OVS_BRIDGE = "br-int"


def host_veth_name(namespace: str, pod: str, ifname: str) -> str:
    """`<pod prefix>_<hash>`: readable, at most 15 characters, stable for (namespace, pod, ifname)."""
    digest = hashlib.sha256(f"{namespace}/{pod}/{ifname}".encode()).hexdigest()[:8]
    prefix = re.sub(r"[^A-Za-z0-9]", "", pod)[: IFNAMSIZ - len(digest) - 1]
    return f"{prefix}_{digest}"


def _run(argv: Sequence[str], *, netns: str = "", stdin: str | None = None) -> str:
    command = (["nsenter", f"--net={netns}", *argv]) if netns else list(argv)
    try:
        done = subprocess.run(command, input=stdin, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise errors.CniError(f"running {' '.join(command)} failed: {exc}") from None
    if done.returncode != 0:
        raise errors.CniError(f"{' '.join(command)} failed: {done.stderr.strip() or done.stdout.strip()}",
                              details=stdin or "")
    return done.stdout


def create_veth(*, host: str, ifname: str, netns: str, mac: str = "", mtu: int | None = None) -> str:
    """Create the pair, container end in `netns`; returns the host end's MAC."""
    peer = ["name", ifname, *(["address", mac] if mac else []), *(["mtu", str(mtu)] if mtu else []),
            "netns", netns]
    _run(["ip", "link", "add", host, *(["mtu", str(mtu)] if mtu else []), "type", "veth", "peer", *peer])
    _run(["ip", "link", "set", host, "up"])
    return link_mac(host)


def link_mac(name: str, *, netns: str = "") -> str:
    links = json.loads(_run(["ip", "-j", "link", "show", "dev", name], netns=netns) or "[]")
    return links[0].get("address", "") if links else ""


def configure(*, ifname: str, netns: str, allocation: Allocation) -> None:
    """Addresses, link up, then routes (in the order given), in one `ip -batch` inside `netns`."""
    lines = []
    for ip in allocation.ips:
        lines.append(f"addr add {ip.address} dev {ifname}{' nodad' if ip.family == 6 else ''}")
    lines.append(f"link set {ifname} up")
    for route in allocation.routes:
        via = f" via {route['gw']}" if route.get("gw") else ""
        lines.append(f"route add {route['dst']}{via} dev {ifname}")
    _run(["ip", "-batch", "-"], netns=netns, stdin="\n".join(lines) + "\n")


def attach_ovs(host: str, iface_id: str) -> bool:
    """Plug the host end into OVS when `ovs-vsctl` exists; otherwise leave it unattached."""
    if not shutil.which("ovs-vsctl"):
        return False
    _run(["ovs-vsctl", "--timeout=10", "--may-exist", "add-port", OVS_BRIDGE, host, "--",
          "set", "interface", host, f"external_ids:iface-id={iface_id}"])
    return True


def delete(*, host: str, ifname: str = "", netns: str = "") -> None:
    """Remove the pair from either end; absent links, netns and OVS ports are not errors."""
    if host and shutil.which("ovs-vsctl"):
        subprocess.run(["ovs-vsctl", "--timeout=10", "--if-exists", "del-port", OVS_BRIDGE, host],
                       capture_output=True, check=False, timeout=30)
    if host and exists(host):
        _delete_link(host)
    if netns and ifname and os.path.exists(netns) and _netns_usable(netns) and exists(ifname, netns=netns):
        _delete_link(ifname, netns=netns)


def _delete_link(name: str, *, netns: str = "") -> None:
    try:
        _run(["ip", "link", "del", name], netns=netns)
    except errors.CniError:
        if exists(name, netns=netns):  # gone meanwhile (its peer was deleted) is fine
            raise


def exists(name: str, *, netns: str = "") -> bool:
    command = ["ip", "link", "show", "dev", name]
    if netns:
        command = ["nsenter", f"--net={netns}", *command]
    return subprocess.run(command, capture_output=True, check=False, timeout=30).returncode == 0


def _netns_usable(netns: str) -> bool:
    return subprocess.run(["nsenter", f"--net={netns}", "true"], capture_output=True,
                          check=False, timeout=30).returncode == 0


@dataclasses.dataclass(frozen=True)
class LinkState:
    """What CHECK compares against the allocation."""

    mac: str
    addresses: frozenset[str]
    routes: frozenset[tuple[str, str]]


def inspect(ifname: str, *, netns: str) -> LinkState:
    """MAC, global addresses (`a/p`) and (dst, gw) routes of `ifname` inside `netns`."""
    if not exists(ifname, netns=netns):
        raise errors.CniError(f"interface {ifname} does not exist in {netns}")
    addrs = json.loads(_run(["ip", "-j", "addr", "show", "dev", ifname], netns=netns) or "[]")
    mac = addrs[0].get("address", "") if addrs else ""
    addresses = frozenset(f"{info['local']}/{info['prefixlen']}" for link in addrs
                          for info in link.get("addr_info", []) if info.get("scope") == "global")
    routes = set()
    for family in ("-4", "-6"):
        shown = _run(["ip", "-j", family, "route", "show", "dev", ifname], netns=netns)
        for route in json.loads(shown or "[]"):
            dst = route.get("dst", "")
            if dst == "default":
                dst = "0.0.0.0/0" if family == "-4" else "::/0"
            elif "/" not in dst:
                dst = f"{dst}/{ipaddress.ip_address(dst).max_prefixlen}"
            routes.add((dst, route.get("gateway", "")))
    return LinkState(mac=mac.lower(), addresses=addresses, routes=frozenset(routes))
