"""Debian's reference plugins (macvlan, host-device, bridge) with `ipam.type: kube-ovn`, called as
Multus calls them, for pods created on the real control plane; checked inside the netns."""

from __future__ import annotations

import ipaddress
import json
from typing import Any

import yaml

from tests.cni import netns as nets
from tests.cni.conftest import EXAMPLES, Rig

MACVLAN = "macvlan.default"
GUIDE_SUBNET = ("172.17.0.0/16", "172.17.0.1")

def nad_conf(nad: str | dict[str, Any], socket: str, **changes: Any) -> dict[str, Any]:
    """The NAD's spec.config as Multus hands it to the plugin (name from the NAD), on our socket."""
    doc = yaml.safe_load((EXAMPLES / nad).read_text()) if isinstance(nad, str) else nad
    conf = json.loads(doc["spec"]["config"])
    conf.setdefault("name", doc["metadata"]["name"])
    section = conf["ipam"] if conf.get("type") != "kube-ovn" else conf
    section["server_socket"] = socket
    conf.update(changes)
    return conf


def nad(name: str, config: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
            "metadata": {"name": name, "namespace": "default"}, "spec": {"config": json.dumps(config)}}


def annotated(pod: dict[str, Any], provider: str, field: str) -> str:
    return pod["metadata"]["annotations"][f"{provider}.kubernetes.io/{field}"]


def expected_addresses(pod: dict[str, Any], provider: str) -> list[str]:
    """Each annotated address with the prefix of its family's annotated CIDR."""
    prefixes = {ipaddress.ip_network(c).version: ipaddress.ip_network(c).prefixlen
                for c in annotated(pod, provider, "cidr").split(",")}
    return [f"{ip}/{prefixes[ipaddress.ip_address(ip).version]}"
            for ip in annotated(pod, provider, "ip_address").split(",")]


class Call:
    """Binds the plugin-call arguments shared by one test."""

    def __init__(self, rig: Rig, plugin: str, conf: dict[str, Any], sandbox: nets.Netns,
                 pod: dict[str, Any], *, ifname: str = "net1", path_prefix: str = "") -> None:
        self.plugin, self.conf, self.sandbox, self.pod = plugin, conf, sandbox, pod
        self.plugin_dir, self.ifname, self.path_prefix = rig.plugin_dir, ifname, path_prefix

    def __call__(self, command: str, conf: dict[str, Any] | None = None) -> tuple[int, dict[str, Any] | None]:
        meta = self.pod["metadata"]
        return nets.run_plugin(self.plugin, command, conf or self.conf, netns=self.sandbox,
                               pod=meta["name"], namespace=meta["namespace"], uid=meta["uid"],
                               plugin_dir=self.plugin_dir, ifname=self.ifname, path_prefix=self.path_prefix)


def test_macvlan_gets_exactly_the_annotated_address_and_del_is_idempotent(rig: Rig) -> None:
    pod = rig.create_pod("pod-samplepod.yaml")
    master, _ = rig.veth_pair()
    netns = rig.sandbox()
    call = Call(rig, "macvlan", nad_conf("nad-macvlan.yaml", rig.socket, master=master), netns, pod)

    code, result = call("ADD")
    assert code == 0, result
    want = expected_addresses(pod, MACVLAN)
    assert netns.addresses("net1") == want
    assert [ip["address"] for ip in result["ips"]] == want  # type: ignore[index]
    assert result["ips"][0]["version"] == "4" and "gateway" not in result["ips"][0]  # type: ignore[index]
    assert netns.routes("net1") == []

    assert call("DEL") == (0, None)
    assert not netns.has_link("net1")
    assert call("DEL") == (0, None)


def test_guide_default_route_pod_gets_its_default_route_via_the_gateway(rig: Rig) -> None:
    pod = rig.create_pod("pod-samplepod-route.yaml")
    master, _ = rig.veth_pair()
    netns = rig.sandbox()
    call = Call(rig, "macvlan", nad_conf("nad-macvlan.yaml", rig.socket, master=master), netns, pod)

    code, result = call("ADD")
    assert code == 0, result
    assert netns.addresses("net1") == expected_addresses(pod, MACVLAN)
    assert netns.routes("net1") == [("default", "172.17.0.1")]
    assert result["ips"][0]["gateway"] == "172.17.0.1"  # type: ignore[index]


def test_guide_main_nic_pod_gets_the_default_route_on_eth0(rig: Rig) -> None:
    pod = rig.create_pod("pod-samplepod-macvlan.yaml")
    master, _ = rig.veth_pair()
    netns = rig.sandbox()
    call = Call(rig, "macvlan", nad_conf("nad-macvlan.yaml", rig.socket, master=master), netns, pod,
                ifname="eth0")

    code, result = call("ADD")
    assert code == 0, result
    assert netns.addresses("eth0") == expected_addresses(pod, MACVLAN)
    assert netns.routes("eth0") == [("default", "172.17.0.1")]


def test_host_device_gets_the_annotated_address(rig: Rig) -> None:
    config = {"cniVersion": "0.3.1", "type": "host-device", "device": "placeholder",
              "ipam": {"type": "kube-ovn", "server_socket": "/run/openvswitch/kube-ovn-daemon.sock",
                       "provider": "hostdev.default"}}
    rig.kubectl("apply", "-f", "-", input=json.dumps(nad("hostdev", config)))
    rig.kubectl("apply", "-f", "-", input=json.dumps(subnet("hostdev", "hostdev.default", "10.66.0.0/24")))
    pod = rig.create_pod(pod_yaml("hostdev-pod", "default/hostdev"))
    _, device = rig.veth_pair()
    netns = rig.sandbox()
    call = Call(rig, "host-device", nad_conf(nad("hostdev", config), rig.socket, device=device), netns, pod)

    code, result = call("ADD")
    assert code == 0, result
    assert netns.addresses("net1") == expected_addresses(pod, "hostdev.default")
    assert not nets.host_has_link(device)

    assert call("DEL") == (0, None)
    assert nets.host_has_link(device)  # host-device hands the device back
    assert not netns.has_link("net1")


def test_bridge_gets_the_annotated_address(rig: Rig) -> None:
    bridge = rig.host_link(nets.unique("mbr"))
    config = {"cniVersion": "1.0.0", "type": "bridge", "bridge": bridge,
              "ipam": {"type": "kube-ovn", "server_socket": "/run/openvswitch/kube-ovn-daemon.sock",
                       "provider": "bridged.default"}}
    rig.kubectl("apply", "-f", "-", input=json.dumps(nad("bridged", config)))
    rig.kubectl("apply", "-f", "-", input=json.dumps(subnet("bridged", "bridged.default", "10.67.0.0/24")))
    pod = rig.create_pod(pod_yaml("bridged-pod", "default/bridged"))
    netns = rig.sandbox()
    call = Call(rig, "bridge", nad_conf(nad("bridged", config), rig.socket), netns, pod)

    code, result = call("ADD")
    assert code == 0, result
    assert netns.addresses("net1") == expected_addresses(pod, "bridged.default")
    assert "ips" in result and "version" not in result["ips"][0]  # type: ignore[operator,index]
    assert nets.host_has_link(bridge)
    assert call("DEL") == (0, None)
    assert not netns.has_link("net1")


def test_dual_stack_subnet_yields_both_families(rig: Rig) -> None:
    config = {"cniVersion": "0.4.0", "type": "macvlan", "master": "eth0", "mode": "bridge",
              "ipam": {"type": "kube-ovn", "server_socket": "/run/openvswitch/kube-ovn-daemon.sock",
                       "provider": "dualnet.default"}}
    rig.kubectl("apply", "-f", "-", input=json.dumps(nad("dualnet", config)))
    rig.kubectl("apply", "-f", "-", input=json.dumps(subnet("dualnet", "dualnet.default",
                                                        "10.68.0.0/24,fd00:68::/120", protocol="Dual")))
    networks = '[{"name": "dualnet", "default-route": ["10.68.0.1", "fd00:68::1"]}]'
    pod = rig.create_pod(pod_yaml("dual-pod", networks))
    master, _ = rig.veth_pair()
    netns = rig.sandbox()
    call = Call(rig, "macvlan", nad_conf(nad("dualnet", config), rig.socket, master=master), netns, pod)

    code, result = call("ADD")
    assert code == 0, result
    want = expected_addresses(pod, "dualnet.default")
    assert sorted(ipaddress.ip_interface(a).version for a in want) == [4, 6]
    assert netns.addresses("net1") == want
    assert [ip["version"] for ip in result["ips"]] == ["4", "6"]  # type: ignore[index]
    assert netns.routes("net1", "-4") == [("default", "10.68.0.1")]
    assert netns.routes("net1", "-6") == [("default", "fd00:68::1")]


def test_check_passes_when_configured_and_fails_after_the_address_is_removed(rig: Rig) -> None:
    pod = rig.create_pod(pod_yaml("checked", "default/macvlan"))
    master, _ = rig.veth_pair()
    netns = rig.sandbox()
    conf = nad_conf("nad-macvlan.yaml", rig.socket, master=master, cniVersion="1.0.0")
    call = Call(rig, "macvlan", conf, netns, pod)
    code, result = call("ADD")
    assert code == 0, result

    assert call("CHECK", {**conf, "prevResult": result}) == (0, None)
    netns.ip("addr", "del", expected_addresses(pod, MACVLAN)[0], "dev", "net1")
    code, error = call("CHECK", {**conf, "prevResult": result})
    assert code != 0 and error is not None and error["msg"]


def test_pod_without_annotations_fails_with_code_11_and_configures_nothing(rig: Rig) -> None:
    pod = rig.create_pod(pod_yaml("unannotated", ""))
    master, _ = rig.veth_pair()
    netns = rig.sandbox()
    call = Call(rig, "macvlan", nad_conf("nad-macvlan.yaml", rig.socket, master=master), netns, pod)

    code, error = call("ADD")
    assert code != 0 and error is not None
    assert error["code"] == 11
    assert error["msg"] == ("pod default/unannotated has no address for provider macvlan.default; "
                            "is the admission webhook installed?")
    # macvlan 1.1.1 leaks its half-made link when IPAM fails (a shadowed err in its cleanup);
    # the runtime's DEL after a failed ADD removes it.
    assert not netns.has_link("net1") or netns.addresses("net1") == []
    assert call("DEL") == (0, None)
    assert not netns.has_link("net1")


def subnet(name: str, provider: str, cidr: str, *, protocol: str = "IPv4") -> dict[str, Any]:
    gateways = ",".join(str(next(ipaddress.ip_network(block).hosts())) for block in cidr.split(","))
    return {"apiVersion": "kubeovn.io/v1", "kind": "Subnet", "metadata": {"name": name},
            "spec": {"protocol": protocol, "provider": provider, "cidrBlock": cidr, "gateway": gateways}}


def pod_yaml(name: str, networks: str) -> str:
    notes = {"k8s.v1.cni.cncf.io/networks": networks} if networks else {}
    return json.dumps({"apiVersion": "v1", "kind": "Pod",
                       "metadata": {"name": name, "namespace": "default", "annotations": notes},
                       "spec": {"containers": [{"name": "c", "image": "docker.io/library/alpine:edge"}]}})


def test_guide_static_ip_pod_gets_its_fixed_address(rig: Rig) -> None:
    pod = rig.create_pod("pod-static-ip.yaml")
    assert annotated(pod, MACVLAN, "ip_address") == "172.17.0.100"
    master, _ = rig.veth_pair()
    netns = rig.sandbox()
    call = Call(rig, "macvlan", nad_conf("nad-macvlan.yaml", rig.socket, master=master), netns, pod)

    code, result = call("ADD")
    assert code == 0, result
    assert netns.addresses("net1") == ["172.17.0.100/16"]
