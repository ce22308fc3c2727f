"""webhook.operator.whereabouts:
IPPool allocations and OverlappingRangeIPReservations in Whereabouts' own shape
(whereabouts.cni.cncf.io/v1alpha1: IPPoolSpec{range, allocations{offset: {id, podref, ifname}}},
OverlappingRangeIPReservationSpec{containerid, podref, ifname})."""

from __future__ import annotations

import pytest

from webhook.operator.whereabouts import (
    Record,
    WhereaboutsError,
    address_from_name,
    ippool_records,
    reservation_record,
)

CONTAINER = "6c1b3e0f9f7d6f5c4b3a29181716151413121110f0e0d0c0b0a09080706050403"


def ippool(range_: object, allocations: object, name: str = "10.1.1.0-24") -> dict:
    return {"apiVersion": "whereabouts.cni.cncf.io/v1alpha1", "kind": "IPPool",
            "metadata": {"name": name, "namespace": "kube-system", "resourceVersion": "42"},
            "spec": {"range": range_, "allocations": allocations}}


def reservation(name: str, **spec: object) -> dict:
    return {"apiVersion": "whereabouts.cni.cncf.io/v1alpha1", "kind": "OverlappingRangeIPReservation",
            "metadata": {"name": name, "namespace": "kube-system"}, "spec": spec}


def test_ippool_offsets_count_from_the_range() -> None:
    pool = ippool("10.1.1.0/24", {
        "12": {"id": CONTAINER, "podref": "default/b", "ifname": "net1"},
        "5": {"id": CONTAINER, "podref": "default/a", "ifname": "net2"},
    })
    assert ippool_records(pool) == [
        Record("10.1.1.5", "default", "a", "net2", CONTAINER, "IPPool kube-system/10.1.1.0-24"),
        Record("10.1.1.12", "default", "b", "net1", CONTAINER, "IPPool kube-system/10.1.1.0-24"),
    ]


def test_offsets_count_from_the_address_as_written_like_net_parsecidr() -> None:
    [record] = ippool_records(ippool("192.168.2.225/28", {"1": {"id": "c", "podref": "ns/p"}}))
    assert record.address == "192.168.2.226"
    assert record.interface == ""  # ifname is omitempty in older Whereabouts


def test_ipv6_pool_and_empty_allocations() -> None:
    [record] = ippool_records(ippool("fd00:10::/64", {"18": {"id": "c", "podref": "ns/p", "ifname": "net1"}}))
    assert record.address == "fd00:10::12"
    assert ippool_records(ippool("10.1.1.0/24", {})) == []
    assert ippool_records(ippool("10.1.1.0/24", None)) == []


def test_an_allocation_without_podref_names_no_pod() -> None:
    [record] = ippool_records(ippool("10.1.1.0/24", {"3": {"id": "c"}}))
    assert (record.namespace, record.pod, record.pod_ref) == ("", "", "")


@pytest.mark.parametrize(("pool", "says"), [
    ({"metadata": {"name": "x", "namespace": "ns"}}, "IPPool ns/x has no spec object"),
    (ippool(None, {}), "has spec.range null, not a CIDR"),
    (ippool("10.1.1.0", {}), 'has spec.range "10.1.1.0", not a CIDR'),
    (ippool("10.1.1.300/24", {}), 'has spec.range "10.1.1.300/24", which is not a CIDR'),
    (ippool("10.1.1.0/24", ["5"]), "spec.allocations that is not a map"),
    (ippool("10.1.1.0/24", {"x5": {"id": "c", "podref": "a/b"}}), "is not keyed by a decimal offset"),
    (ippool("10.1.1.0/24", {"-1": {"id": "c", "podref": "a/b"}}), "is not keyed by a decimal offset"),
    (ippool("10.1.1.0/24", {"256": {"id": "c", "podref": "a/b"}}), "lies beyond spec.range 10.1.1.0/24"),
    (ippool("10.1.1.0/24", {"5": "default/a"}), 'allocation "5" of IPPool kube-system/10.1.1.0-24 is'),
    (ippool("10.1.1.0/24", {"5": {"id": 7, "podref": "a/b"}}), "has id 7, which is not a string"),
    (ippool("10.1.1.0/24", {"5": {"id": "c", "podref": "just-a"}}), 'podref "just-a", not namespace/name'),
    (ippool("10.1.1.0/24", {"5": {"id": "c", "podref": "a/b/c"}}), "not namespace/name"),
])
def test_malformed_ippools_are_one_sentence(pool: dict, says: str) -> None:
    with pytest.raises(WhereaboutsError) as caught:
        ippool_records(pool)
    assert says in str(caught.value)
    assert "\n" not in str(caught.value)


def test_reservation_named_after_its_address() -> None:
    record = reservation_record(
        reservation("10.1.1.5", containerid=CONTAINER, podref="default/a", ifname="net1")
    )
    assert record == Record("10.1.1.5", "default", "a", "net1", CONTAINER,
                            "OverlappingRangeIPReservation kube-system/10.1.1.5")
    v6 = reservation_record(reservation("fd00-10--12", podref="default/a", podUID="u-1"))
    assert (v6.address, v6.pod_uid, v6.container_id) == ("fd00:10::12", "u-1", "")


@pytest.mark.parametrize(("name", "address"), [
    ("10.1.1.5", "10.1.1.5"),
    ("fd00--5", "fd00::5"),
    ("fd00--0", "fd00::"),  # Whereabouts completes a trailing ':' with 0
    ("fd00-0000-0000-0000-0000-0000-0000-0005", "fd00::5"),  # newer versions write every group
    ("mynet-10.1.1.5", "10.1.1.5"),  # a named network's prefix
    ("my-net-fd00--5", "fd00::5"),
    ("not-an-address", None),
    ("", None),
])
def test_address_from_reservation_name(name: str, address: str | None) -> None:
    assert address_from_name(name) == address


@pytest.mark.parametrize(("obj", "says"), [
    (reservation("nope", podref="a/b"), "is not named after an address"),
    (reservation("10.1.1.5", podref=5), "has podref 5, which is not a string"),
    ({"metadata": {"name": "10.1.1.5", "namespace": "ns"}}, "has no spec object"),
])
def test_malformed_reservations_are_one_sentence(obj: dict, says: str) -> None:
    with pytest.raises(WhereaboutsError, match=None) as caught:
        reservation_record(obj)
    assert says in str(caught.value)
