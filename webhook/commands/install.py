"""`multinic-ipam install`: apply the CRDs and both webhook configurations, idempotently."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "install",
        help="apply the CRDs and the validating and mutating webhook configurations",
        description=(
            "Create or update the kubeovn.io CRDs (subnets, ips, ippools), Multus's "
            "NetworkAttachmentDefinition CRD when the cluster has none, and the Validating- and "
            "MutatingWebhookConfiguration `multinic-ipam` with the caBundle from --cert-dir. Running it "
            "again changes nothing and says so; run it again after renewing the CA. kube-system and "
            "the webhook's own namespace are excluded (labelled multinic-ipam.io/webhook=ignore); "
            "on API servers 1.28 and later only pods carrying Multus or multinic annotations reach "
            "the webhooks."
        ),
    )
    parser.add_argument(
        "--kubeconfig",
        type=Path,
        help="kubeconfig of a cluster admin (default: $KUBECONFIG or ~/.kube/config, then in-cluster)",
    )
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument(
        "--url",
        metavar="https://HOST:PORT",
        help="the API server calls the webhook at this base address (+/validate, +/mutate); "
        "for a webhook running outside the cluster, as `dev up` does",
    )
    where.add_argument(
        "--service",
        metavar="NAMESPACE/NAME",
        help="the API server calls the webhook through this Service on port 443; its namespace "
        "is excluded from admission so the webhook never guards its own pods",
    )
    parser.add_argument(
        "--cert-dir",
        required=True,
        type=Path,
        help="folder whose ca.crt (from `multinic-ipam certs`) becomes the webhooks' caBundle",
    )
    parser.add_argument(
        "--all-pods",
        action="store_true",
        help="send every pod to the webhooks, not only pods carrying Multus or multinic annotations "
        "(API servers 1.28+ filter with matchConditions otherwise); needed when a Subnet with "
        "provider ovn and default: true gives unannotated pods their primary address",
    )
    parser.set_defaults(func=run)


def _api_client(kubeconfig: Path | None) -> Any:
    """The cluster the operator commands reach: --kubeconfig, $KUBECONFIG, ~/.kube/config, in-cluster."""
    from webhook.operator import ops

    return ops.connect(ops.kubeconfig_path(str(kubeconfig) if kubeconfig is not None else None))


def run(args: argparse.Namespace) -> int:
    from webhook.operator import configurations, install, ops

    try:
        target = configurations.Target.parse(url=args.url, service=args.service)
        configurations.read_ca_bundle(args.cert_dir)
        api = _api_client(args.kubeconfig)
    except (configurations.InstallError, ops.OpsError) as error:
        print(f"multinic-ipam install: {error}", file=sys.stderr)
        return 2
    try:
        print(configurations.describe_scope(install.server_version(api), target, all_pods=args.all_pods))
        changes = install.install(api, target=target, cert_dir=args.cert_dir, all_pods=args.all_pods)
    except configurations.InstallError as error:
        print(f"multinic-ipam install: {error}", file=sys.stderr)
        return 1
    finally:
        api.close()
    for change in changes:
        print(change)
    if all(change.action == "unchanged" for change in changes):
        print("nothing to change: already installed")
    return 0
