"""Whatever NAD config the webhook admits (`allocator.nad`), the plugin accepts (`cni.config`).

Each config, from a table and from hypothesis, goes through both parsers: the webhook's view of the
NAD's `spec.config`, and the plugin's view of what the runtime hands it at sandbox creation. A NAD
the webhook admits and that uses kube-ovn must parse in the plugin for ADD, with the same provider,
socket, mode, cniVersion and routes. (The webhook may refuse more, e.g. a provider not derived from
the NAD's name, or a relative socket.)
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from allocator import nad
from allocator.errors import NadError
from cni import config as plugin_config
from cni import errors as plugin_errors
from cni import jsonio

NAMESPACE, NAME = "default", "net"
PROVIDER = "net.default"  # ipam.type kube-ovn
OVN_PROVIDER = "net.default.ovn"  # type kube-ovn
SOCKET = "/run/openvswitch/kube-ovn-daemon.sock"
ABSENT = object()  # a key left out


def _drop_absent(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_absent(v) for k, v in value.items() if v is not ABSENT}
    if isinstance(value, list):
        return [_drop_absent(v) for v in value]
    return value


def uses_kube_ovn(plugin: dict) -> bool:
    """Whether the runtime ends up running the kube-ovn binary for this plugin of the config."""
    ipam = plugin.get("ipam")
    return plugin.get("type") == "kube-ovn" or (isinstance(ipam, dict) and ipam.get("type") == "kube-ovn")


def plugin_stdins(text: str) -> list[dict]:
    """The configs the kube-ovn binary is handed for this NAD: a single conf as it is (a main plugin
    passes its own stdin on to its IPAM plugin), or each plugin of a conflist that uses kube-ovn with
    the list's name and cniVersion injected, as libcni's buildOneConfig does. Raises ValueError
    where the plugin's own JSON reader refuses the text."""
    conf = jsonio.loads(text)
    if not isinstance(conf, dict):
        raise ValueError("not an object")
    if "plugins" not in conf:
        return [conf] if uses_kube_ovn(conf) else []
    plugins = conf["plugins"] if isinstance(conf["plugins"], list) else []
    injected = {"name": conf.get("name", ""), "cniVersion": conf.get("cniVersion", "")}
    return [{**p, **injected} for p in plugins if isinstance(p, dict) and uses_kube_ovn(p)]


def check_agreement(conf: Any) -> bool:
    """Assert the differential property for one config; return whether the webhook admitted it."""
    text = conf if isinstance(conf, str) else json.dumps(_drop_absent(conf))
    try:
        parsed = nad.parse_nad(NAMESPACE, NAME, {"config": text})
    except NadError:
        return False  # refused at admission: the plugin never sees it
    if not parsed.uses_kube_ovn:
        assert not plugin_stdins(text), "the webhook thinks kube-ovn is unused, the runtime would run it"
        return True
    stdins = plugin_stdins(text)  # the webhook read it, so the plugin's JSON reader must too
    assert len(stdins) == 1
    try:
        got = plugin_config.parse_netconf(stdins[0], "ADD")
    except plugin_errors.CniError as error:
        pytest.fail(f"admitted by the webhook, refused by the plugin: {error.msg}\nconfig: {text}")
    assert got.provider == parsed.provider
    assert got.server_socket == parsed.server_socket
    assert got.as_main == (parsed.mode == nad.MODE_TYPE)
    assert got.cni_version == (parsed.cni_version or "0.3.0")
    assert [r["dst"] for r in got.routes] == [str(r.dst) for r in parsed.routes]
    assert [r.get("gw") for r in got.routes] == [str(r.gw) if r.gw else None for r in parsed.routes]
    return True


def macvlan(*, version: Any = "0.3.0", **ipam: Any) -> dict:
    return {"cniVersion": version, "type": "macvlan", "master": "eth0", "mode": "bridge",
            "ipam": {"type": "kube-ovn", "provider": PROVIDER, "server_socket": SOCKET, **ipam}}


def ovn(*, version: Any = "0.3.0", **extra: Any) -> dict:
    return {"cniVersion": version, "type": "kube-ovn", "provider": OVN_PROVIDER, "server_socket": SOCKET,
            **extra}


def conflist(*plugins: dict, version: Any = "1.0.0") -> dict:
    return {"cniVersion": version, "name": NAME, "plugins": list(plugins)}


def bare(plugin: dict) -> dict:
    """A conflist member: no cniVersion of its own (the list's is injected)."""
    return {k: v for k, v in plugin.items() if k != "cniVersion"}


ROUTE = {"dst": "10.10.0.0/16", "gw": "172.17.0.254"}
CORPUS = [
    # (case id, spec.config, admitted by the webhook)
    ("guide macvlan", macvlan(), True),
    ("guide attachnet", ovn(), True),
    *[(f"cniVersion {v}", macvlan(version=v), True) for v in ("0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")],
    ("cniVersion 0.1.0", macvlan(version="0.1.0"), False),
    ("cniVersion 0.2.0", macvlan(version="0.2.0"), False),
    ("cniVersion 9.9.9", macvlan(version="9.9.9"), False),
    ("cniVersion 1.0", ovn(version="1.0"), False),
    ("cniVersion v1.0.0", ovn(version="v1.0.0"), False),
    ("cniVersion absent", macvlan(version=ABSENT), True),
    ("cniVersion empty", macvlan(version=""), True),
    ("cniVersion number", macvlan(version=1), False),
    ("cniVersion null", macvlan(version=None), True),
    ("conflist", conflist(bare(macvlan()), {"type": "tuning"}), True),
    ("conflist kube-ovn type second", conflist({"type": "tuning"}, bare(ovn())), True),
    ("conflist 0.1.0", conflist(bare(macvlan()), version="0.1.0"), False),
    ("conflist member's own version is overridden", conflist(macvlan(version="9.9.9")), True),
    ("conflist 9.9.9 over a good member version", conflist(macvlan(version="1.0.0"), version="9.9.9"), False),
    ("conflist without cniVersion", conflist(bare(macvlan()), version=ABSENT), True),
    ("conflist two users", conflist(bare(macvlan()), bare(ovn())), False),
    ("conflist empty plugins", conflist(), False),
    ("conflist plugins not a list", {"cniVersion": "1.0.0", "plugins": {"type": "kube-ovn"}}, False),
    ("no kube-ovn at all", {"cniVersion": "9.9.9", "type": "macvlan", "ipam": {"type": "host-local"}}, True),
    ("missing ipam", {"cniVersion": "0.3.0", "type": "macvlan", "master": "eth0"}, True),
    ("ipam not an object", {"cniVersion": "0.3.0", "type": "macvlan", "ipam": "kube-ovn"}, True),
    ("kube-ovn type with its own ipam", ovn(ipam={"type": "kube-ovn", "provider": PROVIDER}), True),
    ("provider missing", macvlan(provider=ABSENT), False),
    ("provider empty", macvlan(provider=""), False),
    ("provider of another NAD", macvlan(provider="other.default"), False),
    ("provider with .ovn in ipam mode", macvlan(provider=OVN_PROVIDER), False),
    ("provider without .ovn in type mode", {**ovn(), "provider": PROVIDER}, False),
    ("provider a number", macvlan(provider=5), False),
    ("server_socket absent", macvlan(server_socket=ABSENT), True),
    ("server_socket empty", macvlan(server_socket=""), True),
    ("server_socket relative", macvlan(server_socket="kube-ovn.sock"), False),
    ("server_socket a number", macvlan(server_socket=5), False),
    ("server_socket false", macvlan(server_socket=False), False),
    ("server_socket other absolute path", ovn(server_socket="/var/run/other.sock"), True),
    ("routes", macvlan(routes=[ROUTE]), True),
    ("routes empty", macvlan(routes=[]), True),
    ("routes null", macvlan(routes=None), False),
    ("routes an object", macvlan(routes={}), False),
    ("route without dst", macvlan(routes=[{"gw": "172.17.0.254"}]), False),
    ("route with host bits", macvlan(routes=[{"dst": "10.10.0.1/16"}]), True),
    ("route mixing families", macvlan(routes=[{"dst": "10.0.0.0/8", "gw": "fd00::1"}]), False),
    ("route dst not a CIDR", macvlan(routes=[{"dst": "somewhere"}]), False),
    ("IPv6 route", macvlan(routes=[{"dst": "fd00:10::/64", "gw": "fd00::1"}]), True),
    ("type mode routes", ovn(routes=[ROUTE]), True),
    ("type mode routes under ipam", ovn(ipam={"routes": [ROUTE]}), True),
    ("type mode empty routes fall back to ipam", ovn(routes=[], ipam={"routes": [ROUTE]}), True),
    ("type mode routes null, no ipam", ovn(routes=None), False),
    ("type mode routes {} with ipam routes", ovn(routes={}, ipam={"routes": [ROUTE]}), True),
    ("type mode routes {} and no ipam", ovn(routes={}), False),
    ("mtu", ovn(mtu=1400), True),
    ("mtu on the main plugin", {**macvlan(), "mtu": 9000}, True),
    ("mtu too small", ovn(mtu=9), False),
    ("mtu too large", {**macvlan(), "mtu": 70000}, False),
    ("mtu a string", ovn(mtu="1500"), False),
    ("mtu true", ovn(mtu=True), False),
    ("mtu null", ovn(mtu=None), True),
    ("NaN", '{"cniVersion": "0.3.0", "type": "kube-ovn", "provider": "net.default.ovn", "mtu": NaN}', False),
    ("Infinity elsewhere", '{"cniVersion": "0.3.0", "type": "macvlan", "x": Infinity}', False),
    ("not JSON", "{", False),
    ("a list", "[]", False),
]


@pytest.mark.parametrize(("conf", "admitted"), [c[1:] for c in CORPUS], ids=[c[0] for c in CORPUS])
def test_what_the_webhook_admits_the_plugin_accepts(conf: Any, admitted: bool) -> None:
    assert check_agreement(conf) == admitted


def test_the_webhook_names_the_supported_versions() -> None:
    with pytest.raises(NadError) as refused:
        nad.parse_nad(NAMESPACE, NAME, {"config": json.dumps(macvlan(version="9.9.9"))})
    assert str(refused.value) == (
        'spec.config of NetworkAttachmentDefinition default/net has cniVersion "9.9.9", which the kube-ovn '
        "plugin does not support; write one of 0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0"
    )


# ---- generated configs ------------------------------------------------------------------------

ODD = st.sampled_from([ABSENT, None, "", 0, 5, False, True, [], {}, "x"])
GOOD_VERSIONS = st.sampled_from(["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0", ABSENT])
VERSIONS = GOOD_VERSIONS | st.sampled_from(["0.1.0", "0.2.0", "9.9.9", "1.0", " 1.0.0"]) | ODD
ADDRESSY = st.text(alphabet="0123456789abcdef.:/%fF", max_size=24)
ADDRESSES = st.sampled_from(["10.0.0.0/8", "10.0.0.1/8", "0.0.0.0/0", "fd00::/64", "::/0", "172.17.0.254",
                             "fd00::1", "10.0.0.1", "010.0.0.0/8", "10.0.0.0/33", "fe80::/64%eth0",
                             "::ffff:10.0.0.0/104", "10.0.0.0/ 8", "FD00::/64", "1.2.3.04"]) | ADDRESSY | ODD
ROUTES = st.lists(st.dictionaries(st.sampled_from(["dst", "gw", "via"]), ADDRESSES, max_size=3), max_size=3)
ROUTE_VALUES = ROUTES | ODD
SOCKETS = st.sampled_from([SOCKET, "/tmp/x.sock", "relative.sock"]) | ODD
MTUS = st.sampled_from([ABSENT, None, 67, 68, 1500, 65535, 65536, "1500", True, 1500.0, -1])


def mostly(draw: st.DrawFn, good: Any, other: st.SearchStrategy) -> Any:
    """`good` four times in five, else something drawn from `other`: most configs get far enough
    for the later checks to matter."""
    return good if draw(st.integers(0, 4)) else draw(other)


@st.composite
def plugins(draw: st.DrawFn) -> dict:
    """One plugin: kube-ovn type, or another type with (mostly) a kube-ovn ipam section."""
    as_main = draw(st.booleans())
    other_providers = st.sampled_from([PROVIDER, OVN_PROVIDER]) | ODD
    provider = mostly(draw, OVN_PROVIDER if as_main else PROVIDER, other_providers)
    section = {"provider": provider, "server_socket": mostly(draw, SOCKET, SOCKETS),
               "routes": mostly(draw, ABSENT, ROUTE_VALUES)}
    plugin = {"cniVersion": mostly(draw, "0.3.0", VERSIONS), "mtu": mostly(draw, ABSENT, MTUS)}
    if as_main:
        ipam = draw(st.just(ABSENT) | st.fixed_dictionaries({"routes": ROUTE_VALUES}) | ODD)
        return {**plugin, "type": "kube-ovn", **section, "ipam": ipam}
    kind = mostly(draw, "kube-ovn", st.sampled_from(["host-local", ABSENT, 5]))
    ipam = mostly(draw, {"type": kind, **section}, ODD)
    return {**plugin, "type": draw(st.sampled_from(["macvlan", "bridge", ABSENT, 7])), "ipam": ipam}


CONFIGS = plugins() | st.builds(
    lambda members, version, name: {"cniVersion": version, "name": name, "plugins": members},
    st.lists(plugins(), min_size=0, max_size=2), VERSIONS, st.sampled_from([NAME, ABSENT, 5]),
)


@settings(max_examples=1500, deadline=None)
@given(CONFIGS)
def test_generated_configs_the_webhook_admits_the_plugin_accepts(conf: dict) -> None:
    event("admitted" if check_agreement(conf) else "refused")
