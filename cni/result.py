"""The daemon's answer (`Allocation`) and the CNI result built from it in the caller's cniVersion.

Shapes differ by version: 0.3.x and 0.4.0 carry `"version": "4"|"6"` on each IP, 1.0.0 and later
do not. An IPAM result has no `interfaces`; the `type: kube-ovn` main plugin adds them.
"""

from __future__ import annotations

from cni import config, errors

TYPE_CHECKING = False  # as in cni.config: no `typing` import at run time
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence


class IPConfig(config.Value):
    """One address with its subnet prefix; `gateway` only where it is this family's default route."""

    __slots__ = ("address", "family", "gateway")

    def __init__(self, address: str, family: int, gateway: str | None = None) -> None:
        self.address = address
        self.family = family
        self.gateway = gateway


class Allocation(config.Value):
    """What the node daemon answers for one pod attachment (see docs/internals.md)."""

    __slots__ = ("default_route", "ips", "mac", "routes", "subnet")

    def __init__(self, ips: tuple[IPConfig, ...], mac: str = "", routes: tuple[dict[str, str], ...] = (),
                 default_route: bool = False, subnet: str = "") -> None:
        self.ips = ips
        self.mac = mac
        self.routes = routes
        self.default_route = default_route
        self.subnet = subnet

    @classmethod
    def from_json(cls, body: Mapping[str, object]) -> Allocation:
        try:
            ips = tuple(IPConfig(address=ip["address"], family=int(ip["family"]),
                                 gateway=ip.get("gateway") or None) for ip in body["ips"])
            routes = tuple({k: str(v) for k, v in route.items() if k in ("dst", "gw") and v}
                           for route in body.get("routes") or ())
        except (KeyError, TypeError, ValueError) as exc:
            raise errors.CniError(f"the node daemon sent a malformed allocation ({exc!r}): {body!r}",
                                  ) from None
        return cls(ips=ips, mac=str(body.get("mac") or ""), routes=routes,
                   default_route=bool(body.get("default_route")), subnet=str(body.get("subnet") or ""))


class Interface(config.Value):
    """An interface a main plugin created; `sandbox` is the netns path for the container side."""

    __slots__ = ("mac", "name", "sandbox")

    def __init__(self, name: str, mac: str = "", sandbox: str = "") -> None:
        self.name = name
        self.mac = mac
        self.sandbox = sandbox


def build(cni_version: str, allocation: Allocation, *, interfaces: Sequence[Interface] = (),
          ip_interface: int | None = None) -> dict[str, object]:
    """The result object for `cni_version`; `ip_interface` indexes `interfaces` for every IP."""
    per_ip_version = config.version_tuple(cni_version) < (1, 0, 0)
    ips = []
    for ip in allocation.ips:
        entry: dict[str, object] = {}
        if per_ip_version:
            entry["version"] = str(ip.family)
        entry["address"] = ip.address
        if ip.gateway:
            entry["gateway"] = ip.gateway
        if ip_interface is not None:
            entry["interface"] = ip_interface
        ips.append(entry)
    result: dict[str, object] = {"cniVersion": cni_version}
    if interfaces:
        result["interfaces"] = [_interface(i) for i in interfaces]
    result["ips"] = ips
    result["routes"] = [dict(route) for route in allocation.routes]
    result["dns"] = {}
    return result


def _interface(interface: Interface) -> dict[str, str]:
    entry = {"name": interface.name}
    if interface.mac:
        entry["mac"] = interface.mac
    if interface.sandbox:
        entry["sandbox"] = interface.sandbox
    return entry
