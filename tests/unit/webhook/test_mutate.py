"""mutate.review: Pod CREATE → one JSONPatch of output annotations, everything checked before locking."""

from __future__ import annotations

import json

import pytest

from tests.unit.webhook.world import World, nad, subnet
from webhook import mutate
from webhook.cluster import objects
from webhook.cluster.kubeapi import ApiError

NETWORKS = "k8s.v1.cni.cncf.io/networks"


@pytest.fixture
def world() -> World:
    return World().guide()


def request(annotations: dict | None = None, *, name: str = "samplepod", namespace: str = "default",
            operation: str = "CREATE", kind: str = "Pod", dry_run: bool = False, **meta) -> dict:
    metadata = {"namespace": namespace, **meta}
    if name:
        metadata["name"] = name
    if annotations is not None:
        metadata["annotations"] = annotations
    return {
        "uid": "u1", "kind": {"group": "", "version": "v1", "kind": kind}, "operation": operation,
        "namespace": namespace, "name": name, "dryRun": dry_run,
        "object": {"apiVersion": "v1", "kind": kind, "metadata": metadata, "spec": {"containers": []}},
    }


def written(verdict) -> dict[str, str]:
    """The annotations the patch writes (whole map, or key by key with JSON Pointer unescaping)."""
    assert verdict.allowed, verdict.message
    out: dict[str, str] = {}
    for op in verdict.patch or []:
        assert op["op"] == "add"
        if op["path"] == "/metadata/annotations":
            out.update(op["value"])
        else:
            key = op["path"].removeprefix("/metadata/annotations/").replace("~1", "/").replace("~0", "~")
            out[key] = op["value"]
    return out


def test_random_address_from_the_guide_subnet(world):
    notes = written(mutate.review(request({NETWORKS: "default/macvlan"}), store=world.store))
    assert notes["macvlan.default.kubernetes.io/ip_address"] == "172.17.0.11"
    assert notes["macvlan.default.kubernetes.io/cidr"] == "172.17.0.0/16"
    assert notes["macvlan.default.kubernetes.io/gateway"] == "172.17.0.1"
    assert notes["macvlan.default.kubernetes.io/logical_switch"] == "macvlan"
    assert notes["macvlan.default.kubernetes.io/allocated"] == "true"
    assert len(notes["macvlan.default.kubernetes.io/mac_address"]) == 17
    token = notes[objects.RESERVATION_ANNOTATION]
    assert world.api.ips["macvlan.172.17.0.11"]["metadata"]["labels"][objects.LABEL_RESERVATION] == token
    assert not any(key.startswith("ovn.kubernetes.io/") for key in notes)


def test_patch_escapes_slashes_and_is_one_op_per_key(world):
    verdict = mutate.review(request({"k8s.v1.cni.cncf.io/networks": "default/macvlan"}), store=world.store)
    paths = [op["path"] for op in verdict.patch]
    assert "/metadata/annotations/macvlan.default.kubernetes.io~1ip_address" in paths
    assert "/metadata/annotations/multinic-ipam.io~1reservation" in paths


def test_annotations_map_is_created_when_absent(world):
    world.add(objects.SUBNETS, subnet("ovn-default", "10.16.0.0/16", provider="ovn", default=True))
    verdict = mutate.review(request(None), store=world.store)
    assert len(verdict.patch) == 1 and verdict.patch[0]["path"] == "/metadata/annotations"
    assert verdict.patch[0]["value"]["ovn.kubernetes.io/ip_address"] == "10.16.0.2"


def test_static_ip_pod_gets_its_address_and_mac_and_ovn_keys_untouched(world):
    notes = {
        "k8s.v1.cni.cncf.io/networks": "default/macvlan",
        "ovn.kubernetes.io/ip_address": "10.16.0.15",
        "ovn.kubernetes.io/mac_address": "00:00:00:53:6B:B6",
        "macvlan.default.kubernetes.io/ip_address": "172.17.0.100",
        "macvlan.default.kubernetes.io/mac_address": "00:00:00:53:6B:BB",
    }
    out = written(mutate.review(request(notes, name="static-ip"), store=world.store))
    assert out["macvlan.default.kubernetes.io/ip_address"] == "172.17.0.100"
    assert out["macvlan.default.kubernetes.io/mac_address"] == "00:00:00:53:6b:bb"
    assert "ovn.kubernetes.io/allocated" not in out
    assert list(world.api.ips) == ["macvlan.172.17.0.100"]


def test_second_pod_asking_a_held_address_is_refused_naming_the_holder(world):
    notes = {"k8s.v1.cni.cncf.io/networks": "default/macvlan",
             "macvlan.default.kubernetes.io/ip_address": "172.17.0.100"}
    world.add(objects.PODS, {"metadata": {"name": "static-ip", "namespace": "default"}})
    assert mutate.review(request(notes, name="static-ip"), store=world.store).allowed
    verdict = mutate.review(request(notes, name="static-ip-2"), store=world.store)
    assert not verdict.allowed
    assert "172.17.0.100 is held by pod default/static-ip" in verdict.message


def test_primary_network_from_a_default_ovn_subnet_honours_ip_address(world):
    world.add(objects.SUBNETS, subnet("ovn-default", "10.16.0.0/16", provider="ovn", default=True,
                                      gateway="10.16.0.1"))
    notes = {"k8s.v1.cni.cncf.io/networks": "default/macvlan", "ovn.kubernetes.io/ip_address": "10.16.0.15"}
    out = written(mutate.review(request(notes), store=world.store))
    assert out["ovn.kubernetes.io/ip_address"] == "10.16.0.15"
    assert out["ovn.kubernetes.io/logical_switch"] == "ovn-default"
    assert out["macvlan.default.kubernetes.io/ip_address"] == "172.17.0.11"


def test_ovn_subnet_without_default_leaves_the_primary_to_the_cluster_cni(world):
    world.add(objects.SUBNETS, subnet("other-ovn", "10.20.0.0/16", provider="ovn"))
    out = written(mutate.review(request({NETWORKS: "default/macvlan"}), store=world.store))
    assert not any(key.startswith("ovn.kubernetes.io/") for key in out)


def test_deployment_pool_gives_distinct_addresses_to_generate_name_pods(world):
    notes = {"k8s.v1.cni.cncf.io/networks": "default/macvlan",
             "ovn.kubernetes.io/ip_pool": "10.16.0.15,10.16.0.16,10.16.0.17",
             "macvlan.default.kubernetes.io/ip_pool": "172.17.0.200,172.17.0.201,172.17.0.202"}
    got = set()
    for _ in range(2):
        review = request(notes, name="", generateName="static-workload-7d9f-")
        got.add(written(mutate.review(review, store=world.store))["macvlan.default.kubernetes.io/ip_address"])
    assert got == {"172.17.0.200", "172.17.0.201"}
    spec = world.api.ips["macvlan.172.17.0.200"]["spec"]
    assert (spec["podName"], spec["generateName"]) == ("", "static-workload-7d9f-")


def test_ippool_applied_with_its_pod_is_read_live_and_drawn_from(world):
    """The watch has not delivered the IPPool yet: it is read live, cached, and the pod draws from it."""
    pool = {"apiVersion": "kubeovn.io/v1", "kind": "IPPool", "metadata": {"name": "pool-1"},
            "spec": {"subnet": "macvlan", "ips": ["172.17.0.200..172.17.0.210"]}}
    world.api.objects[(objects.IPPOOLS, "", "pool-1")] = pool  # in the API server, not in the cache
    notes = {NETWORKS: "default/macvlan", "macvlan.default.kubernetes.io/ip_pool": "pool-1"}
    out = written(mutate.review(request(notes), store=world.store))
    assert out["macvlan.default.kubernetes.io/ip_address"] == "172.17.0.200"
    assert world.store.ippool("pool-1") is not None
    del world.api.objects[(objects.IPPOOLS, "", "pool-1")]
    missing = mutate.review(request({**notes, "macvlan.default.kubernetes.io/ip_pool": "pool-2"}, name="b"),
                            store=world.store)
    assert not missing.allowed
    assert "IPPool pool-2, named by ip_pool, does not exist" in missing.message


def test_default_route_selection_is_admitted_with_the_provider_keys(world):
    value = '[{"name": "macvlan", "namespace": "default", "default-route": ["172.17.0.1"]}]'
    out = written(mutate.review(request({"k8s.v1.cni.cncf.io/networks": value}), store=world.store))
    assert out["macvlan.default.kubernetes.io/ip_address"] == "172.17.0.11"


def test_macvlan_as_main_nic_gets_eth0_from_its_subnet(world):
    out = written(mutate.review(request({"v1.multus-cni.io/default-network": "default/macvlan"}),
                                store=world.store))
    assert out["macvlan.default.kubernetes.io/ip_address"] == "172.17.0.11"
    assert world.api.ips["macvlan.172.17.0.11"]["spec"]["interface"] == "eth0"


def test_logical_switch_wins_over_provider_matching(world):
    world.add(objects.SUBNETS, subnet("macvlan-ovn", "172.30.0.0/16", provider="ovn", gateway="172.30.0.1",
                                      exclude=("172.30.0.0..172.30.0.10",)))
    notes = {"k8s.v1.cni.cncf.io/networks": "default/macvlan",
             "macvlan.default.kubernetes.io/logical_switch": "macvlan-ovn"}
    out = written(mutate.review(request(notes), store=world.store))
    assert out["macvlan.default.kubernetes.io/ip_address"] == "172.30.0.11"
    assert out["macvlan.default.kubernetes.io/logical_switch"] == "macvlan-ovn"


def test_kube_ovn_type_attachment_with_custom_routes(world):
    notes = {"k8s.v1.cni.cncf.io/networks": "default/attachnet",
             "attachnet.default.ovn.kubernetes.io/routes":
                 # gateways inside this world's attachnet (the guide's is 172.17.0.0/16)
                 '[{"dst": "192.168.0.101/24", "gw": "172.18.0.254"}, {"gw": "172.18.0.254"}]'}
    out = written(mutate.review(request(notes, name="custom-routes-attach"), store=world.store))
    assert out["attachnet.default.ovn.kubernetes.io/ip_address"] == "172.18.0.11"
    assert "attachnet.default.ovn.kubernetes.io/routes" not in out  # an input, left as the user wrote it


def test_same_nad_twice_gets_two_addresses_keyed_by_provider_and_interface(world):
    out = written(mutate.review(request({"k8s.v1.cni.cncf.io/networks": "macvlan@a,macvlan@b"}),
                                store=world.store))
    assert out["macvlan.default.a.kubernetes.io/ip_address"] == "172.17.0.11"
    assert out["macvlan.default.b.kubernetes.io/ip_address"] == "172.17.0.12"
    assert {ip["spec"]["interface"] for ip in world.api.ips.values()} == {"a", "b"}


def test_multus_ips_have_their_prefix_checked_and_stripped(world):
    value = '[{"name": "macvlan", "ips": ["172.17.0.50/16"], "mac": "02:00:00:00:00:50"}]'
    out = written(mutate.review(request({"k8s.v1.cni.cncf.io/networks": value}), store=world.store))
    assert out["macvlan.default.kubernetes.io/ip_address"] == "172.17.0.50"
    assert out["macvlan.default.kubernetes.io/mac_address"] == "02:00:00:00:00:50"
    wrong = '[{"name": "macvlan", "ips": ["172.17.0.51/24"]}]'
    verdict = mutate.review(request({"k8s.v1.cni.cncf.io/networks": wrong}, name="p2"), store=world.store)
    assert not verdict.allowed and "/24" in verdict.message and "172.17.0.51/16" in verdict.message


def test_user_supplied_output_annotations_are_overwritten(world):
    notes = {"k8s.v1.cni.cncf.io/networks": "default/macvlan",
             "macvlan.default.kubernetes.io/cidr": "1.2.3.0/24",
             "macvlan.default.kubernetes.io/allocated": "false"}
    out = written(mutate.review(request(notes), store=world.store))
    assert out["macvlan.default.kubernetes.io/cidr"] == "172.17.0.0/16"
    assert out["macvlan.default.kubernetes.io/allocated"] == "true"


def test_nad_not_using_kube_ovn_is_skipped(world):
    config = {"cniVersion": "0.3.1", "type": "macvlan",
              "ipam": {"type": "host-local", "subnet": "10.5.0.0/24"}}
    world.add(objects.NADS, nad("plain", json.dumps(config)))
    verdict = mutate.review(request({"k8s.v1.cni.cncf.io/networks": "plain"}), store=world.store)
    assert verdict.allowed and verdict.patch is None
    assert world.api.ips == {}


def test_missing_nad_is_refused(world):
    verdict = mutate.review(request({"k8s.v1.cni.cncf.io/networks": "default/nope"}), store=world.store)
    assert not verdict.allowed
    assert verdict.message == (
        "NetworkAttachmentDefinition default/nope, named in k8s.v1.cni.cncf.io/networks, does not exist; "
        "create it first or correct the name"
    )


def test_no_subnet_for_the_provider_is_refused(world):
    config = json.dumps({"cniVersion": "0.3.0", "type": "macvlan",
                         "ipam": {"type": "kube-ovn", "provider": "lonely.default"}})
    world.add(objects.NADS, nad("lonely", config))
    verdict = mutate.review(request({"k8s.v1.cni.cncf.io/networks": "lonely"}), store=world.store)
    assert not verdict.allowed and "no Subnet has provider lonely.default" in verdict.message


def test_namespace_restricted_subnet_refuses_other_namespaces(world):
    config = world.api.objects[(objects.NADS, "default", "macvlan")]["spec"]["config"]
    world.add(objects.NADS, nad("macvlan", config, namespace="team"))
    world.add(objects.SUBNETS, subnet("macvlan", "172.17.0.0/16", provider="macvlan.default",
                                      namespaces=["default"]))
    verdict = mutate.review(request({"k8s.v1.cni.cncf.io/networks": "default/macvlan"}, namespace="team"),
                            store=world.store)
    assert not verdict.allowed
    assert verdict.message == ("every Subnet with provider macvlan.default is reserved for other namespaces "
                               "(macvlan for default); add team to the spec.namespaces of one")
    assert world.api.ips == {}


def test_refusal_of_a_later_attachment_leaks_nothing(world):
    world.add(objects.SUBNETS, subnet("attachnet", "10.9.0.0/30", provider="attachnet.default.ovn"))
    assert mutate.review(request({"k8s.v1.cni.cncf.io/networks": "attachnet"}, name="first"),
                         store=world.store).allowed  # takes the only address
    verdict = mutate.review(request({"k8s.v1.cni.cncf.io/networks": "macvlan,attachnet"}, name="second"),
                            store=world.store)
    assert not verdict.allowed and "subnet attachnet" in verdict.message
    assert sorted(world.api.ips) == ["attachnet.10.9.0.2"]
    assert ("create_ip", "macvlan.172.17.0.11") not in world.api.calls  # checked before locking


def test_failure_while_locking_a_later_attachment_deletes_the_earlier_ones(world):
    world.api.fail = lambda op, name: ApiError(500, "etcd timeout") if name.startswith("attachnet.") else None
    verdict = mutate.review(request({"k8s.v1.cni.cncf.io/networks": "macvlan,attachnet"}), store=world.store)
    assert not verdict.allowed and verdict.code == 429
    assert world.api.ips == {}
    assert ("delete_ip", "macvlan.172.17.0.11") in world.api.calls


def test_dry_run_answers_the_patch_and_locks_nothing(world):
    out = written(mutate.review(request({"k8s.v1.cni.cncf.io/networks": "default/macvlan"}, dry_run=True),
                                store=world.store))
    assert out["macvlan.default.kubernetes.io/ip_address"] == "172.17.0.11"
    assert world.api.ips == {} and not [c for c in world.api.calls if c[0] == "create_ip"]


@pytest.mark.parametrize(
    ("operation", "kind"), [("UPDATE", "Pod"), ("DELETE", "Pod"), ("CREATE", "Deployment")]
)
def test_only_pod_create_is_mutated(world, operation, kind):
    verdict = mutate.review(request({"k8s.v1.cni.cncf.io/networks": "default/macvlan"}, operation=operation,
                                    kind=kind), store=world.store)
    assert verdict.allowed and verdict.patch is None
    assert world.api.ips == {}


def test_bad_network_selection_is_refused_with_its_sentence(world):
    verdict = mutate.review(request({"k8s.v1.cni.cncf.io/networks": "default/macvlan,"}), store=world.store)
    assert not verdict.allowed and "networks" in verdict.message


def test_statefulset_pod_keeps_its_address_across_recreation(world):
    owner = [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web", "uid": "sts-uid",
              "controller": True}]
    notes = {"k8s.v1.cni.cncf.io/networks": "default/macvlan"}
    first = written(mutate.review(request(notes, name="web-0", ownerReferences=owner), store=world.store))
    mutate.review(request(notes, name="other"), store=world.store)
    again = written(mutate.review(request(notes, name="web-0", ownerReferences=owner), store=world.store))
    key = "macvlan.default.kubernetes.io/ip_address"
    assert first[key] == again[key] == "172.17.0.11"
    assert first[objects.RESERVATION_ANNOTATION] != again[objects.RESERVATION_ANNOTATION]
    assert world.api.ips["macvlan.172.17.0.11"]["spec"]["ownerUID"] == "sts-uid"


def test_dual_stack_attachment_writes_both_families_in_one_value(world):
    world.add(objects.SUBNETS, subnet("macvlan", "172.17.0.0/16,fd00:17::/64", provider="macvlan.default",
                                      protocol="Dual", gateway="172.17.0.1,fd00:17::1",
                                      exclude=("172.17.0.0..172.17.0.10",)))
    out = written(mutate.review(request({NETWORKS: "default/macvlan"}), store=world.store))
    assert out["macvlan.default.kubernetes.io/ip_address"] == "172.17.0.11,fd00:17::2"
    assert out["macvlan.default.kubernetes.io/cidr"] == "172.17.0.0/16,fd00:17::/64"
    assert out["macvlan.default.kubernetes.io/gateway"] == "172.17.0.1,fd00:17::1"
    assert len(world.api.ips) == 2


# -- refusals the validating webhook would give later come before any lock ---------------------------
ROUTES = "attachnet.default.ovn.kubernetes.io/routes"
ROUTE_OUTSIDE = (f"the route to 192.168.0.0/24 in {ROUTES} goes via 10.9.9.254, "
                 "outside Subnet attachnet (172.18.0.0/16); use a gateway inside the Subnet")


@pytest.mark.parametrize(
    ("notes", "expected"),
    [
        ({NETWORKS: "macvlan,attachnet", ROUTES: '[{"dst": "192.168.0.101/24", "gw": "10.9.9.254"}]'},
         ROUTE_OUTSIDE),
        ({NETWORKS: "macvlan", "macvlan.default.kubernetes.io/routes": "not-json"},
         'macvlan.default.kubernetes.io/routes is not usable: the routes annotation "not-json" is not JSON'),
        ({NETWORKS: json.dumps([{"name": "macvlan", "default-route": ["10.9.9.1"]}])},
         "default-route gateway 10.9.9.1 of default/macvlan in k8s.v1.cni.cncf.io/networks is outside Subnet "
         "macvlan (172.17.0.0/16); use an address inside it, such as its gateway 172.17.0.1"),
        ({NETWORKS: "macvlan", "macvlan.default.kubernetes.io/ip_pool": "172.17.0.1,172.16.0.5"},
         "macvlan.default.kubernetes.io/ip_pool is not usable: no entry of ip_pool 172.17.0.1,172.16.0.5 can "
         "be handed out: 172.17.0.1 is the gateway of subnet macvlan; list usable addresses of the subnet"),
        ({NETWORKS: "macvlan", "macvlan.default.kubernetes.io/ip_family": "IPv6"},
         "macvlan.default.kubernetes.io/ip_family is not usable: ip_family asks for IPv6, but subnet macvlan "
         "has only IPv4 (172.17.0.0/16); ask for IPv4 or attach a subnet that has it"),
    ],
    ids=["route-gateway-outside", "routes-not-json", "default-route-outside", "pool-no-usable-entry",
         "ip-family-the-subnet-lacks"],
)
def test_what_validation_would_refuse_is_refused_before_any_ip_object_is_created(world, notes, expected):
    verdict = mutate.review(request(notes), store=world.store)
    assert not verdict.allowed
    assert verdict.code == 422
    assert expected in verdict.message
    assert world.api.ips == {}
    assert not [call for call in world.api.calls if call[0] == "create_ip"]


def test_mutation_and_validation_refuse_a_route_gateway_outside_with_one_sentence(world):
    from webhook import validate

    notes = {NETWORKS: "macvlan,attachnet", ROUTES: '[{"dst": "192.168.0.101/24", "gw": "10.9.9.254"}]'}
    mutated = mutate.review(request(notes), store=world.store)
    validated = validate.review(request(notes), view=world.store)
    assert not mutated.allowed and not validated.allowed
    assert mutated.message == validated.message == ROUTE_OUTSIDE
    assert mutated.code == validated.code == 422
