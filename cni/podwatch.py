"""`PodSource` backed by the API server: a watch of this node's pods plus direct reads.

The watch is the client's `SharedInformer` (list, watch from the resourceVersion, relist on 410).
Its loop reconnects at once after an error; an ERROR handler, which runs on the informer's own
thread, adds a pause so that an API server restart is waited out instead of spun on.
"""

from __future__ import annotations

import threading
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from kubernetes.informer import informer

from cni.daemon import Pod

READ_TIMEOUT_SECONDS = 5
RECONNECT_PAUSE_SECONDS = 1.0


def pod_dict(pod: Any) -> Pod:
    """The fields the daemon reads, from a `V1Pod`."""
    meta = pod.metadata
    return {
        "metadata": {"namespace": meta.namespace, "name": meta.name, "uid": meta.uid,
                     "annotations": dict(meta.annotations or {})},
        "spec": {"nodeName": pod.spec.node_name if pod.spec else None},
    }


class KubernetesPods:
    """The pods on `node_name`, watched; any other pod is read on demand."""

    def __init__(self, api_client: client.ApiClient, node_name: str, *, resync_seconds: int = 300) -> None:
        self.core = client.CoreV1Api(api_client)
        self._changed = threading.Condition()
        self._stopping = threading.Event()
        self.informer = informer.SharedInformer(
            list_func=self.core.list_pod_for_all_namespaces,
            field_selector=f"spec.nodeName={node_name}",
            resync_period=resync_seconds,
        )
        for event in (informer.ADDED, informer.MODIFIED, informer.DELETED):
            self.informer.add_event_handler(event, self._notify)
        self.informer.add_event_handler(informer.ERROR, self._pause)

    def start(self) -> None:
        self.informer.start()

    def stop(self) -> None:
        """Ask the watch to end without waiting: its thread may sit in a read for minutes (the
        watch's server-side timeout), and it is a daemon thread, so exiting never waits for it."""
        self._stopping.set()
        threading.Thread(target=self.informer.stop, name="informer-stop", daemon=True).start()

    def cached(self, namespace: str, name: str) -> Pod | None:
        pod = self.informer.cache.get_by_key(f"{namespace}/{name}")
        return pod_dict(pod) if pod is not None else None

    def read(self, namespace: str, name: str) -> Pod | None:
        try:
            pod = self.core.read_namespaced_pod(name, namespace, _request_timeout=READ_TIMEOUT_SECONDS)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return pod_dict(pod)

    def wait_for_change(self, timeout: float) -> None:
        with self._changed:
            self._changed.wait(timeout)

    def _notify(self, _obj: Any) -> None:
        with self._changed:
            self._changed.notify_all()

    def _pause(self, _error: Any) -> None:
        self._stopping.wait(RECONNECT_PAUSE_SECONDS)
