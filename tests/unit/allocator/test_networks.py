"""Multus network selection parsing: the guide's values verbatim, Multus's forms, and our stricter rules."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from allocator.errors import NetworkSelectionError, ParseError
from allocator.networks import NetworkSelection, parse_default_network, parse_networks

# The guide's JSON selection, as the YAML single-quoted scalar delivers it (line breaks folded).
GUIDE_DEFAULT_ROUTE = '[{ "name": "macvlan", "namespace": "default", "default-route": ["172.17.0.1"] }]'


def parse(value: str, namespace: str = "team") -> list[NetworkSelection]:
    return parse_networks(value, pod_namespace=namespace)


def rejected(value: str, message: str) -> None:
    with pytest.raises(NetworkSelectionError, match=re.escape(message)):
        parse(value)


@pytest.mark.parametrize("value", ["default/macvlan", "default/attachnet"])
def test_guide_comma_form(value):
    (selection,) = parse(value)
    assert (selection.namespace, selection.name, selection.interface) == ("default", value[8:], None)
    assert selection.key == value
    assert selection.raw is None


def test_guide_json_form_with_default_route():
    (selection,) = parse(GUIDE_DEFAULT_ROUTE)
    assert selection == NetworkSelection(name="macvlan", namespace="default", default_route=("172.17.0.1",))
    assert selection.raw == json.loads(GUIDE_DEFAULT_ROUTE)[0]


def test_guide_json_form_with_line_breaks():
    value = """[{
"name": "macvlan",
"namespace": "default",
"default-route": ["172.17.0.1"]
}]"""
    assert parse(value) == parse(GUIDE_DEFAULT_ROUTE)


def test_guide_default_network():
    selection = parse_default_network("default/macvlan")
    assert (selection.namespace, selection.name) == ("default", "macvlan")


def test_bare_names_resolve_in_the_pods_namespace():
    assert [s.key for s in parse("macvlan, other@net2", namespace="apps")] == [
        "apps/macvlan",
        "apps/other@net2",
    ]
    assert parse('[{"name": "macvlan"}]', namespace="apps")[0].namespace == "apps"
    assert parse('[{"name": "macvlan", "namespace": ""}]', namespace="apps")[0].namespace == "apps"


def test_bare_default_network_resolves_in_multus_namespace():
    assert parse_default_network("macvlan").namespace == "kube-system"
    assert parse_default_network("macvlan", multus_namespace="multus").key == "multus/macvlan"


def test_comma_form_tolerates_whitespace_around_items_and_parts():
    selections = parse("  default/macvlan ,\tdefault / attachnet @ net2 ,other")
    assert [s.key for s in selections] == ["default/macvlan", "default/attachnet@net2", "team/other"]


def test_key_includes_the_interface():
    assert NetworkSelection(name="a", namespace="b").key == "b/a"
    assert NetworkSelection(name="a", namespace="b", interface="net1").key == "b/a@net1"


def test_empty_value_selects_nothing():
    assert parse("") == []
    assert parse("   ") == []
    assert parse("[]") == []


def test_json_form_reads_every_field():
    value = json.dumps(
        [
            {
                "name": "macvlan",
                "namespace": "default",
                "interface": "net1",
                "ips": ["172.17.0.100", "FD00::100/64"],
                "mac": "00:00:00:53:6B:BB",
                "default-route": ["172.17.0.1", "fd00::1"],
                "cni-args": {"foo": "bar"},
                "portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}],
                "bandwidth": {"ingressRate": 1000, "egressRate": 2000},
                "infiniband-guid": "c2:11:22:33:44:55:66:77",
                "ipam-claim-reference": "claim-1",
                "deviceID": "0000:03:00.1",
            }
        ]
    )
    (selection,) = parse(value)
    assert selection.interface == "net1"
    assert selection.ips == ("172.17.0.100", "fd00::100/64")
    assert selection.mac == "00:00:00:53:6B:BB"
    assert selection.default_route == ("172.17.0.1", "fd00::1")
    assert selection.cni_args == {"foo": "bar"}
    assert selection.raw["ipam-claim-reference"] == "claim-1"


def test_json_nulls_are_absent_keys():
    (selection,) = parse(
        '[{"name": "macvlan", "interface": null, "ips": null, "mac": null, "cni-args": null}]'
    )
    assert selection == NetworkSelection(name="macvlan", namespace="team")


def test_deprecated_interface_request_is_honoured():
    (selection,) = parse('[{"name": "macvlan", "interfaceRequest": "net5"}]')
    assert selection.interface == "net5"


def test_selections_are_hashable_despite_mappings():
    (selection,) = parse('[{"name": "macvlan", "cni-args": {"a": 1}}]')
    assert {selection: 1}[selection] == 1


def test_same_nad_twice_without_interfaces_is_allowed():
    assert [s.key for s in parse("default/macvlan,default/macvlan")] == ["default/macvlan"] * 2


def test_explicit_names_that_do_not_collide_with_automatic_ones():
    assert [s.key for s in parse("a@net5, b, c@net1x")] == ["team/a@net5", "team/b", "team/c@net1x"]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            "default/",
            'item 1 of k8s.v1.cni.cncf.io/networks, "default/", has an empty name; write namespace/name',
        ),
        ("a,default/", 'item 2 of k8s.v1.cni.cncf.io/networks, "default/", has an empty name'),
        ("a,", "item 2 of k8s.v1.cni.cncf.io/networks is empty; remove the extra comma"),
        ("a,,b", "item 2 of k8s.v1.cni.cncf.io/networks is empty"),
        (",a", "item 1 of k8s.v1.cni.cncf.io/networks is empty"),
        ("/macvlan", '"/macvlan", has an empty namespace'),
        ("a/b/c", "\"a/b/c\", has more than one '/'"),
        ("macvlan@", "has an empty interface after '@'"),
        ("a@b@c", "has more than one '@'"),
        ("ns@x/name", "has '@' before '/'"),
        ("Macvlan", 'has name "Macvlan", which is not a DNS-1123 label'),
        ("mac_vlan", 'has name "mac_vlan", which is not a DNS-1123 label'),
        ("macvlan.conf", 'has name "macvlan.conf", which is not a DNS-1123 label'),
        ("-macvlan", "which is not a DNS-1123 label"),
        ("a" * 64, "which is not a DNS-1123 label"),
        ("Default/macvlan", 'has namespace "Default", which is not a DNS-1123 label'),
        (
            "macvlan@averyveryverylong",
            'has interface "averyveryverylong", which is not a Linux interface name',
        ),
        ("macvlan@a:b", "which is not a Linux interface name"),
        ("macvlan@..", "which is not a Linux interface name"),
        ("macvlan@nét1", "which is not a Linux interface name"),
        (
            "a@net1, b@net1",
            'item 2 of k8s.v1.cni.cncf.io/networks, "team/b@net1", asks for interface "net1", '
            "which item 1 already has",
        ),
        (
            "a@net2, b",
            'item 2 of k8s.v1.cni.cncf.io/networks, "team/b", gets the automatic interface name "net2", '
            "which item 1 already has",
        ),
        ("a@eth0", 'asks for interface "eth0", which is the default network\'s; use e.g. net1'),
    ],
)
def test_comma_form_rejections_name_the_item(value, message):
    rejected(value, message)


def test_fifteen_character_interface_is_the_limit():
    assert parse("macvlan@abcdefghijklmno")[0].interface == "abcdefghijklmno"
    rejected("macvlan@abcdefghijklmnop", "not a Linux interface name")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            "[",
            'k8s.v1.cni.cncf.io/networks "[" is not valid JSON (Expecting value at line 1 column 2 (char 1))',
        ),
        ('default/macvlan"', "is not valid JSON"),
        (
            '{"name": "macvlan"}',
            'is a JSON object, {"name": "macvlan"}, but Multus reads a list; wrap it in [ ]',
        ),
        ('"macvlan"', 'is "macvlan", not a list'),
        ('["macvlan"]', 'item 1 of k8s.v1.cni.cncf.io/networks, "macvlan", is not an object'),
        ('[{"namespace": "default"}]', "has an empty name"),
        ('[{"name": ""}]', "has an empty name"),
        ('[{"name": 5}]', "has name 5, which is not a string"),
        ('[{"name": "macvlan"}, {"name": "Bad"}]', 'item 2 of k8s.v1.cni.cncf.io/networks, {"name": "Bad"}'),
        ('[{"name": "macvlan", "namespace": "a/b"}]', 'has namespace "a/b", which is not a DNS-1123 label'),
        ('[{"name": "macvlan", "default_route": ["172.17.0.1"]}]', 'has unknown key "default_route"'),
        ('[{"name": "macvlan", "Name": "x"}]', 'has unknown key "Name"'),
        (
            '[{"name": "macvlan", "ips": "172.17.0.100"}]',
            'has ips "172.17.0.100", which is not a list of strings',
        ),
        ('[{"name": "macvlan", "ips": [1]}]', "which is not a list of strings"),
        (
            '[{"name": "macvlan", "ips": ["172.17.0.300"]}]',
            'has ips entry "172.17.0.300", which is not an IP',
        ),
        ('[{"name": "macvlan", "ips": ["172.17.0.1/ 16"]}]', "which is not an IP address or CIDR"),
        ('[{"name": "macvlan", "ips": ["172.17.0.1", "172.17.0.1"]}]', "lists an address twice in ips"),
        (
            '[{"name": "macvlan", "mac": "00:00:00:53:6B"}]',
            'has mac "00:00:00:53:6B", which is not a MAC address',
        ),
        ('[{"name": "macvlan", "mac": 5}]', "has mac 5, which is not a string"),
        (
            '[{"name": "macvlan", "default-route": "172.17.0.1"}]',
            'has default-route "172.17.0.1", which is not a list',
        ),
        (
            '[{"name": "macvlan", "default-route": ["172.17.0.0/16"]}]',
            'has default-route entry "172.17.0.0/16"',
        ),
        (
            '[{"name": "macvlan", "default-route": ["10.0.0.1", "10.0.0.2"]}]',
            "has two IPv4 default-route gateways",
        ),
        (
            '[{"name": "macvlan", "interface": "eth/0"}]',
            'has interface "eth/0", which is not a Linux interface',
        ),
        ('[{"name": "m", "interface": "net1", "interfaceRequest": "net2"}]', "keep only interface"),
        ('[{"name": "macvlan", "cni-args": ["a"]}]', "has cni-args that are not an object"),
        ('[{"name": "macvlan", "portMappings": {"hostPort": 1}}]', "has portMappings that are not a list"),
        ('[{"name": "macvlan", "portMappings": [{"hostPort": 0, "containerPort": 80}]}]', "portMappings"),
        ('[{"name": "macvlan", "portMappings": [{"hostPort": "80", "containerPort": 80}]}]', "portMappings"),
        ('[{"name": "macvlan", "bandwidth": {"ingressRate": -1}}]', "has bandwidth that is not an object"),
        ('[{"name": "macvlan", "bandwidth": {"ingress": 1}}]', "has bandwidth"),
        ('[{"name": "macvlan", "infiniband-guid": "zz"}]', 'has infiniband-guid "zz", which is not a GUID'),
        (
            '[{"name": "a", "interface": "net1"}, {"name": "b", "interface": "net1"}]',
            'asks for interface "net1"',
        ),
    ],
)
def test_json_form_rejections_name_the_item(value, message):
    rejected(value, message)


@pytest.mark.parametrize("mac", ["00:00:00:53:6B:BB", "00-00-00-53-6b-bb", "0000.0053.6bbb"])
def test_mac_notations_go_accepts(mac):
    assert parse(json.dumps([{"name": "m", "mac": mac}]))[0].mac == mac


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "v1.multus-cni.io/default-network is empty"),
        ("a,b", "v1.multus-cni.io/default-network names 2 networks (kube-system/a, kube-system/b)"),
        ('[{"name": "a"}, {"name": "b"}]', "a pod has exactly one default network"),
        ("default/macvlan@net1", 'asks for interface "net1", but the default network is always eth0'),
        ("default/", 'item 1 of v1.multus-cni.io/default-network, "default/", has an empty name'),
    ],
)
def test_default_network_rejections(value, message):
    with pytest.raises(NetworkSelectionError, match=re.escape(message)):
        parse_default_network(value)


def test_default_network_may_say_eth0():
    assert parse_default_network("default/macvlan@eth0").interface == "eth0"


def test_default_network_json_form():
    selection = parse_default_network('[{"name": "macvlan", "ips": ["172.17.0.5"]}]')
    assert (selection.key, selection.ips) == ("kube-system/macvlan", ("172.17.0.5",))


def test_deeply_nested_json_is_a_selection_error():
    rejected("[" * 100_000, "is not valid JSON")


@given(st.text(max_size=200))
def test_parsers_raise_only_parse_errors_on_any_text(value):
    for parser in (parse, lambda v: [parse_default_network(v)]):
        try:
            selections = parser(value)
        except ParseError as error:
            assert str(error)
        else:
            assert all(s.name and s.namespace for s in selections)


comma_items = st.lists(
    st.text(alphabet="ab-/@ 1.Z", max_size=12),
    max_size=4,
).map(",".join)

json_elements = st.lists(
    st.dictionaries(
        st.sampled_from(
            ["name", "namespace", "interface", "ips", "mac", "default-route", "cni-args", "bogus"]
        ),
        st.one_of(
            st.none(),
            st.integers(),
            st.booleans(),
            st.sampled_from(["", "macvlan", "net1", "172.17.0.1", "00:00:00:53:6B:BB", "fd00::1/64"]),
            st.lists(st.sampled_from(["172.17.0.1", "fd00::1", "x", ""]), max_size=3),
            st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
        ),
    ),
    max_size=3,
).map(json.dumps)


@given(st.one_of(comma_items, json_elements))
def test_structured_inputs_raise_only_selection_errors(value):
    try:
        selections = parse(value)
    except NetworkSelectionError as error:
        assert "k8s.v1.cni.cncf.io/networks" in str(error)
    else:
        assert all(s.key.startswith(f"{s.namespace}/{s.name}") for s in selections)
