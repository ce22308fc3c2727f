"""Where each kind lives on the API server: the one route table (kind → API path)."""

from __future__ import annotations

from dataclasses import dataclass

from webhook.cluster import objects


@dataclass(frozen=True)
class Route:
    """A resource's group/version, plural name, object kind, and whether it is namespaced."""

    api_version: str
    plural: str
    kind: str
    namespaced: bool = False

    @property
    def path(self) -> str:
        """The collection across all namespaces (what lists and watches read)."""
        return self.at()

    def at(self, namespace: str = "", name: str = "", subresource: str = "") -> str:
        """The collection (in `namespace` when given), the object `name`, or its `subresource`."""
        base = "/api/v1" if self.api_version == "v1" else f"/apis/{self.api_version}"
        where = f"/namespaces/{namespace}" if self.namespaced and namespace else ""
        path = f"{base}{where}/{self.plural}"
        if name:
            path += f"/{name}"
        if subresource:
            path += f"/{subresource}"
        return path


NAD_API = f"{objects.NAD_GROUP}/{objects.NAD_VERSION}"
WHEREABOUTS_API = "whereabouts.cni.cncf.io/v1alpha1"
LEASES = "leases"
NAMESPACES = "namespaces"
CRDS = "customresourcedefinitions"
VALIDATING_WEBHOOKS = "validatingwebhookconfigurations"
MUTATING_WEBHOOKS = "mutatingwebhookconfigurations"

ROUTES: dict[str, Route] = {
    objects.SUBNETS: Route(objects.API_VERSION, "subnets", "Subnet"),
    objects.IPS: Route(objects.API_VERSION, "ips", "IP"),
    objects.IPPOOLS: Route(objects.API_VERSION, "ippools", "IPPool"),
    objects.NADS: Route(NAD_API, "network-attachment-definitions", "NetworkAttachmentDefinition", True),
    objects.PODS: Route("v1", "pods", "Pod", True),
    objects.STATEFULSETS: Route("apps/v1", "statefulsets", "StatefulSet", True),
    objects.WHEREABOUTS_IPPOOLS: Route(WHEREABOUTS_API, "ippools", "IPPool", True),
    objects.WHEREABOUTS_RESERVATIONS: Route(WHEREABOUTS_API, "overlappingrangeipreservations",
                                            "OverlappingRangeIPReservation", True),
    LEASES: Route("coordination.k8s.io/v1", "leases", "Lease", True),
    NAMESPACES: Route("v1", "namespaces", "Namespace"),
    CRDS: Route("apiextensions.k8s.io/v1", "customresourcedefinitions", "CustomResourceDefinition"),
    VALIDATING_WEBHOOKS: Route("admissionregistration.k8s.io/v1", "validatingwebhookconfigurations",
                               "ValidatingWebhookConfiguration"),
    MUTATING_WEBHOOKS: Route("admissionregistration.k8s.io/v1", "mutatingwebhookconfigurations",
                             "MutatingWebhookConfiguration"),
}
