"""`multinic-ipam serve`: the admission webhook server (gunicorn over TLS, threaded workers)."""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
from pathlib import Path

DESCRIPTION = """\
Serve the validating (/validate) and mutating (/mutate) admission webhooks, plus /healthz,
/readyz (200 once the answering worker's caches are synced) and /metrics, over HTTPS only.

This process becomes gunicorn (exec) configured by webhook/gunicorn.conf.py: the options below are
handed to it as MULTINIC_IPAM_* environment variables. Each of the --workers processes runs its own
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
    parser.add_argument(
        "--kubeconfig", type=Path, help="kubeconfig to reach the API server (default: in-cluster config)"
    )
    parser.add_argument("--bind", default="0.0.0.0:8443", metavar="HOST:PORT",
                        help="address to listen on (default 0.0.0.0:8443)")
    parser.add_argument("--cert-dir", required=True, type=Path, help="folder with tls.crt and tls.key")
    # One worker by default: every worker keeps its own informers (their CPU is paid once per
    # worker) and workers race each other for the same lowest free addresses (each lost race is a
    # wasted create); a worker mostly waits on the API server, so threads give the concurrency.
    # Measured by benchmarks/admission.py: 1x16 admits ~40% more pods/s than 2x8 with ~30% less CPU
    # per pod in the webhook and the API server alike.
    parser.add_argument("--workers", type=int, default=1,
                        help="worker processes, each with its own caches (default 1)")
    parser.add_argument("--threads", type=int, default=16, help="request threads per worker (default 16)")
    parser.add_argument("--log-format", choices=("text", "json"), default="text",
                        help="text for people, json (one object a line) for log pipelines")
    parser.add_argument(
        "--system-users",
        default="",
        metavar="USER,…",
        help="usernames allowed to change a pod's allocation annotations after creation, besides the "
        "pod's own service account when in-cluster",
    )
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


def environment(args: argparse.Namespace, base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment gunicorn (and the app in each worker) reads the options from."""
    env = dict(os.environ if base is None else base)
    env.update({
        "MULTINIC_IPAM_BIND": args.bind,
        "MULTINIC_IPAM_CERT_DIR": str(args.cert_dir.resolve()),
        "MULTINIC_IPAM_WORKERS": str(args.workers),
        "MULTINIC_IPAM_THREADS": str(args.threads),
        "MULTINIC_IPAM_LOG_FORMAT": args.log_format,
        "MULTINIC_IPAM_SYSTEM_USERS": args.system_users,
    })
    if args.kubeconfig is not None:
        env["MULTINIC_IPAM_KUBECONFIG"] = str(args.kubeconfig.resolve())
    else:
        env.pop("MULTINIC_IPAM_KUBECONFIG", None)
    if args.check_config:
        # Checking must not touch the cluster: no informers, no Lease.
        env["MULTINIC_IPAM_START_INFORMERS"] = "false"
        env["MULTINIC_IPAM_START_LIFECYCLE"] = "false"
    if not env.get("PROMETHEUS_MULTIPROC_DIR") and not args.check_config:
        env["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="multinic-ipam-metrics-")
        env["MULTINIC_IPAM_OWNS_METRICS_DIR"] = "1"
    return env


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
    os.execve(argv[0], argv, environment(args))
    return 0  # not reached: exec replaces this process
