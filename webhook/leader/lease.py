"""Leader election by a `coordination.k8s.io` Lease: exactly one webhook process acts as the leader.

The holder renews the Lease every pass; another process takes it over once it has seen the same
(holder, renewTime) for longer than `leaseDurationSeconds` (its own clock, so clock skew between
nodes does not matter). Stopping hands the Lease back so another replica takes over at once.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable

from webhook.cluster.cache import Object
from webhook.cluster.kubeapi import AlreadyExists, Api, ApiError, Conflict

log = logging.getLogger(__name__)

LEASE_NAME = "multinic-ipam-lifecycle"


class LeaderLease:
    """One process's view of the Lease `namespace/name`: take it, renew it, give it back."""

    def __init__(
        self, api: Api, *, identity: str, namespace: str, name: str = LEASE_NAME, seconds: int = 10,
        clock: Callable[[], float],
    ) -> None:
        self.api = api
        self.identity = identity
        self.namespace = namespace
        self.name = name
        self.seconds = seconds
        self.clock = clock
        self.leader = False
        self._observed: tuple[str, str] | None = None  # (holder, renewTime) last seen
        self._observed_at = 0.0

    def acquire(self) -> bool:
        """Create, renew or take over the Lease; True while this process is the leader."""
        now = self.clock()
        try:
            lease = self.api.read_lease(self.namespace, self.name)
            if lease is None:
                self.api.create_lease(self.namespace, self._body(None, now, transitions=0))
                return self._set_leader(True)
            spec = lease.get("spec") or {}
            holder = spec.get("holderIdentity") or ""
            observed = (holder, spec.get("renewTime") or "")
            if observed != self._observed:
                self._observed, self._observed_at = observed, now
            duration = spec.get("leaseDurationSeconds") or self.seconds
            expired = not holder or now - self._observed_at > duration
            if holder != self.identity and not expired:
                return self._set_leader(False)
            transitions = (spec.get("leaseTransitions") or 0) + (0 if holder == self.identity else 1)
            self.api.replace_lease(self.namespace, self._body(lease, now, transitions=transitions))
            return self._set_leader(True)
        except (AlreadyExists, Conflict):
            return self._set_leader(False)
        except ApiError as error:
            log.warning("lease %s/%s: %s", self.namespace, self.name, error)
            return self._set_leader(False)

    def give_up(self) -> None:
        """Hand the Lease back (empty holder) if this process holds it."""
        try:
            lease = self.api.read_lease(self.namespace, self.name)
            if lease and (lease.get("spec") or {}).get("holderIdentity") == self.identity:
                lease["spec"]["holderIdentity"] = ""
                self.api.replace_lease(self.namespace, lease)
        except ApiError:
            pass
        self.leader = False

    def _body(self, lease: Object | None, now: float, *, transitions: int) -> Object:
        stamp = _micro_time(now)
        spec = dict((lease or {}).get("spec") or {})
        if spec.get("holderIdentity") != self.identity:
            spec["acquireTime"] = stamp
        spec.update(
            holderIdentity=self.identity,
            leaseDurationSeconds=self.seconds,
            renewTime=stamp,
            leaseTransitions=transitions,
        )
        metadata = {"name": self.name, "namespace": self.namespace}
        if lease is not None:
            metadata["resourceVersion"] = lease["metadata"]["resourceVersion"]
        return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": metadata, "spec": spec}

    def _set_leader(self, leader: bool) -> bool:
        if leader != self.leader:
            log.info("%s %s the lifecycle lease", self.identity, "holds" if leader else "does not hold")
        self.leader = leader
        return leader


def _micro_time(now: float) -> str:
    return dt.datetime.fromtimestamp(now, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
