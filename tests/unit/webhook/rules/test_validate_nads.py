"""NetworkAttachmentDefinition rules: each allowed case beside its refused twin."""

from __future__ import annotations

from .world import World, kube_ovn_config, macvlan_config, nad


def test_macvlan_with_its_provider_is_allowed_and_warns_until_a_subnet_exists() -> None:
    world = World()
    verdict = world.review(nad("macvlan", macvlan_config()))
    assert verdict.allowed
    assert any("no Subnet has provider macvlan.default" in w for w in verdict.warnings)
    world.subnet("macvlan", provider="macvlan.default", cidrBlock="172.17.0.0/16")
    assert world.review(nad("macvlan", macvlan_config())).warnings == ()


def test_empty_spec_is_refused_explaining_why_and_showing_the_config() -> None:
    verdict = World().review(nad("conf2", None))
    assert not verdict.allowed
    assert verdict.code == 422
    assert "NetworkAttachmentDefinition default/conf2 has no spec.config" in verdict.message
    assert "provider cannot be read centrally" in verdict.message
    assert '"provider": "conf2.default"' in verdict.message


def test_invalid_json_is_refused_with_its_position() -> None:
    verdict = World().review(nad("macvlan", '{"cniVersion": "0.3.0", "type": "macvlan",}'))
    assert not verdict.allowed
    assert "is not valid JSON" in verdict.message
    assert "line 1 column 43" in verdict.message


def test_invalid_json_is_refused_even_for_a_nad_not_using_kube_ovn() -> None:
    assert not World().review(nad("bridge", '{"type": "bridge"')).allowed


def test_nad_not_using_kube_ovn_is_allowed_without_a_provider() -> None:
    config = {
        "cniVersion": "0.3.1",
        "type": "macvlan",
        "ipam": {"type": "host-local", "subnet": "10.1.0.0/24"},
    }
    verdict = World().review(nad("other", config))
    assert verdict.allowed
    assert verdict.warnings == ()


def test_ipam_nad_without_provider_is_refused_naming_the_provider_to_add() -> None:
    config = macvlan_config()
    del config["ipam"]["provider"]
    verdict = World().review(nad("macvlan", config))
    assert not verdict.allowed
    assert '"provider": "macvlan.default"' in verdict.message


def test_ipam_nad_with_wrong_provider_is_refused_naming_the_expected_one() -> None:
    verdict = World().review(nad("macvlan", macvlan_config(provider="macvlan.other")))
    assert not verdict.allowed
    assert 'provider must be "macvlan.default"' in verdict.message
    assert "macvlan.other" in verdict.message


def test_kube_ovn_type_nad_must_declare_the_ovn_suffixed_provider() -> None:
    world = World()
    assert world.review(nad("attachnet", kube_ovn_config("attachnet.default.ovn"))).allowed
    verdict = world.review(nad("attachnet", kube_ovn_config("attachnet.default")))
    assert not verdict.allowed
    assert 'provider must be "attachnet.default.ovn"' in verdict.message


def test_relative_server_socket_is_refused() -> None:
    config = macvlan_config(server_socket="run/kube-ovn-daemon.sock")
    verdict = World().review(nad("macvlan", config))
    assert not verdict.allowed
    assert '"run/kube-ovn-daemon.sock"' in verdict.message
    assert "absolute path" in verdict.message


def test_update_that_leaves_a_legacy_spec_alone_is_allowed_but_a_spec_change_is_checked() -> None:
    legacy = nad("legacy", None)
    relabelled = nad("legacy", None)
    relabelled["metadata"]["labels"] = {"team": "net"}
    world = World()
    assert world.review(relabelled, operation="UPDATE", old=legacy).allowed
    broken = nad("legacy", "{")
    assert not world.review(broken, operation="UPDATE", old=legacy).allowed


def test_delete_is_allowed() -> None:
    world = World()
    old = world.nad("macvlan", macvlan_config())
    assert world.review(None, operation="DELETE", old=old).allowed
