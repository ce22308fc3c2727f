"""adopt: `adoption.plan` (what each live pod uses, which Subnet, conflicts) and `adopter.apply` (IP
objects as the store writes them, the pod's output annotations, the bind), over the fake API server."""

from __future__ import annotations

import json

import pytest

from tests.unit.webhook.world import World, nad, subnet
from webhook.cluster import objects
from webhook.cluster.claims import Claim, PodIdentity
from webhook.cluster.ipobjects import address_of
from webhook.cluster.kubeapi import Conflict
from webhook.operator import adopter, adoption
from webhook.operator.adoption_plan import Plan
from webhook.operator.adoption_sources import as_migrated
from webhook.operator.whereabouts import Record

WHEREABOUTS_CONFIG = json.dumps({
    "cniVersion": "0.3.1", "name": "wa", "type": "macvlan", "master": "eth0", "mode": "bridge",
    "ipam": {"type": "whereabouts", "range": "10.1.1.0/24", "exclude": ["10.1.1.250/31"]},
})
NETWORK_STATUS = "k8s.v1.cni.cncf.io/network-status"
KEY = "wa.default.kubernetes.io"


def status(*entries: tuple[str, str, list[str]], mac: str = "0a:00:00:00:00:01") -> str:
    return json.dumps(
        [{"name": "cbr0", "interface": "eth0", "ips": ["10.244.0.9"], "default": True, "dns": {}}]
        + [{"name": name, "interface": ifname, "ips": ips, "mac": mac, "dns": {}}
           for name, ifname, ips in entries]
    )


def pod(name: str, second: int, notes: dict[str, str] | None = None, *, networks: str = "wa") -> dict:
    annotations = {"k8s.v1.cni.cncf.io/networks": networks, **(notes or {})}
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}",
                         "creationTimestamp": f"2026-01-01T00:00:{second:02d}Z", "annotations": annotations},
            "spec": {"restartPolicy": "Always"}, "status": {"phase": "Running"}}


def using(name: str, second: int, *addresses: str, ifname: str = "net1") -> dict:
    return pod(name, second, {NETWORK_STATUS: status(("default/wa", ifname, list(addresses)))})


@pytest.fixture
def world() -> World:
    made = World()
    made.add(objects.NADS, nad("wa", WHEREABOUTS_CONFIG))
    made.add(objects.SUBNETS, subnet("wa", "10.1.1.0/24,fd00:1::/120", provider="wa.default",
                                     gateway="10.1.1.1,fd00:1::1", exclude=("10.1.1.250..10.1.1.254",)))
    adopter.read_as_migrated(made.store)
    return made


def plan_for(world: World, *pods: dict, records: tuple[Record, ...] = ()) -> Plan:
    for p in pods:
        world.add(objects.PODS, p)
    return adoption.plan(world.store, world.cache.list(objects.PODS), records)


def rows(plan: Plan) -> list[tuple[str, str, str, str, str]]:
    return [(r.pod, r.interface, r.address, r.subnet, r.action) for r in plan.rows]


def test_as_migrated_reads_another_ipam_as_kube_ovn_once_its_subnet_exists() -> None:
    whereabouts = nad("wa", WHEREABOUTS_CONFIG)
    migrated = as_migrated(whereabouts, {"wa.default"})
    config = json.loads(migrated["spec"]["config"])
    assert config["type"] == "macvlan" and config["master"] == "eth0"
    assert config["ipam"] == {"type": "kube-ovn", "provider": "wa.default",
                              "server_socket": "/run/openvswitch/kube-ovn-daemon.sock"}
    assert json.loads(whereabouts["spec"]["config"])["ipam"]["type"] == "whereabouts"  # the input is kept
    assert as_migrated(whereabouts, {"other.default"}) is None  # no Subnet: not migrating
    conflist = nad("wa", json.dumps({"cniVersion": "0.4.0", "name": "wa", "plugins": [
        {"type": "macvlan", "ipam": {"type": "host-local", "subnet": "10.1.1.0/24"}}, {"type": "tuning"}]}))
    plugins = json.loads(as_migrated(conflist, {"wa.default"})["spec"]["config"])["plugins"]
    assert plugins[0]["ipam"]["type"] == "kube-ovn" and plugins[1] == {"type": "tuning"}
    ours = nad("wa", json.dumps({"cniVersion": "0.3.0", "type": "macvlan",
                                 "ipam": {"type": "kube-ovn", "provider": "wa.default"}}))
    assert as_migrated(ours, {"wa.default"}) is None  # already ours: read as it is
    assert as_migrated(nad("wa", "{not json"), {"wa.default"}) is None


def test_each_live_pods_addresses_are_held_in_the_subnet_the_resolver_picks(world: World) -> None:
    plan = plan_for(world, using("a", 1, "10.1.1.2", "fd00:1::2"), using("b", 2, "10.1.1.3"))
    assert rows(plan) == [
        ("default/a", "net1", "10.1.1.2", "wa", "hold"),
        ("default/a", "net1", "fd00:1::2", "wa", "hold"),
        ("default/b", "net1", "10.1.1.3", "wa", "hold"),
    ]
    assert not plan.problems and plan.changes
    assert all(r.source == "network-status" for r in plan.rows)
    assert plan.pods[0].attachments[0].hold == ["10.1.1.2", "fd00:1::2"]
    assert plan.pods[0].attachments[0].mac == "0a:00:00:00:00:01"


def test_a_duplicate_is_held_for_the_oldest_pod_and_named(world: World) -> None:
    plan = plan_for(world, using("young", 9, "10.1.1.7"), using("old", 3, "10.1.1.7"))
    assert rows(plan) == [
        ("default/old", "net1", "10.1.1.7", "wa", "hold"),
        ("default/young", "net1", "10.1.1.7", "wa", "conflict"),
    ]
    [problem] = plan.problems
    assert problem == (
        "10.1.1.7 in Subnet wa is used by pod default/old (net1) and by pod default/young (net1); it is held "
        "for default/old, the oldest; delete default/young (a controller recreates it with a free address) "
        "or give it another address"
    )


@pytest.mark.parametrize(("address", "note", "says"), [
    ("10.1.2.5", "outside the Subnet", "outside Subnet wa (10.1.1.0/24,fd00:1::/120) that provider"),
    ("10.1.1.0", "the network address", "the network address of Subnet wa (10.1.1.0/24), which no pod"),
    ("10.1.1.255", "the broadcast address", "the broadcast address of Subnet wa"),
    ("10.1.1.1", "the gateway", "the gateway of Subnet wa; set the Subnet's spec.gateway"),
])
def test_addresses_the_subnet_cannot_hold_are_conflicts(
    world: World, address: str, note: str, says: str
) -> None:
    plan = plan_for(world, using("p", 1, address))
    [row] = plan.rows
    assert (row.action, row.note) == ("conflict", note)
    [problem] = plan.problems
    assert problem.startswith(
        f"pod default/p uses {address} on net1 (NetworkAttachmentDefinition default/wa),"
    )
    assert says in problem
    assert not plan.pods


def test_an_excluded_address_is_held_anyway_and_reported(world: World) -> None:
    plan = plan_for(world, using("p", 1, "10.1.1.251"))
    assert rows(plan) == [("default/p", "net1", "10.1.1.251", "wa", "hold")]
    [problem] = plan.problems
    assert "which Subnet wa excludes (excludeIps); it is held for the pod anyway" in problem


def test_whereabouts_records_stand_in_for_a_missing_network_status(world: World) -> None:
    records = (
        Record("10.1.1.20", "default", "quiet", "net1", "c1", "IPPool kube-system/10.1.1.0-24"),
        Record("10.1.1.99", "default", "quiet", "net1", "c1", "OverlappingRangeIPReservation kube-system/x"),
        Record("10.1.1.21", "default", "gone", "net1", "c2", "IPPool kube-system/10.1.1.0-24"),
        Record("10.1.1.22", "default", "a", "net1", "c3", "IPPool kube-system/10.1.1.0-24"),
        Record("10.1.1.23", "", "", "", "c4", "IPPool kube-system/10.1.1.0-24"),
    )
    plan = plan_for(world, pod("quiet", 1), using("a", 2, "10.1.1.2"), records=records)
    assert rows(plan) == [
        ("-", "", "10.1.1.23", "", "skip"),
        ("default/a", "net1", "10.1.1.2", "wa", "hold"),  # network-status wins over the IPPool's .22
        ("default/a", "net1", "10.1.1.22", "", "skip"),
        ("default/gone", "net1", "10.1.1.21", "", "skip"),
        ("default/quiet", "net1", "10.1.1.20", "wa", "hold"),  # the IPPool wins over the reservation
    ]
    assert next(r for r in plan.rows if r.pod == "default/gone").note == "its pod is gone"
    assert next(r for r in plan.rows if r.pod == "default/quiet").source == "IPPool kube-system/10.1.1.0-24"


def test_a_nad_no_subnet_serves_is_skipped_and_a_finished_pod_is_not_adopted(world: World) -> None:
    world.add(objects.NADS, nad("other", WHEREABOUTS_CONFIG))
    finished = using("done", 2, "10.1.1.8")
    finished["status"]["phase"] = "Succeeded"
    notes = {NETWORK_STATUS: status(("default/other", "net1", ["10.9.0.5"]))}
    plan = plan_for(world, pod("p", 1, notes, networks="other"), finished)
    assert rows(plan) == [("default/p", "net1", "10.9.0.5", "", "skip")]
    assert plan.rows[0].note == "default/other is not served by a Subnet"
    assert not plan.problems


def test_a_malformed_network_status_is_a_sentence_and_records_still_count(world: World) -> None:
    record = Record("10.1.1.30", "default", "p", "net1", "c", "IPPool kube-system/10.1.1.0-24")
    plan = plan_for(world, pod("p", 1, {NETWORK_STATUS: "{oops"}), records=(record,))
    assert rows(plan) == [("default/p", "net1", "10.1.1.30", "wa", "hold")]
    [problem] = plan.problems
    assert problem.startswith('pod default/p cannot be read: k8s.v1.cni.cncf.io/network-status "{oops" is')


def test_a_pod_whose_networks_cannot_be_resolved_is_named(world: World) -> None:
    plan = plan_for(world, pod("p", 1, {NETWORK_STATUS: status(("default/missing", "net1", ["10.1.1.4"]))},
                               networks="missing"))
    assert rows(plan) == [("default/p", "net1", "10.1.1.4", "", "conflict")]
    assert plan.problems == [
        "pod default/p is not adopted: NetworkAttachmentDefinition default/missing, named in "
        "k8s.v1.cni.cncf.io/networks, does not exist; create it first or correct the name"
    ]


def test_apply_holds_as_the_webhook_would_then_a_second_run_changes_nothing(world: World) -> None:
    plan = plan_for(world, using("a", 1, "10.1.1.2", "fd00:1::2"), using("b", 2, "10.1.1.3"))
    done = adopter.apply(world.store, plan, clock=lambda: world.now)
    assert [r.action for r in done] == ["held", "held", "held"]
    assert not plan.problems
    ip = world.api.ips[objects.ip_object_name("wa", "10.1.1.2")]
    a = world.api.objects[(objects.PODS, "default", "a")]
    token = a["metadata"]["annotations"][objects.RESERVATION_ANNOTATION]
    assert ip["metadata"]["labels"] == {objects.LABEL_SUBNET: "wa", objects.LABEL_POD_NAMESPACE: "default",
                                        objects.LABEL_RESERVATION: token}
    assert ip["spec"]["podUID"] == "uid-a" and ip["spec"]["podName"] == "a"
    assert (ip["spec"]["provider"], ip["spec"]["interface"]) == ("wa.default", "net1")
    assert ip["spec"]["macAddress"] == "0a:00:00:00:00:01"  # Multus's report, not a new random MAC
    b = world.api.ips[objects.ip_object_name("wa", "10.1.1.3")]["spec"]["macAddress"]
    assert b != "0a:00:00:00:00:01"  # reported twice (ipvlan shares its master's MAC): b gets its own
    v6 = world.api.ips[objects.ip_object_name("wa", "fd00:1::2")]
    assert address_of(v6) == "fd00:1::2" and v6["spec"]["podUID"] == "uid-a"
    notes = a["metadata"]["annotations"]
    assert {k: v for k, v in notes.items() if k.startswith(KEY)} == {
        f"{KEY}/ip_address": "10.1.1.2,fd00:1::2", f"{KEY}/mac_address": "0a:00:00:00:00:01",
        f"{KEY}/cidr": "10.1.1.0/24,fd00:1::/120", f"{KEY}/gateway": "10.1.1.1,fd00:1::1",
        f"{KEY}/logical_switch": "wa", f"{KEY}/allocated": "true",
    }
    # b has only an IPv4 address on the dual-stack Subnet: nothing is added for the family it lacks
    b_notes = world.api.objects[(objects.PODS, "default", "b")]["metadata"]["annotations"]
    assert b_notes[f"{KEY}/ip_address"] == "10.1.1.3"
    held_for_b = [address_of(ip) for ip in world.api.ips.values() if ip["spec"]["podName"] == "b"]
    assert held_for_b == ["10.1.1.3"]
    writes_before = len(world.api.calls)
    again = adoption.plan(world.store, world.cache.list(objects.PODS))
    assert [r.action for r in again.rows] == ["already held"] * 3
    assert not again.changes and not again.problems
    adopter.apply(world.store, again, clock=lambda: world.now)
    assert world.api.calls[writes_before:] == []


def test_new_allocations_never_get_an_adopted_address(world: World) -> None:
    adopter.apply(world.store, plan_for(world, using("a", 1, "10.1.1.2"), using("b", 2, "10.1.1.4")),
                  clock=lambda: world.now)
    given = [world.store.reserve(PodIdentity("default", f"new{i}"), Claim("wa", "wa.default", "net1"))
             for i in range(4)]
    v4 = [next(a for a in held.addresses if "." in a) for held in given]
    assert v4 == ["10.1.1.3", "10.1.1.5", "10.1.1.6", "10.1.1.7"]


def test_an_address_another_live_pod_holds_is_a_conflict(world: World) -> None:
    claim = Claim("wa", "wa.default", "net1", fixed=("10.1.1.2",))
    world.store.reserve(PodIdentity("default", "first"), claim)
    plan = plan_for(world, pod("first", 1), using("second", 2, "10.1.1.2"))
    assert ("default/second", "net1", "10.1.1.2", "wa", "conflict") in rows(plan)
    [problem] = plan.problems
    assert problem.startswith("10.1.1.2 in Subnet wa is used by pod default/second (net1) but held by pod "
                              "default/first (IP object wa.10.1.1.2); delete the pod that should not have it")
    world.api.remove(objects.PODS, "default", "first")
    gone = adoption.plan(world.store, world.cache.list(objects.PODS))
    assert "which is gone; run `multinic-ipam gc`" in gone.problems[0]


def test_a_pod_gone_before_it_is_annotated_keeps_nothing(world: World) -> None:
    plan = plan_for(world, using("a", 1, "10.1.1.2"))
    world.api.remove(objects.PODS, "default", "a")
    done = adopter.apply(world.store, plan, clock=lambda: world.now)
    assert [r.action for r in done] == ["failed"]
    assert plan.problems == [
        "pod default/a was not adopted: its annotations could not be written (it is gone)"
    ]
    assert world.api.ips == {}


def test_a_bind_the_leader_made_first_is_no_problem(world: World) -> None:
    plan = plan_for(world, using("a", 1, "10.1.1.2"))

    def leader_binds_first(op: str, name: str) -> Conflict | None:
        if op != "patch_ip":
            return None
        world.api.ips[name]["spec"]["podUID"] = "uid-a"  # the webhook's leader saw the pod's reservation
        return Conflict(409, "the object has been modified")

    world.api.fail = leader_binds_first
    done = adopter.apply(world.store, plan, clock=lambda: world.now)
    assert [r.action for r in done] == ["held"] and not plan.problems
    world.api.fail = lambda op, name: Conflict(409, "modified") if op == "patch_ip" else None
    world.add(objects.PODS, using("b", 2, "10.1.1.3"))
    plan = adoption.plan(world.store, [world.api.objects[(objects.PODS, "default", "b")]])
    adopter.apply(world.store, plan, clock=lambda: world.now)
    assert plan.problems == ["IP object wa.10.1.1.3 of pod default/b changed while it was being bound; adopt "
                             "again (or let the webhook's leader bind it)"]
