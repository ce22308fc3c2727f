"""Credentials for the API server: a static Authorization header and client certificate, a token
file re-read as the kubelet rotates it, an exec plugin's ExecCredential renewed when it expires."""

from __future__ import annotations

import atexit
import contextlib
import json
import math
import os
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from webhook import settings

TOKEN_FILE_RECHECK_SECONDS = 60.0  # the kubelet renews a projected token long before it expires
EXEC_APIS = ("client.authentication.k8s.io/v1", "client.authentication.k8s.io/v1beta1")
EXEC_TIMEOUT_SECONDS = 60.0
Certificate = tuple[str, str | None]  # (certificate file, key file or None when the first holds both)


class ConnectError(RuntimeError):
    """No way to reach the API server: the kubeconfig is unusable, or we are not in a pod."""


class Credentials:
    """No credentials. Subclasses give an Authorization value and/or a client certificate."""

    def authorization(self) -> str | None:
        return None

    def certificate(self) -> Certificate | None:
        return None


@dataclass(frozen=True)
class Static(Credentials):
    header: str | None = None
    cert: Certificate | None = None

    def authorization(self) -> str | None:
        return self.header

    def certificate(self) -> Certificate | None:
        return self.cert


class TokenFile(Credentials):
    """`tokenFile` or the service account's token, re-read at most every `TOKEN_FILE_RECHECK_SECONDS`
    (the kubelet rotates it); a failed re-read keeps the last token."""

    def __init__(self, path: Path, cert: Certificate | None = None) -> None:
        self.path, self.cert = path, cert
        self._lock = threading.Lock()
        try:
            self._token = path.read_text().strip()
        except OSError as error:
            raise ConnectError(f"cannot read the token file {path} ({error.strerror})") from None
        self._read_at = time.monotonic()

    def authorization(self) -> str | None:
        with self._lock:
            if time.monotonic() - self._read_at >= TOKEN_FILE_RECHECK_SECONDS:
                with contextlib.suppress(OSError):
                    self._token = self.path.read_text().strip()
                self._read_at = time.monotonic()
            return f"Bearer {self._token}" if self._token else None

    def certificate(self) -> Certificate | None:
        return self.cert


class Exec(Credentials):
    """An exec plugin's ExecCredential (`status.token`, or a client certificate and key), run again
    once its `expirationTimestamp` has passed; `fallback`'s credentials where it gives none."""

    def __init__(self, spec: dict[str, Any], user: str, folder: Path, fallback: Credentials) -> None:
        self.user, self.fallback = user, fallback
        api, command = spec.get("apiVersion"), str(spec.get("command") or "")
        if api not in EXEC_APIS:
            raise ConnectError(f"the exec plugin of user {user!r} has apiVersion {api!r}; "
                               f"use one of {', '.join(EXEC_APIS)}")
        if not command:
            raise ConnectError(f"the exec plugin of user {user!r} has no command")
        if spec.get("interactiveMode") == "Always":
            raise ConnectError(f"the exec plugin of user {user!r} needs a terminal (interactiveMode "
                               "Always); give a user whose plugin runs unattended")
        if os.sep in command and not os.path.isabs(command):  # as kubectl: next to the kubeconfig
            command = str(folder / command)
        self.argv = [command, *(str(arg) for arg in spec.get("args") or [])]
        self.env = {str(e.get("name")): str(e.get("value")) for e in spec.get("env") or []}
        info = {"apiVersion": api, "kind": "ExecCredential", "spec": {"interactive": False}}
        self.env["KUBERNETES_EXEC_INFO"] = json.dumps(info)
        self._lock = threading.Lock()
        self._token: str | None = None
        self._cert: Certificate | None = None
        self._expires = -math.inf
        self._fresh()

    def authorization(self) -> str | None:
        self._fresh()
        return f"Bearer {self._token}" if self._token else self.fallback.authorization()

    def certificate(self) -> Certificate | None:
        self._fresh()
        return self._cert or self.fallback.certificate()

    def _fresh(self) -> None:
        with self._lock:
            if time.time() >= self._expires:
                self._run()

    def _run(self) -> None:
        what = f"the exec plugin {self.argv[0]!r} of user {self.user!r}"
        try:
            done = subprocess.run(self.argv, env=settings.child_environment(self.env), text=True,
                                  capture_output=True, stdin=subprocess.DEVNULL,
                                  timeout=EXEC_TIMEOUT_SECONDS, check=False)
        except (OSError, subprocess.TimeoutExpired) as error:
            raise ConnectError(f"{what} did not run ({error})") from None
        if done.returncode != 0:
            said = (done.stderr.strip().splitlines() or ["no message"])[-1]
            raise ConnectError(f"{what} failed with exit code {done.returncode} ({said})")
        try:
            status = json.loads(done.stdout)["status"]
            token, cert, key = (status.get(k) for k in ("token", "clientCertificateData", "clientKeyData"))
            expiry = status.get("expirationTimestamp")
            expires = math.inf if not expiry else datetime.fromisoformat(
                expiry.replace("Z", "+00:00")).timestamp()
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            raise ConnectError(f"{what} printed no ExecCredential with a status ({error!r})") from None
        if not token and not (cert and key):
            raise ConnectError(f"{what} gave neither status.token nor clientCertificateData and "
                               "clientKeyData; fix the plugin or its arguments")
        self._token = token or None
        self._cert = (private_file(f"{cert}\n{key}\n".encode()), None) if cert and key else None
        self._expires = expires


def private_file(data: bytes) -> str:
    """A file only this user can read (0600) holding `data`, removed when the process exits."""
    fd, path = tempfile.mkstemp(prefix="multinic-ipam-", suffix=".pem")
    with os.fdopen(fd, "wb") as file:
        file.write(data)
    atexit.register(lambda: Path(path).unlink(missing_ok=True))
    return path
