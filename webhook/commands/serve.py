"""`multinic-ipam serve`: the admission webhook server (gunicorn over TLS, threaded workers)."""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

from webhook import settings

DESCRIPTION = """\
Serve the validating (/validate) and mutating (/mutate) admission webhooks, plus /healthz,
/readyz (200 once the answering worker's caches are synced) and /metrics, over HTTPS only.

This process becomes gunicorn (exec) configured by webhook/gunicorn.conf.py: the options below are
parsed once into the server's settings and handed to it (and its workers) as JSON in
$MULTINIC_IPAM_SETTINGS. Each of the --workers processes runs its own
informers and cache, with --threads request threads (a review may wait on the API server). Renewed
certificate files in --cert-dir (`multinic-ipam certs`) are served from the next connection on, no
restart needed. SIGTERM shuts down gracefully: in-flight reviews finish first.
"""

_BIND = re.compile(r"^(?P<host>\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.\-]*):(?P<port>\d{1,5})$")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="run the admission webhook server",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    settings.add_flags(parser)
    parser.add_argument("--check-config", action="store_true",
                        help="load the configuration and the app, report problems, and exit")
    parser.set_defaults(func=run)


def problems(args: argparse.Namespace) -> list[str]:
    """Every reason the options cannot work, one sentence each (empty when they can)."""
    found: list[str] = []
    match = _BIND.match(args.bind)
    if not match or not 1 <= int(match["port"]) <= 65535:
        found.append(f"--bind {args.bind!r} is not HOST:PORT with a port 1-65535, like 127.0.0.1:8443")
    for name in ("tls.crt", "tls.key"):
        if not (args.cert_dir / name).is_file():
            found.append(
                f"--cert-dir {str(args.cert_dir)!r} has no {name}; write it with "
                f"`multinic-ipam certs --cert-dir {args.cert_dir} --hosts HOST,…`"
            )
    if args.kubeconfig is not None and not args.kubeconfig.is_file():
        found.append(f"--kubeconfig {str(args.kubeconfig)!r} is not a file; give a kubeconfig or omit it "
                     "to use the in-cluster config")
    if args.workers < 1:
        found.append(f"--workers {args.workers} is invalid; give 1 or more")
    if args.threads < 1:
        found.append(f"--threads {args.threads} is invalid; give 1 or more")
    return found


def server_settings(args: argparse.Namespace) -> settings.Settings:
    """The settings of these options; without --metrics-dir, a fresh folder that the server removes.

    --check-config must not touch the cluster (no informers, no Lease) nor make folders.
    """
    if args.check_config:
        return settings.from_flags(args, start_informers=False, start_lifecycle=False)
    if args.metrics_dir:
        return settings.from_flags(args)
    folder = tempfile.mkdtemp(prefix="multinic-ipam-metrics-")
    return replace(settings.from_flags(args), metrics_dir=folder, owns_metrics_dir=True)


def gunicorn_argv(args: argparse.Namespace) -> list[str]:
    conf = Path(__file__).resolve().parent.parent / "gunicorn.conf.py"
    argv = [sys.executable, "-m", "gunicorn", "--config", str(conf)]
    if args.check_config:
        argv.append("--check-config")
    return argv


def run(args: argparse.Namespace) -> int:
    found = problems(args)
    if found:
        for problem in found:
            print(f"multinic-ipam serve: {problem}", file=sys.stderr)
        return 2
    argv = gunicorn_argv(args)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(argv[0], argv, settings.handed_down(server_settings(args)))
    return 0  # not reached: exec replaces this process
