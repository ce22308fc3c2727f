"""Pod rules at CREATE (what the annotations ask fits the Subnets) and UPDATE (frozen allocation)."""

from __future__ import annotations

import json

import pytest

from webhook import validate
from webhook.admission.reviews import Verdict
from webhook.cluster import objects

from .world import (
    SYSTEM_USER,
    LiveReads,
    World,
    guide_world,
    kube_ovn_config,
    macvlan_config,
    nad,
    pod,
    request,
)

NETWORKS = "k8s.v1.cni.cncf.io/networks"
DEFAULT_NETWORK = "v1.multus-cni.io/default-network"
IP = "macvlan.default.kubernetes.io/ip_address"
MAC = "macvlan.default.kubernetes.io/mac_address"
POOL = "macvlan.default.kubernetes.io/ip_pool"
SWITCH = "macvlan.default.kubernetes.io/logical_switch"
ROUTES = "attachnet.default.ovn.kubernetes.io/routes"
ALLOCATED = "macvlan.default.kubernetes.io/allocated"


def _dual_world() -> World:
    world = World()
    world.example("nad-macvlan.yaml")
    world.subnet("macvlan", provider="macvlan.default", cidrBlock="172.17.0.0/16,fd00:10::/64")
    return world


V4 = {
    "free": "172.17.0.100",
    "outside": "172.18.0.5",
    "gateway": "172.17.0.1",
    "network": "172.17.0.0",
    "last": "172.17.255.255",
}
V6 = {
    "free": "fd00:10::100",
    "outside": "fd00:11::5",
    "gateway": "fd00:10::1",
    "network": "fd00:10::",
    "last": "fd00:10::ffff:ffff:ffff:ffff",
}
FAMILIES = pytest.mark.parametrize("f", [V4, V6], ids=["ipv4", "ipv6"])


# -- networks and NADs -------------------------------------------------------------------------
def test_networks_annotation_that_does_not_parse_is_refused() -> None:
    verdict = guide_world().review(pod({NETWORKS: "default/macvlan,"}))
    assert not verdict.allowed
    assert "item 2 of k8s.v1.cni.cncf.io/networks" in verdict.message


def test_missing_nad_is_refused_naming_it_and_its_namespace() -> None:
    verdict = guide_world().review(pod({NETWORKS: "default/macvlan,other/vlan"}))
    assert not verdict.allowed
    assert "NetworkAttachmentDefinition other/vlan, named in k8s.v1.cni.cncf.io/networks, does not exist" in (
        verdict.message
    )


def test_nad_not_using_kube_ovn_needs_no_subnet() -> None:
    world = World()
    world.nad("hostlocal", {"cniVersion": "0.3.1", "type": "macvlan", "ipam": {"type": "host-local"}})
    verdict = world.review(pod({NETWORKS: "default/hostlocal"}))
    assert verdict.allowed
    assert verdict.warnings == ()


def test_nad_with_an_empty_spec_is_allowed_with_a_warning() -> None:
    world = World()
    world.nad("conf2", None, namespace="kube-system")
    verdict = world.review(pod({NETWORKS: "kube-system/conf2"}))
    assert verdict.allowed
    assert any("kube-system/conf2 has no spec.config" in w for w in verdict.warnings)


def test_nad_with_a_wrong_provider_is_refused_when_a_pod_uses_it() -> None:
    world = World()
    world.nad("macvlan", macvlan_config(provider="wrong.default"))  # admitted before the webhook existed
    verdict = world.review(pod({NETWORKS: "default/macvlan"}))
    assert not verdict.allowed
    assert 'cannot be used: NetworkAttachmentDefinition default/macvlan has provider "wrong.default"' in (
        verdict.message
    )


def test_no_subnet_for_the_provider_is_refused_saying_what_to_create() -> None:
    world = World()
    world.example("nad-macvlan.yaml")
    verdict = world.review(pod({NETWORKS: "default/macvlan"}))
    assert not verdict.allowed
    assert verdict.message == (
        "no Subnet has provider macvlan.default, which NetworkAttachmentDefinition default/macvlan uses; "
        "create one with spec.provider: macvlan.default, or name a Subnet in "
        "macvlan.default.kubernetes.io/logical_switch"
    )


# -- fixed addresses ---------------------------------------------------------------------------
@FAMILIES
def test_fixed_address_inside_the_subnet_is_allowed(f: dict[str, str]) -> None:
    assert _dual_world().review(pod({NETWORKS: "default/macvlan", IP: f["free"]})).allowed


@FAMILIES
def test_fixed_address_outside_the_subnet_is_refused(f: dict[str, str]) -> None:
    verdict = _dual_world().review(pod({NETWORKS: "default/macvlan", IP: f["outside"]}))
    assert not verdict.allowed
    assert verdict.message == (
        f"{IP} {f['outside']} is outside Subnet macvlan (172.17.0.0/16,fd00:10::/64); "
        "choose an address inside it"
    )


@FAMILIES
@pytest.mark.parametrize("which", ["gateway", "network", "last"])
def test_fixed_gateway_network_or_last_address_is_refused(f: dict[str, str], which: str) -> None:
    verdict = _dual_world().review(pod({NETWORKS: "default/macvlan", IP: f[which]}))
    assert not verdict.allowed
    assert f"{IP} {f[which]} is the " in verdict.message


@FAMILIES
def test_fixed_address_held_by_another_pod_is_refused_naming_the_holder(f: dict[str, str]) -> None:
    world = _dual_world()
    world.hold("macvlan", f["free"], pod="static-ip")
    verdict = world.review(pod({NETWORKS: "default/macvlan", IP: f["free"]}, name="second"))
    assert not verdict.allowed
    assert verdict.code == 409
    assert verdict.message.startswith(f"{f['free']} is held by pod default/static-ip")


@FAMILIES
def test_address_held_under_this_pods_reservation_is_its_own(f: dict[str, str]) -> None:
    """The mutating webhook ran first: it wrote the address and the reservation, and holds the address."""
    world = _dual_world()
    world.hold("macvlan", f["free"], generate_name="web-", pod="", reservation="r-123")
    annotations = {NETWORKS: "default/macvlan", IP: f["free"], objects.RESERVATION_ANNOTATION: "r-123"}
    assert world.review(pod(annotations, name="")).allowed
    annotations[objects.RESERVATION_ANNOTATION] = "r-456"
    assert not world.review(pod(annotations, name="")).allowed


def test_dual_stack_fixed_address_is_checked_per_family() -> None:
    world = _dual_world()
    assert world.review(pod({NETWORKS: "default/macvlan", IP: "172.17.0.100,fd00:10::100"})).allowed
    verdict = world.review(pod({NETWORKS: "default/macvlan", IP: "172.17.0.100,172.17.0.101"}))
    assert not verdict.allowed
    assert "gives two IPv4 addresses" in verdict.message
    assert not world.review(pod({NETWORKS: "default/macvlan", IP: "172.17.0.100,nope"})).allowed


def test_fixed_address_that_is_not_an_address_is_refused() -> None:
    verdict = guide_world().review(pod({NETWORKS: "default/macvlan", IP: "172.17.0.300"}))
    assert not verdict.allowed
    assert f'{IP} "172.17.0.300" is not an IP address' in verdict.message


def test_ips_of_a_json_network_selection_are_checked_like_ip_address() -> None:
    world = guide_world()
    selection = [{"name": "macvlan", "namespace": "default", "ips": ["172.17.0.100/16"]}]
    assert world.review(pod({NETWORKS: json.dumps(selection)})).allowed
    selection[0]["ips"] = ["10.0.0.5"]
    verdict = world.review(pod({NETWORKS: json.dumps(selection)}))
    assert not verdict.allowed
    assert "ips of default/macvlan in k8s.v1.cni.cncf.io/networks 10.0.0.5 is outside Subnet macvlan" in (
        verdict.message
    )


# -- MACs ----------------------------------------------------------------------------------------
def test_fixed_mac_is_allowed_unless_malformed_or_multicast() -> None:
    world = guide_world()
    assert world.review(pod({NETWORKS: "default/macvlan", MAC: "00:00:00:53:6B:BB"})).allowed
    verdict = world.review(pod({NETWORKS: "default/macvlan", MAC: "01:00:5e:00:00:01"}))
    assert not verdict.allowed
    assert "multicast" in verdict.message
    assert not world.review(pod({NETWORKS: "default/macvlan", MAC: "00:00:00:53:6B"})).allowed


def test_fixed_mac_held_by_another_pod_is_refused() -> None:
    world = guide_world()
    world.hold("macvlan", "172.17.0.100", pod="static-ip", mac="00:00:00:53:6b:bb")
    verdict = world.review(pod({NETWORKS: "default/macvlan", MAC: "00:00:00:53:6B:BB"}, name="second"))
    assert not verdict.allowed
    assert "MAC 00:00:00:53:6b:bb from macvlan.default.kubernetes.io/mac_address is held by pod " in (
        verdict.message
    )


# -- ip_pool -------------------------------------------------------------------------------------
def test_ip_pool_entries_must_be_usable_addresses_of_the_subnet() -> None:
    world = guide_world()
    assert world.review(pod({NETWORKS: "default/macvlan", POOL: "172.17.0.200,172.17.0.201"})).allowed
    # an entry the Subnet never hands out is skipped (with a warning), never blocking a usable one
    verdict = world.review(pod({NETWORKS: "default/macvlan", POOL: "172.17.0.200,172.18.0.201"}))
    assert verdict.allowed
    assert verdict.warnings == (
        f"{POOL} entry 172.18.0.201 is outside subnet macvlan (172.17.0.0/16), so 1 of its 2 entries "
        "are never handed out",
    )
    verdict = world.review(pod({NETWORKS: "default/macvlan", POOL: "172.17.0.1,172.18.0.201"}))
    assert not verdict.allowed
    assert verdict.message == (
        f"{POOL} is not usable: no entry of ip_pool 172.17.0.1,172.18.0.201 can be handed out: 172.17.0.1 "
        "is the gateway of subnet macvlan; list usable addresses of the subnet"
    )
    malformed = world.review(pod({NETWORKS: "default/macvlan", POOL: "172.17.0.200,,172.17.0.201"}))
    assert not malformed.allowed
    assert "empty entry" in malformed.message


def test_ip_pool_naming_an_ippool_needs_that_pool_in_the_subnet() -> None:
    world = guide_world()
    world.ippool("pool-1", "macvlan", ["172.17.0.200..172.17.0.210"])
    world.subnet("other", provider="other.default", cidrBlock="10.5.0.0/16")
    world.ippool("pool-2", "other", ["10.5.0.10"])
    assert world.review(pod({NETWORKS: "default/macvlan", POOL: "pool-1"})).allowed
    missing = world.review(pod({NETWORKS: "default/macvlan", POOL: "pool-9"}))
    assert "IPPool pool-9, named by macvlan.default.kubernetes.io/ip_pool, does not exist" in missing.message
    elsewhere = world.review(pod({NETWORKS: "default/macvlan", POOL: "pool-2"}))
    assert not elsewhere.allowed
    assert "belongs to Subnet other" in elsewhere.message


# -- routes and default routes -------------------------------------------------------------------
def _attachnet_world() -> World:
    world = World()
    world.example("nad-attachnet.yaml")
    world.example("subnet-attachnet.yaml")
    return world


def test_route_gateway_outside_the_subnet_is_refused() -> None:
    routes = json.dumps([{"dst": "192.168.0.101/24", "gw": "10.0.0.254"}])
    verdict = _attachnet_world().review(pod({NETWORKS: "default/attachnet", ROUTES: routes}))
    assert not verdict.allowed
    assert verdict.message == (
        f"the route to 192.168.0.0/24 in {ROUTES} goes via 10.0.0.254, outside Subnet attachnet "
        "(172.17.0.0/16); use a gateway inside the Subnet"
    )


def test_routes_that_are_not_json_are_refused() -> None:
    verdict = _attachnet_world().review(
        pod({NETWORKS: "default/attachnet", ROUTES: '[{"gw": "172.17.0.254"'})
    )
    assert not verdict.allowed
    assert verdict.message.startswith(f"{ROUTES} is not usable: the routes annotation")
    assert "is not JSON" in verdict.message


def test_default_route_gateway_must_lie_inside_the_subnet() -> None:
    world = guide_world()
    good = [{"name": "macvlan", "namespace": "default", "default-route": ["172.17.0.1"]}]
    assert world.review(pod({NETWORKS: json.dumps(good)})).allowed
    bad = [{"name": "macvlan", "namespace": "default", "default-route": ["10.0.0.1"]}]
    verdict = world.review(pod({NETWORKS: json.dumps(bad)}))
    assert not verdict.allowed
    assert verdict.message == (
        "default-route gateway 10.0.0.1 of default/macvlan in k8s.v1.cni.cncf.io/networks is outside "
        "Subnet macvlan (172.17.0.0/16); use an address inside it, such as its gateway 172.17.0.1"
    )


# -- logical_switch and the main NIC ------------------------------------------------------------
def test_main_nic_from_an_ipam_only_nad_via_an_ovn_subnet_is_refused() -> None:
    world = World()
    world.example("nad-macvlan.yaml")
    world.example("subnet-macvlan-provider-ovn.yaml")
    verdict = world.review(pod({DEFAULT_NETWORK: "default/macvlan", SWITCH: "macvlan"}))
    assert not verdict.allowed
    assert "the main NIC from NetworkAttachmentDefinition default/macvlan cannot take its address from " in (
        verdict.message
    )
    assert "(the guide: unsupported)" in verdict.message
    # as a second NIC the same Subnet is fine (the guide's logical_switch example)
    assert world.review(pod({NETWORKS: "default/macvlan", SWITCH: "macvlan"})).allowed


def test_main_nic_of_kube_ovn_type_via_an_ovn_subnet_is_allowed() -> None:
    world = World()
    world.example("nad-attachnet.yaml")
    world.example("subnet-attachnet-provider-ovn.yaml")
    annotations = {
        DEFAULT_NETWORK: "default/attachnet",
        "attachnet.default.ovn.kubernetes.io/logical_switch": "attachnet",
    }
    verdict = world.review(pod(annotations))
    assert verdict.allowed, verdict.message


def test_logical_switch_naming_a_missing_or_foreign_subnet_is_refused() -> None:
    world = guide_world()
    missing = world.review(pod({NETWORKS: "default/macvlan", SWITCH: "nope"}))
    assert 'Subnet "nope", named by macvlan.default.kubernetes.io/logical_switch, does not exist' in (
        missing.message
    )
    world.subnet("vlan", provider="vlan.default", cidrBlock="10.9.0.0/16")
    foreign = world.review(pod({NETWORKS: "default/macvlan", SWITCH: "vlan"}))
    assert not foreign.allowed
    assert "has provider vlan.default; name a Subnet with provider macvlan.default or ovn" in foreign.message


# -- the primary network -------------------------------------------------------------------------
def test_primary_annotations_are_ignored_without_a_default_ovn_subnet() -> None:
    """The guide's static-ip pod sets ovn.kubernetes.io/ip_address for the cluster's own CNI."""
    world = guide_world()
    assert world.review(
        pod({NETWORKS: "default/macvlan", "ovn.kubernetes.io/ip_address": "10.16.0.15"})
    ).allowed


def test_primary_annotations_are_checked_once_a_default_ovn_subnet_exists() -> None:
    world = guide_world()
    world.subnet("ovn-default", provider="ovn", cidrBlock="10.16.0.0/16", default=True)
    assert world.review(pod({"ovn.kubernetes.io/ip_address": "10.16.0.15"})).allowed
    verdict = world.review(pod({"ovn.kubernetes.io/ip_address": "10.17.0.15"}))
    assert not verdict.allowed
    assert "ovn.kubernetes.io/ip_address 10.17.0.15 is outside Subnet ovn-default (10.16.0.0/16)" in (
        verdict.message
    )


def test_annotations_for_a_provider_the_pod_does_not_use_warn() -> None:
    verdict = guide_world().review(
        pod({NETWORKS: "default/macvlan", "vlan.default.kubernetes.io/ip_address": "1.2.3.4"})
    )
    assert verdict.allowed
    assert verdict.warnings == (
        "vlan.default.kubernetes.io/ip_address is ignored: no network of this pod uses provider "
        "vlan.default with kube-ovn IPAM",
    )


# -- UPDATE ----------------------------------------------------------------------------------------
def _allocated() -> dict[str, str]:
    return {
        NETWORKS: "default/macvlan",
        IP: "172.17.0.100",
        "macvlan.default.kubernetes.io/allocated": "true",
        objects.RESERVATION_ANNOTATION: "r-1",
    }


@pytest.mark.parametrize(
    ("key", "value"),
    [
        (IP, "172.17.0.101"),
        ("macvlan.default.kubernetes.io/allocated", None),
        (SWITCH, "other"),
        (NETWORKS, "default/macvlan,default/attachnet"),
        (objects.RESERVATION_ANNOTATION, "r-2"),
    ],
)
def test_allocation_annotations_are_frozen_for_users(key: str, value: str | None) -> None:
    old = pod(_allocated())
    new = pod(_allocated())
    if value is None:
        del new["metadata"]["annotations"][key]
    else:
        new["metadata"]["annotations"][key] = value
    world = guide_world()
    verdict = world.review(new, operation="UPDATE", old=old)
    assert not verdict.allowed
    assert verdict.message.startswith(f"annotation {key} decides the pod's addresses and cannot change")
    assert world.review(new, operation="UPDATE", old=old, username=SYSTEM_USER).allowed


def test_other_annotations_and_foreign_primary_keys_may_change() -> None:
    old = pod(_allocated())
    new = pod({**_allocated(), "team": "net", "ovn.kubernetes.io/allocated": "true"})
    world = guide_world()
    assert world.review(new, operation="UPDATE", old=old).allowed
    world.subnet("ovn-default", provider="ovn", cidrBlock="10.16.0.0/16", default=True)
    verdict = world.review(new, operation="UPDATE", old=old)
    assert not verdict.allowed
    assert "annotation ovn.kubernetes.io/allocated" in verdict.message
    assert '(was unset, now "true")' in verdict.message


def _adopted(address: str = "172.17.0.100", token: str = "r-9") -> dict[str, str]:
    """What `multinic-ipam adopt` adds to a running pod that uses `address`."""
    return {NETWORKS: "default/macvlan", IP: address, SWITCH: "macvlan", MAC: "0a:00:00:00:00:01",
            "macvlan.default.kubernetes.io/cidr": "172.17.0.0/16",
            "macvlan.default.kubernetes.io/gateway": "172.17.0.1",
            "macvlan.default.kubernetes.io/allocated": "true", objects.RESERVATION_ANNOTATION: token}


def test_adopt_may_add_the_output_annotations_of_addresses_the_pod_holds() -> None:
    world = guide_world()
    world.hold("macvlan", "172.17.0.100", pod="p", reservation="r-9")
    old = pod({NETWORKS: "default/macvlan"})
    assert world.review(pod(_adopted()), operation="UPDATE", old=old).allowed


@pytest.mark.parametrize(("holder", "token", "extra", "refused"), [
    ("q", "r-9", {}, ALLOCATED),  # the address is another pod's (the first key refused, by name)
    ("", "r-9", {}, ALLOCATED),  # a reservation of a generateName pod is not this pod's
    ("p", "r-other", {}, objects.RESERVATION_ANNOTATION),  # the token labels another pod's object
    ("p", "r-9", {POOL: "172.17.0.100"}, POOL),  # inputs stay frozen
])
def test_adopt_additions_are_refused_unless_the_pod_holds_them(
    holder: str, token: str, extra: dict[str, str], refused: str
) -> None:
    world = guide_world()
    world.hold("macvlan", "172.17.0.100", pod=holder, reservation="r-9")
    world.hold("macvlan", "172.17.0.200", pod="q", reservation="r-other")
    verdict = world.review(pod({**_adopted(token=token), **extra}), operation="UPDATE",
                           old=pod({NETWORKS: "default/macvlan"}))
    assert not verdict.allowed
    assert verdict.message.startswith(f"annotation {refused} decides the pod's addresses and cannot change")


def test_delete_of_a_pod_is_allowed() -> None:
    assert guide_world().review(None, operation="DELETE", old=pod(_allocated())).allowed


def test_kube_ovn_config_helper_matches_the_guide() -> None:
    """The tests' kube-ovn NAD config is the guide's attachnet config."""
    assert kube_ovn_config() == json.loads(World().example("nad-attachnet.yaml")["spec"]["config"])


# -- details shared with the mutating webhook ----------------------------------------------------
def test_a_nad_attached_twice_uses_provider_plus_interface_keys() -> None:
    """Like the mutating webhook (and Kube-OVN): `<provider>.<interface>.kubernetes.io/<field>`."""
    world = guide_world()
    annotations = {
        NETWORKS: "default/macvlan@a,default/macvlan@b",
        "macvlan.default.a.kubernetes.io/ip_address": "172.17.0.100",
        "macvlan.default.b.kubernetes.io/ip_address": "172.17.0.101",
    }
    verdict = world.review(pod(annotations))
    assert verdict.allowed, verdict.message
    assert verdict.warnings == ()
    annotations["macvlan.default.b.kubernetes.io/ip_address"] = "10.0.0.1"
    refused = world.review(pod(annotations))
    assert not refused.allowed
    assert refused.message.startswith("macvlan.default.b.kubernetes.io/ip_address 10.0.0.1 is outside")


def test_subnet_reserved_for_other_namespaces_is_refused_by_logical_switch() -> None:
    world = guide_world()
    world.subnet("team", provider="macvlan.default", cidrBlock="10.30.0.0/16", namespaces=["team-a"])
    assert world.review(pod({NETWORKS: "default/macvlan", SWITCH: "team"}, namespace="team-a")).allowed
    verdict = world.review(pod({NETWORKS: "default/macvlan", SWITCH: "team"}))
    assert not verdict.allowed
    assert "is reserved for namespaces team-a; use another Subnet or add default to its spec.namespaces" in (
        verdict.message
    )


def test_multus_ips_prefix_must_be_the_subnets() -> None:
    world = guide_world()
    selection = [{"name": "macvlan", "namespace": "default", "ips": ["172.17.0.100/24"]}]
    verdict = world.review(pod({NETWORKS: json.dumps(selection)}))
    assert not verdict.allowed
    assert "has prefix /24, but its Subnet is 172.17.0.0/16; write 172.17.0.100/16" in verdict.message


def test_subnets_of_the_provider_bound_to_namespaces_serve_only_those() -> None:
    world = World()
    world.example("nad-macvlan.yaml")
    world.subnet("team", provider="macvlan.default", cidrBlock="172.17.0.0/16", namespaces=["team-a"])
    world.nad("macvlan", macvlan_config(provider="macvlan.team-a"), namespace="team-a")
    verdict = world.review(pod({NETWORKS: "default/macvlan"}))
    assert not verdict.allowed
    assert verdict.message == (
        "every Subnet with provider macvlan.default is reserved for other namespaces (team for team-a); "
        "add default to the spec.namespaces of one"
    )
    assert world.review(pod({NETWORKS: "default/macvlan"}, namespace="team-a")).allowed


# -- cache lag: the live reads mutation has --------------------------------------------------------
def _lagging_world() -> World:
    """The macvlan Subnet is cached; the NAD applied with the pod is not yet."""
    world = World()
    world.subnet("macvlan", provider="macvlan.default", cidrBlock="172.17.0.0/16")
    return world


def test_nad_the_cache_has_not_seen_is_read_live_and_the_pod_allowed() -> None:
    world = _lagging_world()
    live = LiveReads(nads=(nad("macvlan", macvlan_config()),))
    verdict = validate.review(request(pod({NETWORKS: "default/macvlan"})), view=world.view, live=live)
    assert verdict.allowed, verdict.message
    assert live.asked == ["nad default/macvlan"]


def test_nad_neither_cached_nor_live_is_refused_as_without_live_reads() -> None:
    world = _lagging_world()
    annotations = {NETWORKS: "default/macvlan"}
    with_live = validate.review(request(pod(annotations)), view=world.view, live=LiveReads())
    cache_only = validate.review(request(pod(annotations)), view=world.view)
    assert not with_live.allowed
    assert with_live.message == cache_only.message
    assert with_live.code == cache_only.code
    missing = f"NetworkAttachmentDefinition default/macvlan, named in {NETWORKS}, does not exist"
    assert missing in with_live.message


def test_ippool_applied_with_its_pod_is_read_live_and_the_pod_allowed() -> None:
    world = guide_world()
    pool = {"apiVersion": "kubeovn.io/v1", "kind": "IPPool", "metadata": {"name": "pool-1"},
            "spec": {"subnet": "macvlan", "ips": ["172.17.0.200..172.17.0.210"]}}
    annotations = {NETWORKS: "default/macvlan", POOL: "pool-1"}
    live = LiveReads(ippools=(pool,))
    verdict = world.review(pod(annotations), live=live)
    assert verdict.allowed, verdict.message
    assert live.asked == ["ippool pool-1"]
    refused = world.review(pod(annotations), live=LiveReads())
    assert not refused.allowed
    assert refused.message.startswith(f"IPPool pool-1, named by {POOL}, does not exist;")


# -- cache lag: a holder released since the cache saw it ------------------------------------------
def _stale_holder_world(**hold: str) -> tuple[World, dict]:
    """The cache still shows 172.17.0.100 held by pod default/gone; the API server may not."""
    world = guide_world()
    return world, world.hold("macvlan", "172.17.0.100", pod="gone", **hold)


def _review_live(world: World, annotations: dict[str, str], live: LiveReads, name: str = "new") -> Verdict:
    return validate.review(request(pod(annotations, name=name)), view=world.view, live=live)


def test_address_whose_cached_holder_is_gone_is_allowed_after_a_live_read() -> None:
    """Another replica released it and this one's watch lags: a refusal would be false."""
    world, _ = _stale_holder_world()
    live = LiveReads()
    verdict = _review_live(world, {NETWORKS: "default/macvlan", IP: "172.17.0.100"}, live)
    assert verdict.allowed, verdict.message
    assert live.asked == ["ip macvlan.172.17.0.100"]


def test_address_whose_cached_holder_is_confirmed_live_is_refused_as_before() -> None:
    world, held = _stale_holder_world()
    annotations = {NETWORKS: "default/macvlan", IP: "172.17.0.100"}
    verdict = _review_live(world, annotations, LiveReads(ips=(held,)))
    assert not verdict.allowed
    assert verdict.code == 409
    assert verdict.message == world.review(pod(annotations, name="new")).message
    assert verdict.message.startswith("172.17.0.100 is held by pod default/gone;")


def test_address_passed_to_this_pod_since_the_cache_saw_it_is_its_own() -> None:
    """The mutating webhook of another replica re-created the released IP object for this pod."""
    world, held = _stale_holder_world()
    mine = json.loads(json.dumps(held))
    mine["metadata"]["labels"][objects.LABEL_RESERVATION] = "r-new"
    mine["spec"]["podName"] = "new"
    annotations = {NETWORKS: "default/macvlan", IP: "172.17.0.100", objects.RESERVATION_ANNOTATION: "r-new"}
    assert _review_live(world, annotations, LiveReads(ips=(mine,))).allowed


def test_own_address_is_not_read_live() -> None:
    world = guide_world()
    world.hold("macvlan", "172.17.0.100", pod="new", reservation="r-new")
    live = LiveReads()
    annotations = {NETWORKS: "default/macvlan", IP: "172.17.0.100", objects.RESERVATION_ANNOTATION: "r-new"}
    assert _review_live(world, annotations, live).allowed
    assert live.asked == []


def test_mac_whose_cached_holder_is_gone_or_changed_is_allowed() -> None:
    world, held = _stale_holder_world(mac="00:00:00:53:6b:bb")
    annotations = {NETWORKS: "default/macvlan", MAC: "00:00:00:53:6B:BB"}
    assert _review_live(world, annotations, LiveReads()).allowed
    other_mac = json.loads(json.dumps(held))
    other_mac["spec"]["macAddress"] = "00:00:00:53:6b:cc"  # the address passed on, with another MAC
    assert _review_live(world, annotations, LiveReads(ips=(other_mac,))).allowed
    verdict = _review_live(world, annotations, LiveReads(ips=(held,)))
    assert not verdict.allowed
    assert f"MAC 00:00:00:53:6b:bb from {MAC} is held by pod default/gone" in verdict.message


def test_holder_that_cannot_be_read_live_is_a_retriable_refusal_not_a_500() -> None:
    world, _ = _stale_holder_world()
    unreachable = LiveReads(unreachable=True)
    verdict = _review_live(world, {NETWORKS: "default/macvlan", IP: "172.17.0.100"}, unreachable)
    assert not verdict.allowed
    assert verdict.code == 429
    assert "could not read ips macvlan.172.17.0.100" in verdict.message
