# ruff: noqa: N999 - gunicorn looks for this file name
"""gunicorn settings for the webhook server, from the `Settings` `multinic-ipam serve` hands down.

Usable on its own, too:
`MULTINIC_IPAM_SETTINGS='{"cert_dir":"D"}' gunicorn -c webhook/gunicorn.conf.py --check-config`.

- TLS only, from `<cert_dir>/tls.crt` and `tls.key`; renewed files are picked up on the
  next connection without a restart (`certs.reload`).
- `gthread` workers: a review may wait on the API server (an IP object create), so each worker
  serves several requests at once with threads. Each worker has its own cache and informers
  (`worker_app()` runs after the fork: `preload_app` stays off).
- Graceful shutdown: on SIGTERM workers finish in-flight reviews, then stop their Lifecycle
  (handing the Lease over) and informers.
"""

from __future__ import annotations

import gc
import shutil
from pathlib import Path
from typing import Any

from gunicorn.glogging import Logger

from certs.reload import gunicorn_ssl_context
from webhook import settings as _settings
from webhook.logs import dict_config

_server = _settings.inherited()
_cert_dir = Path(_server.cert_dir)

wsgi_app = "webhook.app:worker_app()"  # the same Settings, read again in the worker
bind = [_server.bind]
certfile = str(_cert_dir / "tls.crt")
keyfile = str(_cert_dir / "tls.key")
ssl_context = gunicorn_ssl_context

worker_class = "gthread"
# One worker, many threads (as `serve`'s defaults; why: webhook/commands/serve.py).
workers = _server.workers
threads = _server.threads
preload_app = False
# The API server's webhook timeout is at most 30 s; a worker silent for longer is stuck.
timeout = 60
graceful_timeout = 20
# The API server keeps its connections to a webhook open; reusing them saves a TLS handshake.
keepalive = 30

proc_name = "multinic-ipam-webhook"
# gunicorn 23+ would open one control socket per user ($HOME/.gunicorn/gunicorn.ctl): several
# servers on one host (tests, dev up) would fight over it, and nothing here needs it.
control_socket_disable = True
accesslog = None  # the app logs one line per review, with the verdict (access lines stay off)
logconfig_dict = dict_config(_server.log_format)


class NoAccessLog(Logger):
    """gunicorn's logger without the access log. With `logconfig_dict` set gunicorn counts access
    logging as on and builds every request's access-log fields (about a twentieth of the worker's
    CPU under load) for a logger that drops them; the app logs one line per review instead."""

    access_log_enabled = False

    def access(self, resp: Any, req: Any, environ: Any, request_time: Any) -> None:
        return None


logger_class = NoAccessLog


def on_starting(server: Any) -> None:
    """Start with an empty metrics folder: samples of a previous run's workers must not count."""
    folder = _server.metrics_dir
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        for stale in Path(folder).glob("*.db"):
            stale.unlink()


def pre_fork(server: Any, worker: Any) -> None:
    """Freeze the arbiter's objects before forking a worker: the worker's garbage collector then
    never writes to them, so the pages holding them stay shared with the arbiter instead of being
    copied into the worker (Python's `gc.freeze` documentation describes this use)."""
    gc.freeze()


def worker_exit(server: Any, worker: Any) -> None:
    """In the exiting worker: hand the Lease over and stop the informers."""
    app = getattr(worker, "wsgi", None)
    runtime = getattr(app, "extensions", {}).get("multinic_ipam") if app is not None else None
    if runtime is not None:
        runtime.stop()


def child_exit(server: Any, worker: Any) -> None:
    """In the arbiter: drop the dead worker's live-only metric samples."""
    from webhook import metrics

    metrics.worker_exited(worker.pid, _server.metrics_dir)


def on_exit(server: Any) -> None:
    """Remove the metrics folder `serve` created for this run."""
    folder = _server.metrics_dir
    if folder and _server.owns_metrics_dir:
        shutil.rmtree(folder, ignore_errors=True)
