"""`multinic-ipam`: one entry point, one subcommand per module listed in COMMAND_MODULES."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# Module paths, each with `register(subparsers)`; the order is the order in `--help`.
COMMAND_MODULES: tuple[str, ...] = (
    "webhook.commands.certs",
    "webhook.commands.serve",
    "devtools.command",
    "webhook.commands.install",
    "webhook.commands.install_cni",
    "webhook.commands.status",
    "webhook.commands.who_has",
    "webhook.commands.gc",
    "webhook.commands.adopt",
    "webhook.commands.check",
    "cni.commands",
)


def build_parser(prog: str = "multinic-ipam") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description=(
            "Cluster-wide IPAM for Multus attachments with Kube-OVN's API: admission webhooks that "
            "validate and allocate, a node daemon for the `kube-ovn` CNI plugin, and operator tools."
        ),
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module_path in COMMAND_MODULES:
        importlib.import_module(module_path).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None, prog: str = "multinic-ipam") -> int:
    args = build_parser(prog).parse_args(argv)
    result = args.func(args)
    return int(result or 0)


def kubectl_plugin_main() -> None:
    """`kubectl ipam …`: the same commands, named as kubectl shows them."""
    sys.exit(main(prog="kubectl ipam"))


if __name__ == "__main__":
    sys.exit(main())
