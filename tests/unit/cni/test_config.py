"""CNI_ARGS, CNI_* environment and network config parsing (cni.config)."""

from __future__ import annotations

import pytest

from cni import config, errors
from tests.unit.cni.helpers import cni_env, ipam_conf


def test_cni_args_as_multus_writes_them() -> None:
    args = config.parse_cni_args(
        "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=samplepod;"
        "K8S_POD_INFRA_CONTAINER_ID=abc123;K8S_POD_UID=0d1f-22"
    )
    assert args == {"IgnoreUnknown": "1", "K8S_POD_NAMESPACE": "default", "K8S_POD_NAME": "samplepod",
                    "K8S_POD_INFRA_CONTAINER_ID": "abc123", "K8S_POD_UID": "0d1f-22"}


def test_cni_args_tolerate_duplicates_empty_items_and_values_with_equals() -> None:
    args = config.parse_cni_args("K8S_POD_NAME=a;;K8S_POD_NAME=b;X=y=z;")
    assert args == {"K8S_POD_NAME": "b", "X": "y=z"}


def test_cni_args_item_without_equals_is_rejected_naming_it() -> None:
    with pytest.raises(errors.MissingEnvironmentError, match="'K8S_POD_NAME'") as caught:
        config.parse_cni_args("IgnoreUnknown=1;K8S_POD_NAME")
    assert caught.value.code == errors.INVALID_ENVIRONMENT


def test_environment_carries_the_pod() -> None:
    env = config.parse_environment(cni_env("ADD", pod="web-0", namespace="prod", uid="u9"))
    assert (env.command, env.ifname, env.container_id) == ("ADD", "net1", "c0ffee")
    assert env.pod == config.PodRef("prod", "web-0", "c0ffee", "u9")
    assert str(env.pod) == "prod/web-0"


@pytest.mark.parametrize("missing", ["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"])
def test_add_requires_its_variables(missing: str) -> None:
    environ = cni_env("ADD")
    del environ[missing]
    with pytest.raises(errors.MissingEnvironmentError, match=missing) as caught:
        config.parse_environment(environ)
    assert caught.value.code == 4


def test_del_does_not_need_a_netns_or_the_pod() -> None:
    environ = cni_env("DEL")
    del environ["CNI_NETNS"]
    environ["CNI_ARGS"] = "IgnoreUnknown=1"
    env = config.parse_environment(environ)
    assert env.pod is None and env.netns == ""


@pytest.mark.parametrize("cni_args", ["IgnoreUnknown=1;K8S_POD_NAME=x", "K8S_POD_NAMESPACE=default", ""])
def test_add_requires_pod_namespace_and_name(cni_args: str) -> None:
    environ = {**cni_env("ADD"), "CNI_ARGS": cni_args}
    with pytest.raises(errors.MissingEnvironmentError, match="K8S_POD_NAMESPACE and K8S_POD_NAME"):
        config.parse_environment(environ)


@pytest.mark.parametrize("command", ["", "add", "REMOVE"])
def test_unknown_command_is_rejected_listing_the_known_ones(command: str) -> None:
    with pytest.raises(errors.MissingEnvironmentError, match="ADD, DEL, CHECK, VERSION, STATUS, GC"):
        config.parse_environment({**cni_env("ADD"), "CNI_COMMAND": command})


def test_ipam_mode_reads_the_ipam_section() -> None:
    conf = config.parse_netconf(ipam_conf("/run/x.sock", routes=[{"dst": "10.0.0.1/8"}]), "ADD")
    assert not conf.as_main
    assert (conf.provider, conf.server_socket) == ("macvlan.default", "/run/x.sock")
    assert conf.cni_version == "0.3.0"
    assert conf.routes == ({"dst": "10.0.0.0/8"},)


def test_main_mode_reads_top_level_fields_and_defaults_the_socket() -> None:
    raw = {"cniVersion": "1.0.0", "type": "kube-ovn", "provider": "attachnet.default.ovn"}
    conf = config.parse_netconf(raw, "ADD")
    assert conf.as_main and conf.provider == "attachnet.default.ovn"
    assert conf.server_socket == "/run/openvswitch/kube-ovn-daemon.sock"


def test_config_for_another_ipam_is_invalid_config() -> None:
    raw = ipam_conf("/s")
    raw["ipam"]["type"] = "host-local"
    with pytest.raises(errors.InvalidConfigError, match="'kube-ovn'") as caught:
        config.parse_netconf(raw, "ADD")
    assert caught.value.code == 7


@pytest.mark.parametrize("provider", [None, "", 5])
def test_missing_provider_is_invalid_config_with_an_example(provider: object) -> None:
    raw = ipam_conf("/s")
    raw["ipam"]["provider"] = provider
    with pytest.raises(errors.InvalidConfigError, match=r"ipam\.provider .* e\.g\. macvlan\.default"):
        config.parse_netconf(raw, "ADD")


@pytest.mark.parametrize("version", ["0.2.0", "2.0.0", "banana"])
def test_unsupported_version_is_code_1(version: str) -> None:
    with pytest.raises(errors.IncompatibleVersionError, match=version) as caught:
        config.parse_netconf(ipam_conf("/s", version=version), "ADD")
    assert caught.value.code == 1


@pytest.mark.parametrize(("command", "version"), [("CHECK", "0.3.1"), ("STATUS", "1.0.0"), ("GC", "0.4.0")])
def test_verbs_need_the_version_that_introduced_them(command: str, version: str) -> None:
    with pytest.raises(errors.IncompatibleVersionError, match=f"has no {command}"):
        config.parse_netconf(ipam_conf("/s", version=version), command)


@pytest.mark.parametrize("routes", [
    "10.0.0.0/8", [{"gw": "1.2.3.4"}], [{"dst": "10.0.0.0/33"}], [{"dst": "10.0.0.0/8", "gw": "fd00::1"}],
])
def test_bad_routes_are_invalid_config(routes: object) -> None:
    raw = ipam_conf("/s")
    raw["ipam"]["routes"] = routes
    with pytest.raises(errors.InvalidConfigError, match="route"):
        config.parse_netconf(raw, "ADD")


@pytest.mark.parametrize("mtu", [0, 70000, "1500", True])
def test_bad_mtu_is_invalid_config(mtu: object) -> None:
    with pytest.raises(errors.InvalidConfigError, match="mtu"):
        config.parse_netconf({"type": "kube-ovn", "provider": "a.b.ovn", "mtu": mtu}, "ADD")


def test_stdin_that_is_not_a_json_object_is_a_decode_error() -> None:
    with pytest.raises(errors.DecodeError) as caught:
        config.load_json(b"[1, 2]")
    assert caught.value.code == 6
    with pytest.raises(errors.DecodeError, match="not JSON"):
        config.load_json(b"{nope")


def test_main_mode_takes_routes_from_the_top_level_or_from_ipam() -> None:
    top = {"type": "kube-ovn", "provider": "a.b.ovn", "routes": [{"dst": "10.1.0.0/16"}], "ipam": "junk"}
    nested = {"type": "kube-ovn", "provider": "a.b.ovn", "ipam": {"routes": [{"dst": "10.2.0.0/16"}]}}
    assert config.parse_netconf(top, "ADD").routes == ({"dst": "10.1.0.0/16"},)
    assert config.parse_netconf(nested, "ADD").routes == ({"dst": "10.2.0.0/16"},)
