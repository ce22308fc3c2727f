"""The IP object as Kube-OVN writes it: annotations and labels, the body of a new one, and what is
read back from one (owner string, address, reservation token, holder text). Pure: no API calls."""

from __future__ import annotations

import ipaddress

from webhook.cluster import objects
from webhook.cluster.cache import Object
from webhook.cluster.packing import SharedStrings

# When the reservation was made or last taken over (epoch seconds): the Lifecycle's grace period
# for pods that never come to exist counts from here (a taken-over object keeps its old creationTimestamp).
RESERVED_AT_ANNOTATION = "multinic-ipam.io/reserved-at"
# How long that reservation may wait for its pod, as the admitting process was configured: the
# leader honours it, so each replica's configured grace period travels with its reservations.
GRACE_ANNOTATION = "multinic-ipam.io/grace-seconds"
UNKNOWN_OWNER = "?"  # a lost race: held by someone this process has not heard of yet
_owners = SharedStrings()


def name_of(obj: Object) -> str:
    return (obj.get("metadata") or {}).get("name", "")


def owner_string(namespace: str, pod: str, provider: str, interface: str, token: str) -> str:
    """The allocator's owner string: `<ns>/<pod or generateName>/<provider>/<ifname>#<token>`.
    Made when a pod is admitted and again from its IP object's events: one copy is kept."""
    return _owners(f"{namespace}/{pod}/{provider}/{interface}#{token}")


def owner_of(ip: Object) -> str:
    """The allocator owner string an IP object stands for (matches `PodIdentity.owner`)."""
    spec = ip.get("spec") or {}
    token = ((ip.get("metadata") or {}).get("labels") or {}).get(objects.LABEL_RESERVATION, "")
    pod = spec.get("podName") or spec.get("generateName") or ""
    return owner_string(spec.get("namespace", ""), pod, spec.get("provider", ""), spec.get("interface", ""),
                        token)


def address_of(ip: Object) -> str:
    spec = ip.get("spec") or {}
    return spec.get("v4IPAddress") or spec.get("v6IPAddress") or spec.get("ipAddress") or ""


def token_of(obj: Object) -> str:
    """The reservation token of an IP object (label) or a pod (annotation); "" for none."""
    meta = obj.get("metadata") or {}
    return (meta.get("labels") or {}).get(objects.LABEL_RESERVATION, "") or (
        meta.get("annotations") or {}
    ).get(objects.RESERVATION_ANNOTATION, "")


def holder_text(ip: Object) -> str:
    """`pod ns/name` (or `ns/generateName*`) for a refusal message."""
    spec = ip.get("spec") or {}
    pod = spec.get("podName") or (spec.get("generateName", "") + "*")
    return f"pod {spec.get('namespace', '')}/{pod}"


def owner_text(owner: str) -> str:
    """`pod ns/name` from an allocator owner string `<ns>/<pod>/<provider>/<ifname>#<token>`."""
    if owner == UNKNOWN_OWNER:
        return "another pod"
    namespace, _, rest = owner.partition("/")
    return f"pod {namespace}/{rest.partition('/')[0]}"


def reservation_stamp(now: float, grace: float) -> dict[str, str]:
    """The annotations of a reservation made (or taken over) at `now` with grace period `grace`."""
    return {RESERVED_AT_ANNOTATION: f"{now:.3f}", GRACE_ANNOTATION: f"{grace:g}"}


def ip_body(
    *, subnet: str, provider: str, interface: str, address: str, mac: str, namespace: str, pod_name: str,
    generate_name: str, owner_kind: str, owner_uid: str, token: str, annotations: dict[str, str],
) -> Object:
    """A new IP object holding `address` of `subnet` for one pod attachment."""
    version = ipaddress.ip_address(address).version
    return {
        "apiVersion": objects.API_VERSION,
        "kind": "IP",
        "metadata": {
            "name": objects.ip_object_name(subnet, address),
            "labels": {
                objects.LABEL_SUBNET: subnet,
                objects.LABEL_POD_NAMESPACE: namespace,
                objects.LABEL_RESERVATION: token,
            },
            "annotations": annotations,
        },
        "spec": {
            "subnet": subnet,
            "provider": provider,
            "ipAddress": address,
            f"v{version}IPAddress": address,
            "macAddress": mac,
            "namespace": namespace,
            "podName": pod_name,
            "generateName": generate_name,
            "podUID": "",
            "podType": owner_kind,
            "ownerUID": owner_uid,
            "interface": interface,
        },
    }


def ordered(addresses: tuple[str, ...]) -> tuple[str, ...]:
    """IPv4 first, then IPv6, as Kube-OVN writes dual-stack values."""
    return tuple(sorted(addresses, key=lambda a: ipaddress.ip_address(a).version))
