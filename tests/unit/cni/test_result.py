"""CNI result shapes per cniVersion (cni.result)."""

from __future__ import annotations

import pytest

from cni import errors, result

DUAL = result.Allocation(
    ips=(result.IPConfig("172.17.0.12/16", 4, "172.17.0.1"), result.IPConfig("fd00:10::c/120", 6)),
    mac="00:00:00:53:6b:bb",
    routes=({"dst": "0.0.0.0/0", "gw": "172.17.0.1"},),
)


@pytest.mark.parametrize("version", ["0.3.0", "0.3.1", "0.4.0"])
def test_pre_1_0_results_carry_the_ip_version(version: str) -> None:
    out = result.build(version, DUAL)
    assert out["cniVersion"] == version
    assert out["ips"] == [
        {"version": "4", "address": "172.17.0.12/16", "gateway": "172.17.0.1"},
        {"version": "6", "address": "fd00:10::c/120"},
    ]
    assert "interfaces" not in out
    assert out["routes"] == [{"dst": "0.0.0.0/0", "gw": "172.17.0.1"}]


@pytest.mark.parametrize("version", ["1.0.0", "1.1.0"])
def test_1_x_results_have_no_ip_version(version: str) -> None:
    out = result.build(version, DUAL)
    assert out["ips"] == [{"address": "172.17.0.12/16", "gateway": "172.17.0.1"},
                          {"address": "fd00:10::c/120"}]
    assert "interfaces" not in out


def test_main_plugin_result_lists_interfaces_and_points_ips_at_the_container_side() -> None:
    interfaces = [result.Interface("samplep_1a2b3c4d", "aa:bb:cc:dd:ee:ff"),
                  result.Interface("net1", "00:00:00:53:6b:bb", sandbox="/var/run/netns/x")]
    out = result.build("1.0.0", DUAL, interfaces=interfaces, ip_interface=1)
    assert out["interfaces"] == [{"name": "samplep_1a2b3c4d", "mac": "aa:bb:cc:dd:ee:ff"},
                                 {"name": "net1", "mac": "00:00:00:53:6b:bb", "sandbox": "/var/run/netns/x"}]
    assert [ip["interface"] for ip in out["ips"]] == [1, 1]


def test_allocation_from_daemon_json() -> None:
    body = {"ips": [{"address": "10.0.0.5/24", "family": 4, "gateway": None}], "mac": "0a:00:00:00:00:01",
            "routes": [{"dst": "10.1.0.0/16", "gw": "10.0.0.254"}], "default_route": False, "subnet": "s"}
    parsed = result.Allocation.from_json(body)
    assert parsed.ips == (result.IPConfig("10.0.0.5/24", 4, None),)
    assert parsed.routes == ({"dst": "10.1.0.0/16", "gw": "10.0.0.254"},)
    assert (parsed.mac, parsed.subnet, parsed.default_route) == ("0a:00:00:00:00:01", "s", False)


def test_malformed_daemon_json_is_an_error_not_a_crash() -> None:
    with pytest.raises(errors.CniError, match="malformed allocation"):
        result.Allocation.from_json({"ips": [{"family": 4}]})
