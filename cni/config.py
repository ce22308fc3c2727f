"""What the runtime handed the plugin: CNI_* environment, CNI_ARGS and the network config on stdin.

Everything is checked here, before the daemon is asked anything, so a bad NAD fails with code 7
and a runtime bug with code 4, each naming the offending value. Value types are `Value` classes,
not dataclasses or namedtuples, and nothing imports `typing` or `collections`: the plugin is a new
process per call, and those imports alone (with namedtuple's `exec` per class) cost more than the
rest of an ADD (benchmarks/cni.py).
"""

from __future__ import annotations

from cni import errors, jsonio, netconf_rules

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing; type checkers read it as True
if TYPE_CHECKING:
    from collections.abc import Mapping

PLUGIN_TYPE = "kube-ovn"
DEFAULT_SOCKET = "/run/openvswitch/kube-ovn-daemon.sock"
COMMANDS = ("ADD", "DEL", "CHECK", "VERSION", "STATUS", "GC")
# Verbs that appeared after 0.3.0: CHECK with 0.4.0, STATUS and GC with 1.1.0.
MIN_VERSION = {"CHECK": "0.4.0", "STATUS": "1.1.0", "GC": "1.1.0"}


class Value:
    """Equality, hash and repr over `__slots__`: what namedtuple gave these types, minus its imports."""

    __slots__: tuple[str, ...] = ()

    def _values(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and self._values() == other._values()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"{type(self).__name__}({fields})"


class PodRef(Value):
    """The pod a call is for, from CNI_ARGS as kubelet/Multus write them."""

    __slots__ = ("infra_container_id", "name", "namespace", "uid")

    def __init__(self, namespace: str, name: str, infra_container_id: str = "", uid: str = "") -> None:
        self.namespace = namespace
        self.name = name
        self.infra_container_id = infra_container_id
        self.uid = uid

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


class Environment(Value):
    """The CNI_* variables of one invocation."""

    __slots__ = ("cni_path", "command", "container_id", "ifname", "netns", "pod")

    def __init__(self, *, command: str, container_id: str, netns: str, ifname: str, pod: PodRef | None,
                 cni_path: str = "") -> None:
        self.command = command
        self.container_id = container_id
        self.netns = netns
        self.ifname = ifname
        self.pod = pod
        self.cni_path = cni_path


class NetConf(Value):
    """The parts of the network config this plugin uses.

    `as_main` is true for a `type: kube-ovn` NAD (we create the interface), false when we are the
    `ipam` of another plugin (macvlan, host-device, bridge …) and only return addresses.
    """

    __slots__ = ("as_main", "cni_version", "mtu", "name", "prev_result", "provider", "routes",
                 "server_socket")

    def __init__(self, *, cni_version: str, name: str, provider: str, server_socket: str,
                 routes: tuple[dict[str, str], ...], as_main: bool, mtu: int | None = None,
                 prev_result: dict[str, object] | None = None) -> None:
        self.cni_version = cni_version
        self.name = name
        self.provider = provider
        self.server_socket = server_socket
        self.routes = routes
        self.as_main = as_main
        self.mtu = mtu
        self.prev_result = prev_result


def version_tuple(version: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in version.split("."))
    except ValueError:
        return (0,)


def parse_cni_args(value: str) -> dict[str, str]:
    """`K=V;K=V` as Multus writes it; `IgnoreUnknown` is implied, the last duplicate wins."""
    pairs: dict[str, str] = {}
    for item in value.split(";"):
        if not item.strip():
            continue
        key, sep, val = item.partition("=")
        if not sep or not key.strip():
            raise errors.MissingEnvironmentError(
                f"CNI_ARGS item {item!r} is not KEY=VALUE; expected e.g. K8S_POD_NAMESPACE=default"
            )
        pairs[key.strip()] = val.strip()
    return pairs


def parse_environment(environ: Mapping[str, str]) -> Environment:
    """The CNI_* variables; which ones are required depends on the command (SPEC.md section 2)."""
    command = environ.get("CNI_COMMAND", "")
    if command not in COMMANDS:
        raise errors.MissingEnvironmentError(
            f"CNI_COMMAND {command!r} is not supported; expected one of {', '.join(COMMANDS)}"
        )
    required = {"ADD": ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"),
                "CHECK": ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"),
                "DEL": ("CNI_CONTAINERID", "CNI_IFNAME")}.get(command, ())
    missing = [name for name in required if not environ.get(name)]
    if missing:
        raise errors.MissingEnvironmentError(f"{', '.join(missing)} must be set for CNI_COMMAND={command}")
    pod = None
    if command in ("ADD", "DEL", "CHECK"):
        args = parse_cni_args(environ.get("CNI_ARGS", ""))
        namespace, name = args.get("K8S_POD_NAMESPACE", ""), args.get("K8S_POD_NAME", "")
        if namespace and name:
            pod = PodRef(namespace, name, args.get("K8S_POD_INFRA_CONTAINER_ID", ""),
                         args.get("K8S_POD_UID", ""))
        elif command != "DEL":
            raise errors.MissingEnvironmentError(
                f"CNI_ARGS {environ.get('CNI_ARGS', '')!r} lacks K8S_POD_NAMESPACE and K8S_POD_NAME; "
                "the kube-ovn plugin serves Kubernetes pods only"
            )
    return Environment(command=command, container_id=environ.get("CNI_CONTAINERID", ""),
                       netns=environ.get("CNI_NETNS", ""), ifname=environ.get("CNI_IFNAME", ""),
                       pod=pod, cni_path=environ.get("CNI_PATH", ""))


def load_json(data: bytes | str) -> dict[str, object]:
    try:
        conf = jsonio.loads(data or "{}")
    except ValueError as exc:
        raise errors.DecodeError(f"the network config on stdin is not JSON: {exc}") from None
    if not isinstance(conf, dict):
        raise errors.DecodeError("the network config on stdin must be a JSON object")
    return conf


def check_version(version: str, command: str) -> None:
    supported = netconf_rules.SUPPORTED_VERSIONS
    if version not in supported:
        raise errors.IncompatibleVersionError(
            f"cniVersion {version!r} is not supported; use one of {', '.join(supported)}"
        )
    needed = MIN_VERSION.get(command)
    if needed and version_tuple(version) < version_tuple(needed):
        raise errors.IncompatibleVersionError(
            f"cniVersion {version} has no {command}; it needs cniVersion {needed} or later"
        )


def parse_netconf(conf: Mapping[str, object], command: str) -> NetConf:
    """Either `{type: kube-ovn, provider, server_socket}` or `{ipam: {type: kube-ovn, …}}`."""
    version = netconf_rules.effective_version(conf.get("cniVersion"))
    if not isinstance(version, str):
        raise errors.InvalidConfigError(f"cniVersion {version!r} must be a string such as \"1.0.0\"")
    check_version(version, command)
    ipam = conf.get("ipam")
    as_main = conf.get("type") == PLUGIN_TYPE
    if as_main:
        section: Mapping[str, object] = conf
    elif isinstance(ipam, dict) and ipam.get("type") == PLUGIN_TYPE:
        section = ipam
    else:
        raise errors.InvalidConfigError(
            f"network config {conf.get('name', '')!r} uses neither type nor ipam.type "
            f"{PLUGIN_TYPE!r}; set one of them to {PLUGIN_TYPE!r}"
        )
    provider = section.get("provider")
    if not isinstance(provider, str) or not provider:
        where = "provider" if as_main else "ipam.provider"
        raise errors.InvalidConfigError(
            f"{where} {provider!r} must be the NAD's <name>.<namespace>"
            f"{'.ovn' if as_main else ''}, e.g. "
            f"{'attachnet.default.ovn' if as_main else 'macvlan.default'}"
        )
    socket = section.get("server_socket") or DEFAULT_SOCKET
    if not isinstance(socket, str):
        raise errors.InvalidConfigError(f"server_socket {socket!r} must be a path such as {DEFAULT_SOCKET}")
    routes = section.get("routes", [])
    if as_main and not routes and isinstance(ipam, dict):
        routes = ipam.get("routes", [])  # a kube-ovn type NAD may also nest them under ipam
    mtu = conf.get("mtu")
    if not netconf_rules.mtu_ok(mtu):
        raise errors.InvalidConfigError(
            f"mtu {mtu!r} must be an integer between {netconf_rules.MIN_MTU} and {netconf_rules.MAX_MTU}"
        )
    prev = conf.get("prevResult")
    return NetConf(cni_version=version, name=str(conf.get("name") or ""), provider=provider,
                   server_socket=socket, routes=parse_routes(routes), as_main=as_main, mtu=mtu,
                   prev_result=prev if isinstance(prev, dict) else None)


def parse_routes(routes: object) -> tuple[dict[str, str], ...]:
    """The NAD's `routes`: `[{"dst": "10.0.0.0/8", "gw": "172.17.0.254"?}]`, checked, not resolved."""
    if not isinstance(routes, list):
        raise errors.InvalidConfigError(f"routes {routes!r} must be a list of {{\"dst\", \"gw\"}} objects")
    if not routes:
        return ()
    import ipaddress  # only NADs with routes pay for it

    parsed = []
    for route in routes:
        if not isinstance(route, dict) or not isinstance(route.get("dst"), str):
            raise errors.InvalidConfigError(
                f"route {route!r} must be an object with a \"dst\" CIDR and an optional \"gw\""
            )
        try:
            dst = ipaddress.ip_network(route["dst"], strict=False)
            gw = ipaddress.ip_address(route["gw"]) if route.get("gw") else None
        except ValueError as exc:
            raise errors.InvalidConfigError(f"route {route!r} is invalid: {exc}") from None
        if gw is not None and gw.version != dst.version:
            raise errors.InvalidConfigError(
                f"route {route!r} mixes an IPv{dst.version} dst with an IPv{gw.version} gw; use one family"
            )
        parsed.append({"dst": str(dst), **({"gw": str(gw)} if gw else {})})
    return tuple(parsed)
