"""`multinic-ipam node`: run the node daemon that the `kube-ovn` CNI plugin asks for addresses."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from typing import Any

from cni.daemon import DEFAULT_SOCKET, DEFAULT_WAIT_SECONDS
from webhook.settings import node_name_default


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "node",
        help="run the node daemon answering the kube-ovn CNI plugin",
        description="Serve pod allocations (from the webhook's annotations) to the kube-ovn CNI plugin "
                    "over a unix socket.",
    )
    parser.add_argument("--kubeconfig", help="kubeconfig file; in-cluster config when absent")
    parser.add_argument("--node-name", default=node_name_default(),
                        help="this node's name, to watch its pods (default: $NODE_NAME or the hostname)")
    parser.add_argument("--socket", default=DEFAULT_SOCKET,
                        help=f"unix socket to serve on, the NADs' server_socket (default: {DEFAULT_SOCKET})")
    parser.add_argument("--wait-seconds", type=_positive, default=DEFAULT_WAIT_SECONDS,
                        help="how long to wait for a pod's annotations before failing with CNI code 11 "
                             f"(default: {DEFAULT_WAIT_SECONDS:g})")
    parser.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    parser.set_defaults(func=run)


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"--wait-seconds {text!r} must be a positive number of seconds")
    return value


def run(args: argparse.Namespace) -> int:
    from cni import daemon, podwatch
    from webhook.cluster.connection import ConnectError, connect

    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        api_client = connect(args.kubeconfig)
    except ConnectError as error:
        print(f"multinic-ipam node: {error}", file=sys.stderr)
        return 2
    pods = podwatch.KubernetesPods(api_client, args.node_name)
    pods.start()
    server = daemon.UnixHTTPServer(args.socket, daemon.Responder(pods, wait_seconds=args.wait_seconds))

    def stop(_signum: int, _frame: Any) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    logging.getLogger("multinic_ipam.node").info(
        "serving node %s on %s (waiting up to %g s for annotations)", args.node_name, args.socket,
        args.wait_seconds)
    try:
        server.serve_forever()
    finally:
        server.server_close()
        pods.stop()
    return 0
