"""`multinic-ipam check`: prove that nothing is held twice, leaked, or missing its IP object."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from webhook.commands.status import add_connection_flags

EXIT_VIOLATIONS = 1
EXIT_CANNOT_CHECK = 2


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "check",
        help="verify the invariants: no address twice, no leaked IP object, status = IP objects",
        description=(
            "Lists pods, IP objects, Subnets, IPPools and StatefulSets once and verifies: no address "
            "is held by two IP objects or written into two live pods' annotations; every IP object "
            "belongs to a live pod, a StatefulSet slot or a reservation inside its grace period (the "
            "rule the webhook's leader releases by); every allocated pod annotation has its IP "
            "object; every Subnet's status counters equal its IP objects. Each violation is printed "
            "as one sentence naming the objects. The lists are read one after another: run it while "
            "pods are not being created or deleted, or run it again. Exit status: 0 when every "
            f"invariant holds, {EXIT_VIOLATIONS} with violations, {EXIT_CANNOT_CHECK} when the "
            "cluster could not be read."
        ),
    )
    add_connection_flags(parser)
    parser.add_argument("--subnet", action="append", default=[], metavar="NAME",
                        help="check only this Subnet's addresses, IP objects and status (repeatable)")
    parser.add_argument("-o", "--output", choices=("text", "json"), default="text", help="output format")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from webhook import ops

    try:
        api_client = ops.connect(ops.kubeconfig_path(args.kubeconfig))
        try:
            result = ops.check(ops.load(api_client), subnets=args.subnet)
        finally:
            api_client.close()
    except ops.OpsError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_CANNOT_CHECK
    if args.output == "json":
        print(json.dumps(result.as_dict(), indent=2))
    else:
        for violation in result.violations:
            print(violation.message)
        looked = result.counts
        summary = (f"{looked['ips']} IP objects, {looked['pods']} pods, {looked['subnets']} Subnets, "
                   f"{looked['ippools']} IPPools checked")
        if result.violations:
            print(f"\n{len(result.violations)} violation(s); {summary}.")
        else:
            print(f"OK: {summary}; no address held twice, nothing leaked, every Subnet status current.")
    return EXIT_VIOLATIONS if result.violations else 0
