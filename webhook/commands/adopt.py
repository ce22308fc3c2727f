"""`multinic-ipam adopt [--dry-run] [--namespace NS]`: hold the addresses running pods already use."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from webhook import settings
from webhook.commands.status import add_connection_flags

CONFLICTS = 1  # exit status: something was not adopted; the sentences say what to do
CANNOT_RUN = 2  # exit status: the cluster could not be read


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "adopt",
        help="hold the addresses running pods already use (Multus network-status, Whereabouts records)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Switching a live cluster to multinic-ipam: for every pod, read the addresses it uses now\n"
            "(Multus' k8s.v1.cni.cncf.io/network-status annotation; for interfaces it does not cover,\n"
            "Whereabouts' IPPool allocations and OverlappingRangeIPReservations), find the Subnet the\n"
            "webhooks would choose for that attachment, and hold each address with an IP object bound\n"
            "to the pod, as if the webhook had allocated it; the pod gets the output annotations it lacks.\n"
            "New pods are then never given an adopted address, and deleting an adopted pod releases it.\n"
            "\n"
            "A NAD that still uses another IPAM is read as if its ipam were kube-ovn once a Subnet with\n"
            "provider <nad>.<namespace> exists. Order: install with the webhook, create the Subnets,\n"
            "adopt --dry-run, adopt, then switch each NAD's ipam.type to kube-ovn.\n"
            "\n"
            "Conflicts are reported as sentences naming the pods and the fix: two live pods using one\n"
            "address in a Subnet (held for the oldest), an address outside the Subnet, the network,\n"
            "broadcast or gateway address, an excluded address (held anyway). Pods that are gone are\n"
            "not adopted. Running it again changes nothing.\n"
            "\n"
            f"Exit status: 0 when every address is held, {CONFLICTS} when conflicts were reported\n"
            f"(everything else is held), {CANNOT_RUN} when the cluster could not be read."
        ),
    )
    add_connection_flags(parser)
    settings.add_grace_flag(parser)
    parser.add_argument("--dry-run", action="store_true",
                        help="print the plan (pod, interface, address, Subnet, action) and change nothing")
    parser.add_argument("-n", "--namespace", default=None, metavar="NS", help="only the pods of namespace NS")
    parser.add_argument("-o", "--output", choices=("table", "json"), default="table", help="output format")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from webhook.operator import adopter, adoption, ops

    try:
        api_client = ops.connect(ops.kubeconfig_path(args.kubeconfig))
        try:
            snapshot = adopter.load(api_client, namespace=args.namespace, grace=args.reservation_grace)
            plan = adoption.plan(snapshot.store, snapshot.pods, snapshot.records)
            plan.problems[:0] = snapshot.problems
            rows = plan.rows if args.dry_run else adopter.apply(snapshot.store, plan)
        finally:
            api_client.close()
    except ops.OpsError as error:
        print(f"error: {error}", file=sys.stderr)
        return CANNOT_RUN
    status = CONFLICTS if plan.problems else 0
    if args.output == "json":
        print(json.dumps({"dryRun": args.dry_run, "rows": [r.as_dict() for r in rows],
                          "problems": plan.problems}, indent=2))
        return status
    if rows:
        header = ("POD", "INTERFACE", "ADDRESS", "SUBNET", "ACTION", "SOURCE", "NOTE")
        shown = [(r.pod, r.interface or "-", r.address, r.subnet or "-",
                  f"would {r.action}" if args.dry_run and r.action in adopter.DONE else r.action,
                  r.source, r.note) for r in rows]
        print(ops.table(header, shown))
    else:
        print("No pod uses an address on an attachment a Subnet serves; nothing to adopt.")
    for problem in plan.problems:
        print(f"conflict: {problem}", file=sys.stderr)
    if args.dry_run:
        todo = sum(r.action in adopter.DONE for r in rows)
        print(f"\n{todo} address(es) would be held, bound or annotated; run without --dry-run to do it.")
    return status
