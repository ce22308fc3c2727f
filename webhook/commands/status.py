"""`multinic-ipam status` (also `kubectl ipam status`): every Subnet's usage per family and its pools."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def add_connection_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--kubeconfig", default=None,
        help="kubeconfig file (default: $KUBECONFIG, then ~/.kube/config, then the in-cluster account)",
    )


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "status",
        help="show every Subnet: CIDR, provider, used and available addresses per family, pools",
        description=(
            "One row per Subnet with its CIDR, provider and protocol, the addresses used and available "
            "per family (from the IP objects, computed as the webhook computes them) and its IPPools "
            "with their sizes. A Subnet whose spec cannot be used says why."
        ),
    )
    add_connection_flags(parser)
    parser.add_argument("-o", "--output", choices=("table", "json"), default="table", help="output format")
    parser.set_defaults(func=run)


def _family(usage: Any) -> tuple[str, str]:
    return ("-", "-") if usage is None else (str(usage.used), str(usage.available))


def run(args: argparse.Namespace) -> int:
    from webhook.operator import ops

    try:
        api_client = ops.connect(ops.kubeconfig_path(args.kubeconfig))
        try:
            rows = ops.subnet_usage(ops.load(api_client, ops.STATUS_KINDS))
        finally:
            api_client.close()
    except ops.OpsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if args.output == "json":
        print(json.dumps([row.as_dict() for row in rows], indent=2))
        return 0
    if not rows:
        print("No Subnets. Create one, e.g. kubectl apply -f manifests/examples/subnet-macvlan.yaml")
        return 0
    header = ("SUBNET", "PROVIDER", "CIDR", "V4 USED", "V4 AVAILABLE", "V6 USED", "V6 AVAILABLE", "POOLS")
    body = []
    for row in rows:
        v4_used, v4_free = _family(row.v4)
        v6_used, v6_free = _family(row.v6)
        pools = ",".join(row.pools) or "-"
        if row.problem:
            pools += f"  (unusable: {row.problem})"
        body.append((row.name, row.provider, row.cidr, v4_used, v4_free, v6_used, v6_free, pools))
    print(ops.table(header, body))
    return 0
