"""The leader's chores: bind reservations to pods, release what pods no longer need, keep Subnet status.

Every webhook process runs a `Lifecycle`; a `coordination.k8s.io` Lease makes exactly one of them
act. Releases are deletes guarded by the object's resourceVersion, and an absence seen in the
cache is confirmed by a live read, so a late release can never take an address from a pod that
was just given it (a recreated StatefulSet pod relabels its objects first, which moves the version).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from allocator import pools
from webhook import metrics, objects
from webhook.cache import Object
from webhook.kubeapi import AlreadyExists, ApiError, Conflict, NotFound
from webhook.store import (  # noqa: F401 (GRACE_ENV, DEFAULT_GRACE, grace_from_env: re-exported)
    DEFAULT_GRACE,
    GRACE_ANNOTATION,
    GRACE_ENV,
    RESERVED_AT_ANNOTATION,
    Store,
    address_of,
    grace_from_env,
    token_of,
)

log = logging.getLogger(__name__)

NAMESPACE_ENV = "MULTINIC_IPAM_NAMESPACE"
LEASE_NAME = "multinic-ipam-lifecycle"
MIN_GAP = 0.5  # seconds between two passes at least


class _Unsure(Exception):  # noqa: N818 (a reason to wait, not an error)
    """A live read failed: keep the object until a later pass can tell."""


@dataclass
class Pass:
    """What one reconcile pass did (for logs and tests)."""

    bound: int = 0
    released: int = 0
    kept: int = 0


class Lifecycle:
    """Lease-elected loop over the IP objects: bind, release, garbage-collect; batch Subnet status."""

    def __init__(
        self,
        *,
        store: Store,
        identity: str,
        namespace: str | None = None,
        lease_name: str = LEASE_NAME,
        lease_seconds: int = 10,
        interval: float = 2.0,
        status_interval: float = 3.0,
        grace: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.api = store.api
        self.identity = identity
        self.namespace = namespace or os.environ.get(NAMESPACE_ENV) or "kube-system"
        self.lease_name = lease_name
        self.lease_seconds = lease_seconds
        self.interval = interval
        self.status_interval = status_interval
        self.grace_override = grace  # None: each reservation's own grace period decides
        self.grace = store.grace if grace is None else grace
        self.clock = clock
        self.leader = False
        self._observed: tuple[str, str] | None = None  # (holder, renewTime) last seen
        self._observed_at = 0.0
        self._last_status = 0.0
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._pass_pods: dict[str, Object] | None = None
        store.cache.subscribe(objects.PODS, self._on_pod)

    # ---- running ----------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="multinic-ipam-lifecycle", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the loop and hand the Lease back so another replica takes over at once."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        if self.leader:
            self._give_up()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.step()
            except Exception:  # the loop must outlive any one bad pass
                log.exception("lifecycle pass failed")
            # Pod events wake the loop early, but passes stay at least MIN_GAP apart: a burst of
            # pod events must not turn into a pass (over every IP object) per event.
            self._stop.wait(MIN_GAP)
            self._wake.wait(max(self.interval - MIN_GAP, 0))
            self._wake.clear()

    def step(self) -> Pass | None:
        """One round: keep or take the Lease; as leader, reconcile and maybe write Subnet status."""
        if not self.acquire():
            return None
        result = self.reconcile()
        if self.clock() - self._last_status >= self.status_interval:
            self.write_status()
            self._last_status = self.clock()
        return result

    def _on_pod(self, event: str, pod: Object) -> None:
        if event == "DELETED" or (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            self._wake.set()
        elif token_of(pod) and self.leader:
            self._wake.set()  # a pod with a reservation appeared: bind it soon

    # ---- the Lease --------------------------------------------------------------------------

    def acquire(self) -> bool:
        """Create, renew or take over the Lease; True while this process is the leader."""
        now = self.clock()
        try:
            lease = self.api.read_lease(self.namespace, self.lease_name)
            if lease is None:
                self.api.create_lease(self.namespace, self._lease_body(None, now, transitions=0))
                return self._set_leader(True)
            spec = lease.get("spec") or {}
            holder = spec.get("holderIdentity") or ""
            observed = (holder, spec.get("renewTime") or "")
            if observed != self._observed:
                self._observed, self._observed_at = observed, now
            duration = spec.get("leaseDurationSeconds") or self.lease_seconds
            expired = not holder or now - self._observed_at > duration
            if holder != self.identity and not expired:
                return self._set_leader(False)
            transitions = (spec.get("leaseTransitions") or 0) + (0 if holder == self.identity else 1)
            self.api.replace_lease(self.namespace, self._lease_body(lease, now, transitions=transitions))
            return self._set_leader(True)
        except (AlreadyExists, Conflict):
            return self._set_leader(False)
        except ApiError as error:
            log.warning("lease %s/%s: %s", self.namespace, self.lease_name, error)
            return self._set_leader(False)

    def _lease_body(self, lease: Object | None, now: float, *, transitions: int) -> Object:
        stamp = _micro_time(now)
        spec = dict((lease or {}).get("spec") or {})
        if spec.get("holderIdentity") != self.identity:
            spec["acquireTime"] = stamp
        spec.update(
            holderIdentity=self.identity,
            leaseDurationSeconds=self.lease_seconds,
            renewTime=stamp,
            leaseTransitions=transitions,
        )
        metadata = {"name": self.lease_name, "namespace": self.namespace}
        if lease is not None:
            metadata["resourceVersion"] = lease["metadata"]["resourceVersion"]
        return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": metadata, "spec": spec}

    def _set_leader(self, leader: bool) -> bool:
        if leader != self.leader:
            log.info("%s %s the lifecycle lease", self.identity, "holds" if leader else "does not hold")
        self.leader = leader
        return leader

    def _give_up(self) -> None:
        try:
            lease = self.api.read_lease(self.namespace, self.lease_name)
            if lease and (lease.get("spec") or {}).get("holderIdentity") == self.identity:
                lease["spec"]["holderIdentity"] = ""
                self.api.replace_lease(self.namespace, lease)
        except ApiError:
            pass
        self.leader = False

    # ---- binding and releasing --------------------------------------------------------------

    @metrics.timed_gc_pass
    def reconcile(self) -> Pass:
        """One pass over every cached IP object."""
        result = Pass()
        self._pass_pods = None
        for ip in self.store.ip_objects():
            try:
                verdict = self._one(ip)
            except _Unsure as error:
                log.warning("kept %s for now: %s", ip["metadata"]["name"], error)
                verdict = "kept"
            setattr(result, verdict, getattr(result, verdict) + 1)
        return result

    def _one(self, ip: Object) -> str:
        spec = ip.get("spec") or {}
        if spec.get("podType") == "StatefulSet" and spec.get("podName"):
            return self._statefulset(ip)
        if spec.get("podUID"):
            return self._bound(ip)
        return self._unbound(ip)

    def _unbound(self, ip: Object) -> str:
        """A reservation not yet tied to a pod: bind it, wait, or release it after the grace period."""
        token = token_of(ip)
        pod = self.store.pod_for_token(token) if token else None
        if pod is not None and not _terminated(pod):
            return self._bind(ip, pod)
        if not self._unbound_expired(ip):
            return "kept"
        spec = ip.get("spec") or {}
        if spec.get("podName"):
            pod = self._read(objects.PODS, spec["podName"], spec.get("namespace", ""))
        else:
            pod = self._live_pod_with(token)
        if pod is not None and token_of(pod) == token and not _terminated(pod):
            return self._bind(ip, pod)
        return self._release(ip, "its pod never came to exist")

    def _live_pod_with(self, token: str) -> Object | None:
        """The pod carrying `token`, from one live list per pass (generateName pods cannot be read)."""
        if self._pass_pods is None:
            try:
                self._pass_pods = {token_of(p): p for p in self.api.list(objects.PODS) if token_of(p)}
            except ApiError as error:
                raise _Unsure(str(error)) from None
        return self._pass_pods.get(token)

    def _bound(self, ip: Object) -> str:
        """A pod's address: released once the pod is gone (UID changed) or has finished for good."""
        spec = ip.get("spec") or {}
        namespace, name = spec.get("namespace", ""), spec.get("podName", "")
        pod = self.store.pod(namespace, name)
        if pod is None or _uid(pod) != spec.get("podUID"):
            pod = self._read(objects.PODS, name, namespace)  # confirm: the cache may lag
        if pod is None or _uid(pod) != spec.get("podUID"):
            return self._release(ip, "its pod is gone")
        if _terminated(pod):
            return self._release(ip, f"its pod has {pod['status']['phase'].lower()} for good")
        return "kept"

    def _statefulset(self, ip: Object) -> str:
        """StatefulSet pods keep addresses while the set exists (same UID) and ordinal < replicas."""
        spec = ip.get("spec") or {}
        namespace, name = spec.get("namespace", ""), spec["podName"]
        ordinal = pools.statefulset_ordinal(name)
        owner = name.rpartition("-")[0]
        if self._keeps(self.store.statefulset(namespace, owner), spec, ordinal):
            pod = self.store.pod(namespace, name)
            if pod is not None and token_of(pod) == token_of(ip) and _uid(pod) != spec.get("podUID"):
                return self._bind(ip, pod)
            return "kept"
        if self._keeps(self._read(objects.STATEFULSETS, owner, namespace), spec, ordinal):
            return "kept"
        return self._release(ip, f"StatefulSet {namespace}/{owner} no longer has a pod {name}")

    @staticmethod
    def _keeps(statefulset: Object | None, spec: Object, ordinal: int | None) -> bool:
        if statefulset is None or ordinal is None:
            return False
        if spec.get("ownerUID") and _uid(statefulset) != spec["ownerUID"]:
            return False
        replicas = (statefulset.get("spec") or {}).get("replicas", 1)
        return ordinal < replicas

    def _unbound_expired(self, ip: Object) -> bool:
        meta = ip.get("metadata") or {}
        stamp = (meta.get("annotations") or {}).get(RESERVED_AT_ANNOTATION)
        try:
            reserved = float(stamp) if stamp else _parse_time(meta.get("creationTimestamp", ""))
        except ValueError:
            reserved = 0.0
        grace = self.grace_override
        if grace is None:
            try:
                grace = float((meta.get("annotations") or {}).get(GRACE_ANNOTATION) or self.grace)
            except ValueError:
                grace = self.grace
        return self.clock() - reserved > grace

    def _bind(self, ip: Object, pod: Object) -> str:
        meta = pod.get("metadata") or {}
        patch = {
            "metadata": {"resourceVersion": ip["metadata"].get("resourceVersion")},
            "spec": {"podName": meta.get("name", ""), "podUID": meta.get("uid", "")},
        }
        try:
            updated = self.api.patch_ip(ip["metadata"]["name"], patch)
        except (Conflict, NotFound):
            return "kept"  # changed meanwhile; the next pass sees the new state
        self.store.cache.put(objects.IPS, updated)
        return "bound"

    def _release(self, ip: Object, why: str) -> str:
        meta = ip["metadata"]
        if self.store.delete(meta["name"], resource_version=meta.get("resourceVersion")):
            log.info("released %s (%s): %s", address_of(ip), meta["name"], why)
            metrics.RELEASES.labels(metrics.release_reason(why)).inc()
            return "released"
        return "kept"

    def _read(self, kind: str, name: str, namespace: str) -> Object | None:
        """A live read; an API failure raises `_Unsure`, so nothing is released on a guess."""
        try:
            return self.api.read(kind, name, namespace)
        except ApiError as error:
            raise _Unsure(str(error)) from None

    # ---- Subnet status ----------------------------------------------------------------------

    def write_status(self) -> int:
        """Write the usage counters of every Subnet whose cached status differs; return how many."""
        written = 0
        for subnet in self.store.subnets():
            name = subnet["metadata"]["name"]
            try:
                state = self.store.state(name)
            except Exception:
                continue
            with state.lock:
                usage = state.allocator.usage()
            status = {
                "v4availableIPs": usage.v4_available,
                "v4usingIPs": usage.v4_using,
                "v6availableIPs": usage.v6_available,
                "v6usingIPs": usage.v6_using,
            }
            current = subnet.get("status") or {}
            if all(current.get(k) == v for k, v in status.items()):
                continue
            try:
                self.api.patch_subnet_status(name, status)
                written += 1
            except ApiError as error:
                log.warning("status of subnet %s: %s", name, error)
        return written


def _uid(obj: Object) -> str:
    return (obj.get("metadata") or {}).get("uid", "")


def _terminated(pod: Object) -> bool:
    """Succeeded, or Failed with restartPolicy Never: the pod will not run again."""
    phase = (pod.get("status") or {}).get("phase")
    if phase == "Succeeded":
        return True
    return phase == "Failed" and (pod.get("spec") or {}).get("restartPolicy") == "Never"


def _micro_time(now: float) -> str:
    return dt.datetime.fromtimestamp(now, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse_time(text: str) -> float:
    if not text:
        return 0.0
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
