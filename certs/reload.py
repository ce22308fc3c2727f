"""Serve renewed certificate files without a restart.

gunicorn's threaded worker asks its `ssl_context(conf, default_ssl_context_factory)` hook for a
context on every accepted connection. `ReloadingContext` answers with a cached context and builds a
new one only when the certificate or key file changed (inode, size or mtime). A pair that fails to
load (for example the new key already written but the certificate not yet) keeps the previous
context, so a rotation never interrupts serving; the next connection tries again.
"""

from __future__ import annotations

import logging
import os
import ssl
import threading
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

Fingerprint = tuple[tuple[int, int, int], ...]


class ReloadingContext:
    """An `SSLContext` that follows `cert_file` and `key_file` on disk."""

    def __init__(self, cert_file: Path | str, key_file: Path | str) -> None:
        self.cert_file = Path(cert_file)
        self.key_file = Path(key_file)
        self._lock = threading.Lock()
        self._context: ssl.SSLContext | None = None
        self._loaded: Fingerprint | None = None

    def get(self, factory: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
        """The context for the files as they are now; `factory` builds one from the files."""
        current = self._fingerprint()
        with self._lock:
            if self._context is not None and current == self._loaded:
                return self._context
            try:
                context = factory()
            except (OSError, ssl.SSLError) as error:
                if self._context is None:
                    raise
                log.warning("keeping the previous certificate: %s does not load yet (%s)",
                            self.cert_file, error)
                return self._context
            if self._context is not None:
                log.info("loaded renewed certificate %s", self.cert_file)
            self._context, self._loaded = context, current
            return context

    def _fingerprint(self) -> Fingerprint | None:
        try:
            stats = [os.stat(path) for path in (self.cert_file, self.key_file)]
        except OSError:
            return None
        return tuple((s.st_ino, s.st_size, s.st_mtime_ns) for s in stats)


_contexts: dict[tuple[str, str], ReloadingContext] = {}
_contexts_lock = threading.Lock()


def gunicorn_ssl_context(
    conf: object, default_ssl_context_factory: Callable[[], ssl.SSLContext]
) -> ssl.SSLContext:
    """gunicorn's `ssl_context` hook: one reloading context per (certfile, keyfile) per process."""
    key = (str(getattr(conf, "certfile", "")), str(getattr(conf, "keyfile", "")))
    with _contexts_lock:
        reloading = _contexts.get(key)
        if reloading is None:
            reloading = _contexts[key] = ReloadingContext(*key)
    return reloading.get(default_ssl_context_factory)
