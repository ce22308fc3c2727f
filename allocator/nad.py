"""NetworkAttachmentDefinition `spec.config` → `NadConfig`: does it use us, and with which provider.

A NAD uses this IPAM in one of two ways, as in Kube-OVN:
- `"ipam": {"type": "kube-ovn", "provider": "<nad>.<ns>", ...}` under another plugin (macvlan …);
- `"type": "kube-ovn", "provider": "<nad>.<ns>.ovn"`, a kube-ovn type NIC.
Either may be a single conf or one plugin of a conflist. The provider is what ties the NAD to its
Subnets and to the pod's annotations, so it must be exactly the one derived from the NAD's name.

A NAD that uses kube-ovn is admitted only if the plugin will accept the config it is handed at
sandbox creation (the differential test in tests/unit/allocator/test_nad_plugin_agreement.py):
cniVersion, mtu and routes are read where and as the plugin reads them, with the plugin's own
limits from `cni.netconf_rules` (constants only, stdlib-only, the one module of `cni` allowed here).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from allocator import annotations
from allocator.annotations import Route
from allocator.errors import NadError, RoutesError
from cni import netconf_rules

KUBE_OVN = "kube-ovn"
DEFAULT_SERVER_SOCKET = "/run/openvswitch/kube-ovn-daemon.sock"
MODE_IPAM = "ipam"
MODE_TYPE = "type"


class EmptySpec(NadError):  # noqa: N818 (named like errors.py)
    """The NAD has no `spec.config`, so Multus would read a file on each node we cannot see."""


class InvalidJSON(NadError):  # noqa: N818 (named like errors.py)
    """`spec.config` is not JSON."""


class InvalidConfig(NadError):  # noqa: N818 (named like errors.py)
    """`spec.config` is JSON but not a CNI config this IPAM can read (wrong types, ambiguous)."""


class MissingProvider(NadError):  # noqa: N818 (named like errors.py)
    """A NAD that uses kube-ovn without a `provider`."""


class WrongProvider(NadError):  # noqa: N818 (named like errors.py)
    """A NAD whose `provider` is not the one derived from its name and namespace."""

    def __init__(self, message: str, *, expected: str, actual: str) -> None:
        super().__init__(message)
        self.expected = expected
        self.actual = actual


class RelativeSocket(NadError):  # noqa: N818 (named like errors.py)
    """A `server_socket` that is not an absolute path (the CNI plugin runs with an unknown cwd)."""


@dataclass(frozen=True)
class NadConfig:
    """What this IPAM needs to know about one NAD."""

    namespace: str
    name: str
    uses_kube_ovn: bool
    mode: str | None  # "ipam" (ipam.type kube-ovn) or "type" (type kube-ovn); None when unused
    provider: str | None
    server_socket: str
    routes: tuple[Route, ...]
    cni_version: str | None


def parse_nad(namespace: str, name: str, spec: Mapping[str, Any] | None) -> NadConfig:
    """Parse a NAD's spec; a NAD not using kube-ovn parses with `uses_kube_ovn=False`."""
    nad = f"NetworkAttachmentDefinition {namespace}/{name}"
    config = spec.get("config") if isinstance(spec, Mapping) else None
    if config is None or (isinstance(config, str) and not config.strip()):
        raise EmptySpec(_empty_spec_message(nad, namespace, name))
    if not isinstance(config, str):
        raise InvalidConfig(
            f"spec.config of {nad} is {type(config).__name__}, not a string; write the JSON as a string"
        )
    try:
        conf = json.loads(config, parse_constant=_no_constant)
    except (ValueError, RecursionError) as error:
        raise InvalidJSON(
            f"spec.config of {nad} is not valid JSON ({annotations.json_reason(error)}); "
            'write one CNI config object, e.g. {"cniVersion": "0.3.0", "type": "macvlan", …}'
        ) from None
    if not isinstance(conf, dict):
        raise InvalidConfig(
            f"spec.config of {nad} is {annotations.shorten(conf)}, not a JSON object; "
            "write one CNI config object"
        )
    plugins = _plugins(conf, nad=nad)
    users = [(index, plugin, mode) for index, plugin in enumerate(plugins) if (mode := _mode(plugin))]
    if not users:
        return NadConfig(
            namespace=namespace,
            name=name,
            uses_kube_ovn=False,
            mode=None,
            provider=None,
            server_socket=DEFAULT_SERVER_SOCKET,
            routes=(),
            cni_version=_text(conf.get("cniVersion")),
        )
    if len(users) > 1:
        raise InvalidConfig(
            f"spec.config of {nad} uses kube-ovn in {len(users)} plugins "
            f"({', '.join(str(index + 1) for index, _, _ in users)}); one attachment has one IPAM, keep one"
        )
    index, plugin, mode = users[0]
    section = plugin["ipam"] if mode == MODE_IPAM else plugin
    section_name = "ipam" if mode == MODE_IPAM else "config"
    if "plugins" in conf:
        section_name = f"plugin {index + 1} ipam" if mode == MODE_IPAM else f"plugin {index + 1}"
    expected = annotations.provider_for(name, namespace, ovn_type=mode == MODE_TYPE)
    provider = _provider(section.get("provider"), nad=nad, section=section_name, expected=expected, mode=mode)
    socket = _server_socket(section.get("server_socket"), nad=nad, section=section_name)
    routes = _routes(plugin, mode=mode, nad=nad, section=section_name)
    cni_version = _cni_version(conf.get("cniVersion"), nad=nad)
    _check_mtu(plugin.get("mtu"), nad=nad, section=f"plugin {index + 1}" if "plugins" in conf else "config")
    return NadConfig(
        namespace=namespace,
        name=name,
        uses_kube_ovn=True,
        mode=mode,
        provider=provider,
        server_socket=socket,
        routes=routes,
        cni_version=cni_version,
    )


def _plugins(conf: dict[str, Any], *, nad: str) -> list[dict[str, Any]]:
    """The plugins of a conflist, or the single conf as a one-plugin list."""
    if "plugins" not in conf:
        return [conf]
    plugins = conf["plugins"]
    if not isinstance(plugins, list) or not plugins or not all(isinstance(p, dict) for p in plugins):
        raise InvalidConfig(
            f"spec.config of {nad} has plugins {annotations.shorten(plugins)}, which is not a non-empty list "
            'of CNI config objects; write "plugins": [{"type": "macvlan", …}]'
        )
    return plugins


def _mode(plugin: dict[str, Any]) -> str | None:
    """How a plugin uses kube-ovn; a kube-ovn type plugin does its own IPAM, so `type` wins."""
    if plugin.get("type") == KUBE_OVN:
        return MODE_TYPE
    ipam = plugin.get("ipam")
    if isinstance(ipam, dict) and ipam.get("type") == KUBE_OVN:
        return MODE_IPAM
    return None


def _provider(value: Any, *, nad: str, section: str, expected: str, mode: str) -> str:
    kind = "ipam.type" if mode == MODE_IPAM else "type"
    if value is None or value == "":
        raise MissingProvider(
            f"{nad} sets {kind} kube-ovn but its {section} has no provider; "
            f'add "provider": "{expected}" so that Subnets with that provider serve it'
        )
    if value != expected:
        shape = "<nad>.<namespace>.ovn" if mode == MODE_TYPE else "<nad>.<namespace>"
        raise WrongProvider(
            f"{nad} has provider {annotations.shorten(value)} in its {section}, "
            f'but provider must be "{expected}" ({shape})',
            expected=expected,
            actual=value if isinstance(value, str) else json.dumps(value),
        )
    return value


def _cni_version(value: Any, *, nad: str) -> str | None:
    """The conf's (a conflist's: the list's, which the runtime hands every plugin) cniVersion; the
    plugin reads an absent or empty one as its default and refuses versions it does not speak."""
    if value is not None and not isinstance(value, str):
        raise InvalidConfig(
            f"spec.config of {nad} has cniVersion {annotations.shorten(value)}, not a string; "
            'write e.g. "cniVersion": "0.3.0"'
        )
    supported = netconf_rules.SUPPORTED_VERSIONS
    if netconf_rules.effective_version(value) not in supported:
        raise InvalidConfig(
            f"spec.config of {nad} has cniVersion {annotations.shorten(value)}, which the kube-ovn plugin "
            f"does not support; write one of {', '.join(supported)}"
        )
    return value


def _check_mtu(value: Any, *, nad: str, section: str) -> None:
    if not netconf_rules.mtu_ok(value):
        raise InvalidConfig(
            f"{nad} has mtu {annotations.shorten(value)} in its {section}, which the kube-ovn plugin "
            f"refuses; write an integer from {netconf_rules.MIN_MTU} to {netconf_rules.MAX_MTU} "
            "or leave it out"
        )


def _routes(plugin: dict[str, Any], *, mode: str, nad: str, section: str) -> tuple[Route, ...]:
    """The NAD's routes, from where and as the CNI plugin reads them: `ipam.routes`, or for a
    kube-ovn type plugin its own `routes` (when empty or absent, `ipam.routes`); a `routes` key that
    is present must be a list (null too is refused by the plugin). CNI routes need a `dst`, and the
    plugin rejects a route without one, so admission rejects it too."""
    ipam = plugin.get("ipam")
    value = (plugin if mode == MODE_TYPE else ipam).get("routes", [])
    if mode == MODE_TYPE and not value and isinstance(ipam, dict):
        value = ipam.get("routes", [])
    try:
        return annotations.route_list(value, where=f"{section} routes of {nad}", dst_required=True)
    except RoutesError as error:
        raise InvalidConfig(str(error)) from None


def _server_socket(value: Any, *, nad: str, section: str) -> str:
    if value is None or value == "":
        return DEFAULT_SERVER_SOCKET
    if not isinstance(value, str) or not value.startswith("/"):
        raise RelativeSocket(
            f"{nad} has server_socket {annotations.shorten(value)} in its {section}, which is not an "
            f"absolute path; write e.g. {DEFAULT_SERVER_SOCKET}"
        )
    return value


def _no_constant(name: str) -> Any:
    """NaN and Infinity: Python's json reads them, the runtime's JSON (and the plugin's) does not."""
    raise ValueError(f"{name} is not valid JSON")


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _empty_spec_message(nad: str, namespace: str, name: str) -> str:
    example = json.dumps(
        {
            "cniVersion": "0.3.0",
            "type": "macvlan",
            "master": "eth0",
            "mode": "bridge",
            "ipam": {
                "type": KUBE_OVN,
                "server_socket": DEFAULT_SERVER_SOCKET,
                "provider": annotations.provider_for(name, namespace, ovn_type=False),
            },
        }
    )
    return (
        f"{nad} has no spec.config; Multus would then read a CNI config file on each node, "
        "where the provider cannot be read centrally, so write the config into the NAD, "
        f"e.g. spec.config: '{example}'"
    )
