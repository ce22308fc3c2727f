"""`multinic-ipam serve` option checks and the gunicorn configuration it hands over."""

from __future__ import annotations

import argparse
import runpy
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from certs import generate, reload
from webhook import cli, settings
from webhook.commands import serve
from webhook.settings import Settings

CONF = Path(serve.__file__).resolve().parent.parent / "gunicorn.conf.py"


def parse(*args: str) -> argparse.Namespace:
    return cli.build_parser().parse_args(["serve", *args])


@pytest.fixture
def cert_dir(tmp_path: Path) -> Path:
    generate.write_certificates(tmp_path / "certs", ["127.0.0.1"])
    return tmp_path / "certs"


def test_good_options_have_no_problems(cert_dir: Path, tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("apiVersion: v1\n")
    args = parse("--kubeconfig", str(kubeconfig), "--bind", "127.0.0.1:8443", "--cert-dir", str(cert_dir))
    assert serve.problems(args) == []
    assert args.workers == 1 and args.threads == 16 and args.log_format == "text"


@pytest.mark.parametrize("bind", ["[::1]:8443", "0.0.0.0:443", ":8443", "webhook.local:65535"])
def test_accepted_binds(cert_dir: Path, bind: str) -> None:
    assert serve.problems(parse("--bind", bind, "--cert-dir", str(cert_dir))) == []


def test_every_problem_is_named(tmp_path: Path) -> None:
    args = parse("--bind", "localhost:99999", "--cert-dir", str(tmp_path / "none"), "--workers", "0",
                 "--threads", "-1", "--kubeconfig", str(tmp_path / "missing"))
    found = serve.problems(args)
    assert found == [
        "--bind 'localhost:99999' is not HOST:PORT with a port 1-65535, like 127.0.0.1:8443",
        f"--cert-dir '{tmp_path / 'none'}' has no tls.crt; write it with "
        f"`multinic-ipam certs --cert-dir {tmp_path / 'none'} --hosts HOST,…`",
        f"--cert-dir '{tmp_path / 'none'}' has no tls.key; write it with "
        f"`multinic-ipam certs --cert-dir {tmp_path / 'none'} --hosts HOST,…`",
        f"--kubeconfig '{tmp_path / 'missing'}' is not a file; give a kubeconfig or omit it to use the "
        "in-cluster config",
        "--workers 0 is invalid; give 1 or more",
        "--threads -1 is invalid; give 1 or more",
    ]


def test_bad_options_exit_2_before_starting_anything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["serve", "--cert-dir", str(tmp_path), "--bind", "nope"]) == 2
    err = capsys.readouterr().err
    assert "multinic-ipam serve: --bind 'nope' is not HOST:PORT" in err


def test_log_format_is_a_choice(cert_dir: Path) -> None:
    with pytest.raises(SystemExit):
        parse("--cert-dir", str(cert_dir), "--log-format", "xml")


def test_environment_carries_the_options(
    cert_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(settings.METRICS_DIR_ENV, raising=False)
    kubeconfig = tmp_path / "kubeconfig"
    args = parse("--kubeconfig", str(kubeconfig), "--bind", "127.0.0.1:9443", "--cert-dir", str(cert_dir),
                 "--workers", "4", "--threads", "3", "--log-format", "json", "--system-users", "a,b")
    env = settings.handed_down(serve.server_settings(args), base={"KEPT": "true"})
    server = Settings.decode(env[settings.SETTINGS_ENV])
    try:
        assert server.bind == "127.0.0.1:9443"
        assert server.cert_dir == str(cert_dir.resolve())
        assert server.kubeconfig == str(kubeconfig.resolve())
        assert (server.workers, server.threads) == (4, 3)
        assert server.log_format == "json"
        assert server.system_users == ("a", "b")
        assert server.start_informers and server.start_lifecycle
        assert env["KEPT"] == "true"
        assert Path(env["PROMETHEUS_MULTIPROC_DIR"]).is_dir()
        assert server.metrics_dir == env["PROMETHEUS_MULTIPROC_DIR"]
        assert server.owns_metrics_dir is True
    finally:
        Path(env["PROMETHEUS_MULTIPROC_DIR"]).rmdir()


def test_check_config_never_touches_the_cluster_or_makes_folders(
    cert_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(settings.METRICS_DIR_ENV, raising=False)
    args = parse("--cert-dir", str(cert_dir), "--check-config")
    env = settings.handed_down(serve.server_settings(args), base={"MULTINIC_IPAM_SETTINGS": "{stale}"})
    server = Settings.decode(env[settings.SETTINGS_ENV])
    assert server.start_informers is False
    assert server.start_lifecycle is False
    assert server.kubeconfig is None  # no --kubeconfig: in-cluster, never a stale value
    assert "PROMETHEUS_MULTIPROC_DIR" not in env and server.metrics_dir is None
    assert serve.gunicorn_argv(args)[-1] == "--check-config"


def test_gunicorn_conf_reads_the_settings(monkeypatch: pytest.MonkeyPatch, cert_dir: Path) -> None:
    handed = Settings(cert_dir=str(cert_dir), bind="127.0.0.1:7443", workers=3, log_format="json")
    monkeypatch.setenv(settings.SETTINGS_ENV, handed.encode())
    conf: dict[str, Any] = runpy.run_path(str(CONF))
    assert conf["bind"] == ["127.0.0.1:7443"]
    assert conf["certfile"] == str(cert_dir / "tls.crt") and conf["keyfile"] == str(cert_dir / "tls.key")
    assert conf["worker_class"] == "gthread" and conf["workers"] == 3 and conf["threads"] == 16
    assert conf["preload_app"] is False  # informers start after the fork, one set per worker
    assert conf["control_socket_disable"] is True  # several servers per host must not share one
    assert conf["ssl_context"] is reload.gunicorn_ssl_context
    assert conf["wsgi_app"] == "webhook.app:worker_app()"
    assert conf["logconfig_dict"]["formatters"]["main"]["()"] == "webhook.logs.JsonFormatter"


def test_gunicorn_accepts_the_conf_file(cert_dir: Path) -> None:
    handed = Settings(cert_dir=str(cert_dir), start_informers=False, start_lifecycle=False)
    env = {settings.SETTINGS_ENV: handed.encode(), "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-m", "gunicorn", "-c", str(CONF), "--check-config"],
                            capture_output=True, text=True, env=env, timeout=60, check=False)
    assert result.returncode == 0, result.stderr


def test_help_explains_the_server(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["serve", "--help"])
    text = capsys.readouterr().out
    for phrase in ("gunicorn", "/readyz", "--workers", "--threads", "--log-format", "Renewed",
                   "SIGTERM"):
        assert phrase in text
