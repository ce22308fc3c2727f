"""Where the API server is and how to authenticate (webhook, node daemon, operator commands alike):
a kubeconfig, exec plugins included, or the in-cluster service account, read by `kubeconfig`."""

from __future__ import annotations

from webhook.cluster import kubeconfig as loader
from webhook.cluster.credentials import ConnectError
from webhook.cluster.kubeconfig import ClusterAccess

__all__ = ["ClusterAccess", "ConnectError", "connect"]


def connect(kubeconfig: str | None) -> ClusterAccess:
    """The `ClusterAccess` of a kubeconfig file, or of the pod's service account when None."""
    try:
        return loader.load(kubeconfig) if kubeconfig else loader.in_cluster()
    except ConnectError as error:
        where = f"kubeconfig {kubeconfig!r}" if kubeconfig else "the in-cluster service account"
        hint = "give a working --kubeconfig" if kubeconfig else "run in a pod or give --kubeconfig"
        raise ConnectError(f"cannot reach the API server through {where} ({error}); {hint}") from None
