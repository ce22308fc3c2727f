"""Names, groups and labels of the Kubernetes objects this system reads and writes."""

from __future__ import annotations

import ipaddress

GROUP = "kubeovn.io"
VERSION = "v1"
API_VERSION = f"{GROUP}/{VERSION}"

NAD_GROUP = "k8s.cni.cncf.io"
NAD_VERSION = "v1"

# Cache kinds: the plural resource names.
SUBNETS = "subnets"
IPS = "ips"
IPPOOLS = "ippools"
NADS = "network-attachment-definitions"
PODS = "pods"
STATEFULSETS = "statefulsets"
# Whereabouts' records (whereabouts.cni.cncf.io/v1alpha1), read by `adopt` when the CRDs exist.
WHEREABOUTS_IPPOOLS = "ippools.whereabouts.cni.cncf.io"
WHEREABOUTS_RESERVATIONS = "overlappingrangeipreservations.whereabouts.cni.cncf.io"

LABEL_SUBNET = "multinic-ipam.io/subnet"
LABEL_POD_NAMESPACE = "multinic-ipam.io/pod-namespace"
LABEL_RESERVATION = "multinic-ipam.io/reservation"
# Written onto the pod by the mutating webhook; the IP objects carry the same value as a label,
# which binds a generateName pod (no name at admission) to its addresses once it exists.
RESERVATION_ANNOTATION = "multinic-ipam.io/reservation"


def ip_object_name(subnet: str, address: str) -> str:
    """Deterministic, DNS-safe name of the IP object that locks `address` in `subnet`.

    Creating it is the reservation: the API server's atomic create makes a second holder
    impossible. IPv6 addresses are written exploded with `-` for `:` (`fd00-0000-…-0001`).
    """
    ip = ipaddress.ip_address(address)
    text = str(ip) if ip.version == 4 else ip.exploded.replace(":", "-")
    return f"{subnet}.{text}"
