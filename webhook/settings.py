"""`Settings`: the webhook server's configuration, parsed once from `multinic-ipam serve`'s flags.

The one module of the product (besides the CNI plugin, whose input is its environment by the CNI
spec) that reads environment variables, and only in two ways:
- a flag's default may come from a variable, named in the flag's `--help` (a Deployment sets
  `MULTINIC_IPAM_NAMESPACE` from the downward API, for example);
- gunicorn's workers are other processes: `serve` hands them the parsed `Settings` as JSON in one
  variable, `MULTINIC_IPAM_SETTINGS`, which `inherited()` reads back.
Besides, the functions at the end read what other commands and the cluster connection need:
`$KUBECONFIG`, `$NODE_NAME`, the in-cluster API server address, an exec plugin's environment.
Everything else receives a `Settings` (or one of its fields) as an argument.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

SETTINGS_ENV = "MULTINIC_IPAM_SETTINGS"  # serve → gunicorn.conf.py and each worker's app
GRACE_ENV = "MULTINIC_IPAM_RESERVATION_GRACE_SECONDS"
NAMESPACE_ENV = "MULTINIC_IPAM_NAMESPACE"
# prometheus_client itself reads this variable when imported, so `serve` also exports it.
METRICS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
HANDED_DOWN = (SETTINGS_ENV, METRICS_DIR_ENV)  # what `serve` sets for gunicorn; stale values go
KUBECONFIG_ENV = "KUBECONFIG"
SERVICE_HOST_ENV = "KUBERNETES_SERVICE_HOST"  # the kubelet sets these two in every container
SERVICE_PORT_ENV = "KUBERNETES_SERVICE_PORT"
NODE_NAME_ENV = "NODE_NAME"

DEFAULT_GRACE = 120.0  # longer than the API server's request timeout for a pod create
DEFAULT_LEASE_NAMESPACE = "kube-system"
DEFAULT_CERT_DIR = "/etc/multinic-ipam/certs"
LOG_FORMATS = ("text", "json")


@dataclass(frozen=True)
class Settings:
    """What one webhook server runs with; the flag of each field is in `add_flags`."""

    kubeconfig: str | None = None
    """`--kubeconfig`: the kubeconfig to reach the API server; None: the pod's service account."""
    bind: str = "0.0.0.0:8443"
    """`--bind`: HOST:PORT to serve HTTPS on."""
    cert_dir: str = DEFAULT_CERT_DIR
    """`--cert-dir`: the folder with tls.crt and tls.key (re-read when renewed)."""
    workers: int = 1
    """`--workers`: gunicorn worker processes, each with its own caches and informers."""
    threads: int = 16
    """`--threads`: request threads per worker."""
    log_format: str = "text"
    """`--log-format`: `text` for people, `json` (one object a line) for log pipelines."""
    system_users: tuple[str, ...] = ()
    """`--system-users`: usernames allowed to change a pod's allocation annotations after creation."""
    identity: str | None = None
    """`--identity`: this process's Lease holder name; None: `<hostname>-<pid>` of each worker."""
    lease_namespace: str = DEFAULT_LEASE_NAMESPACE
    """`--lease-namespace` ($MULTINIC_IPAM_NAMESPACE): where the Lifecycle keeps its Lease."""
    reservation_grace: float = DEFAULT_GRACE
    """`--reservation-grace-seconds` ($MULTINIC_IPAM_RESERVATION_GRACE_SECONDS): how long a
    reservation may wait for its pod to exist before the Lifecycle releases it."""
    metrics_dir: str | None = None
    """`--metrics-dir` ($PROMETHEUS_MULTIPROC_DIR): where the workers share their metrics."""
    owns_metrics_dir: bool = False
    """Not a flag: `serve` made `metrics_dir` for this run, so the server removes it on exit."""
    start_informers: bool = True
    """Not a flag: False with `--check-config`, which must not touch the cluster."""
    start_lifecycle: bool = True
    """Not a flag: False with `--check-config` (no Lease)."""

    def encode(self) -> str:
        """The JSON `serve` hands to gunicorn's workers (`SETTINGS_ENV`)."""
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def decode(cls, text: str) -> Settings:
        """The `Settings` that `encode` wrote; unknown keys are an error, missing ones default."""
        values = json.loads(text)
        if not isinstance(values, dict):
            raise ValueError(f"${SETTINGS_ENV} is not a JSON object; write e.g. {{\"cert_dir\": \"/certs\"}}")
        known = {field.name for field in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"${SETTINGS_ENV} has unknown settings {', '.join(unknown)}; "
                             f"known: {', '.join(sorted(known))}")
        if "system_users" in values:
            values["system_users"] = tuple(values["system_users"])
        return cls(**values)


def inherited() -> Settings:
    """The `Settings` `serve` handed down ($MULTINIC_IPAM_SETTINGS), defaults when it is unset."""
    text = os.environ.get(SETTINGS_ENV, "").strip()
    return Settings.decode(text) if text else Settings()


def handed_down(settings: Settings, base: dict[str, str] | None = None) -> dict[str, str]:
    """gunicorn's environment: `base` (default: this process's) with the settings, and the metrics
    folder for prometheus_client (it reads `PROMETHEUS_MULTIPROC_DIR` itself, at import)."""
    env = {name: value for name, value in (os.environ if base is None else base).items()
           if name not in HANDED_DOWN}
    env[SETTINGS_ENV] = settings.encode()
    if settings.metrics_dir:
        env[METRICS_DIR_ENV] = settings.metrics_dir
    return env


# ---- flags ---------------------------------------------------------------------------------------


def add_flags(parser: argparse.ArgumentParser) -> None:
    """The server's flags, one per settable field of `Settings`."""
    parser.add_argument("--kubeconfig", type=Path,
                        help="kubeconfig to reach the API server (default: in-cluster config)")
    parser.add_argument("--bind", default=Settings.bind, metavar="HOST:PORT",
                        help=f"address to listen on (default {Settings.bind})")
    parser.add_argument("--cert-dir", required=True, type=Path, help="folder with tls.crt and tls.key")
    # One worker by default: every worker keeps its own informers (their CPU is paid once per
    # worker) and workers race each other for the same lowest free addresses (each lost race is a
    # wasted create); a worker mostly waits on the API server, so threads give the concurrency.
    # Measured by benchmarks/admission.py: 1x16 admits ~40% more pods/s than 2x8 with ~30% less CPU
    # per pod in the webhook and the API server alike.
    parser.add_argument("--workers", type=int, default=Settings.workers,
                        help=f"worker processes, each with its own caches (default {Settings.workers})")
    parser.add_argument("--threads", type=int, default=Settings.threads,
                        help=f"request threads per worker (default {Settings.threads})")
    parser.add_argument("--log-format", choices=LOG_FORMATS, default=Settings.log_format,
                        help="text for people, json (one object a line) for log pipelines")
    parser.add_argument(
        "--system-users", default="", metavar="USER,…",
        help="usernames allowed to change a pod's allocation annotations after creation, besides the "
        "pod's own service account when in-cluster",
    )
    parser.add_argument("--identity", default=None,
                        help="this server's Lease holder name (default: <hostname>-<pid> of each worker)")
    parser.add_argument(
        "--lease-namespace", default=os.environ.get(NAMESPACE_ENV) or DEFAULT_LEASE_NAMESPACE,
        metavar="NAMESPACE",
        help=f"namespace of the Lifecycle's Lease (default: ${NAMESPACE_ENV}, "
        f"else {DEFAULT_LEASE_NAMESPACE})",
    )
    add_grace_flag(parser)
    parser.add_argument(
        "--metrics-dir", default=os.environ.get(METRICS_DIR_ENV) or None, metavar="DIR",
        help=f"folder where the workers share their metrics (default: ${METRICS_DIR_ENV}, else a "
        "temporary folder removed on exit)",
    )


def add_grace_flag(parser: argparse.ArgumentParser) -> None:
    """`--reservation-grace-seconds`: the server's, and the operator tools' that judge as it does."""
    parser.add_argument(
        "--reservation-grace-seconds", dest="reservation_grace", type=grace_seconds,
        default=os.environ.get(GRACE_ENV, "").strip() or str(DEFAULT_GRACE), metavar="SECONDS",
        help="how long a reservation may wait for its pod before it is released "
        f"(default: ${GRACE_ENV}, else {DEFAULT_GRACE:g})",
    )


def grace_seconds(text: str) -> float:
    """A grace period in seconds, >= 0 (argparse type; a bad $GRACE_ENV fails the same way)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a number of seconds; write e.g. 120 (default from ${GRACE_ENV})"
        ) from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is negative; write a number of seconds >= 0")
    return value


def from_flags(args: argparse.Namespace, **more: Any) -> Settings:
    """The `Settings` of parsed `add_flags` flags; `more` sets the fields without a flag."""
    users = tuple(user.strip() for user in args.system_users.split(",") if user.strip())
    return Settings(
        kubeconfig=str(Path(args.kubeconfig).resolve()) if args.kubeconfig else None,
        bind=args.bind,
        cert_dir=str(Path(args.cert_dir).resolve()),
        workers=args.workers,
        threads=args.threads,
        log_format=args.log_format,
        system_users=users,
        identity=args.identity or None,
        lease_namespace=args.lease_namespace,
        reservation_grace=args.reservation_grace,
        metrics_dir=args.metrics_dir or None,
        **more,
    )


# ---- defaults of other commands' flags -----------------------------------------------------------


def kubeconfig_from_env() -> str | None:
    """The first file of `$KUBECONFIG`, as kubectl reads it; None when unset."""
    value = os.environ.get(KUBECONFIG_ENV, "")
    return next((part for part in value.split(os.pathsep) if part), None)


def in_cluster_address() -> tuple[str, str] | None:
    """The API server's address the kubelet gives every container ($KUBERNETES_SERVICE_HOST and
    _PORT): (host, port); None outside a pod."""
    host, port = os.environ.get(SERVICE_HOST_ENV, ""), os.environ.get(SERVICE_PORT_ENV, "")
    return (host, port) if host and port else None


def child_environment(extra: dict[str, str]) -> dict[str, str]:
    """This process's environment with `extra` added: a kubeconfig exec plugin's, as kubectl runs it."""
    return {**os.environ, **extra}


def node_name_default() -> str:
    """`multinic-ipam node --node-name`'s default: `$NODE_NAME` (the downward API), else the hostname."""
    return os.environ.get(NODE_NAME_ENV) or socket.gethostname()
