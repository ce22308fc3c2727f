"""From pod annotations to the daemon's answer: prefixes, routes order, default route (cni.allocation)."""

from __future__ import annotations

import pytest

from cni import allocation
from tests.unit.cni.helpers import DEFAULT_NETWORK, annotated_pod

GUIDE_DEFAULT_ROUTE = '[{"name": "macvlan", "namespace": "default", "default-route": ["172.17.0.1"]}]'
GUIDE_ROUTES = '[{\n "dst": "192.168.0.101/24",\n "gw": "172.17.0.254"\n}, {\n "gw": "172.17.0.254"\n}]\n'


def ask(pod: dict, *, provider: str = "macvlan.default", ifname: str = "net1",
        nad_routes: tuple = ()) -> dict:
    return allocation.answer(pod, allocation.Request("default", pod["metadata"]["name"], provider, ifname,
                                                     nad_routes))


def test_plain_attachment_gets_its_address_with_the_subnet_prefix_and_no_routes() -> None:
    out = ask(annotated_pod("samplepod"))
    assert out == {"ips": [{"address": "172.17.0.12/16", "family": 4}], "mac": "00:00:00:53:6b:bb",
                   "routes": [], "default_route": False, "subnet": "macvlan"}


def test_default_route_selection_gets_a_default_route_and_the_gateway_on_its_ip() -> None:
    out = ask(annotated_pod("samplepod-route", networks=GUIDE_DEFAULT_ROUTE))
    assert out["routes"] == [{"dst": "0.0.0.0/0", "gw": "172.17.0.1"}]
    assert out["ips"] == [{"address": "172.17.0.12/16", "family": 4, "gateway": "172.17.0.1"}]
    assert out["default_route"] is True


def test_default_route_uses_the_gateway_the_selection_names() -> None:
    networks = '[{"name": "macvlan", "default-route": ["172.17.0.254"]}]'
    out = ask(annotated_pod("p", networks=networks))
    assert out["routes"] == [{"dst": "0.0.0.0/0", "gw": "172.17.0.254"}]


def test_main_nic_from_default_network_gets_the_default_route() -> None:
    pod = annotated_pod("samplepod-macvlan", networks="", extra={DEFAULT_NETWORK: "default/macvlan"})
    out = ask(pod, ifname="eth0")
    assert out["routes"] == [{"dst": "0.0.0.0/0", "gw": "172.17.0.1"}]


def test_default_network_naming_another_nad_gives_no_default_route() -> None:
    pod = annotated_pod("p", extra={DEFAULT_NETWORK: "default/other"})
    assert ask(pod)["routes"] == []


def test_guide_custom_routes_are_normalised_and_the_empty_dst_is_the_default_route() -> None:
    provider = "attachnet.default.ovn"
    pod = annotated_pod("custom-routes-attach", provider=provider, networks="default/attachnet",
                        extra={f"{provider}.kubernetes.io/routes": GUIDE_ROUTES})
    out = ask(pod, provider=provider)
    assert out["routes"] == [{"dst": "192.168.0.0/24", "gw": "172.17.0.254"},
                             {"dst": "0.0.0.0/0", "gw": "172.17.0.254"}]
    assert out["ips"][0]["gateway"] == "172.17.0.254"


def test_pod_default_route_wins_over_the_requested_one() -> None:
    networks = '[{"name": "macvlan", "default-route": ["172.17.0.1"]}]'
    pod = annotated_pod("p", networks=networks,
                        extra={"macvlan.default.kubernetes.io/routes": '[{"gw": "172.17.0.254"}]'})
    assert ask(pod)["routes"] == [{"dst": "0.0.0.0/0", "gw": "172.17.0.254"}]


def test_nad_routes_come_first_then_pod_routes_replace_the_same_destination() -> None:
    pod = annotated_pod("p", extra={
        "macvlan.default.kubernetes.io/routes": '[{"dst": "10.2.0.0/16", "gw": "172.17.0.253"}]'})
    nad = ({"dst": "10.1.0.0/16"}, {"dst": "10.2.0.0/16", "gw": "172.17.0.9"})
    assert ask(pod, nad_routes=nad)["routes"] == [
        {"dst": "10.1.0.0/16", "gw": "172.17.0.1"},  # no gw in the NAD: via the subnet gateway
        {"dst": "10.2.0.0/16", "gw": "172.17.0.253"},
    ]


def test_dual_stack_yields_both_families_and_both_default_routes() -> None:
    pod = annotated_pod("dual", ip="172.17.0.12,fd00:10::c", cidr="172.17.0.0/16,fd00:10::/120",
                        gateway="172.17.0.1,fd00:10::1",
                        networks='[{"name": "macvlan", "default-route": ["172.17.0.1", "fd00:10::1"]}]')
    out = ask(pod)
    assert out["ips"] == [{"address": "172.17.0.12/16", "family": 4, "gateway": "172.17.0.1"},
                          {"address": "fd00:10::c/120", "family": 6, "gateway": "fd00:10::1"}]
    assert out["routes"] == [{"dst": "0.0.0.0/0", "gw": "172.17.0.1"}, {"dst": "::/0", "gw": "fd00:10::1"}]


@pytest.mark.parametrize(("ifname", "expect_default"), [("net1", False), ("net2", True)])
def test_same_nad_twice_is_told_apart_by_interface(ifname: str, expect_default: bool) -> None:
    networks = '[{"name": "macvlan"}, {"name": "macvlan", "default-route": ["172.17.0.1"]}]'
    out = ask(annotated_pod("twice", networks=networks), ifname=ifname)
    assert out["default_route"] is expect_default


def test_pod_without_the_webhook_annotations_is_not_annotated_with_the_documented_message() -> None:
    pod = annotated_pod("x", allocated=False)
    with pytest.raises(allocation.NotAnnotatedError) as caught:
        ask(pod)
    assert str(caught.value) == ("pod default/x has no address for provider macvlan.default; "
                                 "is the admission webhook installed?")


def test_another_providers_allocation_does_not_count() -> None:
    with pytest.raises(allocation.NotAnnotatedError, match=r"provider other\.default"):
        ask(annotated_pod("x"), provider="other.default")


@pytest.mark.parametrize(("field", "value"), [("cidr", "not-a-cidr"), ("cidr", "fd00::/64"),
                                              ("ip_address", "172.17.0.300")])
def test_unusable_annotations_name_the_field_and_value(field: str, value: str) -> None:
    pod = annotated_pod("x", extra={})
    pod["metadata"]["annotations"][f"macvlan.default.kubernetes.io/{field}"] = value
    with pytest.raises(allocation.UnusableAnnotationError, match="pod default/x"):
        ask(pod)


def test_bad_pod_routes_are_unusable_not_a_crash() -> None:
    pod = annotated_pod("x", extra={"macvlan.default.kubernetes.io/routes": "[{"})
    with pytest.raises(allocation.UnusableAnnotationError, match="routes"):
        ask(pod)


def test_a_nad_attached_twice_is_answered_per_interface() -> None:
    first = annotated_pod("twice", provider="macvlan.default.a", ip="172.17.0.11",
                          networks="macvlan@a,macvlan@b")
    second = annotated_pod("twice", provider="macvlan.default.b", ip="172.17.0.12")
    pod = {"metadata": {**first["metadata"], "annotations": {**second["metadata"]["annotations"],
                                                             **first["metadata"]["annotations"]}}}
    assert ask(pod, ifname="a")["ips"][0]["address"] == "172.17.0.11/16"
    assert ask(pod, ifname="b")["ips"][0]["address"] == "172.17.0.12/16"
