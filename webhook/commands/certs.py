"""`multinic-ipam certs`: write or renew the CA and the webhook's serving certificate."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "certs",
        help="write or renew the CA and serving certificate",
        description=(
            "Write ca.crt, ca.key, tls.crt and tls.key into --cert-dir. An existing CA is reused; the "
            "serving certificate is reissued when missing, expiring within 30 days, made for other "
            "hosts or signed by another CA, and left alone otherwise. A running `serve` picks up a "
            "renewed certificate without a restart."
        ),
    )
    parser.add_argument("--cert-dir", required=True, type=Path, help="folder for the PEM files")
    parser.add_argument(
        "--hosts",
        required=True,
        help="comma-separated DNS names and IP addresses for the serving certificate's SANs",
    )
    parser.add_argument("--ca-days", type=int, default=3650, help="validity of a new CA (days)")
    parser.add_argument("--cert-days", type=int, default=365, help="validity of a new serving cert (days)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from certs import generate

    hosts = [host for host in args.hosts.split(",") if host.strip()]
    try:
        paths = generate.write_certificates(
            args.cert_dir, hosts, ca_days=args.ca_days, cert_days=args.cert_days
        )
    except generate.CertificateError as error:
        print(f"multinic-ipam certs: {error}", file=sys.stderr)
        return 2
    if paths.ca_created:
        print(f"created CA {paths.ca_cert} (install it as the webhooks' caBundle)")
    if paths.cert_issued:
        print(f"issued {paths.cert} for {', '.join(hosts)}: {paths.reason}")
    else:
        print(f"kept {paths.cert}: it is current for {', '.join(hosts)}")
    return 0
