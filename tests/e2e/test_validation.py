"""`kubectl apply` against the real control plane with the webhooks installed: every NAD and Subnet
of the guide goes through (its pods and workloads too, as server-side dry runs), and a bad twin of
each validating rule is refused with the sentence kubectl prints.

Refusals are asked with `--dry-run=server` (admission runs, nothing is stored), repeated until the
webhook's informers have seen what the test just created; an object wrongly allowed therefore
changes nothing and the test fails with kubectl's output.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.admission import (
    DEFAULT_NETWORK,
    NETWORKS,
    SOCKET,
    Kubectl,
    ippool,
    nad,
    pod,
    subnet,
    workload,
)
from tests.e2e.admission import until as _until
from tests.fixtures.webhook import WebhookServer
from webhook.cluster import objects

EXAMPLES = Path(__file__).resolve().parents[2] / "manifests" / "examples"
DENIED = 'admission webhook "validate.multinic-ipam.io" denied the request: '
MUTATE_DENIED = 'admission webhook "mutate.multinic-ipam.io" denied the request: '


# -- helpers ---------------------------------------------------------------------------------------
def _manifest(obj: dict[str, Any] | str) -> str:
    return obj if isinstance(obj, str) else json.dumps(obj)




def refused(kubectl: Kubectl, obj: dict[str, Any] | str, expected: str, *args: str, by: str = DENIED) -> str:
    """`kubectl apply --dry-run=server` until our validating webhook (or `by`) refuses with `expected`."""
    result = _until(
        lambda: kubectl("apply", "--dry-run=server", *args, "-f", "-", input=_manifest(obj), check=False),
        lambda r: r.returncode != 0 and by in r.stderr and expected in r.stderr,
        f"refusal containing {expected!r}",
    )
    return result.stderr


def refused_command(kubectl: Kubectl, argv: list[str], expected: str) -> str:
    """Any kubectl command (delete, annotate …, with --dry-run=server) until refused with `expected`."""
    result = _until(
        lambda: kubectl(*argv, check=False),
        lambda r: r.returncode != 0 and DENIED in r.stderr and expected in r.stderr,
        f"refusal containing {expected!r}",
    )
    return result.stderr


def allowed(
    kubectl: Kubectl, obj: dict[str, Any] | str | Path, *, dry_run: bool = False, timeout: float = 30.0
) -> subprocess.CompletedProcess[str]:
    """`kubectl apply` (a file or a manifest) until it succeeds; the caches may lag a moment."""
    flags = ["--dry-run=server"] if dry_run else []
    if isinstance(obj, Path):

        def attempt() -> subprocess.CompletedProcess[str]:
            return kubectl("apply", *flags, "-f", str(obj), check=False)
    else:

        def attempt() -> subprocess.CompletedProcess[str]:
            return kubectl("apply", *flags, "-f", "-", input=_manifest(obj), check=False)

    return _until(attempt, lambda r: r.returncode == 0, f"apply of {obj}", timeout)




def macvlan_config(provider: str, **ipam: Any) -> dict[str, Any]:
    return {
        "cniVersion": "0.3.0",
        "type": "macvlan",
        "master": "eth0",
        "mode": "bridge",
        "ipam": {"type": "kube-ovn", "server_socket": SOCKET, "provider": provider, **ipam},
    }










# -- the guide, verbatim ---------------------------------------------------------------------------
def _clean_guide(kubectl: Kubectl) -> None:
    """Leave no guide object behind (the names are shared with other end-to-end modules)."""
    kubectl("delete", "deployments", "--all", "-n", "default", "--wait=false", check=False)
    kubectl("delete", "pods", "--all", "-n", "default", "--grace-period=0", "--force", check=False)
    kubectl("delete", "ips.kubeovn.io", "-l", f"{objects.LABEL_SUBNET} in (macvlan,attachnet)", check=False)
    kubectl("delete", "subnets.kubeovn.io", "macvlan", "attachnet", "--ignore-not-found", check=False)
    kubectl(
        "delete",
        "network-attachment-definitions.k8s.cni.cncf.io",
        "macvlan",
        "attachnet",
        "macvlan-conf-2",
        "-n",
        "default",
        "--ignore-not-found",
        check=False,
    )


@pytest.fixture
def guide_names(webhook_server: WebhookServer, kubectl: Kubectl) -> Iterator[None]:
    _clean_guide(kubectl)
    try:
        yield
    finally:
        _clean_guide(kubectl)


def test_every_guide_nad_and_subnet_applies_and_its_pods_pass_admission(
    guide_names: None, kubectl: Kubectl
) -> None:
    created = allowed(kubectl, EXAMPLES / "nad-macvlan.yaml")
    assert "networkattachmentdefinition.k8s.cni.cncf.io/macvlan created" in created.stdout
    # Allowed with a warning: the guide says gateway is only valid for provider ovn.
    created = allowed(kubectl, EXAMPLES / "subnet-macvlan.yaml")
    assert "subnet.kubeovn.io/macvlan created" in created.stdout
    assert "Warning: Subnet macvlan sets gateway, which the guide says is only valid for provider ovn" in (
        created.stderr
    )
    allowed(kubectl, EXAMPLES / "nad-attachnet.yaml")
    allowed(kubectl, EXAMPLES / "subnet-attachnet.yaml")

    for name in (
        "pod-samplepod.yaml",
        "pod-static-ip.yaml",
        "deployment-static-workload.yaml",
        "pod-samplepod-route.yaml",
        "pod-samplepod-macvlan.yaml",
        "pod-samplepod-attachnet.yaml",
        "pod-custom-routes-attach.yaml",
        "deployment-custom-routes-attach.yaml",
    ):
        result = allowed(kubectl, EXAMPLES / name, dry_run=True)
        assert "(server dry run)" in result.stdout, name

    # The "Provider ovn" sections replace the Subnets of the same name; nothing is held, so the
    # provider may change.
    switched = allowed(kubectl, EXAMPLES / "subnet-macvlan-provider-ovn.yaml")
    assert "subnet.kubeovn.io/macvlan configured" in switched.stdout
    switched = allowed(kubectl, EXAMPLES / "subnet-attachnet-provider-ovn.yaml")
    assert "subnet.kubeovn.io/attachnet configured" in switched.stdout
    for name in ("pod-samplepod-logical-switch.yaml", "pod-samplepod-attachnet-logical-switch.yaml"):
        assert "(server dry run)" in allowed(kubectl, EXAMPLES / name, dry_run=True).stdout, name

    provider = kubectl("get", "subnets.kubeovn.io", "macvlan", "-o", "jsonpath={.spec.provider}").stdout
    assert provider == "ovn"


def test_guide_empty_spec_nad_is_refused(guide_names: None, kubectl: Kubectl) -> None:
    stderr = refused(
        kubectl,
        (EXAMPLES / "nad-empty-spec-refused.yaml").read_text(),
        "NetworkAttachmentDefinition default/macvlan-conf-2 has no spec.config",
    )
    assert "the provider cannot be read centrally" in stderr
    assert '"provider": "macvlan-conf-2.default"' in stderr
    gone = kubectl("get", "network-attachment-definitions.k8s.cni.cncf.io", "macvlan-conf-2", check=False)
    assert gone.returncode != 0


# -- NetworkAttachmentDefinitions ------------------------------------------------------------------
def test_nad_rules(webhook_server: WebhookServer, kubectl: Kubectl, namespace: str) -> None:
    ns = namespace
    stderr = refused(
        kubectl,
        nad("broken", ns, '{"cniVersion": "0.3.0", "type": "macvlan",}'),
        f"spec.config of NetworkAttachmentDefinition {ns}/broken is not valid JSON",
    )
    assert "line 1 column 43" in stderr
    refused(kubectl, nad("macvlan", ns, macvlan_config(f"macvlan.{ns}x")), f'provider must be "macvlan.{ns}"')
    no_provider = {"cniVersion": "0.3.0", "type": "kube-ovn", "server_socket": SOCKET}
    refused(kubectl, nad("attachnet", ns, no_provider), f'add "provider": "attachnet.{ns}.ovn"')
    refused(
        kubectl,
        nad("macvlan", ns, macvlan_config(f"macvlan.{ns}", server_socket="run/x.sock")),
        'server_socket "run/x.sock" in its ipam, which is not an absolute path',
    )
    # the good twins
    assert "created" in allowed(kubectl, nad("macvlan", ns, macvlan_config(f"macvlan.{ns}"))).stdout
    other_ipam = {
        "cniVersion": "0.3.1",
        "type": "bridge",
        "ipam": {"type": "host-local", "subnet": "10.9.0.0/24"},
    }
    assert "created" in allowed(kubectl, nad("bridge", ns, other_ipam)).stdout


# -- an attachment network of the test's own ------------------------------------------------------
class Net:
    """A NAD `e2e` in the test namespace and its Subnet `e2e-<ns>` (provider `e2e.<ns>`)."""

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self.provider = f"e2e.{namespace}"
        self.subnet = f"e2e-{namespace}"
        self.cidr = "10.77.0.0/24"

    def key(self, field: str) -> str:
        return f"{self.provider}.kubernetes.io/{field}"


@pytest.fixture
def net(webhook_server: WebhookServer, kubectl: Kubectl, namespace: str) -> Iterator[Net]:
    net = Net(namespace)
    allowed(kubectl, nad("e2e", namespace, macvlan_config(net.provider)))
    allowed(kubectl, subnet(net.subnet, provider=net.provider, cidrBlock=net.cidr, gateway="10.77.0.1"))
    try:
        yield net
    finally:
        kubectl(
            "delete", "pods,deployments,daemonsets", "--all", "-n", namespace, "--wait=false", check=False
        )
        kubectl("delete", "ips.kubeovn.io", "-l", f"{objects.LABEL_SUBNET}={net.subnet}", check=False)
        kubectl("delete", "ippools.kubeovn.io", f"{net.subnet}-a", "--ignore-not-found", check=False)
        kubectl(
            "delete", "subnets.kubeovn.io", net.subnet, f"{net.subnet}-ovn", "--ignore-not-found", check=False
        )


# -- Subnets ----------------------------------------------------------------------------------------
def test_subnet_rules(net: Net, kubectl: Kubectl) -> None:
    name = f"{net.subnet}-x"
    refused(
        kubectl,
        subnet(name, provider=net.provider, cidrBlock="10.78.0.1/24"),
        f"cidrBlock entry 10.78.0.1/24 of subnet {name} has host bits set; write 10.78.0.0/24",
    )
    refused(
        kubectl,
        subnet(name, provider="macvlan", cidrBlock="10.78.0.0/24"),
        f'provider "macvlan" of Subnet {name} is not ovn, <nad>.<namespace> or <nad>.<namespace>.ovn',
    )
    refused(
        kubectl,
        subnet(name, provider=net.provider, cidrBlock="10.78.0.0/24", gateway="10.79.0.1"),
        f"gateway 10.79.0.1 of subnet {name} is outside its block 10.78.0.0/24",
    )
    refused(
        kubectl,
        subnet(name, provider=net.provider, cidrBlock="10.77.0.128/25"),
        f"cidrBlock 10.77.0.128/25 of Subnet {name} overlaps 10.77.0.0/24 of Subnet {net.subnet}, which "
        f"has the same provider {net.provider}",
    )
    result = allowed(kubectl, subnet(name, provider=net.provider, cidrBlock="10.78.0.0/24"), dry_run=True)
    assert "(server dry run)" in result.stdout


def test_subnet_changes_that_strand_held_addresses_are_refused(net: Net, kubectl: Kubectl) -> None:
    holder = pod("holder", net.namespace, {NETWORKS: f"{net.namespace}/e2e"})
    allowed(kubectl, holder, dry_run=True)  # the caches know NAD and Subnet
    kubectl("apply", "-f", "-", input=json.dumps(holder))
    notes = json.loads(kubectl("get", "pod", "holder", "-n", net.namespace, "-o", "json").stdout)
    address = notes["metadata"]["annotations"][net.key("ip_address")]
    assert address.startswith("10.77.0.")
    who = f"1 held address, e.g. {address} held by pod {net.namespace}/holder"

    refused(
        kubectl,
        subnet(net.subnet, provider=net.provider, cidrBlock="10.80.0.0/24"),
        f"cidrBlock 10.80.0.0/24 of Subnet {net.subnet} would leave {who}, outside it",
    )
    refused(
        kubectl,
        subnet(net.subnet, provider="ovn", cidrBlock=net.cidr),
        f"Subnet {net.subnet} cannot change provider from {net.provider} to ovn while it has {who}",
    )
    refused(
        kubectl,
        subnet(net.subnet, provider=net.provider, cidrBlock=net.cidr, gateway=address),
        f"gateway {address} of Subnet {net.subnet} would be one of {who}",
    )
    refused(
        kubectl,
        subnet(net.subnet, provider=net.provider, cidrBlock=net.cidr, excludeIps=[address]),
        f"excludeIps of Subnet {net.subnet} would newly exclude {who}",
    )
    refused_command(
        kubectl,
        ["delete", "subnets.kubeovn.io", net.subnet, "--dry-run=server"],
        f"Subnet {net.subnet} still has {who}; delete those pods",
    )
    # The pod's allocation cannot be rewritten by a user afterwards.
    stderr = refused_command(
        kubectl,
        [
            "annotate",
            "pod",
            "holder",
            "-n",
            net.namespace,
            "--overwrite",
            "--dry-run=server",
            f"{net.key('ip_address')}=10.77.0.200",
        ],
        f"annotation {net.key('ip_address')} decides the pod's addresses and cannot change after creation",
    )
    assert f'(was "{address}", now "10.77.0.200")' in stderr
    # What does not touch held addresses still goes through.
    widened = allowed(
        kubectl,
        subnet(
            net.subnet, provider=net.provider, cidrBlock=net.cidr, excludeIps=["10.77.0.250..10.77.0.254"]
        ),
    )
    assert f"subnet.kubeovn.io/{net.subnet} configured" in widened.stdout


# -- IPPools ----------------------------------------------------------------------------------------
def test_ippool_rules(net: Net, kubectl: Kubectl) -> None:
    first = f"{net.subnet}-a"
    allowed(kubectl, ippool(first, net.subnet, ["10.77.0.100..10.77.0.110"]))
    other = f"{net.subnet}-b"
    refused(
        kubectl,
        ippool(other, f"{net.subnet}-none", ["10.77.0.120"]),
        f'IPPool {other} names Subnet "{net.subnet}-none" in spec.subnet, which does not exist',
    )
    refused(
        kubectl,
        ippool(other, net.subnet, ["10.77.1.5"]),
        f'spec.ips entry "10.77.1.5" of IPPool {other} reaches 10.77.1.5, outside Subnet {net.subnet} '
        f"({net.cidr})",
    )
    refused(
        kubectl,
        ippool(other, net.subnet, ["10.77.0.104/30"]),
        f"IPPool {other} shares 10.77.0.104 with IPPool {first} of Subnet {net.subnet}",
    )
    result = allowed(kubectl, ippool(other, net.subnet, ["10.77.0.120/30"]), dry_run=True)
    assert "(server dry run)" in result.stdout


# -- Pods: rules on what the annotations ask of the Subnet ------------------------------------------
def test_pod_rules(net: Net, kubectl: Kubectl) -> None:
    ns = net.namespace
    selection = [{"name": "e2e", "namespace": ns, "default-route": ["10.9.9.1"]}]
    refused(  # the mutating webhook refuses gateways outside before it locks an address
        kubectl,
        pod("route", ns, {NETWORKS: json.dumps(selection)}),
        f"default-route gateway 10.9.9.1 of {ns}/e2e in {NETWORKS} is outside Subnet {net.subnet} "
        f"({net.cidr}); use an address inside it, such as its gateway 10.77.0.1",
        by=MUTATE_DENIED,
    )
    routes = json.dumps([{"dst": "192.168.0.101/24", "gw": "10.9.9.254"}])
    refused(
        kubectl,
        pod("routes", ns, {NETWORKS: f"{ns}/e2e", net.key("routes"): routes}),
        f"the route to 192.168.0.0/24 in {net.key('routes')} goes via 10.9.9.254, outside Subnet "
        f"{net.subnet}",
        by=MUTATE_DENIED,
    )
    ovn = f"{net.subnet}-ovn"
    allowed(kubectl, subnet(ovn, provider="ovn", cidrBlock="10.81.0.0/24"))
    refused(  # the attachment resolver refuses it, so the mutating webhook, which runs first, does
        kubectl,
        pod("main", ns, {DEFAULT_NETWORK: f"{ns}/e2e", net.key("logical_switch"): ovn}),
        f"the main NIC from NetworkAttachmentDefinition {ns}/e2e cannot take its address from Subnet "
        f"{ovn}, whose provider is ovn (the guide: unsupported)",
        by=MUTATE_DENIED,
    )
    # the good twins: routes via a gateway inside the Subnet (dst with host bits, as in the guide),
    # and the same ovn Subnet for a second NIC
    good_routes = json.dumps([{"dst": "192.168.0.101/24", "gw": "10.77.0.254"}, {"gw": "10.77.0.254"}])
    for good in (
        pod("routes", ns, {NETWORKS: f"{ns}/e2e", net.key("routes"): good_routes}),
        pod("second", ns, {NETWORKS: f"{ns}/e2e", net.key("logical_switch"): ovn}),
    ):
        assert "(server dry run)" in allowed(kubectl, good, dry_run=True).stdout


# -- workloads ---------------------------------------------------------------------------------------
def test_workload_rules(net: Net, kubectl: Kubectl) -> None:
    ns = net.namespace
    fixed = {NETWORKS: f"{ns}/e2e", net.key("ip_address"): "10.77.0.50"}
    refused(
        kubectl,
        workload("Deployment", "fixed", ns, fixed, replicas=2),
        f"Deployment {ns}/fixed has 2 replicas but fixes {net.key('ip_address')} to 10.77.0.50, which "
        f"only one pod can hold; use {net.key('ip_pool')} with at least 2 addresses",
    )
    refused(
        kubectl,
        workload("DaemonSet", "fixed", ns, fixed),
        f"DaemonSet {ns}/fixed fixes {net.key('ip_address')} to 10.77.0.50, but a DaemonSet runs a pod on "
        "every node",
    )
    refused(
        kubectl,
        workload(
            "StatefulSet",
            "fixed",
            ns,
            {NETWORKS: f"{ns}/e2e", net.key("ip_address"): "10.76.0.5"},
            serviceName="fixed",
            replicas=1,
        ),
        f"{net.key('ip_address')} 10.76.0.5 is outside Subnet {net.subnet} ({net.cidr})",
    )
    pool = {NETWORKS: f"{ns}/e2e", net.key("ip_pool"): "10.77.0.60,10.77.0.61"}
    warned = allowed(kubectl, workload("Deployment", "pooled", ns, pool, replicas=3), dry_run=True)
    assert (
        f"Warning: Deployment {ns}/pooled has 3 replicas but {net.key('ip_pool')} has only 2 addresses"
        in warned.stderr
    )
    single = allowed(
        kubectl,
        workload("Deployment", "fixed", ns, fixed, replicas=1, strategy={"type": "Recreate"}),
        dry_run=True,
    )
    assert "(server dry run)" in single.stdout
