"""The plugin end to end against the real daemon server on a temp socket (cni.plugin)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from typing import Any

import pytest

from cni import plugin
from tests.unit.cni.helpers import (
    StaticPods,
    annotated_pod,
    cni_env,
    dumps,
    fake_daemon,
    ipam_conf,
    short_dir,
)


def call(command: str, conf: dict[str, Any], **env: str) -> tuple[int, dict[str, Any] | None]:
    out = io.StringIO()
    code = plugin.run(cni_env(command, **env), dumps(conf), out)
    return code, json.loads(out.getvalue()) if out.getvalue() else None


@pytest.fixture
def pods() -> StaticPods:
    return StaticPods([annotated_pod("p1")])


@pytest.mark.parametrize("version", ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"])
def test_add_returns_the_annotated_address_in_the_requested_version(pods: StaticPods,
                                                                     version: str) -> None:
    with fake_daemon(pods) as socket:
        code, out = call("ADD", ipam_conf(socket, version=version))
    assert code == 0
    ip = {"address": "172.17.0.12/16"} if version >= "1" else {"version": "4", "address": "172.17.0.12/16"}
    assert out == {"cniVersion": version, "ips": [ip], "routes": [], "dns": {}}


def test_add_sends_the_nad_routes(pods: StaticPods) -> None:
    with fake_daemon(pods) as socket:
        _, out = call("ADD", ipam_conf(socket, routes=[{"dst": "10.10.0.0/16"}]))
    assert out is not None and out["routes"] == [{"dst": "10.10.0.0/16", "gw": "172.17.0.1"}]


def test_add_for_an_unannotated_pod_is_code_11_naming_pod_and_provider() -> None:
    pods = StaticPods([annotated_pod("p1", allocated=False)])
    with fake_daemon(pods, wait_seconds=0.2) as socket:
        code, out = call("ADD", ipam_conf(socket))
    assert code == 1
    assert out == {"cniVersion": "0.3.0", "code": 11, "details": "waited 0.2 s",
                   "msg": "pod default/p1 has no address for provider macvlan.default; "
                          "is the admission webhook installed?"}


def test_add_for_a_missing_pod_is_code_11() -> None:
    with fake_daemon(StaticPods()) as socket:
        code, out = call("ADD", ipam_conf(socket), pod="ghost")
    assert (code, out["code"], out["msg"]) == (1, 11, "pod default/ghost does not exist")  # type: ignore[index]


def test_add_with_the_daemon_down_is_code_11_and_says_what_to_start() -> None:
    with short_dir() as directory:
        code, out = call("ADD", ipam_conf(str(directory / "absent.sock")))
    assert code == 1 and out is not None and out["code"] == 11
    assert out["msg"].startswith("pod default/p1 provider macvlan.default: the node daemon at ")
    assert "multinic-ipam node" in out["msg"]


def test_ipam_del_succeeds_without_daemon_or_pod_and_prints_nothing() -> None:
    with short_dir() as directory:
        conf = ipam_conf(str(directory / "absent.sock"))
        assert call("DEL", conf) == (0, None)
        assert call("DEL", conf) == (0, None)


def test_check_compares_prev_result_with_the_annotations(pods: StaticPods) -> None:
    with fake_daemon(pods) as socket:
        good = {**ipam_conf(socket, version="0.4.0"), "prevResult": {"ips": [{"address": "172.17.0.12/16"}]}}
        bad = {**good, "prevResult": {"ips": [{"address": "172.17.0.99/16"}]}}
        assert call("CHECK", good) == (0, None)
        code, out = call("CHECK", bad)
    assert code == 1 and out is not None and out["code"] == 999
    assert "172.17.0.99/16" in out["msg"] and "pod default/p1 provider macvlan.default" in out["msg"]


def test_check_on_0_3_x_is_incompatible(pods: StaticPods) -> None:
    with fake_daemon(pods) as socket:
        code, out = call("CHECK", ipam_conf(socket, version="0.3.1"))
    assert code == 1 and out is not None and out["code"] == 1


def test_status_reports_daemon_health(pods: StaticPods) -> None:
    with fake_daemon(pods) as socket:
        assert call("STATUS", ipam_conf(socket, version="1.1.0")) == (0, None)
    code, out = call("STATUS", ipam_conf(socket, version="1.1.0"))
    assert code == 1 and out is not None and out["code"] == 50


def test_gc_succeeds_and_releases_nothing(pods: StaticPods) -> None:
    conf = {**ipam_conf("/nonexistent.sock", version="1.1.0"),
            "cni.dev/valid-attachments": [{"containerID": "c0ffee", "ifname": "net1"}]}
    assert call("GC", conf) == (0, None)


def test_version_lists_every_supported_version() -> None:
    out = io.StringIO()
    assert plugin.run({"CNI_COMMAND": "VERSION"}, b'{"cniVersion": "0.4.0"}', out) == 0
    assert json.loads(out.getvalue()) == {"cniVersion": "0.4.0",
                                          "supportedVersions": ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]}


def test_missing_pod_args_is_code_4_in_the_config_version() -> None:
    out = io.StringIO()
    environ = {**cni_env("ADD"), "CNI_ARGS": "IgnoreUnknown=1"}
    assert plugin.run(environ, dumps(ipam_conf("/s", version="1.0.0")), out) == 1
    body = json.loads(out.getvalue())
    assert (body["cniVersion"], body["code"]) == ("1.0.0", 4)


def test_executable_prints_error_json_and_exits_non_zero() -> None:
    environ = {**os.environ, **cni_env("ADD")}
    done = subprocess.run([sys.executable, "-m", "cni.plugin"], input=b"{not json", env=environ,
                          capture_output=True, check=False)
    assert done.returncode == 1
    assert json.loads(done.stdout)["code"] == 6


def test_executable_flushes_its_answer_before_ending_the_process_at_once() -> None:
    environ = {**os.environ, "CNI_COMMAND": "VERSION"}
    done = subprocess.run([sys.executable, "-m", "cni.plugin"], input=b'{"cniVersion": "1.0.0"}',
                          env=environ, capture_output=True, check=False)
    assert (done.returncode, done.stderr) == (0, b"")
    assert json.loads(done.stdout)["cniVersion"] == "1.0.0"


def test_executable_whose_reader_went_away_does_not_report_success() -> None:
    reader, writer = os.pipe()
    os.close(reader)
    try:
        done = subprocess.run([sys.executable, "-m", "cni.plugin"], input=b'{"cniVersion": "1.0.0"}',
                              env={**os.environ, "CNI_COMMAND": "VERSION"}, stdout=writer,
                              stderr=subprocess.PIPE, check=False)
    finally:
        os.close(writer)
    assert done.returncode == 1


def test_config_errors_name_the_pod() -> None:
    conf = ipam_conf("/s")
    del conf["ipam"]["provider"]
    code, out = call("ADD", conf, pod="web-1")
    assert code == 1 and out is not None and out["code"] == 7
    assert out["msg"].startswith("pod default/web-1: ipam.provider None must be")


def test_environ_without_os_decodes_like_os_environ() -> None:
    assert plugin.environ() == dict(os.environ)
