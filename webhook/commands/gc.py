"""`multinic-ipam gc [--dry-run]`: release what no pod needs any more, with the webhook's own rules."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from webhook import settings
from webhook.commands.status import add_connection_flags

PAST = {"release": "released", "bind": "bound"}


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "gc",
        help="release addresses whose pods are gone (--dry-run: only say what and why)",
        description=(
            "Runs one pass of the Lifecycle the webhook's leader runs every few seconds: addresses "
            "whose pod is gone or finished for good, whose StatefulSet scaled down, or whose pod never "
            "came to exist within the grace period are released; reservations whose pod now exists "
            "are bound to it. --dry-run prints the same decisions and changes nothing."
        ),
    )
    add_connection_flags(parser)
    settings.add_grace_flag(parser)
    parser.add_argument("--dry-run", action="store_true", help="print what would be done and why only")
    parser.add_argument(
        "--grace", type=float, default=None, metavar="SECONDS",
        help="judge every reservation by this grace period, overriding the one each was made with "
             "(default: each reservation's own, else --reservation-grace-seconds)",
    )
    parser.add_argument("-o", "--output", choices=("table", "json"), default="table", help="output format")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from webhook.operator import ops

    if args.grace is not None and args.grace < 0:
        print(f"error: --grace {args.grace:g} is negative; give a number of seconds >= 0", file=sys.stderr)
        return 2
    try:
        api_client = ops.connect(ops.kubeconfig_path(args.kubeconfig))
        try:
            store = ops.load(api_client, grace=args.reservation_grace)
            decisions = ops.collect_garbage(store, dry_run=args.dry_run, grace=args.grace)
        finally:
            api_client.close()
    except (ops.OpsError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if args.output == "json":
        print(json.dumps([d.as_dict() for d in decisions], indent=2))
        return 0
    releases = [d for d in decisions if d.action == "release"]
    if not decisions:
        print("Nothing to release: every held address belongs to a pod that needs it.")
        return 0
    header = ("ACTION", "ADDRESS", "SUBNET", "POD", "WHY", "IP OBJECT")
    rows = []
    for d in decisions:
        if args.dry_run:
            action = f"would {d.action}"
        else:
            action = PAST[d.action] if d.done else f"{d.action} skipped (changed meanwhile)"
        rows.append((action, d.address, d.subnet, d.pod, d.reason, d.ip_object))
    print(ops.table(header, rows))
    if args.dry_run:
        print(f"\n{len(releases)} address(es) would be released; run without --dry-run to release them.")
    return 0
