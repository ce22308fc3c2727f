"""allocator.network_status: Multus's network-status annotation, as Multus writes it, and malformed."""

from __future__ import annotations

import json

import pytest

from allocator.network_status import NetworkStatus, NetworkStatusError, parse_network_status

# What Multus 4 writes for a pod with the cluster network and two macvlan attachments (one dual-stack).
MULTUS = json.dumps([
    {"name": "cbr0", "interface": "eth0", "ips": ["10.244.0.7"], "mac": "6E:2A:34:1D:05:88", "default": True,
     "dns": {}, "gateway": ["10.244.0.1"]},
    {"name": "default/macvlan", "interface": "net1", "ips": ["172.17.0.12"], "mac": "b2:5c:a4:8e:7f:9a",
     "dns": {}, "mtu": 1500},
    {"name": "team/dual", "interface": "net2", "ips": ["10.9.0.5", "fd00:0:0::5"], "mac": "0a:58:0a:09:00:05",
     "dns": {}, "device-info": {"type": "pci", "version": "1.1.0", "pci": {"pci-address": "0000:03:00.1"}}},
])


def test_reads_every_entry_as_multus_writes_it() -> None:
    cluster, macvlan, dual = parse_network_status(MULTUS)
    assert cluster == NetworkStatus("cbr0", "eth0", ("10.244.0.7",), "6e:2a:34:1d:05:88", True)
    assert cluster.nad is None
    assert macvlan.nad == ("default", "macvlan") and macvlan.interface == "net1"
    assert macvlan.ips == ("172.17.0.12",) and not macvlan.default
    assert dual.ips == ("10.9.0.5", "fd00::5")  # canonical text: held and compared as the store writes it


def test_entries_without_addresses_or_interface_are_kept() -> None:
    [entry] = parse_network_status('[{"name": "default/bridge-no-ipam"}]')
    assert entry == NetworkStatus("default/bridge-no-ipam")
    assert parse_network_status("[]") == ()


@pytest.mark.parametrize(("value", "says"), [
    ("{not json", "is not valid JSON (Expecting property name enclosed in double quotes at line 1"),
    ('{"name": "default/macvlan"}', "not a list; Multus writes a list of objects there"),
    ('["default/macvlan"]',
     'entry 1 of k8s.v1.cni.cncf.io/network-status, "default/macvlan", is not an object'),
    ('[{"interface": "net1"}]', 'has no "name"'),
    ('[{"name": "  "}]', 'has no "name"'),
    ('[{"name": "a/b", "interface": 1}]', '"interface" that is not a string'),
    ('[{"name": "a/b", "default": "yes"}]', '"default" that is not true or false'),
    ('[{"name": "a/b", "ips": "10.0.0.1"}]', '"ips" that is not a list of addresses'),
    ('[{"name": "a/b", "ips": [10]}]', "lists 10 in ips, which is not an address string"),
    ('[{"name": "a/b", "ips": ["10.0.0.300"]}]', 'lists "10.0.0.300" in ips, which is not an IP address'),
    ('[{"name": "a/b", "ips": ["10.0.0.5/24"]}]', "with a prefix length; Multus writes bare addresses"),
    ('[{"name": "a/b", "mac": "zz:00:00:00:00:01"}]', 'has an unusable "mac"'),
    ('[{"name": "a/b", "mac": "01:00:5e:00:00:01"}]', "is a multicast MAC address"),
    ('[{"name": "ok/one"}, 7]', "entry 2 of"),
    ("[" * 100000, "is not valid JSON (nested too deeply)"),
])
def test_malformed_annotations_are_one_sentence(value: str, says: str) -> None:
    with pytest.raises(NetworkStatusError) as caught:
        parse_network_status(value)
    message = str(caught.value)
    assert says in message
    assert "\n" not in message and "Traceback" not in message


def test_a_non_string_value_is_refused() -> None:
    with pytest.raises(NetworkStatusError, match="is list, not a string"):
        parse_network_status([])


@pytest.mark.parametrize(("name", "nad"), [
    ("default/macvlan", ("default", "macvlan")),
    ("macvlan", None),
    ("/macvlan", None),
    ("a/b/c", None),
])
def test_nad_of_a_name(name: str, nad: tuple[str, str] | None) -> None:
    assert NetworkStatus(name).nad == nad
