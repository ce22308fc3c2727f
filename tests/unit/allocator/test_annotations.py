"""Annotation keys and the `routes` annotation, with the guide's values verbatim."""

from __future__ import annotations

import json
import re

import netaddr
import pytest
from hypothesis import given
from hypothesis import strategies as st

from allocator import annotations
from allocator.annotations import Route
from allocator.errors import ParseError, RoutesError

# The guide's custom routes for a kube-ovn type attachment, as the YAML block scalar delivers it.
GUIDE_ROUTES = """[{
  "dst": "192.168.0.101/24",
  "gw": "172.17.0.254"
}, {
  "gw": "172.17.0.254"
}]
"""


def test_keys_follow_the_kube_ovn_convention():
    assert annotations.key("macvlan.default", annotations.IP_ADDRESS) == (
        "macvlan.default.kubernetes.io/ip_address"
    )
    assert annotations.key(annotations.PRIMARY_PROVIDER, annotations.MAC_ADDRESS) == (
        "ovn.kubernetes.io/mac_address"
    )
    assert annotations.key("attachnet.default.ovn", annotations.ROUTES) == (
        "attachnet.default.ovn.kubernetes.io/routes"
    )


def test_multus_annotation_names():
    assert annotations.NETWORKS == "k8s.v1.cni.cncf.io/networks"
    assert annotations.DEFAULT_NETWORK == "v1.multus-cni.io/default-network"
    assert annotations.NETWORK_STATUS == "k8s.v1.cni.cncf.io/network-status"


def test_field_sets():
    assert annotations.OUTPUT_FIELDS == (
        "ip_address",
        "mac_address",
        "cidr",
        "gateway",
        "logical_switch",
        "allocated",
    )
    assert set(annotations.INPUT_FIELDS) == {
        "ip_address",
        "mac_address",
        "ip_pool",
        "ip_family",
        "logical_switch",
        "routes",
    }


@pytest.mark.parametrize(
    ("name", "namespace", "ovn_type", "expected"),
    [
        ("macvlan", "default", False, "macvlan.default"),
        ("attachnet", "default", True, "attachnet.default.ovn"),
    ],
)
def test_provider_for(name, namespace, ovn_type, expected):
    assert annotations.provider_for(name, namespace, ovn_type=ovn_type) == expected


def test_provider_annotations_picks_one_provider_only():
    pod_annotations = {
        "k8s.v1.cni.cncf.io/networks": "default/macvlan",
        "ovn.kubernetes.io/ip_address": "10.16.0.15",
        "ovn.kubernetes.io/mac_address": "00:00:00:53:6B:B6",
        "macvlan.default.kubernetes.io/ip_address": "172.17.0.100",
        "macvlan.default.kubernetes.io/mac_address": "00:00:00:53:6B:BB",
        "other.macvlan.default.kubernetes.io/ip_address": "10.0.0.1",
    }
    assert annotations.provider_annotations(pod_annotations, "macvlan.default") == {
        "ip_address": "172.17.0.100",
        "mac_address": "00:00:00:53:6B:BB",
    }
    assert annotations.provider_annotations(pod_annotations, "ovn") == {
        "ip_address": "10.16.0.15",
        "mac_address": "00:00:00:53:6B:B6",
    }
    assert annotations.provider_annotations(None, "ovn") == {}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("10.16.0.15", ("10.16.0.15",)),
        ("10.16.0.15,fd00::15", ("10.16.0.15", "fd00::15")),
        (" 10.16.0.15 , fd00::15 ", ("10.16.0.15", "fd00::15")),
    ],
)
def test_split_dual(value, expected):
    assert annotations.split_dual(value) == expected


@pytest.mark.parametrize("value", ["", ",", "10.0.0.1,", "a,b,c", " , fd00::1"])
def test_split_dual_rejects_empty_parts_and_more_than_two(value):
    with pytest.raises(ParseError, match="dual-stack pair"):
        annotations.split_dual(value)


def test_guide_routes_normalise_host_bits_and_read_missing_dst_as_default():
    routes = annotations.parse_routes(GUIDE_ROUTES)
    assert routes == (
        Route(dst=netaddr.IPNetwork("192.168.0.0/24"), gw=netaddr.IPAddress("172.17.0.254")),
        Route(dst=None, gw=netaddr.IPAddress("172.17.0.254")),
    )
    assert [route.to_json() for route in routes] == [
        {"dst": "192.168.0.0/24", "gw": "172.17.0.254"},
        {"gw": "172.17.0.254"},
    ]
    assert [route.is_default for route in routes] == [False, True]
    assert [route.family for route in routes] == [4, 4]


@pytest.mark.parametrize(
    ("value", "dst", "gw"),
    [
        ('[{"dst": "", "gw": "172.17.0.254"}]', None, "172.17.0.254"),
        ('[{"dst": "fd00:1::5/64", "gw": "fd00::1"}]', "fd00:1::/64", "fd00::1"),
        ('[{"dst": "10.0.0.0/8"}]', "10.0.0.0/8", None),
        ('[{"dst": "0.0.0.0/0", "gw": "10.0.0.1"}]', "0.0.0.0/0", "10.0.0.1"),
        ('[{"gw": "FD00::1"}]', None, "fd00::1"),
    ],
)
def test_route_forms(value, dst, gw):
    (route,) = annotations.parse_routes(value)
    assert (str(route.dst) if route.dst else None, str(route.gw) if route.gw else None) == (dst, gw)


def test_empty_list_is_no_routes():
    assert annotations.parse_routes("[]") == ()


def test_explicit_zero_prefix_is_a_default_route():
    (route,) = annotations.parse_routes('[{"dst": "::/0", "gw": "fd00::1"}]')
    assert route.is_default
    assert route.family == 6


def test_route_round_trips_through_json():
    routes = annotations.parse_routes(GUIDE_ROUTES)
    assert annotations.parse_routes(json.dumps([route.to_json() for route in routes])) == routes


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("[{", "is not JSON (Expecting property name enclosed in double quotes at line 1 column 3 (char 2))"),
        ('{"dst": "10.0.0.0/8"}', 'is {"dst": "10.0.0.0/8"}, not a list'),
        ('"10.0.0.0/8"', "not a list"),
        ("[1]", "route 1 of the routes annotation, 1, is not an object"),
        ('[{"gw": "10.0.0.1"}, {"dst": "10.0.0.0/8", "gateway": "10.0.0.1"}]', 'unknown key "gateway"'),
        ('[{"dst": "10.0.0.0/33", "gw": "10.0.0.1"}]', 'has dst "10.0.0.0/33", which is not a CIDR'),
        ('[{"dst": "10.0.0.0/ 8"}]', 'has dst "10.0.0.0/ 8", which is not a CIDR'),
        ('[{"dst": "10.0.0.0/255.0.0.0"}]', "which is not a CIDR"),
        ('[{"dst": "10.0.0.0"}]', "which is not a CIDR"),
        ('[{"dst": "10.0.0.0/08"}]', "which is not a CIDR"),
        ('[{"gw": "172.17.0.300"}]', 'has gw "172.17.0.300", which is not an IP address'),
        ('[{"gw": "127.1"}]', "which is not an IP address"),
        ('[{"gw": "10.0.0.1/24"}]', "which is not an IP address"),
        ('[{"gw": " 10.0.0.1"}]', "which is not an IP address"),
        ('[{"gw": 167772161}]', "has a gw that is not a string"),
        ('[{"dst": ["10.0.0.0/8"]}]', "has a dst that is not a string"),
        ("[{}]", "names neither dst nor gw"),
        ('[{"dst": "", "gw": ""}]', "names neither dst nor gw"),
        ('[{"dst": "10.0.0.0/8", "gw": "fd00::1"}]', "mixes IPv4 dst 10.0.0.0/8 with IPv6 gw fd00::1"),
        ('[{"gw": "10.0.0.1"}, {"gw": "10.0.0.2"}]', "repeats the default destination of route 1"),
        ('[{"dst": "10.1.0.0/16"}, {"dst": "10.1.2.3/16", "gw": "10.0.0.1"}]', "repeats the 10.1.0.0/16"),
    ],
)
def test_bad_routes_are_rejected_naming_the_item(value, message):
    with pytest.raises(RoutesError, match=re.escape(message)):
        annotations.parse_routes(value)


def test_one_default_route_per_family_is_allowed():
    routes = annotations.parse_routes('[{"gw": "10.0.0.1"}, {"gw": "fd00::1"}]')
    assert [route.family for route in routes] == [4, 6]


def test_nested_json_too_deep_is_a_routes_error():
    with pytest.raises(RoutesError, match="not JSON"):
        annotations.parse_routes("[" * 100_000 + "]" * 100_000)


@pytest.mark.parametrize("text", ["10.0.0.1", "fd00::1", "::ffff:10.0.0.1"])
def test_parse_address_accepts_usual_notation(text):
    assert str(annotations.parse_address(text)) == text


@pytest.mark.parametrize(
    "text", ["", "1", "127.1", "010.0.0.1", "0x7f000001", "10.0.0.1 ", "fe80::1%eth0", "a/b"]
)
def test_parse_address_rejects_lenient_forms(text):
    with pytest.raises(ValueError):
        annotations.parse_address(text)


def test_parse_interface_keeps_host_bits():
    network = annotations.parse_interface("192.168.0.101/24")
    assert (str(network.ip), network.prefixlen, str(network.cidr)) == ("192.168.0.101", 24, "192.168.0.0/24")


@given(st.text(max_size=200))
def test_routes_parser_raises_only_parse_errors(value):
    try:
        routes = annotations.parse_routes(value)
    except ParseError as error:
        assert str(error)
    else:
        assert all(route.dst is not None or route.gw is not None for route in routes)


route_json = st.lists(
    st.dictionaries(
        st.sampled_from(["dst", "gw", "via"]),
        st.one_of(
            st.none(),
            st.integers(),
            st.sampled_from(["", "10.0.0.1", "10.0.0.0/8", "fd00::1", "fd00::/64", "10.0.0.1/33", "x"]),
        ),
    ),
    max_size=4,
)


@given(route_json)
def test_routes_parser_on_structured_json_raises_only_routes_errors(items):
    try:
        routes = annotations.parse_routes(json.dumps(items))
    except RoutesError as error:
        assert "route" in str(error)
    else:
        assert len(routes) == len(items)
