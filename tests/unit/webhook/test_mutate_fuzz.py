"""mutate.review on arbitrary pod annotations: every input gets a verdict (allowed with a patch, or
a refusal sentence), never an exception, which the server would answer with a 500 and the API
server show as "failed calling webhook" instead of a sentence a person can act on."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit.webhook.world import World
from webhook import mutate
from webhook.admission.reviews import Verdict

NETWORKS = "k8s.v1.cni.cncf.io/networks"
DEFAULT_NETWORK = "v1.multus-cni.io/default-network"
PROVIDERS = ("macvlan.default", "attachnet.default.ovn", "ovn", "macvlan.default.net1")
FIELDS = ("ip_address", "mac_address", "ip_pool", "logical_switch", "routes", "cidr", "gateway", "allocated")

# Text that is almost an address, a MAC, a pool or a selection: where parsers slip.
NEAR = st.sampled_from([
    "172.17.0.100", "172.17.0.x", "172.17.0.100,172.17.0.101", "172.17.0.100,fd00::1", "fd00::1",
    "300.1.1.1", "172.17.0.100/16", "", " ", ",", ";", "..", "172.17.0.200..172.17.0.100",
    "00:00:00:53:6b:bb", "zz:00:00:53:6b:bb", "01:00:5e:00:00:01", "macvlan", "attachnet", "nosuch",
    "default/macvlan", "default/macvlan@net1", "macvlan@", "/", "[]", "{}", "null", "[{}]",
    '[{"name": "macvlan", "ips": ["172.17.0.5/16"], "mac": "zz"}]',
    '[{"name": "macvlan", "ips": ["x"]}]', '[{"name": "macvlan", "default-route": ["x"]}]',
    '[{"name": "macvlan", "ips": "172.17.0.5/16"}]', '[{"dst": "1.2.3.0/24", "gw": "x"}]',
])
VALUES = st.one_of(NEAR, st.text(max_size=30))
SELECTIONS = st.sampled_from([
    "default/macvlan", "default/attachnet", "macvlan", "default/macvlan@net1,default/macvlan@net2",
    "default/macvlan,default/attachnet",
])
KEYS = st.one_of(
    st.just(DEFAULT_NETWORK),
    st.builds(lambda p, f: f"{p}.kubernetes.io/{f}", st.sampled_from(PROVIDERS), st.sampled_from(FIELDS)),
)
# Mostly a selection that reaches the guide's Subnets, so the per-provider inputs are read.
ANNOTATIONS = st.builds(
    lambda networks, rest: {**({NETWORKS: networks} if networks is not None else {}), **rest},
    st.one_of(SELECTIONS, SELECTIONS, SELECTIONS, VALUES, st.none()),
    st.dictionaries(KEYS, VALUES, max_size=4),
)
WORLD = World().guide()


def _request(annotations: dict[str, str], dry_run: bool) -> dict:
    metadata = {"namespace": "default", "name": "fuzzed", "annotations": annotations}
    return {
        "uid": "u1", "kind": {"group": "", "version": "v1", "kind": "Pod"}, "operation": "CREATE",
        "namespace": "default", "name": "fuzzed", "dryRun": dry_run,
        "object": {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": {"containers": []}},
    }


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(annotations=ANNOTATIONS)
def test_any_pod_annotations_get_a_verdict(annotations: dict[str, str]) -> None:
    verdict = mutate.review(_request(annotations, dry_run=True), store=WORLD.store)
    assert isinstance(verdict, Verdict)
    assert verdict.allowed or verdict.message  # a refusal always says why
    json.dumps(verdict.patch or [])  # the patch is plain JSON
