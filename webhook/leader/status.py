"""Subnet status: the usage counters each Subnet's status carries, written in one batch by the leader."""

from __future__ import annotations

import logging

from allocator.errors import AllocatorError
from webhook.cluster.kubeapi import Api, ApiError
from webhook.cluster.store import Store

log = logging.getLogger(__name__)


def subnet_status(store: Store, name: str) -> dict[str, int] | None:
    """The usage counters Subnet `name`'s status should carry, from the allocator over its IP
    objects; None when its spec cannot be used (or it is gone), which leaves it without counters."""
    try:
        state = store.state(name)
    except AllocatorError as error:
        log.debug("no status for Subnet %s: %s", name, error)
        return None
    usage = state.usage()
    return {
        "v4availableIPs": usage.v4_available,
        "v4usingIPs": usage.v4_using,
        "v6availableIPs": usage.v6_available,
        "v6usingIPs": usage.v6_using,
    }


def write_status(store: Store, api: Api) -> int:
    """Write the usage counters of every Subnet whose cached status differs; return how many."""
    written = 0
    for subnet in store.subnets():
        name = subnet["metadata"]["name"]
        status = subnet_status(store, name)
        if status is None:
            continue
        current = subnet.get("status") or {}
        if all(current.get(k) == v for k, v in status.items()):
            continue
        try:
            api.patch_subnet_status(name, status)
            written += 1
        except ApiError as error:
            log.warning("status of subnet %s: %s", name, error)
    return written
