"""Our kubeconfig and in-cluster loader: each field kubectl reads, and a sentence for each mistake."""

from __future__ import annotations

import base64
import datetime
import http.server
import json
import os
import ssl
import stat
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from webhook.cluster import credentials, kubeconfig
from webhook.cluster.connection import ConnectError, connect
from webhook.cluster.errors import Unreachable
from webhook.cluster.transport import Transport

# -- helpers --------------------------------------------------------------------------------------


def write_kubeconfig(path: Path, cluster: dict[str, Any], user: dict[str, Any] | None = None,
                     **context: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "k", "cluster": cluster}],
        "users": [{"name": "u", "user": user or {}}],
        "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u", **context}}],
    }))
    return path


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class Pki:
    """A CA with its certificates, PEM-encoded."""

    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test-ca")])
        self.cert = self._build(self.name, self.key.public_key(), ca=True)
        self.ca_pem = self.cert.public_bytes(serialization.Encoding.PEM)

    def issue(self, common_name: str, *, client: bool, dns: str = "") -> tuple[bytes, bytes]:
        """(certificate PEM, key PEM) for a client or for a server named `dns`."""
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        cert = self._build(name, key.public_key(), ca=False, client=client, dns=dns)
        key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
        return cert.public_bytes(serialization.Encoding.PEM), key_pem

    def _build(self, name: x509.Name, public: Any, *, ca: bool, client: bool = False,
               dns: str = "") -> x509.Certificate:
        now = datetime.datetime.now(datetime.UTC)
        builder = (x509.CertificateBuilder().subject_name(name).issuer_name(self.name)
                   .public_key(public).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(days=1))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if not ca:
            usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
            builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        if dns:
            builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(dns)]), critical=False)
        return builder.sign(self.key, hashes.SHA256())


@pytest.fixture(scope="module")
def pki() -> Pki:
    return Pki()


class TlsServer:
    """An HTTPS server on 127.0.0.1 named `api.example`, which wants a client certificate of `pki`'s
    and answers every GET with the client's common name and Authorization header."""

    def __init__(self, pki: Pki, folder: Path) -> None:
        cert, key = pki.issue("apiserver", client=False, dns="api.example")
        (folder / "server.pem").write_bytes(cert + key)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cadata=pki.ca_pem.decode())
        context.load_cert_chain(folder / "server.pem")
        context.verify_mode = ssl.CERT_OPTIONAL

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                peer = self.connection.getpeercert() or {}  # type: ignore[attr-defined]
                subject = dict(item[0] for item in peer.get("subject", ()))
                body = json.dumps({"cn": subject.get("commonName"),
                                   "auth": self.headers.get("Authorization")}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"https://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def tls_server(pki: Pki, tmp_path: Path) -> Iterator[TlsServer]:
    server = TlsServer(pki, tmp_path)
    yield server
    server.close()


def get(access: kubeconfig.ClusterAccess) -> dict[str, Any]:
    transport = Transport.for_client(access, timeout=5.0)
    try:
        return transport.request("GET", "/version")
    finally:
        transport.close()


PLUGIN = """#!{python}
import json, os, sys
from pathlib import Path
count = Path(sys.argv[1])
runs = int(count.read_text()) + 1 if count.exists() else 1
count.write_text(str(runs))
if os.environ.get("PLUGIN_FAIL") or Path(sys.argv[1] + ".fail").exists():
    print("no login for you", file=sys.stderr)
    sys.exit(3)
info = json.loads(os.environ["KUBERNETES_EXEC_INFO"])
status = json.loads(os.environ.get("PLUGIN_STATUS") or "{{}}")
status.setdefault("token", f"{{os.environ['GREETING']}}-{{os.environ.get('INHERITED')}}-{{runs}}")
print(json.dumps({{"apiVersion": info["apiVersion"], "kind": "ExecCredential", "status": status}}))
"""


def plugin(folder: Path, **env: str) -> dict[str, Any]:
    """An exec plugin `./bin/plugin` (relative: next to the kubeconfig) counting its runs."""
    script = folder / "bin" / "plugin"
    script.parent.mkdir(parents=True, exist_ok=True)
    script.write_text(PLUGIN.format(python=sys.executable))
    script.chmod(0o755)
    return {"exec": {
        "apiVersion": "client.authentication.k8s.io/v1", "command": "./bin/plugin",
        "args": [str(folder / "runs")], "interactiveMode": "Never",
        "env": [{"name": "GREETING", "value": "hello"}] + [{"name": k, "value": v} for k, v in env.items()],
    }}


# -- kubeconfig fields ----------------------------------------------------------------------------


def test_the_current_context_gives_server_token_namespace_and_agent(tmp_path: Path) -> None:
    path = write_kubeconfig(tmp_path / "config", {"server": "https://10.0.0.1:6443"},
                            {"token": "abc"}, namespace="team")
    access = connect(str(path))
    assert (access.server, access.namespace, access.user_agent) == (
        "https://10.0.0.1:6443", "team", "multinic-ipam")
    assert access.authorization() == "Bearer abc"
    assert not access.insecure and access.ca_file is None and access.credentials.certificate() is None


def test_relative_paths_are_relative_to_the_kubeconfig_folder(pki: Pki, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "kube"
    (folder / "pki").mkdir(parents=True)
    cert, key = pki.issue("alice", client=True)
    (folder / "pki" / "ca.crt").write_bytes(pki.ca_pem)
    (folder / "pki" / "alice.crt").write_bytes(cert)
    (folder / "pki" / "alice.key").write_bytes(key)
    (folder / "token").write_text("from-file\n")
    write_kubeconfig(folder / "config", {"server": "https://h:1", "certificate-authority": "pki/ca.crt"},
                     {"client-certificate": "pki/alice.crt", "client-key": "pki/alice.key",
                      "tokenFile": "token"})
    monkeypatch.chdir(tmp_path)
    access = kubeconfig.load("kube/config")
    assert access.ca_file == str(folder / "pki" / "ca.crt")
    assert access.credentials.certificate() == (str(folder / "pki/alice.crt"), str(folder / "pki/alice.key"))
    assert access.authorization() == "Bearer from-file"


def test_tls_data_reaches_a_server_by_its_tls_server_name(pki: Pki, tls_server: TlsServer,
                                                          tmp_path: Path) -> None:
    cert, key = pki.issue("bob", client=True)
    path = write_kubeconfig(tmp_path / "config", {
        "server": tls_server.url, "certificate-authority-data": b64(pki.ca_pem),
        "tls-server-name": "api.example",
    }, {"client-certificate-data": b64(cert), "client-key-data": b64(key), "token": "t"})
    access = connect(str(path))
    assert access.ca_data == pki.ca_pem.decode() and access.tls_server_name == "api.example"
    cert_file, key_file = access.credentials.certificate() or ("", "")
    assert key_file is None and stat.S_IMODE(os.stat(cert_file).st_mode) == 0o600
    assert Path(cert_file).read_bytes() == cert + b"\n" + key + b"\n"
    assert get(access) == {"cn": "bob", "auth": "Bearer t"}


def test_the_server_certificate_is_checked_unless_insecure(pki: Pki, tls_server: TlsServer,
                                                           tmp_path: Path) -> None:
    path = write_kubeconfig(tmp_path / "config", {"server": tls_server.url,
                                                   "certificate-authority-data": b64(pki.ca_pem)})
    with pytest.raises(Unreachable, match="certificate"):  # issued to api.example, not 127.0.0.1
        get(connect(str(path)))
    other = Pki()
    path = write_kubeconfig(tmp_path / "config", {"server": tls_server.url,
                                                   "certificate-authority-data": b64(other.ca_pem)})
    with pytest.raises(Unreachable, match="certificate"):
        get(connect(str(path)))
    path = write_kubeconfig(tmp_path / "config", {"server": tls_server.url, "insecure-skip-tls-verify": True})
    assert get(connect(str(path))) == {"cn": None, "auth": None}


def test_proxy_url_and_its_credentials(tmp_path: Path) -> None:
    path = write_kubeconfig(tmp_path / "config", {"server": "https://h:6443",
                                                   "proxy-url": "http://me:s%40cret@proxy:3128"})
    transport = Transport.for_client(connect(str(path)), timeout=1.0)
    assert transport.proxy == ("proxy", 3128)
    assert transport.proxy_headers == {"Proxy-Authorization": "Basic " + b64(b"me:s@cret")}
    path = write_kubeconfig(tmp_path / "config", {"server": "https://h", "proxy-url": "socks5://p:1080"})
    with pytest.raises(ConnectError, match=r"proxy-url scheme 'socks5'.*only http://"):
        connect(str(path))


def test_basic_auth_and_which_credential_wins(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("file")
    server = {"server": "http://h"}
    cases = [({"username": "ann", "password": "pw"}, "Basic " + b64(b"ann:pw")),
             ({"username": "ann", "password": "pw", "tokenFile": "token"}, "Bearer file"),
             ({"token": "inline", "tokenFile": "token"}, "Bearer inline"),
             ({}, None)]
    for user, expected in cases:
        assert connect(str(write_kubeconfig(tmp_path / "config", server, user))).authorization() == expected


def test_a_token_file_is_read_again_as_it_rotates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    token = tmp_path / "token"
    token.write_text("one")
    path = write_kubeconfig(tmp_path / "config", {"server": "http://h"}, {"tokenFile": "token"})
    access = connect(str(path))
    token.write_text("two")
    assert access.authorization() == "Bearer one"  # looked at again only after a minute
    monkeypatch.setattr(credentials, "TOKEN_FILE_RECHECK_SECONDS", 0.0)
    assert access.authorization() == "Bearer two"
    token.unlink()  # mid-rotation: the last token stays
    assert access.authorization() == "Bearer two"


# -- exec plugins ---------------------------------------------------------------------------------


def test_an_exec_token_is_kept_until_it_expires(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INHERITED", "env")
    monkeypatch.chdir("/")
    later = (datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    user = plugin(tmp_path, PLUGIN_STATUS=json.dumps({"expirationTimestamp": later}))
    access = connect(str(write_kubeconfig(tmp_path / "config", {"server": "http://h"}, user)))
    assert access.authorization() == access.authorization() == "Bearer hello-env-1"
    assert (tmp_path / "runs").read_text() == "1"


def test_an_expired_exec_credential_is_asked_for_again(tmp_path: Path) -> None:
    user = plugin(tmp_path, PLUGIN_STATUS=json.dumps({"expirationTimestamp": "2020-01-01T00:00:00Z"}))
    user["exec"]["apiVersion"] = "client.authentication.k8s.io/v1beta1"
    access = connect(str(write_kubeconfig(tmp_path / "config", {"server": "http://h"}, user)))
    assert access.authorization() == "Bearer hello-None-2"
    assert access.authorization() == "Bearer hello-None-3"
    (tmp_path / "runs.fail").touch()  # once renewing fails, requests fail with a sentence
    transport = Transport.for_client(access, timeout=1.0)
    with pytest.raises(Unreachable, match=r"exec plugin .*plugin' of user 'u' failed with exit code 3 "
                                          r"\(no login for you\)"):
        transport.request("GET", "/version")


def test_an_exec_plugin_may_give_a_client_certificate(pki: Pki, tls_server: TlsServer,
                                                       tmp_path: Path) -> None:
    cert, key = pki.issue("carol", client=True)
    status = {"token": "", "clientCertificateData": cert.decode(), "clientKeyData": key.decode()}
    user = plugin(tmp_path, PLUGIN_STATUS=json.dumps(status))
    path = write_kubeconfig(tmp_path / "config", {"server": tls_server.url, "tls-server-name": "api.example",
                                                   "certificate-authority-data": b64(pki.ca_pem)}, user)
    access = connect(str(path))
    assert access.authorization() is None
    assert get(access) == {"cn": "carol", "auth": None}


def test_a_failing_exec_plugin_is_a_sentence(tmp_path: Path) -> None:
    path = write_kubeconfig(tmp_path / "config", {"server": "http://h"}, plugin(tmp_path, PLUGIN_FAIL="1"))
    with pytest.raises(ConnectError, match=r"^cannot reach the API server through kubeconfig '.*' \(the exec "
                                           r"plugin '.*/bin/plugin' of user 'u' failed with exit code 3 \(no "
                                           r"login for you\)\); give a working --kubeconfig$"):
        connect(str(path))
    user = plugin(tmp_path)
    user["exec"]["command"] = "./bin/missing"
    with pytest.raises(ConnectError, match="bin/missing' of user 'u' did not run"):
        connect(str(write_kubeconfig(tmp_path / "config", {"server": "http://h"}, user)))
    user["exec"]["apiVersion"] = "client.authentication.k8s.io/v1alpha1"
    with pytest.raises(ConnectError, match=r"apiVersion '[^']*/v1alpha1'; use one of"):
        connect(str(write_kubeconfig(tmp_path / "config", {"server": "http://h"}, user)))


# -- mistakes -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("config", "message"), [
    ({"apiVersion": "v1"}, "it has no current-context; set one with `kubectl config use-context`"),
    ({"current-context": "x", "contexts": []},
     "its current-context names context 'x', which it does not define"),
    ({"current-context": "c", "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u"}}],
      "clusters": [{"name": "k", "cluster": {"server": "https://h"}}]},
     "context 'c' names user 'u', which it does not define"),
    ({"current-context": "c", "contexts": [{"name": "c", "context": {"cluster": "nope"}}]},
     "context 'c' names cluster 'nope', which it does not define"),
    ({"current-context": "c", "contexts": [{"name": "c", "context": {"cluster": "k"}}],
      "clusters": [{"name": "k", "cluster": {}}]}, "cluster 'k' has server None; give the API server's https://"),
    ({"current-context": "c", "contexts": [{"name": "c", "context": {"cluster": "k"}}],
      "clusters": [{"name": "k", "cluster": {"server": "10.0.0.1:6443"}}]},
     "has server '10.0.0.1:6443'; give"),
    ("- just a list", "it is not a kubeconfig"),
    ("{unbalanced", "it is not YAML"),
])
def test_a_broken_kubeconfig_says_what_is_wrong(tmp_path: Path, config: Any, message: str) -> None:
    path = tmp_path / "config"
    path.write_text(config if isinstance(config, str) else json.dumps(config))
    with pytest.raises(ConnectError) as raised:
        connect(str(path))
    assert str(raised.value).startswith(f"cannot reach the API server through kubeconfig {str(path)!r} (")
    assert message in str(raised.value) and str(raised.value).endswith("); give a working --kubeconfig")


def test_missing_files_and_bad_data_are_named(tmp_path: Path) -> None:
    with pytest.raises(ConnectError, match="cannot read it: No such file"):
        connect(str(tmp_path / "absent"))
    path = write_kubeconfig(tmp_path / "config", {"server": "https://h", "certificate-authority": "ca.crt"})
    with pytest.raises(ConnectError, match=f"the certificate-authority {tmp_path / 'ca.crt'} of cluster 'k' "
                                           "does not exist"):
        connect(str(path))
    path = write_kubeconfig(tmp_path / "config", {"server": "https://h"}, {"client-key-data": "!!"})
    with pytest.raises(ConnectError, match="the client-key-data of user 'u' is not base64"):
        connect(str(path))
    path = write_kubeconfig(tmp_path / "config", {"server": "https://h"}, {"client-key-data": b64(b"k")})
    with pytest.raises(ConnectError, match="only one of client-certificate-data and client-key-data"):
        connect(str(path))
    path = write_kubeconfig(tmp_path / "config", {"server": "https://h",
                                                   "certificate-authority-data": b64(b"not a pem")})
    with pytest.raises(ConnectError, match="the certificates of cluster 'k' and user 'u' do not load"):
        connect(str(path))


def test_an_auth_provider_is_refused_with_the_way_out(tmp_path: Path) -> None:
    path = write_kubeconfig(tmp_path / "config", {"server": "https://h"},
                            {"auth-provider": {"name": "oidc", "config": {}}})
    with pytest.raises(ConnectError, match=r"user 'u' uses an auth-provider, which kubectl dropped in 1\.26; "
                                           r"give the user an exec plugin instead"):
        connect(str(path))


# -- in-cluster -----------------------------------------------------------------------------------


def test_in_cluster_reads_the_service_account(pki: Pki, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "token").write_text("sa-token")
    (tmp_path / "ca.crt").write_bytes(pki.ca_pem)
    (tmp_path / "namespace").write_text("ipam")
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "fd00::1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    access = kubeconfig.in_cluster(tmp_path)
    assert (access.server, access.ca_file, access.namespace) == (
        "https://[fd00::1]:443", str(tmp_path / "ca.crt"), "ipam")
    assert access.authorization() == "Bearer sa-token"
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    assert kubeconfig.in_cluster(tmp_path).server == "https://10.96.0.1:443"
    (tmp_path / "token").unlink()
    with pytest.raises(ConnectError, match=f"cannot read the token file {tmp_path / 'token'}"):
        kubeconfig.in_cluster(tmp_path)
    (tmp_path / "ca.crt").unlink()
    with pytest.raises(ConnectError, match=r"ca\.crt does not exist"):
        kubeconfig.in_cluster(tmp_path)


def test_outside_a_pod_in_cluster_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(ConnectError, match=(
            r"^cannot reach the API server through the in-cluster service account "
            r"\(\$KUBERNETES_SERVICE_HOST and \$KUBERNETES_SERVICE_PORT are not set, so this is not a pod\); "
            r"run in a pod or give --kubeconfig$")):
        connect(None)


def test_a_library_api_client_still_works(tmp_path: Path) -> None:
    from kubernetes import client

    configuration = client.Configuration()
    configuration.host = "https://h:6443"
    configuration.api_key = {"authorization": "tok"}
    configuration.api_key_prefix = {"authorization": "Bearer"}
    api = client.ApiClient(configuration)
    transport = Transport.for_client(api, timeout=1.0)
    assert (transport.where, transport.access.authorization()) == ("https://h:6443", "Bearer tok")
    assert transport.user_agent == api.default_headers["User-Agent"]
