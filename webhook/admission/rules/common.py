"""What every validating rule shares: tolerant readers of request objects, and how an IP
object's holder and addresses are named in a message (refusals: `webhook.admission.errors`).

Rules read objects that came off the wire, so every reader here accepts any shape and answers
with an empty value rather than raising: a malformed object is refused by a rule, never a 500.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import netaddr

from allocator import addresses
from allocator import annotations as keys
from allocator.errors import AllocatorError
from webhook.admission.attachments import LiveReads, Reader
from webhook.cluster import objects
from webhook.cluster.view import ClusterView


def mapping(value: Any) -> Mapping[str, Any]:
    """`value` if it is a JSON object, else an empty one."""
    return value if isinstance(value, Mapping) else {}


def text(value: Any) -> str:
    """`value` if it is a string, else ""."""
    return value if isinstance(value, str) else ""


def meta(obj: Any) -> Mapping[str, Any]:
    return mapping(mapping(obj).get("metadata"))


def spec(obj: Any) -> Mapping[str, Any]:
    return mapping(mapping(obj).get("spec"))


def name_of(obj: Any) -> str:
    return text(meta(obj).get("name"))


def string_annotations(obj_meta: Mapping[str, Any]) -> dict[str, str]:
    """The metadata's annotations; non-string values (never sent by the API server) are dropped."""
    raw = mapping(obj_meta.get("annotations"))
    return {k: v for k, v in raw.items() if isinstance(k, str) and isinstance(v, str)}


def quote(value: str) -> str:
    """A value as it appears in a message: JSON-quoted and cut short."""
    return keys.quote(value)


def ip_object_values(ip_object: Any) -> list[tuple[int, int]]:
    """The addresses an IP object holds as `(version, int)`: `ipAddress` (maybe a dual-stack
    "v4,v6"), else `v4IPAddress`/`v6IPAddress`. Integers, because Subnet rules compare every held
    address of a Subnet and netaddr objects cost several times more to build."""
    body = spec(ip_object)
    texts = text(body.get("ipAddress")) or f"{text(body.get('v4IPAddress'))},{text(body.get('v6IPAddress'))}"
    found: list[tuple[int, int]] = []
    for part in texts.split(","):
        if not part:
            continue
        try:
            value = addresses.parse_ip(part)
        except AllocatorError:
            continue
        if value not in found:
            found.append(value)
    return found


def ip_object_addresses(ip_object: Any) -> list[netaddr.IPAddress]:
    """The addresses an IP object holds, as netaddr objects (for messages)."""
    return [addresses.to_ipaddress(version, value) for version, value in ip_object_values(ip_object)]


def describe_holder(ip_object: Any) -> str:
    """Who holds an IP object's address, as `pod default/static-ip` (or the generateName)."""
    body = spec(ip_object)
    namespace = text(body.get("namespace")) or text(
        mapping(meta(ip_object).get("labels")).get(objects.LABEL_POD_NAMESPACE)
    )
    pod = text(body.get("podName"))
    if pod:
        return f"pod {namespace}/{pod}"
    generate = text(body.get("generateName"))
    if generate:
        return f"a pod of {namespace}/{generate}* being created"
    return f"IP object {name_of(ip_object)}"


def describe_held(ip_objects: list[Any]) -> str:
    """`3 held addresses, e.g. 172.17.0.100 held by pod default/static-ip` for a refusal."""
    first = min(ip_objects, key=name_of)
    shown = ",".join(str(a) for a in ip_object_addresses(first)) or name_of(first)
    count = len(ip_objects)
    noun = "address" if count == 1 else "addresses"
    return f"{count} held {noun}, e.g. {shown} held by {describe_holder(first)}"


class Context:
    """One admission request as the rules see it, plus the warnings they collect."""

    def __init__(
        self,
        request: Any,
        *,
        view: ClusterView,
        system_users: frozenset[str],
        live: LiveReads | None = None,
    ) -> None:
        self.request = mapping(request)
        self.view = view
        self.live = live  # API server reads on a cache miss (NADs, Subnets, IPPools), as mutation has
        self.reads = Reader(view, live)  # the cache, then those live reads
        self.system_users = system_users
        self.warnings: list[str] = []

    def confirmed(self, ip_object: Any) -> Any | None:
        """`ip_object` as the API server has it now (None when gone), read before a refusal rests
        on it: the cache may lag behind a release another replica made. Without live reads, as cached."""
        if self.live is None:
            return ip_object
        return self.live.current_ip(name_of(ip_object))

    @property
    def operation(self) -> str:
        return text(self.request.get("operation"))

    @property
    def obj(self) -> Mapping[str, Any]:
        return mapping(self.request.get("object"))

    @property
    def old(self) -> Mapping[str, Any]:
        return mapping(self.request.get("oldObject"))

    @property
    def namespace(self) -> str:
        return text(self.request.get("namespace")) or text(meta(self.obj).get("namespace"))

    @property
    def name(self) -> str:
        return text(self.request.get("name")) or name_of(self.obj) or name_of(self.old)

    @property
    def username(self) -> str:
        return text(mapping(self.request.get("userInfo")).get("username"))

    def warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)


def spec_unchanged(context: Context) -> bool:
    """An UPDATE that leaves `spec` as it was or only finishes a deletion (finalizers, labels,
    status): re-validating it could only block unrelated changes to an object already admitted."""
    if context.operation != "UPDATE":
        return False
    return bool(meta(context.obj).get("deletionTimestamp")) or spec(context.obj) == spec(context.old)
