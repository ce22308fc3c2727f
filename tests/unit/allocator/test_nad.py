"""NetworkAttachmentDefinition config parsing, with the guide's two NADs verbatim."""

from __future__ import annotations

import json
import re

import netaddr
import pytest
from hypothesis import given
from hypothesis import strategies as st

from allocator import nad
from allocator.annotations import Route, provider_for
from allocator.errors import NadError, ParseError

# spec.config of the guide's NADs exactly as the YAML single-quoted scalar delivers it
# (each line break folded to a space).
GUIDE_MACVLAN = (
    '{ "cniVersion": "0.3.0", "type": "macvlan", "master": "eth0", "mode": "bridge", "ipam": { '
    '"type": "kube-ovn", "server_socket": "/run/openvswitch/kube-ovn-daemon.sock", '
    '"provider": "macvlan.default" } }'
)
GUIDE_ATTACHNET = (
    '{ "cniVersion": "0.3.0", "type": "kube-ovn", '
    '"server_socket": "/run/openvswitch/kube-ovn-daemon.sock", "provider": "attachnet.default.ovn" }'
)


def config(**conf) -> dict:
    return {"config": json.dumps(conf)}


def macvlan(**ipam) -> dict:
    return config(cniVersion="0.3.0", type="macvlan", master="eth0", ipam={"type": "kube-ovn", **ipam})


def test_guide_macvlan_nad_uses_ipam_mode():
    parsed = nad.parse_nad("default", "macvlan", {"config": GUIDE_MACVLAN})
    assert parsed == nad.NadConfig(
        namespace="default",
        name="macvlan",
        uses_kube_ovn=True,
        mode="ipam",
        provider="macvlan.default",
        server_socket="/run/openvswitch/kube-ovn-daemon.sock",
        routes=(),
        cni_version="0.3.0",
    )


def test_guide_attachnet_nad_uses_type_mode():
    parsed = nad.parse_nad("default", "attachnet", {"config": GUIDE_ATTACHNET})
    assert (parsed.uses_kube_ovn, parsed.mode, parsed.provider) == (True, "type", "attachnet.default.ovn")
    assert parsed.server_socket == nad.DEFAULT_SERVER_SOCKET


def test_guide_multiline_config_parses_like_the_folded_one():
    multiline = GUIDE_MACVLAN.replace(", ", ",\n")
    assert nad.parse_nad("default", "macvlan", {"config": multiline}) == nad.parse_nad(
        "default", "macvlan", {"config": GUIDE_MACVLAN}
    )


def test_nad_not_using_kube_ovn_parses():
    parsed = nad.parse_nad(
        "default", "plain", config(cniVersion="0.4.0", type="macvlan", ipam={"type": "dhcp"})
    )
    assert (parsed.uses_kube_ovn, parsed.mode, parsed.provider) == (False, None, None)
    assert parsed.cni_version == "0.4.0"


def test_nad_not_using_us_may_have_odd_fields_we_do_not_read():
    parsed = nad.parse_nad("default", "odd", config(type="macvlan", ipam="host-local", cniVersion=3))
    assert (parsed.uses_kube_ovn, parsed.cni_version) == (False, None)


def test_server_socket_defaults():
    assert nad.parse_nad("default", "macvlan", macvlan(provider="macvlan.default")).server_socket == (
        "/run/openvswitch/kube-ovn-daemon.sock"
    )
    custom = nad.parse_nad(
        "default", "macvlan", macvlan(provider="macvlan.default", server_socket="/tmp/d.sock")
    )
    assert custom.server_socket == "/tmp/d.sock"


def test_conflist_with_ipam_in_first_plugin():
    spec = config(
        cniVersion="1.0.0",
        name="net",
        plugins=[
            {"type": "bridge", "ipam": {"type": "kube-ovn", "provider": "br.apps"}},
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    )
    parsed = nad.parse_nad("apps", "br", spec)
    assert (parsed.mode, parsed.provider, parsed.cni_version) == ("ipam", "br.apps", "1.0.0")


def test_conflist_with_kube_ovn_type_plugin():
    spec = config(
        cniVersion="0.4.0",
        plugins=[{"type": "tuning"}, {"type": "kube-ovn", "provider": "net.apps.ovn"}],
    )
    parsed = nad.parse_nad("apps", "net", spec)
    assert (parsed.mode, parsed.provider) == ("type", "net.apps.ovn")


def test_conflist_not_using_us_is_not_ours():
    parsed = nad.parse_nad("apps", "net", config(plugins=[{"type": "bridge"}, {"type": "portmap"}]))
    assert parsed.uses_kube_ovn is False


def test_type_kube_ovn_wins_over_its_own_ipam():
    spec = config(type="kube-ovn", provider="a.b.ovn", ipam={"type": "kube-ovn", "provider": "a.b"})
    assert nad.parse_nad("b", "a", spec).mode == "type"


def test_ipam_routes_normalise_host_bits():
    parsed = nad.parse_nad(
        "default",
        "macvlan",
        macvlan(
            provider="macvlan.default",
            routes=[{"dst": "10.1.2.3/16", "gw": "172.17.0.1"}, {"dst": "0.0.0.0/0", "gw": "172.17.0.1"}],
        ),
    )
    assert parsed.routes == (
        Route(dst=netaddr.IPNetwork("10.1.0.0/16"), gw=netaddr.IPAddress("172.17.0.1")),
        Route(dst=netaddr.IPNetwork("0.0.0.0/0"), gw=netaddr.IPAddress("172.17.0.1")),
    )


def test_nad_routes_need_a_dst_as_the_cni_plugin_does():
    spec = macvlan(provider="macvlan.default", routes=[{"gw": "172.17.0.1"}])
    with pytest.raises(
        nad.InvalidConfig, match=re.escape('has no dst; CNI routes need one, e.g. "0.0.0.0/0"')
    ):
        nad.parse_nad("default", "macvlan", spec)


def test_type_mode_reads_top_level_routes():
    spec = config(type="kube-ovn", provider="a.b.ovn", routes=[{"dst": "fd00::/64", "gw": "fd01::1"}])
    assert [route.to_json() for route in nad.parse_nad("b", "a", spec).routes] == [
        {"dst": "fd00::/64", "gw": "fd01::1"}
    ]


def test_type_mode_falls_back_to_ipam_routes():
    spec = config(type="kube-ovn", provider="a.b.ovn", ipam={"routes": [{"dst": "10.0.0.0/8"}]})
    assert [route.to_json() for route in nad.parse_nad("b", "a", spec).routes] == [{"dst": "10.0.0.0/8"}]


@pytest.mark.parametrize("spec", [None, {}, {"config": None}, {"config": ""}, {"config": "  \n "}])
def test_empty_spec_explains_and_shows_the_config_to_write(spec):
    with pytest.raises(nad.EmptySpec) as caught:
        nad.parse_nad("default", "macvlan-conf-2", spec)
    message = str(caught.value)
    assert "NetworkAttachmentDefinition default/macvlan-conf-2 has no spec.config" in message
    assert "cannot be read centrally" in message
    example = json.loads(message.split("spec.config: '", 1)[1].rstrip("'"))
    assert example["ipam"] == {
        "type": "kube-ovn",
        "server_socket": "/run/openvswitch/kube-ovn-daemon.sock",
        "provider": "macvlan-conf-2.default",
    }
    assert example["type"] == "macvlan"


def test_invalid_json_gives_line_column_and_position():
    with pytest.raises(nad.InvalidJSON) as caught:
        nad.parse_nad("default", "macvlan", {"config": '{\n  "type": "macvlan",\n  "ipam": {,}\n}'})
    assert "spec.config of NetworkAttachmentDefinition default/macvlan is not valid JSON" in str(caught.value)
    assert "at line 3 column 12 (char 34)" in str(caught.value)


def test_invalid_json_even_when_not_using_us():
    with pytest.raises(nad.InvalidJSON):
        nad.parse_nad("default", "plain", {"config": '{"type": "macvlan",}'})


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            macvlan(),
            'sets ipam.type kube-ovn but its ipam has no provider; add "provider": "macvlan.default"',
        ),
        (macvlan(provider=""), 'add "provider": "macvlan.default"'),
        (
            config(type="kube-ovn"),
            'sets type kube-ovn but its config has no provider; add "provider": "macvlan.default.ovn"',
        ),
    ],
)
def test_missing_provider(spec, message):
    with pytest.raises(nad.MissingProvider, match=re.escape(message)):
        nad.parse_nad("default", "macvlan", spec)


@pytest.mark.parametrize(
    ("spec", "actual", "expected"),
    [
        (macvlan(provider="macvlan"), "macvlan", "macvlan.default"),
        (macvlan(provider="macvlan.default.ovn"), "macvlan.default.ovn", "macvlan.default"),
        (macvlan(provider="ovn"), "ovn", "macvlan.default"),
        (config(type="kube-ovn", provider="macvlan.default"), "macvlan.default", "macvlan.default.ovn"),
        (config(type="kube-ovn", provider="ovn"), "ovn", "macvlan.default.ovn"),
        (macvlan(provider=7), "7", "macvlan.default"),
    ],
)
def test_wrong_provider_names_the_expected_one(spec, actual, expected):
    with pytest.raises(nad.WrongProvider, match=re.escape(f'provider must be "{expected}"')) as caught:
        nad.parse_nad("default", "macvlan", spec)
    assert (caught.value.expected, caught.value.actual) == (expected, actual)


def test_wrong_provider_in_conflist_names_the_plugin():
    spec = config(plugins=[{"type": "bridge"}, {"type": "kube-ovn", "provider": "x.y"}])
    with pytest.raises(
        nad.WrongProvider, match=re.escape('provider "x.y" in its plugin 2, but provider must be')
    ):
        nad.parse_nad("y", "x", spec)


@pytest.mark.parametrize("socket", ["run/openvswitch/kube-ovn-daemon.sock", "./d.sock", "~/d.sock", 5])
def test_relative_socket(socket):
    with pytest.raises(
        nad.RelativeSocket, match=re.escape("which is not an absolute path; write e.g. /run/openvswitch")
    ):
        nad.parse_nad("default", "macvlan", macvlan(provider="macvlan.default", server_socket=socket))


def test_relative_socket_in_type_mode():
    with pytest.raises(nad.RelativeSocket, match=re.escape('server_socket "kube-ovn.sock" in its config')):
        nad.parse_nad("b", "a", config(type="kube-ovn", provider="a.b.ovn", server_socket="kube-ovn.sock"))


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"config": "[1, 2]"}, "is [1, 2], not a JSON object"),
        ({"config": '"text"'}, 'is "text", not a JSON object'),
        ({"config": 5}, "is int, not a string"),
        (config(plugins={"type": "bridge"}), "which is not a non-empty list of CNI config objects"),
        (config(plugins=[]), "which is not a non-empty list"),
        (config(plugins=["bridge"]), "which is not a non-empty list"),
        (
            config(
                plugins=[
                    {"type": "kube-ovn", "provider": "a.b.ovn"},
                    {"type": "kube-ovn", "provider": "a.b.ovn"},
                ]
            ),
            "uses kube-ovn in 2 plugins (1, 2)",
        ),
        (macvlan(provider="macvlan.default", routes={"gw": "10.0.0.1"}), "not a list"),
        (
            macvlan(provider="macvlan.default", routes=[{"dst": "10.0.0.0/8", "gw": "bogus"}]),
            'has gw "bogus", which is not an IP address',
        ),
        (
            config(cniVersion=4, type="kube-ovn", provider="macvlan.default.ovn"),
            'has cniVersion 4, not a string; write e.g. "cniVersion": "0.3.0"',
        ),
    ],
)
def test_invalid_config(spec, message):
    with pytest.raises(nad.InvalidConfig, match=re.escape(message)):
        nad.parse_nad("default", "macvlan", spec)


def test_route_errors_name_the_nad():
    spec = macvlan(provider="macvlan.default", routes=[{"dst": "10.0.0.0/8", "gw": "fd00::1"}])
    with pytest.raises(
        nad.InvalidConfig, match=re.escape("route 1 of ipam routes of NetworkAttachmentDefinition")
    ):
        nad.parse_nad("default", "macvlan", spec)


@pytest.mark.parametrize(
    "error", [nad.EmptySpec, nad.InvalidJSON, nad.InvalidConfig, nad.MissingProvider, nad.RelativeSocket]
)
def test_every_failure_is_a_nad_error(error):
    assert issubclass(error, NadError)
    assert issubclass(error, ParseError)
    assert issubclass(nad.WrongProvider, NadError)


@given(st.text(max_size=200))
def test_any_config_text_raises_only_nad_errors(text):
    try:
        parsed = nad.parse_nad("default", "macvlan", {"config": text})
    except NadError as error:
        assert "macvlan" in str(error)
    else:
        assert parsed.server_socket.startswith("/")


plugin = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(["kube-ovn", "macvlan", 3]),
        "provider": st.sampled_from(["macvlan.default", "macvlan.default.ovn", "", 1]),
        "server_socket": st.sampled_from(["/a.sock", "a.sock", "", None]),
        "ipam": st.one_of(
            st.just("kube-ovn"),
            st.fixed_dictionaries(
                {},
                optional={
                    "type": st.sampled_from(["kube-ovn", "host-local"]),
                    "provider": st.sampled_from(["macvlan.default", "x"]),
                    "routes": st.sampled_from([[], [{"gw": "1.1.1.1"}], "x", [{"dst": "x"}]]),
                },
            ),
        ),
    },
)


@given(st.one_of(plugin, st.fixed_dictionaries({"plugins": st.one_of(st.lists(plugin, max_size=3), plugin)})))
def test_structured_configs_raise_only_nad_errors(conf):
    try:
        parsed = nad.parse_nad("default", "macvlan", {"config": json.dumps(conf)})
    except NadError as error:
        assert str(error)
    else:
        if parsed.uses_kube_ovn:
            expected = provider_for("macvlan", "default", ovn_type=parsed.mode == nad.MODE_TYPE)
            assert parsed.provider == expected
            assert parsed.provider in ("macvlan.default", "macvlan.default.ovn")
