"""From a pod's annotations to the allocation the plugin turns into a CNI result (daemon side).

Pure: no Kubernetes client, no I/O, so it is unit-tested with plain dicts. The mutating webhook
wrote the addresses at admission; here they get their subnet prefix, and the routes are assembled
in the documented order: the NAD's `ipam.routes`, then `P.kubernetes.io/routes`, then a default
route via the gateway when this attachment is the pod's default route.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import netaddr

from allocator import annotations, networks
from allocator.annotations import Route
from allocator.errors import ParseError

PRIMARY_IFNAME = "eth0"


class NotAnnotatedError(Exception):
    """The pod has no allocation for the provider yet: the daemon waits, then gives up with code 11."""


class UnusableAnnotationError(Exception):
    """The pod's annotations exist but cannot be turned into an allocation (code 7)."""


@dataclasses.dataclass(frozen=True)
class Request:
    """One `POST /v1/allocation` (see docs/internals.md)."""

    namespace: str
    name: str
    provider: str
    ifname: str = "net1"
    nad_routes: tuple[Mapping[str, str], ...] = ()

    @property
    def pod(self) -> str:
        return f"{self.namespace}/{self.name}"


def answer(pod: Mapping[str, Any], request: Request) -> dict[str, Any]:
    """The daemon's JSON answer for `request`, from the pod object (`metadata.annotations`)."""
    pod_annotations: Mapping[str, str] = (pod.get("metadata") or {}).get("annotations") or {}
    # A NAD attached twice (`net@a,net@b`) is keyed by provider plus interface
    # (webhook.admission.attachments).
    fields = annotations.provider_annotations(
        pod_annotations, f"{request.provider}.{request.ifname}"
    ) or annotations.provider_annotations(pod_annotations, request.provider)
    if fields.get(annotations.ALLOCATED) != "true" or not fields.get(annotations.IP_ADDRESS):
        raise NotAnnotatedError(
            f"pod {request.pod} has no address for provider {request.provider}; "
            "is the admission webhook installed?"
        )
    addresses = _addresses(fields, request)
    gateways = _by_family(fields.get(annotations.GATEWAY, ""), request, annotations.GATEWAY)
    wanted, requested_gateways = default_route_request(pod_annotations, request)
    routes = assemble_routes(
        nad_routes=_nad_routes(request),
        annotation_routes=_annotation_routes(fields, request),
        default_gateways={**gateways, **requested_gateways} if wanted else {},
        families=[ip.version for ip in addresses],
        subnet_gateways=gateways,
    )
    default_gw = {r.family: r.gw for r in routes if r.is_default and r.gw is not None}
    return {
        "ips": [
            {"address": f"{ip.ip}/{ip.prefixlen}", "family": ip.version,
             **({"gateway": str(default_gw[ip.version])} if ip.version in default_gw else {})}
            for ip in addresses
        ],
        "mac": fields.get(annotations.MAC_ADDRESS, ""),
        "routes": [_route_json(route) for route in routes],
        "default_route": bool(default_gw),
        "subnet": fields.get(annotations.LOGICAL_SWITCH, ""),
    }


def default_route_request(pod_annotations: Mapping[str, str],
                          request: Request) -> tuple[bool, dict[int, netaddr.IPAddress]]:
    """Whether this attachment carries the pod's default route, and any gateways the selection named.

    It does when its network selection has `default-route`, or when it is the pod's main NIC
    (`v1.multus-cni.io/default-network` names its NAD).
    """
    base = request.provider.removesuffix(".ovn")
    try:
        selections = networks.parse_networks(pod_annotations.get(annotations.NETWORKS, ""),
                                             pod_namespace=request.namespace)
    except ParseError as exc:
        raise UnusableAnnotationError(f"pod {request.pod}: {exc}") from None
    candidates = [(index, selection) for index, selection in enumerate(selections, start=1)
                  if f"{selection.name}.{selection.namespace}" == base]
    main = pod_annotations.get(annotations.DEFAULT_NETWORK, "")
    is_main = False
    if main:
        try:
            selection = networks.parse_default_network(main)
        except ParseError as exc:
            raise UnusableAnnotationError(f"pod {request.pod}: {exc}") from None
        is_main = f"{selection.name}.{selection.namespace}" == base
    if len(candidates) + is_main > 1:  # one NAD on several NICs (eth0 too): told apart by interface
        candidates = [(i, s) for i, s in candidates if (s.interface or f"net{i}") == request.ifname]
    if candidates and candidates[0][1].default_route:
        gateways = [netaddr.IPAddress(gw) for gw in candidates[0][1].default_route]
        return True, {gw.version: gw for gw in gateways}
    if is_main and (request.ifname == PRIMARY_IFNAME or not candidates):
        return True, {}
    return False, {}


def assemble_routes(*, nad_routes: Sequence[Route], annotation_routes: Sequence[Route],
                    default_gateways: Mapping[int, Any], families: Sequence[int],
                    subnet_gateways: Mapping[int, Any]) -> list[Route]:
    """NAD routes, then the pod's (a pod route replaces a NAD route to the same destination), then
    a default route per family that has none yet. NAD routes without `gw` go via the subnet gateway."""
    merged: dict[tuple[int | None, str], Route] = {}
    for route in nad_routes:
        if route.gw is None and route.family in subnet_gateways:
            merged[_route_key(route)] = Route(dst=route.dst, gw=subnet_gateways[route.family])
        else:
            merged[_route_key(route)] = route
    for route in annotation_routes:
        merged[_route_key(route)] = route
    for family in dict.fromkeys(families):
        if family in default_gateways and (family, "default") not in merged:
            merged[(family, "default")] = Route(dst=None, gw=netaddr.IPAddress(default_gateways[family]))
    return list(merged.values())


def _route_key(route: Route) -> tuple[int | None, str]:
    return route.family, "default" if route.is_default else str(route.dst)


def _route_json(route: Route) -> dict[str, str]:
    dst = route.dst if route.dst is not None else ("0.0.0.0/0" if route.family == 4 else "::/0")
    return {"dst": str(dst), **({"gw": str(route.gw)} if route.gw is not None else {})}


def _addresses(fields: Mapping[str, str], request: Request) -> list[netaddr.IPNetwork]:
    """Each annotated address with the prefix of its family's CIDR (`172.17.0.12/16`)."""
    cidrs = {}
    try:
        for text in annotations.split_dual(fields.get(annotations.CIDR, "")):
            network = annotations.parse_interface(text)
            cidrs[network.version] = network.prefixlen
    except (ParseError, ValueError):
        raise UnusableAnnotationError(
            f"pod {request.pod} has cidr {fields.get(annotations.CIDR)!r} for provider {request.provider}, "
            "which is not a CIDR or a v4,v6 pair of CIDRs"
        ) from None
    result = []
    for version, ip in _by_family(fields[annotations.IP_ADDRESS], request, annotations.IP_ADDRESS).items():
        if version not in cidrs:
            raise UnusableAnnotationError(
                f"pod {request.pod} has IPv{version} address {ip} for provider {request.provider} "
                f"but no IPv{version} cidr ({fields.get(annotations.CIDR)!r})"
            )
        result.append(netaddr.IPNetwork(f"{ip}/{cidrs[version]}"))
    return result


def _by_family(value: str, request: Request, field: str) -> dict[int, netaddr.IPAddress]:
    if not value:
        return {}
    try:
        parsed = [annotations.parse_address(part) for part in annotations.split_dual(value)]
    except (ParseError, ValueError):
        raise UnusableAnnotationError(
            f"pod {request.pod} has {field} {value!r} for provider {request.provider}, "
            "which is not an address or a v4,v6 pair"
        ) from None
    return {ip.version: ip for ip in parsed}


def _nad_routes(request: Request) -> tuple[Route, ...]:
    try:
        return annotations.route_list(list(request.nad_routes), where="the NAD's routes", dst_required=True)
    except ParseError as exc:
        raise UnusableAnnotationError(f"pod {request.pod} provider {request.provider}: {exc}") from None


def _annotation_routes(fields: Mapping[str, str], request: Request) -> tuple[Route, ...]:
    value = fields.get(annotations.ROUTES)
    if not value:
        return ()
    try:
        return annotations.parse_routes(value)
    except ParseError as exc:
        raise UnusableAnnotationError(f"pod {request.pod} provider {request.provider}: {exc}") from None
