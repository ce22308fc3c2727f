"""Every YAML of the guide is admitted unchanged, in the setup its section describes."""

from __future__ import annotations

import pytest

from . import guide
from .world import World


def _world(*examples: str) -> World:
    world = World()
    for name in examples:
        world.example(name)
    return world


MACVLAN = ("nad-macvlan.yaml", "subnet-macvlan.yaml")
MACVLAN_OVN = ("nad-macvlan.yaml", "subnet-macvlan-provider-ovn.yaml")
ATTACHNET = ("nad-attachnet.yaml", "subnet-attachnet.yaml")
ATTACHNET_OVN = ("nad-attachnet.yaml", "subnet-attachnet-provider-ovn.yaml")

# Each pod or workload with the NAD and Subnet of the guide's section that shows it.
SETUPS = {
    "pod-samplepod.yaml": MACVLAN,
    "pod-static-ip.yaml": MACVLAN,
    "deployment-static-workload.yaml": MACVLAN,
    "pod-samplepod-route.yaml": MACVLAN,
    "pod-samplepod-macvlan.yaml": MACVLAN,
    "pod-samplepod-logical-switch.yaml": MACVLAN_OVN,
    "pod-samplepod-attachnet.yaml": ATTACHNET,
    "pod-custom-routes-attach.yaml": ATTACHNET,
    "deployment-custom-routes-attach.yaml": ATTACHNET,
    "pod-samplepod-attachnet-logical-switch.yaml": ATTACHNET_OVN,
}


def test_every_pod_and_workload_example_has_a_setup() -> None:
    assert sorted(SETUPS) == sorted(guide.names("pod-") + guide.names("deployment-"))


@pytest.mark.parametrize("name", sorted(SETUPS))
def test_guide_pods_and_workloads_are_allowed(name: str) -> None:
    verdict = _world(*SETUPS[name]).review(guide.load(name))
    assert verdict.allowed, verdict.message
    assert verdict.warnings == ()


@pytest.mark.parametrize("name", [n for n in guide.names("nad-") if n not in guide.REFUSED])
def test_guide_nads_are_allowed(name: str) -> None:
    verdict = World().review(guide.load(name))
    assert verdict.allowed, verdict.message


@pytest.mark.parametrize("name", guide.names("subnet-"))
def test_guide_subnets_are_allowed_alone_and_after_their_nad(name: str) -> None:
    assert World().review(guide.load(name)).allowed
    verdict = _world("nad-macvlan.yaml", "nad-attachnet.yaml").review(guide.load(name))
    assert verdict.allowed, verdict.message


def test_guide_subnet_alternatives_replace_each_other_while_nothing_is_held() -> None:
    """The guide applies two Subnets named macvlan (and two named attachnet) as alternatives."""
    for first, second in (
        ("subnet-macvlan.yaml", "subnet-macvlan-provider-ovn.yaml"),
        ("subnet-attachnet.yaml", "subnet-attachnet-provider-ovn.yaml"),
    ):
        world = _world(first)
        verdict = world.review(guide.load(second), operation="UPDATE", old=guide.load(first))
        assert verdict.allowed, verdict.message


def test_guide_empty_spec_nad_is_refused_with_the_config_to_write() -> None:
    verdict = World().review(guide.load("nad-empty-spec-refused.yaml"))
    assert not verdict.allowed
    assert "macvlan-conf-2 has no spec.config" in verdict.message
    assert "centrally" in verdict.message
    assert '"provider": "macvlan-conf-2.default"' in verdict.message
