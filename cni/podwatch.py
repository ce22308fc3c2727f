"""`PodSource` backed by the API server: a watch of this node's pods plus direct reads.

The watch is the webhook's own informer (`webhook.cluster.informers`: paged list, watch from the
resourceVersion, relist on 410, backoff on errors) narrowed by a field selector to this node; the
reads go through the same transport. This is the node daemon, not the stdlib-only plugin.
"""

from __future__ import annotations

import threading
from typing import Any

from cni.daemon import Pod
from webhook.cluster import objects
from webhook.cluster.cache import ObjectCache
from webhook.cluster.errors import NotFound
from webhook.cluster.informers import Informers
from webhook.cluster.routes import ROUTES
from webhook.cluster.transport import Transport

READ_TIMEOUT_SECONDS = 5
STOP_WAIT_SECONDS = 1.0


def pod_dict(pod: dict[str, Any]) -> Pod:
    """The fields the daemon reads, from a pod as the API server sends it."""
    meta = pod.get("metadata") or {}
    return {
        "metadata": {"namespace": meta.get("namespace"), "name": meta.get("name"), "uid": meta.get("uid"),
                     "annotations": dict(meta.get("annotations") or {})},
        "spec": {"nodeName": (pod.get("spec") or {}).get("nodeName")},
    }


class KubernetesPods:
    """The pods on `node_name`, watched; any other pod is read on demand."""

    def __init__(self, api_client: Any, node_name: str) -> None:
        self.transport = Transport.for_client(api_client, timeout=READ_TIMEOUT_SECONDS)
        self.cache = ObjectCache()
        self._changed = threading.Condition()
        self.cache.subscribe(objects.PODS, self._notify)
        self.informers = Informers(self.cache, api_client, (objects.PODS,),
                                   field_selector=f"spec.nodeName={node_name}", backoff=(1.0, 10.0))

    def start(self) -> None:
        self.informers.start()

    def stop(self) -> None:
        """End the watch (interrupting a quiet one); its thread is a daemon, so exit never waits."""
        self.informers.stop(STOP_WAIT_SECONDS)

    def cached(self, namespace: str, name: str) -> Pod | None:
        pod = self.cache.get(objects.PODS, name, namespace)
        return pod_dict(pod) if pod is not None else None

    def read(self, namespace: str, name: str) -> Pod | None:
        try:
            return pod_dict(self.transport.request("GET", ROUTES[objects.PODS].at(namespace, name)))
        except NotFound:
            return None

    def wait_for_change(self, timeout: float) -> None:
        with self._changed:
            self._changed.wait(timeout)

    def _notify(self, _event: str, _obj: Any) -> None:
        with self._changed:
            self._changed.notify_all()
