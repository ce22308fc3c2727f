"""`type: kube-ovn` NADs (the guide's "kube-ovn type attached NIC"): our plugin builds the veth."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path
from typing import Any

from cni import netlink
from tests.cni import netns as nets
from tests.cni.conftest import Rig
from tests.cni.test_reference_plugins import (
    Call,
    annotated,
    expected_addresses,
    nad,
    nad_conf,
    pod_yaml,
    subnet,
)

ATTACHNET = "attachnet.default.ovn"


def host_end(pod: dict[str, Any], ifname: str = "net1") -> str:
    return netlink.host_veth_name(pod["metadata"]["namespace"], pod["metadata"]["name"], ifname)


def test_veth_gets_the_annotated_mac_and_address_and_del_removes_it(rig: Rig) -> None:
    pod = rig.create_pod("pod-samplepod-attachnet.yaml")
    host = rig.host_link(host_end(pod))
    netns = rig.sandbox()
    call = Call(rig, "kube-ovn", nad_conf("nad-attachnet.yaml", rig.socket), netns, pod)

    code, result = call("ADD")
    assert code == 0, result
    mac = annotated(pod, ATTACHNET, "mac_address").lower()
    link = netns.link("net1")
    assert link["address"] == mac and link["link_type"] == "ether" and "UP" in link["flags"]
    assert netns.addresses("net1") == expected_addresses(pod, ATTACHNET)
    assert nets.host_has_link(host) and len(host) <= 15
    assert result["interfaces"] == [  # type: ignore[index]
        {"name": host, "mac": result["interfaces"][0]["mac"]},  # type: ignore[index]
        {"name": "net1", "mac": mac, "sandbox": netns.path},
    ]
    assert result["ips"] == [{"version": "4", "interface": 1,  # type: ignore[index]
                              "address": expected_addresses(pod, ATTACHNET)[0]}]

    assert call("DEL") == (0, None)
    assert not nets.host_has_link(host) and not netns.has_link("net1")
    assert call("DEL") == (0, None)


def test_guide_custom_routes_are_installed(rig: Rig) -> None:
    pod = rig.create_pod("pod-custom-routes-attach.yaml")
    rig.host_link(host_end(pod))
    netns = rig.sandbox()
    call = Call(rig, "kube-ovn", nad_conf("nad-attachnet.yaml", rig.socket), netns, pod)

    code, result = call("ADD")
    assert code == 0, result
    assert netns.routes("net1") == [("default", "172.17.0.254"), ("192.168.0.0/24", "172.17.0.254")]
    assert result["routes"] == [{"dst": "192.168.0.0/24", "gw": "172.17.0.254"},  # type: ignore[index]
                                {"dst": "0.0.0.0/0", "gw": "172.17.0.254"}]


def test_check_passes_when_configured_and_fails_after_the_address_is_removed(rig: Rig) -> None:
    pod = rig.create_pod("pod-samplepod-attachnet.yaml")
    rig.host_link(host_end(pod))
    netns = rig.sandbox()
    conf = nad_conf("nad-attachnet.yaml", rig.socket, cniVersion="1.0.0")
    call = Call(rig, "kube-ovn", conf, netns, pod)
    code, result = call("ADD")
    assert code == 0, result

    assert call("CHECK", {**conf, "prevResult": result}) == (0, None)
    address = expected_addresses(pod, ATTACHNET)[0]
    netns.ip("addr", "del", address, "dev", "net1")
    code, error = call("CHECK", {**conf, "prevResult": result})
    assert code == 1 and error is not None
    assert error["msg"] == (f"pod default/samplepod provider {ATTACHNET}: net1 in {netns.path}: "
                            f"address {address} is missing")


def test_failed_add_rolls_back_the_veth(rig: Rig) -> None:
    pod = rig.create_pod("pod-samplepod-attachnet.yaml")
    host = rig.host_link(host_end(pod))
    netns = rig.sandbox()
    # A gateway off every connected network: the kernel refuses the route after the veth exists.
    conf = nad_conf("nad-attachnet.yaml", rig.socket, routes=[{"dst": "10.50.0.0/16", "gw": "10.99.0.1"}])
    call = Call(rig, "kube-ovn", conf, netns, pod)

    code, error = call("ADD")
    assert code == 1 and error is not None and error["code"] == 999
    assert error["msg"].startswith(f"pod default/samplepod provider {ATTACHNET}: ")
    assert not nets.host_has_link(host) and not netns.has_link("net1")


def test_host_end_is_plugged_into_ovs_when_ovs_vsctl_exists(rig: Rig, tmp_path: Path) -> None:
    calls = tmp_path / "ovs-vsctl.calls"
    fake = tmp_path / "ovs-vsctl"
    fake.write_text(f'#!/bin/sh\necho "$@" >> {calls}\n')
    fake.chmod(0o755)
    pod = rig.create_pod("pod-samplepod-attachnet.yaml")
    host = rig.host_link(host_end(pod))
    netns = rig.sandbox()
    call = Call(rig, "kube-ovn", nad_conf("nad-attachnet.yaml", rig.socket), netns, pod,
                path_prefix=str(tmp_path))

    code, result = call("ADD")
    assert code == 0, result
    assert call("DEL") == (0, None)
    assert calls.read_text().splitlines() == [
        f"--timeout=10 --may-exist add-port br-int {host} -- set interface {host} "
        f"external_ids:iface-id=samplepod.default.{ATTACHNET}",
        f"--timeout=10 --if-exists del-port br-int {host}",
    ]


def test_del_succeeds_after_the_netns_and_the_pod_are_gone(rig: Rig) -> None:
    pod = rig.create_pod("pod-samplepod-attachnet.yaml")
    host = rig.host_link(host_end(pod))
    netns = rig.sandbox()
    call = Call(rig, "kube-ovn", nad_conf("nad-attachnet.yaml", rig.socket), netns, pod)
    code, result = call("ADD")
    assert code == 0, result

    rig.kubectl("delete", "-n", "default", "pod", "samplepod", "--wait=true")
    netns.delete()
    assert call("DEL") == (0, None)
    assert not nets.host_has_link(host)
    assert call("DEL") == (0, None)


def test_dual_stack_veth_gets_both_families_and_both_default_routes(rig: Rig) -> None:
    provider = "dualovn.default.ovn"
    config = {"cniVersion": "1.0.0", "type": "kube-ovn", "provider": provider,
              "server_socket": "/run/openvswitch/kube-ovn-daemon.sock"}
    rig.kubectl("apply", "-f", "-", input=json.dumps(nad("dualovn", config)))
    rig.kubectl("apply", "-f", "-", input=json.dumps(subnet("dualovn", provider, "10.69.0.0/24,fd00:69::/120",
                                                            protocol="Dual")))
    networks = '[{"name": "dualovn", "default-route": ["10.69.0.1", "fd00:69::1"]}]'
    pod = rig.create_pod(pod_yaml("dual-ovn", networks))
    rig.host_link(host_end(pod))
    netns = rig.sandbox()
    call = Call(rig, "kube-ovn", nad_conf(nad("dualovn", config), rig.socket), netns, pod)

    code, result = call("ADD")
    assert code == 0, result
    want = expected_addresses(pod, provider)
    assert sorted(ipaddress.ip_interface(a).version for a in want) == [4, 6]
    assert netns.addresses("net1") == want
    assert netns.routes("net1", "-4") == [("default", "10.69.0.1")]
    assert netns.routes("net1", "-6") == [("default", "fd00:69::1")]
    assert call("CHECK", {**call.conf, "prevResult": result}) == (0, None)
