"""Reloading TLS context: serves renewed files, keeps the old pair while files are inconsistent."""

from __future__ import annotations

import logging
import os
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography import x509

from certs import generate, reload


def gunicorn_factory(reloading: reload.ReloadingContext) -> Callable[[], ssl.SSLContext]:
    """Builds a server context for the pair as gunicorn's `default_ssl_context_factory` does."""

    def build() -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(certfile=reloading.cert_file, keyfile=reloading.key_file)
        return context

    return build


def reloads(caplog: pytest.LogCaptureFixture) -> int:
    """How many times a changed pair was loaded after the first (its INFO line)."""
    return sum(r.getMessage().startswith("loaded renewed certificate") for r in caplog.records)


def serial_seen_by_client(server_context_source: reload.ReloadingContext, ca_file: Path) -> int:
    """Do one TLS handshake through a context from `server_context_source`; the peer's serial."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve_one() -> None:
        conn, _ = listener.accept()
        context = server_context_source.get(gunicorn_factory(server_context_source))
        with context.wrap_socket(conn, server_side=True) as tls:
            tls.recv(1)

    thread = threading.Thread(target=serve_one, daemon=True)
    thread.start()
    client = ssl.create_default_context(cafile=str(ca_file))
    with socket.create_connection(("127.0.0.1", port)) as raw, client.wrap_socket(
        raw, server_hostname="127.0.0.1"
    ) as tls:
        der = tls.getpeercert(binary_form=True)
        tls.send(b"x")
    thread.join(5)
    listener.close()
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


@pytest.fixture
def cert_dir(tmp_path: Path) -> Iterator[Path]:
    generate.write_certificates(tmp_path, ["127.0.0.1"])
    yield tmp_path


def serial_on_disk(path: Path) -> int:
    return x509.load_pem_x509_certificate(path.read_bytes()).serial_number


def test_same_files_give_the_same_context(cert_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="certs.reload")
    reloading = reload.ReloadingContext(cert_dir / "tls.crt", cert_dir / "tls.key")
    first = reloading.get(gunicorn_factory(reloading))
    assert reloading.get(gunicorn_factory(reloading)) is first
    assert reloads(caplog) == 0


def test_renewed_files_are_served_on_the_next_handshake(
    cert_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="certs.reload")
    reloading = reload.ReloadingContext(cert_dir / "tls.crt", cert_dir / "tls.key")
    before = serial_seen_by_client(reloading, cert_dir / "ca.crt")
    assert before == serial_on_disk(cert_dir / "tls.crt")

    generate.write_certificates(cert_dir, ["127.0.0.1", "localhost"])  # hosts changed: reissued
    after = serial_seen_by_client(reloading, cert_dir / "ca.crt")

    assert after != before
    assert after == serial_on_disk(cert_dir / "tls.crt")
    assert reloads(caplog) == 1


def test_half_written_pair_keeps_the_previous_context(
    cert_dir: Path, tmp_path_factory: pytest.TempPathFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="certs.reload")
    reloading = reload.ReloadingContext(cert_dir / "tls.crt", cert_dir / "tls.key")
    first = reloading.get(gunicorn_factory(reloading))
    other = generate.write_certificates(tmp_path_factory.mktemp("other"), ["127.0.0.1"])

    (cert_dir / "tls.key").write_bytes(other.key.read_bytes())  # key renewed, certificate not yet
    assert reloading.get(gunicorn_factory(reloading)) is first

    (cert_dir / "tls.crt").write_bytes(other.cert.read_bytes())
    os.utime(cert_dir / "tls.crt", ns=(1, 1))  # a distinct fingerprint even within one mtime tick
    assert reloading.get(gunicorn_factory(reloading)) is not first
    assert reloads(caplog) == 1


def test_missing_files_at_start_raise(tmp_path: Path) -> None:
    reloading = reload.ReloadingContext(tmp_path / "tls.crt", tmp_path / "tls.key")
    with pytest.raises(OSError):
        reloading.get(gunicorn_factory(reloading))


def test_gunicorn_hook_keeps_one_context_per_file_pair(cert_dir: Path) -> None:
    class Conf:
        certfile = str(cert_dir / "tls.crt")
        keyfile = str(cert_dir / "tls.key")

    calls: list[int] = []

    def factory() -> ssl.SSLContext:
        calls.append(1)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(Conf.certfile, Conf.keyfile)
        return context

    first = reload.gunicorn_ssl_context(Conf(), factory)
    second = reload.gunicorn_ssl_context(Conf(), factory)

    assert first is second
    assert len(calls) == 1
