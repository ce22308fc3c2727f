"""`multinic-ipam dev up|status|down`: the whole system on this machine, for trying it out."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

HELP = "run the whole system locally: control plane, webhook, node daemon, the guide's Subnets"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "dev",
        help=HELP,
        description=(
            "`up` starts a throwaway control plane (etcd, kube-apiserver, kube-controller-manager; "
            "built first when missing), certificates, the webhook server with `install --url`, and "
            "the node daemon, applies the guide's NADs and Subnets, and prints the KUBECONFIG to use. "
            "Everything runs detached with pids, logs and state in the run folder. `status` shows "
            "what runs; `down` stops all of it and checks that no process is left."
        ),
    )
    parser.add_argument("action", choices=("up", "status", "down"), help="what to do")
    parser.add_argument(
        "--run-dir", type=Path, default=None,
        help="folder for state, logs, certificates and the daemon socket (default: .run/ in the repository)",
    )
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds `up` waits (300)")
    parser.add_argument("--node-name", default=None, help="node name for the node daemon (default: hostname)")
    parser.add_argument(
        "--node", action="store_true",
        help="also run a real node (root): containerd, kube-scheduler and kubelet with Multus, so the "
             "guide's pods come up Running with their interfaces",
    )
    parser.add_argument(
        "--deploy", action="store_true",
        help="with --node: deploy the system as users do instead of running it here: build the image "
             "from the Dockerfile (scripts/build-image.sh), `kubectl apply -k` the manifests; the webhook "
             "and node daemon then run in the node's pods (the README's \"Deploying to a cluster\"; "
             "give --timeout 900 for a first build)",
    )
    parser.add_argument(
        "--workers", type=int, default=1,
        help="webhook server worker processes (1: one process with 16 threads never races itself)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from devtools import devenv

    run_dir = devenv.RunDir(args.run_dir or devenv.DEFAULT_RUN_DIR)
    try:
        if args.action == "up":
            if args.workers < 1:
                print(f"error: --workers must be at least 1, not {args.workers}", file=sys.stderr)
                return 2
            if args.deploy and not args.node:
                print("error: --deploy needs --node (the system is deployed into the node's pods)",
                      file=sys.stderr)
                return 2
            return devenv.up(run_dir, out=sys.stdout, timeout=args.timeout, node_name=args.node_name,
                             workers=args.workers, with_node=args.node, deployed=args.deploy)
        if args.action == "status":
            return devenv.status(run_dir, out=sys.stdout)
        return devenv.down(run_dir, out=sys.stdout)
    except devenv.DevEnvError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
