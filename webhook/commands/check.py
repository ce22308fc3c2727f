"""`multinic-ipam check`: prove that nothing is held twice, leaked, or missing its IP object."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from webhook import settings
from webhook.commands.status import add_connection_flags

EXIT_VIOLATIONS = 1
EXIT_CANNOT_CHECK = 2
DEFAULT_CONFIRM = 5.0  # longer than the leader's pass interval, so a due release or bind is done


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
            "as one sentence naming the objects. The lists are read one after another, so a pod "
            "created or deleted meanwhile can look like a violation: whatever the first look finds "
            "is looked at again after --confirm seconds, and only what both looks find is reported. "
            "Exit status: 0 when every "
            f"invariant holds, {EXIT_VIOLATIONS} with violations, {EXIT_CANNOT_CHECK} when the "
            "cluster could not be read."
        ),
    )
    add_connection_flags(parser)
    settings.add_grace_flag(parser)
    parser.add_argument("--subnet", action="append", default=[], metavar="NAME",
                        help="check only this Subnet's addresses, IP objects and status (repeatable)")
    parser.add_argument("--confirm", type=float, default=DEFAULT_CONFIRM, metavar="SECONDS",
                        help="when violations are found, look again after this long and report only "
                             f"those found twice (default {DEFAULT_CONFIRM:g}; 0: report the first look)")
    parser.add_argument("-o", "--output", choices=("text", "json"), default="text", help="output format")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from webhook.operator import ops

    if args.confirm < 0:
        print(f"error: --confirm {args.confirm:g} is negative; give seconds >= 0", file=sys.stderr)
        return EXIT_CANNOT_CHECK
    try:
        api_client = ops.connect(ops.kubeconfig_path(args.kubeconfig))
        try:
            def load() -> object:
                return ops.load(api_client, grace=args.reservation_grace)

            result = ops.check(load(), subnets=args.subnet)
            if result.violations and args.confirm > 0:
                time.sleep(args.confirm)
                result = ops.confirmed(result, ops.check(load(), subnets=args.subnet))
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
