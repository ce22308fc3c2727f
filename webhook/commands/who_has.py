"""`multinic-ipam who-has IP`: which pod holds an address, through which provider, since when."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from webhook.commands.status import add_connection_flags


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "who-has",
        help="show the pod, provider and subnet holding an address, and since when",
        description=(
            "Looks the address up in every Subnet (IP objects are named after subnet and address). "
            "Exits 0 and prints the holder(s); exits 1 with a sentence when nobody holds it."
        ),
    )
    parser.add_argument("address", metavar="IP", help="an IPv4 or IPv6 address, e.g. 172.17.0.11")
    add_connection_flags(parser)
    parser.add_argument("-o", "--output", choices=("table", "json"), default="table", help="output format")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from webhook.operator import ops

    try:
        address = ops.parse_address(args.address)
    except ops.OpsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    try:
        api_client = ops.connect(ops.kubeconfig_path(args.kubeconfig))
        try:
            holdings, containing = ops.who_has(ops.load(api_client, ops.STATUS_KINDS), address)
        finally:
            api_client.close()
    except ops.OpsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if not holdings:
        if containing:
            where = ", ".join(containing)
            print(f"Nobody holds {address}; it is free in subnet {where}.", file=sys.stderr)
        else:
            print(f"Nobody holds {address}; no Subnet contains it.", file=sys.stderr)
        return 1
    if args.output == "json":
        print(json.dumps([h.as_dict() for h in holdings], indent=2))
        return 0
    header = ("ADDRESS", "POD", "PROVIDER", "SUBNET", "INTERFACE", "MAC", "SINCE", "IP OBJECT")
    rows = [
        (h.address, h.pod + ("" if h.bound else " (reserved, pod not bound yet)"), h.provider, h.subnet,
         h.interface or "-", h.mac or "-", f"{h.since} ({ops.age(h.since)})", h.ip_object)
        for h in holdings
    ]
    print(ops.table(header, rows))
    return 0
