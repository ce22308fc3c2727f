"""Where the API server is and how to authenticate (webhook, node daemon, operator commands alike):
the client library loads a kubeconfig or the in-cluster service account, exec plugins included."""

from __future__ import annotations

from typing import Any


class ConnectError(RuntimeError):
    """No way to reach the API server: the kubeconfig is unusable, or we are not in a pod."""


def connect(kubeconfig: str | None) -> Any:
    """An `ApiClient` from a kubeconfig file, or from the pod's service account when None."""
    from kubernetes import client, config

    configuration = client.Configuration()
    try:
        if kubeconfig:
            config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
        else:
            config.load_incluster_config(client_configuration=configuration)
    except (config.ConfigException, OSError, ValueError) as error:
        where = f"kubeconfig {kubeconfig!r}" if kubeconfig else "the in-cluster service account"
        hint = "give a working --kubeconfig" if kubeconfig else "run in a pod or give --kubeconfig"
        raise ConnectError(f"cannot reach the API server through {where} ({error}); {hint}") from error
    # Only the configuration (address, TLS, token and its refresh hook) is used: requests go through
    # `webhook.cluster.transport`, never the client library's own pool.
    return client.ApiClient(configuration)
