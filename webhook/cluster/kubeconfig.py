"""Where the API server is and how to authenticate: a kubeconfig's current context, or the pod's
service account. Our own loader, not the `kubernetes` client library's (that library cost ~32 MB
per process and most of the image for this alone).

From a kubeconfig, as kubectl reads it: the cluster's `server`, `certificate-authority(-data)`,
`insecure-skip-tls-verify`, `tls-server-name`, `proxy-url`; the user's `client-certificate(-data)`,
`client-key(-data)`, `token` (before `tokenFile`, before `username`/`password`) and `exec` plugin.
Relative paths are relative to the kubeconfig's folder. `auth-provider` (gone from client-go in
1.26) is refused. Every failure is a `ConnectError` saying what to fix.
"""

from __future__ import annotations

import base64
import binascii
import os
import ssl
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from webhook import settings
from webhook.cluster.credentials import (
    Certificate,
    ConnectError,
    Credentials,
    Exec,
    Static,
    TokenFile,
    private_file,
)

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
USER_AGENT = "multinic-ipam"


@dataclass(frozen=True)
class ClusterAccess:
    """What the transport needs to reach one API server as one user."""

    server: str
    ca_file: str | None = None
    ca_data: str | None = None  # PEM
    insecure: bool = False  # insecure-skip-tls-verify
    check_hostname: bool = True  # False: trust the CA alone (an ApiClient's assert_hostname=False)
    tls_server_name: str | None = None
    proxy_url: str | None = None
    proxy_headers: dict[str, str] = field(default_factory=dict)
    namespace: str = "default"
    user_agent: str = USER_AGENT
    credentials: Credentials = field(default_factory=Credentials)
    _contexts: dict[Any, ssl.SSLContext] = field(default_factory=dict, compare=False, repr=False)

    def authorization(self) -> str | None:
        """The Authorization header value now (a rotated token file, a renewed exec credential)."""
        return self.credentials.authorization()

    def ssl_context(self) -> ssl.SSLContext:
        """TLS as kubectl's: this CA (else the system's), the client certificate, the verification
        asked for. The same context until the certificate changes (an exec plugin's, renewed)."""
        cert = self.credentials.certificate()
        context = self._contexts.get(cert)
        if context is None:
            context = ssl.create_default_context(cafile=self.ca_file, cadata=self.ca_data)
            if cert:
                context.load_cert_chain(*cert)
            if self.insecure:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            elif not self.check_hostname:
                context.check_hostname = False
            self._contexts.clear()
            self._contexts[cert] = context
        return context

    def close(self) -> None:
        """Nothing to release: connections belong to each `Transport`, private files go at exit."""


def load(path: str) -> ClusterAccess:
    """The `ClusterAccess` of the kubeconfig at `path`: its current context's cluster and user."""
    try:
        config = yaml.safe_load(Path(path).read_text())
    except OSError as error:
        raise ConnectError(f"cannot read it: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise ConnectError(f"it is not YAML ({str(error).splitlines()[0]})") from None
    if not isinstance(config, dict):
        raise ConnectError("it is not a kubeconfig (no mapping at the top)")
    name = config.get("current-context")
    if not name:
        raise ConnectError("it has no current-context; set one with `kubectl config use-context`")
    context = _named(config, "context", name, "its current-context")
    cluster_name, user_name = context.get("cluster"), context.get("user")
    cluster = _named(config, "cluster", cluster_name, f"context {name!r}")
    user = _named(config, "user", user_name, f"context {name!r}") if user_name else {}
    folder = Path(os.path.abspath(path)).parent
    server = urllib.parse.urlsplit(str(cluster.get("server") or ""))
    if server.scheme not in ("https", "http") or not server.hostname:
        raise ConnectError(f"cluster {cluster_name!r} has server {cluster.get('server')!r}; "
                           "give the API server's https:// URL")
    proxy = urllib.parse.urlsplit(str(cluster.get("proxy-url") or ""))
    if proxy.scheme not in ("", "http"):
        raise ConnectError(f"cluster {cluster_name!r} has proxy-url scheme {proxy.scheme!r}; "
                           "only http:// proxies are supported")
    proxy_headers = {}
    if proxy.username is not None:
        basic = f"{urllib.parse.unquote(proxy.username)}:{urllib.parse.unquote(proxy.password or '')}"
        proxy_headers["Proxy-Authorization"] = "Basic " + base64.b64encode(basic.encode()).decode()
    what = f"cluster {cluster_name!r}"
    ca_data = _data(cluster, "certificate-authority-data", what)
    access = ClusterAccess(
        server=server.geturl(),
        ca_file=None if ca_data else _path(cluster, "certificate-authority", folder, what),
        ca_data=ca_data.decode(errors="replace") if ca_data else None,
        insecure=bool(cluster.get("insecure-skip-tls-verify")),
        tls_server_name=cluster.get("tls-server-name") or None,
        proxy_url=proxy.geturl() or None,
        proxy_headers=proxy_headers,
        namespace=context.get("namespace") or "default",
        credentials=_credentials(user, str(user_name), folder),
    )
    return _checked(access, f"cluster {cluster_name!r} and user {user_name!r}")


def in_cluster(account_dir: Path = SERVICE_ACCOUNT_DIR) -> ClusterAccess:
    """The `ClusterAccess` of the pod's service account: the kubelet's address and mounted token."""
    address = settings.in_cluster_address()
    if address is None:
        raise ConnectError(f"${settings.SERVICE_HOST_ENV} and ${settings.SERVICE_PORT_ENV} are not set, "
                           "so this is not a pod")
    host, port = address
    ca = account_dir / "ca.crt"
    if not ca.is_file():
        raise ConnectError(f"{ca} does not exist (is automountServiceAccountToken false?)")
    namespace = account_dir / "namespace"
    access = ClusterAccess(
        server=f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}",
        ca_file=str(ca),
        namespace=namespace.read_text().strip() if namespace.is_file() else "default",
        credentials=TokenFile(account_dir / "token"),
    )
    return _checked(access, f"the certificate authority {ca}")


def _credentials(user: dict[str, Any], name: str, folder: Path) -> Credentials:
    if "auth-provider" in user:
        raise ConnectError(f"user {name!r} uses an auth-provider, which kubectl dropped in 1.26; "
                           "give the user an exec plugin instead (e.g. kubelogin, gke-gcloud-auth-plugin)")
    what = f"user {name!r}"
    cert_data, key_data = _data(user, "client-certificate-data", what), _data(user, "client-key-data", what)
    cert: Certificate | None = None
    if cert_data and key_data:
        cert = (private_file(cert_data + b"\n" + key_data + b"\n"), None)
    elif cert_data or key_data:
        raise ConnectError(f"{what} has only one of client-certificate-data and client-key-data; give both")
    elif user.get("client-certificate"):
        cert = (str(_path(user, "client-certificate", folder, what)),
                _path(user, "client-key", folder, what))
    base: Credentials
    if user.get("token"):
        base = Static(f"Bearer {user['token']}", cert)
    elif user.get("tokenFile"):
        base = TokenFile(Path(str(_path(user, "tokenFile", folder, what))), cert)
    else:
        basic = f"{user.get('username')}:{user.get('password') or ''}"
        base = Static("Basic " + base64.b64encode(basic.encode()).decode() if user.get("username") else None,
                      cert)
    return Exec(user["exec"], name, folder, base) if isinstance(user.get("exec"), dict) else base


def _named(config: dict[str, Any], kind: str, name: Any, referrer: str) -> dict[str, Any]:
    for entry in config.get(f"{kind}s") or []:
        if isinstance(entry, dict) and entry.get("name") == name:
            value = entry.get(kind)
            return value if isinstance(value, dict) else {}
    raise ConnectError(f"{referrer} names {kind} {name!r}, which it does not define; "
                       f"add it or pick another context with `kubectl config use-context`")


def _path(entry: dict[str, Any], key: str, folder: Path, what: str) -> str | None:
    if not entry.get(key):
        return None
    path = folder / os.path.expanduser(str(entry[key]))
    if not path.is_file():
        raise ConnectError(f"the {key} {path} of {what} does not exist")
    return str(path)


def _data(entry: dict[str, Any], key: str, what: str) -> bytes | None:
    if not entry.get(key):
        return None
    try:
        return base64.b64decode(str(entry[key]), validate=True)
    except (binascii.Error, ValueError):
        raise ConnectError(f"the {key} of {what} is not base64; encode the PEM with `base64 -w0`") from None


def _checked(access: ClusterAccess, what: str) -> ClusterAccess:
    """`access` once its TLS files load (so a bad one fails here, not at the first request)."""
    if access.server.startswith("https:"):
        try:
            access.ssl_context()
        except (OSError, ssl.SSLError, ValueError) as error:
            raise ConnectError(f"the certificates of {what} do not load ({error})") from None
    return access
