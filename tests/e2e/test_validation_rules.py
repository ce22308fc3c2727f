"""The refusals of issue 3's rules that tests/e2e/test_validation.py does not already show, as a user
meets them at `kubectl apply`: the sentence kubectl prints, and which webhook said it.

Pod CREATE goes through the mutating webhook first, and it refuses most bad pods before the
validating webhook sees them (routes, default-route gateways and pool entries outside the Subnet
included: `webhook.admission.subnet_fit` runs before any address is locked), so a pod's denial comes from
"mutate.multinic-ipam.io" unless only the validating rules catch it.
Refusals are asked with `--dry-run=server` (admission runs, nothing is stored) and repeated until
the webhook's caches have seen what the test just created; an object wrongly allowed changes
nothing, and the test fails with kubectl's output.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.admission import (
    NETWORKS,
    SOCKET,
    Kubectl,
    ippool,
    nad,
    pod,
    subnet,
    template,
    workload,
)
from tests.e2e.admission import until as _until
from tests.fixtures.webhook import WebhookServer
from webhook.cluster import objects

VALIDATE = "validate.multinic-ipam.io"
MUTATE = "mutate.multinic-ipam.io"
EITHER = (MUTATE, VALIDATE)  # a pod CREATE meets the mutating webhook first; either may refuse it
CIDR = "10.77.0.0/24"


# -- kubectl ----------------------------------------------------------------------------------------


def denied(
    kubectl: Kubectl,
    argv: list[str],
    webhooks: str | tuple[str, ...],
    expected: str,
    manifest: str | None = None,
) -> str:
    """Run kubectl until one of `webhooks` denies with `expected` in the sentence kubectl prints after
    `admission webhook "…" denied the request: `; return kubectl's stderr."""
    names = (webhooks,) if isinstance(webhooks, str) else webhooks
    prefixes = [f'admission webhook "{name}" denied the request: ' for name in names]

    def done(result: subprocess.CompletedProcess[str]) -> bool:
        sentences = [result.stderr.partition(p)[2] for p in prefixes if p in result.stderr]
        return result.returncode != 0 and any(expected in sentence for sentence in sentences)

    run = lambda: kubectl(*argv, input=manifest, check=False)  # noqa: E731
    return _until(run, done, f"{' or '.join(names)} refusing with {expected!r}").stderr


def refused(kubectl: Kubectl, obj: dict[str, Any], webhook: str | tuple[str, ...], expected: str) -> str:
    """`kubectl apply --dry-run=server` of `obj` until `webhook` refuses it with `expected`."""
    return denied(kubectl, ["apply", "--dry-run=server", "-f", "-"], webhook, expected, json.dumps(obj))


def allowed(
    kubectl: Kubectl, obj: dict[str, Any], *, dry_run: bool = True
) -> subprocess.CompletedProcess[str]:
    """`kubectl apply` of `obj` until it succeeds (the caches may lag a moment)."""
    flags = ["--dry-run=server"] if dry_run else []
    return _until(
        lambda: kubectl("apply", *flags, "-f", "-", input=json.dumps(obj), check=False),
        lambda r: r.returncode == 0,
        f"apply of {obj['kind']} {obj['metadata']['name']}",
    )


# -- objects ----------------------------------------------------------------------------------------


def macvlan(provider: str | None, **ipam: Any) -> dict[str, Any]:
    """An IPAM-only kube-ovn NAD config (`ipam.type: kube-ovn` under macvlan)."""
    section = {"type": "kube-ovn", "server_socket": SOCKET, **ipam}
    if provider is not None:
        section["provider"] = provider
    return {"cniVersion": "0.3.0", "type": "macvlan", "master": "eth0", "mode": "bridge", "ipam": section}


def kube_ovn_type(provider: str, **extra: Any) -> dict[str, Any]:
    """A kube-ovn type NAD config (the NIC itself is kube-ovn's)."""
    return {"cniVersion": "0.3.0", "type": "kube-ovn", "server_socket": SOCKET, "provider": provider, **extra}












# -- NetworkAttachmentDefinitions ------------------------------------------------------------------
def test_nad_provider_forms_empty_spec_json_position_and_socket(
    webhook_server: WebhookServer, kubectl: Kubectl, namespace: str
) -> None:
    ns = namespace
    refused(
        kubectl,
        nad("mv", ns, macvlan(None)),
        VALIDATE,
        f"NetworkAttachmentDefinition {ns}/mv sets ipam.type kube-ovn but its ipam has no provider; "
        f'add "provider": "mv.{ns}"',
    )
    refused(
        kubectl,
        nad("mv", ns, macvlan(f"mv.{ns}.ovn")),
        VALIDATE,
        f'NetworkAttachmentDefinition {ns}/mv has provider "mv.{ns}.ovn" in its ipam, but provider must be '
        f'"mv.{ns}" (<nad>.<namespace>)',
    )
    refused(
        kubectl,
        nad("an", ns, kube_ovn_type(f"an.{ns}")),
        VALIDATE,
        f'NetworkAttachmentDefinition {ns}/an has provider "an.{ns}" in its config, but provider must be '
        f'"an.{ns}.ovn" (<nad>.<namespace>.ovn)',
    )
    refused(
        kubectl,
        nad("an", ns, kube_ovn_type(f"an.{ns}.ovn", server_socket="kube-ovn-daemon.sock")),
        VALIDATE,
        f'NetworkAttachmentDefinition {ns}/an has server_socket "kube-ovn-daemon.sock" in its config, which '
        f"is not an absolute path; write e.g. {SOCKET}",
    )
    stderr = refused(
        kubectl,
        nad("empty", ns, None),
        VALIDATE,
        f"NetworkAttachmentDefinition {ns}/empty has no spec.config",
    )
    assert "the provider cannot be read centrally" in stderr and f'"provider": "empty.{ns}"' in stderr
    refused(
        kubectl,
        nad("cut", ns, '{"cniVersion": "0.3.0", "type": "macvlan"'),
        VALIDATE,
        f"spec.config of NetworkAttachmentDefinition {ns}/cut is not valid JSON (Expecting ',' delimiter at "
        "line 1 column 42 (char 41))",
    )
    # the good twins
    for good in (nad("mv", ns, macvlan(f"mv.{ns}")), nad("an", ns, kube_ovn_type(f"an.{ns}.ovn"))):
        assert "(server dry run)" in allowed(kubectl, good).stdout
    assert (
        kubectl("get", "network-attachment-definitions.k8s.cni.cncf.io", "-n", ns, "-o", "name").stdout == ""
    )


def test_nad_configs_the_plugin_would_refuse_at_sandbox_creation(
    webhook_server: WebhookServer, kubectl: Kubectl, namespace: str
) -> None:
    ns = namespace
    supported = "write one of 0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0"
    refused(
        kubectl,
        nad("mv", ns, {**macvlan(f"mv.{ns}"), "cniVersion": "9.9.9"}),
        VALIDATE,
        f'spec.config of NetworkAttachmentDefinition {ns}/mv has cniVersion "9.9.9", which the kube-ovn '
        f"plugin does not support; {supported}",
    )
    conflist = {"cniVersion": "0.1.0", "name": "an",
                "plugins": [{k: v for k, v in kube_ovn_type(f"an.{ns}.ovn").items() if k != "cniVersion"}]}
    refused(
        kubectl,
        nad("an", ns, conflist),
        VALIDATE,
        f'spec.config of NetworkAttachmentDefinition {ns}/an has cniVersion "0.1.0", which the kube-ovn '
        f"plugin does not support; {supported}",
    )
    refused(
        kubectl,
        nad("an", ns, kube_ovn_type(f"an.{ns}.ovn", mtu=9)),
        VALIDATE,
        f"NetworkAttachmentDefinition {ns}/an has mtu 9 in its config, which the kube-ovn plugin refuses; "
        "write an integer from 68 to 65535 or leave it out",
    )
    # the good twins
    good_twins = ({**conflist, "cniVersion": "1.1.0"}, kube_ovn_type(f"an.{ns}.ovn", mtu=1400))
    for good in good_twins:
        assert "(server dry run)" in allowed(kubectl, nad("an", ns, good)).stdout


# -- Subnet specs ------------------------------------------------------------------------------------
BAD_SUBNETS = [
    (
        "slash-32",
        {"cidrBlock": "10.78.0.5/32"},
        "cidrBlock entry 10.78.0.5/32 of subnet {name} is a single "
        "address with nothing to hand out; use a /31 or shorter prefix",
    ),
    (
        "slash-128",
        {"cidrBlock": "fd00:78::5/128"},
        "cidrBlock entry fd00:78::5/128 of subnet {name} is a "
        "single address with nothing to hand out; use a /127 or shorter prefix",
    ),
    (
        "multicast",
        {"cidrBlock": "224.0.0.0/24"},
        "cidrBlock entry 224.0.0.0/24 of subnet {name} overlaps "
        "the multicast block 224.0.0.0/4; choose a unicast range such as 172.17.0.0/16",
    ),
    ("loopback", {"cidrBlock": "127.0.0.0/24"}, "overlaps the loopback block 127.0.0.0/8"),
    ("link-local", {"cidrBlock": "169.254.0.0/24"}, "overlaps the link-local block 169.254.0.0/16"),
    ("zero", {"cidrBlock": "0.0.0.0/24"}, "overlaps the unspecified block 0.0.0.0/8"),
    (
        "v6-link-local",
        {"cidrBlock": "fe80::/64"},
        "cidrBlock entry fe80::/64 of subnet {name} overlaps the "
        "link-local block fe80::/10; choose a unicast range such as fd00:10::/64",
    ),
    ("v6-multicast", {"cidrBlock": "ff00::/64"}, "overlaps the multicast block ff00::/8"),
    (
        "two-v4",
        {"cidrBlock": "10.78.0.0/24,10.79.0.0/24"},
        "cidrBlock 10.78.0.0/24,10.79.0.0/24 of subnet {name} has two IPv4 blocks",
    ),
    (
        "protocol",
        {"cidrBlock": "10.78.0.0/24", "protocol": "IPv6"},
        "protocol IPv6 of subnet {name} does "
        "not match cidrBlock 10.78.0.0/24, which is IPv4; set protocol to IPv4 or omit it",
    ),
    (
        "gateway-network",
        {"cidrBlock": "10.78.0.0/24", "gateway": "10.78.0.0"},
        "gateway 10.78.0.0 of subnet "
        "{name} is the network address of 10.78.0.0/24; choose one from 10.78.0.1 to 10.78.0.254",
    ),
    (
        "gateway-broadcast",
        {"cidrBlock": "10.78.0.0/24", "gateway": "10.78.0.255"},
        "gateway 10.78.0.255 of subnet {name} is the broadcast address of 10.78.0.0/24",
    ),
    (
        "exclude-malformed",
        {"cidrBlock": "10.78.0.0/24", "excludeIps": ["10.78.0.x"]},
        "excludeIps entry '10.78.0.x' of subnet {name} is not an IP address",
    ),
    (
        "exclude-reversed",
        {"cidrBlock": "10.78.0.0/24", "excludeIps": ["10.78.0.20..10.78.0.10"]},
        "excludeIps entry 10.78.0.20..10.78.0.10 of subnet {name} runs backwards; write the lower address "
        "first: 10.78.0.10..10.78.0.20",
    ),
    (
        "exclude-outside",
        {"cidrBlock": "10.78.0.0/24", "excludeIps": ["10.79.0.1..10.79.0.5"]},
        "excludeIps entry 10.79.0.1..10.79.0.5 of subnet {name} is not inside cidrBlock 10.78.0.0/24",
    ),
    (
        "exclude-mixed",
        {"cidrBlock": "10.78.0.0/24,fd00:78::/64", "excludeIps": ["10.78.0.1..fd00:78::5"]},
        "excludeIps entry 10.78.0.1..fd00:78::5 of subnet {name} mixes IPv4 and IPv6",
    ),
    (
        "provider-case",
        {"cidrBlock": "10.78.0.0/24", "provider": "Macvlan.default"},
        "provider "
        '"Macvlan.default" of Subnet {name} is not ovn, <nad>.<namespace> or <nad>.<namespace>.ovn '
        "(lower-case DNS-1123 labels)",
    ),
    (
        "provider-suffix",
        {"cidrBlock": "10.78.0.0/24", "provider": "macvlan.default.vlan"},
        'provider "macvlan.default.vlan" of Subnet {name} is not ovn',
    ),
]


@pytest.mark.parametrize(
    ("spec", "expected"), [case[1:] for case in BAD_SUBNETS], ids=[case[0] for case in BAD_SUBNETS]
)
def test_subnet_spec_bad_twin_is_refused(
    webhook_server: WebhookServer, kubectl: Kubectl, spec: dict[str, Any], expected: str
) -> None:
    name = "rules-bad"
    refused(
        kubectl, subnet(name, **{"provider": "rules.default", **spec}), VALIDATE, expected.format(name=name)
    )
    assert kubectl("get", "subnets.kubeovn.io", name, check=False).returncode != 0


def test_subnet_good_twins_and_ovn_only_fields_warn(webhook_server: WebhookServer, kubectl: Kubectl) -> None:
    name = "rules-good"
    for spec in (
        {"cidrBlock": "10.78.0.0/31"},
        {"cidrBlock": "fd00:78::/64", "protocol": "IPv6"},
        {"cidrBlock": "10.78.0.0/24,fd00:78::/64", "excludeIps": ["10.78.0.10..10.78.0.20", "fd00:78::5"]},
        {"cidrBlock": "10.78.0.0/24", "provider": "macvlan.default.ovn"},
    ):
        result = allowed(kubectl, subnet(name, **{"provider": "rules.default", **spec}))
        assert "(server dry run)" in result.stdout, spec
    warned = allowed(
        kubectl,
        subnet(
            name,
            provider="rules.default",
            cidrBlock="10.78.0.0/24",
            gateway="10.78.0.1",
            private=True,
            natOutgoing=True,
        ),
    )
    assert (
        f"Warning: Subnet {name} sets gateway, private, natOutgoing, which the guide says are only valid for "
        "provider ovn; with provider rules.default, the gateway is only kept out of allocation and reported "
        "to the CNI plugin and private and natOutgoing have no effect"
    ) in warned.stderr


# -- an attachment network for pod, pool and workload rules ----------------------------------------
class Net:
    """NADs `e2e` (with Subnet `rules-<ns>`) and `lonely` (no Subnet) in the test namespace, plus a
    Subnet of another provider and a provider-ovn Subnet reserved for another namespace."""

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self.provider = f"e2e.{namespace}"
        self.subnet = f"rules-{namespace}"
        self.foreign = f"{self.subnet}-other"
        self.reserved = f"{self.subnet}-reserved"
        self.pool = f"{self.subnet}-pool"

    def key(self, field: str) -> str:
        return f"{self.provider}.kubernetes.io/{field}"

    def on(self, **fields: str) -> dict[str, str]:
        """Annotations attaching `e2e`, with `<provider>.kubernetes.io/<field>` inputs."""
        return {NETWORKS: "e2e", **{self.key(field): value for field, value in fields.items()}}


@pytest.fixture
def net(webhook_server: WebhookServer, kubectl: Kubectl, namespace: str) -> Iterator[Net]:
    net = Net(namespace)
    allowed(kubectl, nad("e2e", namespace, macvlan(net.provider)), dry_run=False)
    allowed(kubectl, nad("lonely", namespace, macvlan(f"lonely.{namespace}")), dry_run=False)
    allowed(
        kubectl, subnet(net.subnet, provider=net.provider, cidrBlock=CIDR, gateway="10.77.0.1"), dry_run=False
    )
    allowed(
        kubectl, subnet(net.foreign, provider=f"other.{namespace}", cidrBlock="10.66.0.0/24"), dry_run=False
    )
    allowed(
        kubectl,
        subnet(net.reserved, provider="ovn", cidrBlock="10.67.0.0/24", namespaces=["elsewhere"]),
        dry_run=False,
    )
    allowed(kubectl, ippool(net.pool, net.subnet, ["10.77.0.100", "10.77.0.101"]), dry_run=False)
    try:
        yield net
    finally:
        kubectl(
            "delete",
            "pods,deployments,replicasets,jobs",
            "--all",
            "-n",
            namespace,
            "--grace-period=0",
            "--force",
            check=False,
        )
        kubectl("delete", "ips.kubeovn.io", "-l", f"{objects.LABEL_SUBNET}={net.subnet}", check=False)
        kubectl("delete", "ippools.kubeovn.io", net.pool, "--ignore-not-found", check=False)
        kubectl(
            "delete",
            "subnets.kubeovn.io",
            net.subnet,
            net.foreign,
            net.reserved,
            "--ignore-not-found",
            check=False,
        )


def test_pod_create_bad_twins(net: Net, kubectl: Kubectl) -> None:
    ns, sn = net.namespace, net.subnet
    assert "(server dry run)" in allowed(kubectl, pod("good", ns, net.on())).stdout  # caches are warm
    cases: list[tuple[dict[str, str], str]] = [
        ({NETWORKS: "e2e,"}, f"item 2 of {NETWORKS} is empty; remove the extra comma"),
        (
            {NETWORKS: '[{"name": 5}]'},
            f'item 1 of {NETWORKS}, {{"name": 5}}, has name 5, which is not a string',
        ),
        (
            {NETWORKS: "nosuch"},
            f"NetworkAttachmentDefinition {ns}/nosuch, named in {NETWORKS}, does not exist",
        ),
        (
            {NETWORKS: "lonely"},
            f"no Subnet has provider lonely.{ns}, which NetworkAttachmentDefinition "
            f"{ns}/lonely uses; create one with spec.provider: lonely.{ns}",
        ),
        (net.on(ip_address="10.76.0.5"), f"10.76.0.5 is outside subnet {sn} ({CIDR})"),
        (net.on(ip_address="10.77.0.1"), f"10.77.0.1 is the gateway of subnet {sn}"),
        (net.on(ip_address="10.77.0.255"), f"10.77.0.255 is the broadcast address of subnet {sn}"),
        (net.on(ip_address="10.77.0.x"), f"fixed address '10.77.0.x' for subnet {sn} is not an IP address"),
        (
            net.on(mac_address="zz:00:00:53:6b:bb"),
            "'zz:00:00:53:6b:bb' is not a MAC address; write six hex pairs",
        ),
        (net.on(mac_address="01:00:5e:00:00:01"), "01:00:5e:00:00:01 is a multicast MAC address"),
        (net.on(ip_pool="10.77.0.x,10.77.0.5"), "ip_pool entry '10.77.0.x' is not an IP address"),
        (
            net.on(ip_pool="10.77.0.1,10.76.0.5"),
            f"{net.key('ip_pool')} is not usable: no entry of ip_pool 10.77.0.1,10.76.0.5 can be handed out: "
            f"10.77.0.1 is the gateway of subnet {sn}; list usable addresses of the subnet",
        ),
        (net.on(ip_pool="nosuch-pool"), "IPPool nosuch-pool, named by "),
        (
            net.on(routes="not-json"),
            f'{net.key("routes")} is not usable: the routes annotation "not-json" is '
            "not JSON (Expecting value at line 1 column 1 (char 0))",
        ),
        (
            net.on(routes=json.dumps([{"dst": "300.0.0.0/8", "gw": "10.77.0.254"}])),
            'has dst "300.0.0.0/8", which is not a CIDR',
        ),
        (
            net.on(logical_switch="nosuch"),
            f'Subnet "nosuch", named by {net.key("logical_switch")}, does not exist',
        ),
        (
            net.on(logical_switch=net.foreign),
            f"Subnet {net.foreign}, named by {net.key('logical_switch')}, has "
            f"provider other.{ns}; name a Subnet with provider {net.provider} or ovn",
        ),
        (
            net.on(logical_switch=net.reserved),
            f"Subnet {net.reserved}, named by {net.key('logical_switch')}, "
            f"is reserved for namespaces elsewhere; use another Subnet or add {ns} to its spec.namespaces",
        ),
        (
            {NETWORKS: json.dumps([{"name": "e2e", "ips": ["10.77.0.5/16"]}])},
            f"ips entry 10.77.0.5/16 has prefix /16 but subnet {sn} is a /24; write 10.77.0.5/24",
        ),
        (
            {NETWORKS: json.dumps([{"name": "e2e", "ips": ["10.76.0.5/24"]}])},
            f"10.76.0.5 is outside subnet {sn}",
        ),
    ]
    for notes, expected in cases:
        refused(kubectl, pod("bad", ns, notes), EITHER, expected)
    assert "(server dry run)" in allowed(kubectl, pod("good", ns, net.on(ip_pool=net.pool))).stdout


def test_ippool_entry_and_name_bad_twins(net: Net, kubectl: Kubectl) -> None:
    other = f"{net.subnet}-b"
    refused(
        kubectl,
        ippool(other, net.subnet, ["10.77.0.x"]),
        VALIDATE,
        f'spec.ips entry "10.77.0.x" of IPPool {other} is not a usable IP, CIDR or a..b range',
    )
    refused(
        kubectl,
        ippool(other, net.subnet, ["10.77.0.130..10.77.0.120"]),
        VALIDATE,
        "(it starts after it ends, 10.77.0.130 > 10.77.0.120)",
    )
    refused(
        kubectl,
        ippool("10.77.0.9", net.subnet, ["10.77.0.9"]),
        VALIDATE,
        'IPPool name "10.77.0.9" is an IP address',
    )
    assert (
        "(server dry run)" in allowed(kubectl, ippool(other, net.subnet, ["10.77.0.120..10.77.0.130"])).stdout
    )


def test_held_address_and_mac_name_the_holder_and_allocation_is_frozen(net: Net, kubectl: Kubectl) -> None:
    ns = net.namespace
    holder = pod("holder", ns, net.on(ip_address="10.77.0.50", mac_address="02:00:00:00:00:50"))
    allowed(kubectl, holder, dry_run=False)
    refused(
        kubectl,
        pod("second", ns, net.on(ip_address="10.77.0.50")),
        MUTATE,
        f"10.77.0.50 is held by pod {ns}/holder",
    )
    refused(kubectl, pod("second", ns, net.on(mac_address="02:00:00:00:00:50")), MUTATE, f"pod {ns}/holder")
    # a workload's template is checked too: its pods could never get the held address
    refused(
        kubectl,
        workload(
            "Deployment",
            "taker",
            ns,
            net.on(ip_address="10.77.0.50"),
            replicas=1,
            strategy={"type": "Recreate"},
        ),
        VALIDATE,
        f"10.77.0.50 is held by pod {ns}/holder",
    )
    annotate = ["annotate", "pod", "holder", "-n", ns, "--overwrite", "--dry-run=server"]
    stderr = denied(
        kubectl,
        [*annotate, f"{NETWORKS}=lonely"],
        VALIDATE,
        f"annotation {NETWORKS} decides the pod's addresses and cannot change after creation",
    )
    assert '(was "e2e", now "lonely")' in stderr
    denied(
        kubectl,
        [*annotate, f"{net.key('mac_address')}=02:00:00:00:00:51"],
        VALIDATE,
        f"annotation {net.key('mac_address')} decides the pod's addresses",
    )
    stderr = denied(
        kubectl,
        [*annotate, f"{net.key('allocated')}-"],
        VALIDATE,
        f"annotation {net.key('allocated')} decides the pod's addresses",
    )
    assert '(was "true", now removed)' in stderr
    # other annotations stay free to change
    free = kubectl(*annotate, "note=anything", check=False)
    assert free.returncode == 0, free.stderr


# -- workloads --------------------------------------------------------------------------------------
def test_workload_bad_twins_and_warnings(net: Net, kubectl: Kubectl) -> None:
    ns = net.namespace
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "fixed", "namespace": ns},
        "spec": {
            "parallelism": 2,
            "template": template("fixed", net.on(ip_address="10.77.0.60"), restartPolicy="Never"),
        },
    }
    refused(
        kubectl,
        job,
        VALIDATE,
        f"Job {ns}/fixed has 2 replicas but fixes {net.key('ip_address')} to 10.77.0.60, which only one pod "
        f"can hold; use {net.key('ip_pool')} with at least 2 addresses, or one replica",
    )
    refused(
        kubectl,
        workload("Deployment", "routed", ns, net.on(routes="not-json")),
        VALIDATE,
        f'{net.key("routes")} is not usable: the routes annotation "not-json" is not JSON',
    )
    pooled = allowed(kubectl, workload("ReplicaSet", "pooled", ns, net.on(ip_pool=net.pool), replicas=3))
    assert (
        f"Warning: ReplicaSet {ns}/pooled has 3 replicas but {net.key('ip_pool')} has only 2 addresses, so 1 "
        "pod(s) will wait for a free one"
    ) in pooled.stderr
    rolling = allowed(kubectl, workload("Deployment", "single", ns, net.on(ip_address="10.77.0.60")))
    assert (
        f"Warning: Deployment {ns}/single fixes {net.key('ip_address')} with the RollingUpdate strategy"
        in rolling.stderr
    )
    job["spec"]["parallelism"] = 1
    assert "(server dry run)" in allowed(kubectl, job).stdout
