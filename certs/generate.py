"""A private CA and the webhook's serving certificate, written as PEM files into one folder.

The API server must trust the webhook (the `caBundle` is `ca.crt`), so the CA is kept across runs
and only the serving certificate is renewed: when it nears expiry, when the hosts change, or when
it no longer matches the CA or its key. Files are replaced atomically (write, then rename) so a
server reloading them never reads half a file; key files are mode 0600.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_CERT = "ca.crt"
CA_KEY = "ca.key"
TLS_CERT = "tls.crt"
TLS_KEY = "tls.key"

# Renew a certificate when it expires within this margin, so a rotation never races the deadline.
RENEW_BEFORE = datetime.timedelta(days=30)
# Backdate `not_valid_before` a little: clocks of the API server and this host may differ.
CLOCK_SKEW = datetime.timedelta(minutes=5)

_DNS_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


class CertificateError(ValueError):
    """The certificate folder or the requested hosts cannot be used; the text says why."""


@dataclass(frozen=True)
class CertPaths:
    """Where the files are, and what `write_certificates` had to do to make them current."""

    cert_dir: Path
    ca_created: bool = False
    cert_issued: bool = False
    reason: str = "certificates are current"

    @property
    def ca_cert(self) -> Path:
        return self.cert_dir / CA_CERT

    @property
    def ca_key(self) -> Path:
        return self.cert_dir / CA_KEY

    @property
    def cert(self) -> Path:
        return self.cert_dir / TLS_CERT

    @property
    def key(self) -> Path:
        return self.cert_dir / TLS_KEY


@dataclass(frozen=True)
class SubjectNames:
    """The hosts of a serving certificate, split into DNS names and IP addresses."""

    dns: tuple[str, ...]
    ips: tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, ...]

    @classmethod
    def parse(cls, hosts: Sequence[str]) -> SubjectNames:
        dns: list[str] = []
        ips: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = []
        for raw in hosts:
            host = raw.strip()
            if not host:
                continue
            try:
                ip = ipaddress.ip_address(host)
            except ValueError:
                dns.append(_dns_name(host))
            else:
                if ip not in ips:
                    ips.append(ip)
        if not dns and not ips:
            raise CertificateError(
                f"hosts {list(hosts)!r} name no host; give at least one DNS name or IP address, "
                "for example 127.0.0.1,localhost"
            )
        return cls(dns=tuple(dict.fromkeys(dns)), ips=tuple(ips))

    def general_names(self) -> list[x509.GeneralName]:
        names: list[x509.GeneralName] = [x509.DNSName(name) for name in self.dns]
        names += [x509.IPAddress(ip) for ip in self.ips]
        return names

    def common_name(self) -> str:
        return self.dns[0] if self.dns else str(self.ips[0])

    def matches(self, cert: x509.Certificate) -> bool:
        try:
            san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        except x509.ExtensionNotFound:
            return False
        have_dns = set(san.get_values_for_type(x509.DNSName))
        have_ips = set(san.get_values_for_type(x509.IPAddress))
        return have_dns == set(self.dns) and have_ips == set(self.ips)


def _dns_name(host: str) -> str:
    name = host.lower().rstrip(".")
    labels = name.split(".")
    if labels[0] == "*":  # a wildcard is allowed as the leftmost label only
        labels = labels[1:]
    if len(name) > 253 or not labels or not all(_DNS_LABEL.match(label) for label in labels):
        raise CertificateError(
            f"host {host!r} is neither an IP address nor a DNS name; use lowercase letters, digits, "
            "'-' and '.', like webhook.kube-system.svc or 10.0.0.5"
        )
    return name


def write_certificates(
    cert_dir: Path,
    hosts: Sequence[str],
    *,
    ca_days: int = 3650,
    cert_days: int = 365,
    now: datetime.datetime | None = None,
) -> CertPaths:
    """Make `cert_dir` hold a CA and a serving certificate for `hosts`; idempotent.

    Reuses the CA found there (creating one when absent or close to expiry) and issues a new
    serving certificate only when the current one is missing, expiring within 30 days, made for
    other hosts, or not signed by the CA. `now` exists for tests that travel in time.
    """
    if ca_days < 1 or cert_days < 1:
        raise CertificateError(
            f"validity of {ca_days} (CA) and {cert_days} (serving) days is invalid; both must be >= 1"
        )
    names = SubjectNames.parse(hosts)
    now = now or datetime.datetime.now(datetime.UTC)
    cert_dir = Path(cert_dir)
    cert_dir.mkdir(parents=True, exist_ok=True)
    paths = CertPaths(cert_dir)

    ca_cert, ca_key, ca_reason = _current_ca(paths, now)
    ca_created = ca_cert is None or ca_key is None
    if ca_cert is None or ca_key is None:
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_cert = _issue_ca(ca_key, now=now, days=ca_days)
        _write(paths.ca_key, _key_pem(ca_key), private=True)
        _write(paths.ca_cert, ca_cert.public_bytes(serialization.Encoding.PEM))

    reason = ca_reason if ca_created else _serving_cert_problem(paths, names, ca_cert, now)
    if reason is None:
        return paths
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _issue_serving(key, names, ca_cert=ca_cert, ca_key=ca_key, now=now, days=cert_days)
    # Key first, then certificate: a reloader that sees the new key with the old certificate
    # fails to load the pair and keeps its previous context until the certificate lands.
    _write(paths.key, _key_pem(key), private=True)
    _write(paths.cert, cert.public_bytes(serialization.Encoding.PEM))
    return CertPaths(cert_dir, ca_created=ca_created, cert_issued=True, reason=reason)


def _current_ca(
    paths: CertPaths, now: datetime.datetime
) -> tuple[x509.Certificate | None, ec.EllipticCurvePrivateKey | None, str]:
    """The usable CA in the folder, or (None, None, why a new one is made)."""
    if not paths.ca_cert.exists():
        if paths.ca_key.exists():
            raise CertificateError(
                f"{paths.ca_key} exists without {paths.ca_cert}; restore the CA certificate or "
                "remove the key to create a new CA"
            )
        return None, None, "no CA existed, created one"
    if not paths.ca_key.exists():
        raise CertificateError(
            f"{paths.ca_cert} exists without {paths.ca_key}, so no certificate can be signed; "
            "add the CA key or remove ca.crt to create a new CA"
        )
    try:
        cert = x509.load_pem_x509_certificate(paths.ca_cert.read_bytes())
        key = serialization.load_pem_private_key(paths.ca_key.read_bytes(), password=None)
    except ValueError as error:
        raise CertificateError(
            f"the CA in {paths.cert_dir} cannot be read ({error}); replace ca.crt and ca.key with "
            "an unencrypted PEM pair or remove both to create a new CA"
        ) from error
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.public_key() != cert.public_key():
        raise CertificateError(
            f"{paths.ca_key} is not the key of {paths.ca_cert}; supply the matching EC key or remove "
            "both to create a new CA"
        )
    if cert.not_valid_after_utc - now < RENEW_BEFORE:
        return None, None, f"the CA expires {cert.not_valid_after_utc:%Y-%m-%d}, created a new one"
    return cert, key, ""


def _serving_cert_problem(
    paths: CertPaths, names: SubjectNames, ca_cert: x509.Certificate, now: datetime.datetime
) -> str | None:
    """Why the serving certificate must be (re)issued, or None when it is current."""
    if not paths.cert.exists() or not paths.key.exists():
        return "no serving certificate existed"
    try:
        cert = x509.load_pem_x509_certificate(paths.cert.read_bytes())
        key = serialization.load_pem_private_key(paths.key.read_bytes(), password=None)
    except ValueError:
        return "the serving certificate or key could not be read"
    if key.public_key() != cert.public_key():
        return "the serving key did not match its certificate"
    if cert.issuer != ca_cert.subject or not _signed_by(cert, ca_cert):
        return "the serving certificate was not signed by the current CA"
    if not names.matches(cert):
        return "the hosts changed"
    if cert.not_valid_after_utc - now < RENEW_BEFORE:
        return f"the serving certificate expires {cert.not_valid_after_utc:%Y-%m-%d}"
    return None


def _signed_by(cert: x509.Certificate, ca_cert: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _issue_ca(key: ec.EllipticCurvePrivateKey, *, now: datetime.datetime, days: int) -> x509.Certificate:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"multinic-ipam CA {now:%Y%m%d%H%M%S}")])
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ski, critical=False)
        .sign(key, hashes.SHA256())
    )


def _issue_serving(
    key: ec.EllipticCurvePrivateKey,
    names: SubjectNames,
    *,
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    now: datetime.datetime,
    days: int,
) -> x509.Certificate:
    not_after = min(now + datetime.timedelta(days=days), ca_cert.not_valid_after_utc)
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names.common_name())]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(names.general_names()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
        .sign(ca_key, hashes.SHA256())
    )


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _write(path: Path, data: bytes, *, private: bool = False) -> None:
    """Replace `path` atomically; a private file is never readable by others, not even briefly."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mkstemp: mode 0600
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o600 if private else 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
