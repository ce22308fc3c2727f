"""CA and serving certificate generation: SANs, trust chain, renewal, idempotence, bad input."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from certs import generate
from webhook import cli

HOSTS = ["webhook.kube-system.svc", "localhost", "127.0.0.1", "::1"]


def load_cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def sans(cert: x509.Certificate) -> tuple[set[str], set[str]]:
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    ips = {str(ip) for ip in san.get_values_for_type(x509.IPAddress)}
    return set(san.get_values_for_type(x509.DNSName)), ips


def test_writes_the_four_files_with_sans_and_private_keys(tmp_path: Path) -> None:
    paths = generate.write_certificates(tmp_path, HOSTS)

    assert paths.ca_created and paths.cert_issued
    for path in (paths.ca_cert, paths.ca_key, paths.cert, paths.key):
        assert path.is_file()
    assert stat.S_IMODE(paths.key.stat().st_mode) == 0o600
    assert stat.S_IMODE(paths.ca_key.stat().st_mode) == 0o600
    assert stat.S_IMODE(paths.cert.stat().st_mode) == 0o644
    dns, ips = sans(load_cert(paths.cert))
    assert dns == {"webhook.kube-system.svc", "localhost"}
    assert ips == {"127.0.0.1", "::1"}


def test_serving_certificate_is_trusted_through_the_ca(tmp_path: Path) -> None:
    paths = generate.write_certificates(tmp_path, HOSTS)
    ca, cert = load_cert(paths.ca_cert), load_cert(paths.cert)

    cert.verify_directly_issued_by(ca)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    # The standard library accepts the pair as a server identity.
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(paths.cert, paths.key)


def test_second_run_changes_nothing(tmp_path: Path) -> None:
    generate.write_certificates(tmp_path, HOSTS)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    again = generate.write_certificates(tmp_path, list(reversed(HOSTS)))

    assert not again.ca_created and not again.cert_issued
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_changed_hosts_reissue_the_serving_cert_under_the_same_ca(tmp_path: Path) -> None:
    first = generate.write_certificates(tmp_path, ["127.0.0.1"])
    ca_before = first.ca_cert.read_bytes()

    second = generate.write_certificates(tmp_path, ["127.0.0.1", "webhook.example.svc"])

    assert second.cert_issued and not second.ca_created
    assert second.reason == "the hosts changed"
    assert second.ca_cert.read_bytes() == ca_before
    assert sans(load_cert(second.cert)) == ({"webhook.example.svc"}, {"127.0.0.1"})


def test_renews_the_serving_cert_within_30_days_of_expiry(tmp_path: Path) -> None:
    start = datetime.datetime(2030, 1, 1, tzinfo=datetime.UTC)
    generate.write_certificates(tmp_path, HOSTS, cert_days=90, now=start)

    at_day_59 = generate.write_certificates(tmp_path, HOSTS, now=start + datetime.timedelta(days=59))
    at_day_61 = generate.write_certificates(tmp_path, HOSTS, now=start + datetime.timedelta(days=61))

    assert not at_day_59.cert_issued
    assert at_day_61.cert_issued and not at_day_61.ca_created
    assert "expires 2030-04-01" in at_day_61.reason
    renewed = load_cert(at_day_61.cert)
    assert renewed.not_valid_after_utc == start + datetime.timedelta(days=61 + 365)


def test_serving_cert_never_outlives_its_ca(tmp_path: Path) -> None:
    paths = generate.write_certificates(tmp_path, HOSTS, ca_days=100, cert_days=365)

    assert load_cert(paths.cert).not_valid_after_utc == load_cert(paths.ca_cert).not_valid_after_utc


def test_a_new_ca_forces_a_new_serving_cert(tmp_path: Path) -> None:
    first = generate.write_certificates(tmp_path, HOSTS)
    first.ca_cert.unlink()
    first.ca_key.unlink()

    second = generate.write_certificates(tmp_path, HOSTS)

    assert second.ca_created and second.cert_issued
    load_cert(second.cert).verify_directly_issued_by(load_cert(second.ca_cert))


def test_a_serving_cert_from_another_ca_is_replaced(tmp_path: Path) -> None:
    other = generate.write_certificates(tmp_path / "other", HOSTS)
    mine = generate.write_certificates(tmp_path / "mine", HOSTS)
    mine.cert.write_bytes(other.cert.read_bytes())
    mine.key.write_bytes(other.key.read_bytes())

    again = generate.write_certificates(tmp_path / "mine", HOSTS)

    assert again.cert_issued
    assert again.reason == "the serving certificate was not signed by the current CA"


def test_expiring_ca_is_replaced(tmp_path: Path) -> None:
    start = datetime.datetime(2030, 1, 1, tzinfo=datetime.UTC)
    first = generate.write_certificates(tmp_path, HOSTS, ca_days=40, now=start)
    old_ca = first.ca_cert.read_bytes()

    later = generate.write_certificates(tmp_path, HOSTS, now=start + datetime.timedelta(days=20))

    assert later.ca_created and later.cert_issued
    assert later.ca_cert.read_bytes() != old_ca


@pytest.mark.parametrize(
    ("hosts", "fragment"),
    [
        ([], "name no host"),
        (["", " "], "name no host"),
        (["bad_host!"], "'bad_host!' is neither an IP address nor a DNS name"),
        (["-leading.example"], "'-leading.example'"),
    ],
)
def test_bad_hosts_are_rejected_and_write_nothing(tmp_path: Path, hosts: list[str], fragment: str) -> None:
    target = tmp_path / "certs"
    with pytest.raises(generate.CertificateError, match=fragment):
        generate.write_certificates(target, hosts)
    assert not target.exists()


def test_wildcard_and_ipv6_hosts_are_accepted(tmp_path: Path) -> None:
    paths = generate.write_certificates(tmp_path, ["*.svc.example", "fd00::10"])
    dns, ips = sans(load_cert(paths.cert))
    assert dns == {"*.svc.example"}
    assert ips == {str(ipaddress.ip_address("fd00::10"))}


def test_ca_certificate_without_key_is_refused(tmp_path: Path) -> None:
    paths = generate.write_certificates(tmp_path, HOSTS)
    paths.ca_key.unlink()
    with pytest.raises(generate.CertificateError, match=r"ca\.crt exists without .*ca\.key"):
        generate.write_certificates(tmp_path, HOSTS)


def test_mismatched_ca_key_is_refused(tmp_path: Path) -> None:
    paths = generate.write_certificates(tmp_path / "a", HOSTS)
    other = generate.write_certificates(tmp_path / "b", HOSTS)
    paths.ca_key.write_bytes(other.ca_key.read_bytes())
    with pytest.raises(generate.CertificateError, match="is not the key of"):
        generate.write_certificates(tmp_path / "a", HOSTS)


def test_unreadable_serving_key_is_replaced(tmp_path: Path) -> None:
    paths = generate.write_certificates(tmp_path, HOSTS)
    paths.key.write_text("not a key")
    again = generate.write_certificates(tmp_path, HOSTS)
    assert again.cert_issued
    serialization.load_pem_private_key(again.key.read_bytes(), password=None)


def test_certs_command_reports_what_it_did(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["certs", "--cert-dir", str(tmp_path), "--hosts", "127.0.0.1,localhost"]
    assert cli.main(args) == 0
    first = capsys.readouterr().out
    assert cli.main(args) == 0
    second = capsys.readouterr().out

    assert "created CA" in first and "issued" in first
    assert "kept" in second and "created" not in second


def test_certs_command_rejects_a_bad_host(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["certs", "--cert-dir", str(tmp_path), "--hosts", "a b"]) == 2
    assert "'a b' is neither an IP address nor a DNS name" in capsys.readouterr().err
