"""`ClusterView.mac_holders`: the (Subnet, MAC) index kept current by IP-object cache events,
so the fixed-MAC rule no longer scans every IP object of the Subnet per review."""

from __future__ import annotations

import copy
import random
import threading

from tests.unit.webhook import world as store_world
from tests.unit.webhook.rules.world import World, pod
from webhook.cluster import objects
from webhook.cluster.cache import ObjectCache
from webhook.cluster.claims import Claim, PodIdentity
from webhook.cluster.view import ClusterView

MAC_KEY = "macvlan.default.kubernetes.io/mac_address"
NETWORKS = "k8s.v1.cni.cncf.io/networks"


def _world() -> World:
    world = World()
    world.example("nad-macvlan.yaml")
    world.subnet("macvlan", provider="macvlan.default", cidrBlock="172.17.0.0/16", gateway="172.17.0.1")
    world.subnet("other", provider="other.default", cidrBlock="10.9.0.0/16")
    return world


def _names(found: list[dict]) -> list[str]:
    return [ip["metadata"]["name"] for ip in found]


def _with_mac(ip: dict, mac: str) -> dict:
    changed = copy.deepcopy(ip)
    changed["spec"]["macAddress"] = mac
    return changed


def test_added_ip_objects_are_found_by_subnet_and_any_spelling_of_their_mac() -> None:
    world = _world()
    before = world.hold("macvlan", "172.17.0.20", pod="a", mac="00:00:00:53:6B:BB")
    assert _names(world.view.mac_holders("macvlan", "00-00-00-53-6b-bb")) == [before["metadata"]["name"]]
    after = world.hold("macvlan", "172.17.0.21", pod="b", mac="02:00:00:00:00:02")  # index already built
    assert world.view.mac_holders("macvlan", "02:00:00:00:00:02") == [after]
    assert world.view.mac_holders("other", "00:00:00:53:6b:bb") == []
    assert world.view.mac_holders("macvlan", "02:00:00:00:00:03") == []


def test_a_mac_change_moves_the_object_and_the_latest_version_is_returned() -> None:
    world = _world()
    ip = world.hold("macvlan", "172.17.0.20", pod="a", mac="02:00:00:00:00:01")
    assert world.view.mac_holders("macvlan", "02:00:00:00:00:01") == [ip]
    moved = _with_mac(ip, "02:00:00:00:00:09")
    world.cache.put(objects.IPS, moved)
    assert world.view.mac_holders("macvlan", "02:00:00:00:00:01") == []
    assert world.view.mac_holders("macvlan", "02:00:00:00:00:09") == [moved]
    relabelled = copy.deepcopy(moved)
    relabelled["spec"]["podName"] = "a-renamed"
    world.cache.put(objects.IPS, relabelled)
    assert world.view.mac_holders("macvlan", "02:00:00:00:00:09")[0]["spec"]["podName"] == "a-renamed"


def test_deleted_ip_objects_hold_nothing() -> None:
    world = _world()
    ip = world.hold("macvlan", "172.17.0.20", pod="a", mac="02:00:00:00:00:01")
    assert world.view.mac_holders("macvlan", "02:00:00:00:00:01") == [ip]
    world.cache.delete(objects.IPS, ip)
    assert world.view.mac_holders("macvlan", "02:00:00:00:00:01") == []


def test_a_relist_drops_vanished_objects_adds_new_ones_and_moves_changed_macs() -> None:
    world = _world()
    gone = world.hold("macvlan", "172.17.0.20", pod="a", mac="02:00:00:00:00:01")
    kept = world.hold("macvlan", "172.17.0.21", pod="b", mac="02:00:00:00:00:02")
    assert _names(world.view.mac_holders("macvlan", "02:00:00:00:00:01")) == [gone["metadata"]["name"]]
    fresh = copy.deepcopy(kept)
    fresh["metadata"]["name"] = objects.ip_object_name("macvlan", "172.17.0.22")
    fresh["spec"]["macAddress"] = "02:00:00:00:00:03"
    world.cache.replace(objects.IPS, [_with_mac(kept, "02:00:00:00:00:04"), fresh])
    assert world.view.mac_holders("macvlan", "02:00:00:00:00:01") == []
    assert world.view.mac_holders("macvlan", "02:00:00:00:00:02") == []
    assert _names(world.view.mac_holders("macvlan", "02:00:00:00:00:04")) == [kept["metadata"]["name"]]
    assert world.view.mac_holders("macvlan", "02:00:00:00:00:03") == [fresh]


def test_unusable_held_or_wanted_macs_match_nothing_and_break_nothing() -> None:
    world = _world()
    for index, held in enumerate(["nope", "01:00:5e:00:00:01", "00:00:00:00:00:00", "", None, 7]):
        ip = world.hold("macvlan", f"172.17.0.{20 + index}", pod=f"p{index}")
        ip["spec"]["macAddress"] = held
        world.cache.put(objects.IPS, ip)
    good = world.hold("macvlan", "172.17.0.40", pod="good", mac="02:00:00:00:00:01")
    assert world.view.mac_holders("macvlan", "01:00:5e:00:00:01") == []
    assert world.view.mac_holders("macvlan", "nope") == []
    assert world.view.mac_holders("macvlan", "02:00:00:00:00:01") == [good]


def test_every_holder_of_a_shared_mac_is_returned_by_name() -> None:
    world = _world()
    second = world.hold("macvlan", "172.17.0.30", pod="b", mac="02:00:00:00:00:01")
    first = world.hold("macvlan", "172.17.0.20", pod="a", mac="02:00:00:00:00:01")
    assert world.view.mac_holders("macvlan", "02:00:00:00:00:01") == [first, second]


def test_an_event_delivered_late_cannot_bring_back_an_old_mac() -> None:
    """The cache calls handlers outside its lock, so an older event may arrive last; the index
    follows the cache's current object, not the event's copy."""
    world = _world()
    old = world.hold("macvlan", "172.17.0.20", pod="a", mac="02:00:00:00:00:01")
    world.view.mac_holders("macvlan", "02:00:00:00:00:01")  # build the index
    new = _with_mac(old, "02:00:00:00:00:02")
    world.cache.put(objects.IPS, new)
    handler = world.cache._handlers[objects.IPS][-1]  # the index's subscription
    handler("MODIFIED", old)
    assert world.view.mac_holders("macvlan", "02:00:00:00:00:01") == []
    assert world.view.mac_holders("macvlan", "02:00:00:00:00:02") == [new]
    world.cache.delete(objects.IPS, new)
    handler("ADDED", new)  # subscribe's replay racing a delete
    assert world.view.mac_holders("macvlan", "02:00:00:00:00:02") == []


def test_concurrent_writers_leave_the_index_equal_to_a_scan_of_the_cache() -> None:
    world = _world()
    view, cache = world.view, world.cache
    macs = [f"02:00:00:00:00:{n:02x}" for n in range(6)]
    ips = [world.hold("macvlan", f"172.17.0.{20 + n}", pod=f"p{n}", mac=macs[0]) for n in range(8)]
    view.mac_holders("macvlan", macs[0])

    def churn(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(400):
            ip = rng.choice(ips)
            if rng.random() < 0.2:
                cache.delete(objects.IPS, ip)
            else:
                cache.put(objects.IPS, _with_mac(ip, rng.choice(macs)))
            view.mac_holders("macvlan", rng.choice(macs))

    threads = [threading.Thread(target=churn, args=(seed,)) for seed in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for wanted in macs:
        scanned = sorted(
            ip["metadata"]["name"] for ip in view.ip_objects("macvlan") if ip["spec"]["macAddress"] == wanted
        )
        assert _names(view.mac_holders("macvlan", wanted)) == scanned


class _NoScanView(ClusterView):
    """A view whose Subnet-wide scan fails, so a rule that still scans is caught."""

    def ip_objects(self, subnet: str | None = None) -> list[dict]:
        raise AssertionError(f"scanned every IP object of {subnet}")


def test_the_fixed_mac_rule_asks_the_index_and_keeps_its_sentence() -> None:
    world = _world()
    world.view = _NoScanView(world.cache)
    world.hold("macvlan", "172.17.0.20", pod="static-mac", mac="00:00:00:53:6b:bb")
    verdict = world.review(pod({NETWORKS: "default/macvlan", MAC_KEY: "00:00:00:53:6B:BB"}, name="second"))
    assert not verdict.allowed
    assert verdict.message.startswith(
        "MAC 00:00:00:53:6b:bb from macvlan.default.kubernetes.io/mac_address is held by pod "
    )
    assert verdict.message.endswith(
        "in Subnet macvlan; choose another MAC or leave it out to get a random one"
    )
    assert world.review(pod({NETWORKS: "default/macvlan", MAC_KEY: "02:00:00:53:6b:bb"})).allowed


def test_the_pods_own_object_holding_the_mac_does_not_hide_another_holder() -> None:
    world = _world()
    world.hold("macvlan", "172.17.0.10", pod="", reservation="r-mine", mac="02:00:00:00:00:01")
    annotations = {NETWORKS: "default/macvlan", MAC_KEY: "02:00:00:00:00:01",
                   objects.RESERVATION_ANNOTATION: "r-mine"}
    assert world.review(pod(annotations, name="mine")).allowed
    world.hold("macvlan", "172.17.0.99", pod="thief", mac="02:00:00:00:00:01")
    verdict = world.review(pod(annotations, name="mine"))
    assert not verdict.allowed
    assert "thief" in verdict.message


def test_the_store_index_composes_with_the_stores_own_subscriptions() -> None:
    world = store_world.World().guide()
    held = world.store.reserve(PodIdentity("default", "a"),
                               Claim(subnet="macvlan", provider="macvlan.default", interface="net1",
                                     mac="02:00:00:00:aa:01"))
    assert _names(world.store.mac_holders("macvlan", "02:00:00:00:aa:01")) == list(held.names)
    world.store.release(held)
    assert world.store.mac_holders("macvlan", "02:00:00:00:aa:01") == []
    again = world.store.reserve(PodIdentity("default", "b"),
                                Claim(subnet="macvlan", provider="macvlan.default", interface="net1",
                                      mac="02:00:00:00:aa:01"))
    assert _names(world.store.mac_holders("macvlan", "02:00:00:00:aa:01")) == list(again.names)


def test_a_view_that_never_asks_about_macs_never_subscribes() -> None:
    cache = ObjectCache()
    ClusterView(cache).ip_objects()
    assert cache._handlers[objects.IPS] == []
