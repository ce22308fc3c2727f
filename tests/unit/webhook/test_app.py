"""The Flask app through its test client: routing, error handling, readiness, metrics, logging, fuzzing."""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kubernetes import client as k8s_client

from tests.unit.webhook.fake_apiserver import SUBNETS_PATH, FakeApi
from webhook import app as webhook_app
from webhook import logs
from webhook.cluster import connection, informers, objects
from webhook.cluster.cache import ObjectCache
from webhook.cluster.kubeapi import AlreadyExists, NotFound
from webhook.cluster.store import Store
from webhook.settings import SETTINGS_ENV, Settings

NAD_CONFIG = json.dumps({
    "cniVersion": "0.3.0",
    "type": "macvlan",
    "master": "eth0",
    "mode": "bridge",
    "ipam": {
        "type": "kube-ovn",
        "server_socket": "/run/openvswitch/kube-ovn-daemon.sock",
        "provider": "macvlan.default",
    },
})


class MemoryApi:
    """The store's API server calls, answered from the test's cache (the 'cluster')."""

    def __init__(self, cache: ObjectCache) -> None:
        self.cache = cache
        self.version = 1
        self.leases: dict[tuple[str, str], dict[str, Any]] = {}

    def _stamp(self, body: dict[str, Any]) -> dict[str, Any]:
        self.version += 1
        obj = json.loads(json.dumps(body))
        obj.setdefault("metadata", {})["resourceVersion"] = str(self.version)
        return obj

    def create_ip(self, body: dict[str, Any]) -> dict[str, Any]:
        name = body["metadata"]["name"]
        if self.cache.get(objects.IPS, name) is not None:
            raise AlreadyExists(409, f"ips {name} already exists")
        obj = self._stamp(body)
        self.cache.put(objects.IPS, obj)
        return obj

    def patch_ip(self, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        current = self.cache.get(objects.IPS, name)
        if current is None:
            raise NotFound(404, f"ips {name} not found")
        merged = json.loads(json.dumps(current))
        for section, values in patch.items():
            if isinstance(values, dict):
                merged.setdefault(section, {}).update(values)
        obj = self._stamp(merged)
        self.cache.put(objects.IPS, obj)
        return obj

    def delete_ip(self, name: str, *, resource_version: str | None = None) -> None:
        current = self.cache.get(objects.IPS, name)
        if current is None:
            raise NotFound(404, f"ips {name} not found")
        self.cache.delete(objects.IPS, current)

    def patch_subnet_status(self, name: str, status: dict[str, Any]) -> None:
        subnet = self.cache.get(objects.SUBNETS, name)
        if subnet is not None:
            self.cache.put(objects.SUBNETS, {**subnet, "status": status})

    def read(self, kind: str, name: str, namespace: str = "") -> dict[str, Any] | None:
        return self.cache.get(kind, name, namespace)

    def list(self, kind: str) -> list[dict[str, Any]]:
        return self.cache.list(kind)

    def read_lease(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.leases.get((namespace, name))

    def create_lease(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        key = (namespace, body["metadata"]["name"])
        if key in self.leases:
            raise AlreadyExists(409, "lease exists")
        self.leases[key] = self._stamp(body)
        return self.leases[key]

    def replace_lease(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        self.leases[(namespace, body["metadata"]["name"])] = self._stamp(body)
        return self.leases[(namespace, body["metadata"]["name"])]


NO_THREADS = Settings(start_informers=False, start_lifecycle=False)


def make_app(cache: ObjectCache | None = None, *, api_client: Any = None, **fields: Any) -> Flask:
    cache = cache if cache is not None else ObjectCache()
    return webhook_app.create_app(
        replace(NO_THREADS, **fields), cache=cache, api_client=api_client,
        store=Store(cache, api=MemoryApi(cache)),
    )


@pytest.fixture
def cache() -> ObjectCache:
    cache = ObjectCache()
    cache.put(objects.NADS, {
        "apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
        "metadata": {"name": "macvlan", "namespace": "default"}, "spec": {"config": NAD_CONFIG},
    })
    cache.put(objects.SUBNETS, {
        "apiVersion": "kubeovn.io/v1", "kind": "Subnet", "metadata": {"name": "macvlan"},
        "spec": {
            "protocol": "IPv4", "provider": "macvlan.default", "cidrBlock": "172.17.0.0/16",
            "gateway": "172.17.0.1", "excludeIps": ["172.17.0.0..172.17.0.10"],
        },
    })
    return cache


@pytest.fixture
def client(cache: ObjectCache) -> Iterator[FlaskClient]:
    app = make_app(cache)
    yield app.test_client()
    webhook_app.runtime_of(app).stop()


def review(obj: dict[str, Any] | None, *, kind: str, group: str = "", version: str = "v1",
           operation: str = "CREATE", namespace: str | None = None, uid: str = "uid-1",
           old: dict[str, Any] | None = None) -> dict[str, Any]:
    request: dict[str, Any] = {
        "uid": uid,
        "kind": {"group": group, "version": version, "kind": kind},
        "resource": {"group": group, "version": version, "resource": kind.lower() + "s"},
        "operation": operation,
        "userInfo": {"username": "admin"},
        "object": obj,
        "oldObject": old,
        "dryRun": False,
    }
    if namespace is not None:
        request["namespace"] = namespace
    if obj and (obj.get("metadata") or {}).get("name"):
        request["name"] = obj["metadata"]["name"]
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}


def subnet(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "kubeovn.io/v1", "kind": "Subnet", "metadata": {"name": name}, "spec": spec}


def test_healthz_answers_while_serving(client: FlaskClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_readyz_without_informers_is_ready(client: FlaskClient) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.get_json() == {"ready": True}


def test_readyz_names_the_kinds_not_synced_yet() -> None:
    configuration = k8s_client.Configuration()
    configuration.host = "http://127.0.0.1:9"  # nothing listens: the informers never sync
    app = make_app(start_informers=True, api_client=k8s_client.ApiClient(configuration))
    try:
        response = app.test_client().get("/readyz")
    finally:
        webhook_app.runtime_of(app).stop()
    assert response.status_code == 503
    body = response.get_json()
    assert body["ready"] is False
    assert body["unsynced"] == ["subnets", "ips", "ippools", "network-attachment-definitions",
                                "pods", "statefulsets", "store"]
    assert body["message"].startswith("caches not synced yet: subnets, ips")


def test_readyz_turns_ready_once_synced_and_indexed() -> None:
    fake = FakeApi([resource.path for resource in informers.RESOURCES.values()])
    fake.put(SUBNETS_PATH, "macvlan", {"cidrBlock": "172.17.0.0/16", "provider": "macvlan.default"})
    configuration = k8s_client.Configuration()
    configuration.host = fake.host
    app = webhook_app.create_app(
        Settings(start_lifecycle=False), api_client=k8s_client.ApiClient(configuration)
    )
    runtime = webhook_app.runtime_of(app)
    try:
        deadline = time.monotonic() + 10
        while app.test_client().get("/readyz").status_code != 200:
            assert time.monotonic() < deadline, "never became ready"
            time.sleep(0.05)
        assert runtime.cache.get(objects.SUBNETS, "macvlan") is not None
        assert runtime._store is not None  # built before ready, not on the first /mutate
    finally:
        runtime.stop()
        fake.close()


def test_lifecycle_starts_after_sync_leads_and_hands_the_lease_back_on_stop() -> None:
    fake = FakeApi([resource.path for resource in informers.RESOURCES.values()])
    fake.failures = 5  # the first lists fail: the Lifecycle must wait for the caches
    configuration = k8s_client.Configuration()
    configuration.host = fake.host
    cache = ObjectCache()
    memory = MemoryApi(cache)
    app = webhook_app.create_app(
        Settings(identity="worker-a", lease_namespace="ipam"), cache=cache,
        api_client=k8s_client.ApiClient(configuration), store=Store(cache, api=memory),
    )
    runtime = webhook_app.runtime_of(app)
    try:
        deadline = time.monotonic() + 10
        while runtime.lifecycle is None or not runtime.lifecycle.leader:
            assert time.monotonic() < deadline, "the lifecycle never led"
            if runtime.lifecycle is not None:
                assert runtime.informers.synced  # never before every kind is listed
            time.sleep(0.05)
        (namespace, _), lease = next(iter(memory.leases.items()))
        assert lease["spec"]["holderIdentity"] == "worker-a"
        assert namespace == "ipam"  # --lease-namespace
    finally:
        runtime.stop()
        fake.close()
    assert next(iter(memory.leases.values()))["spec"]["holderIdentity"] == ""  # handed back


def test_connect_reads_a_kubeconfig(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "k", "cluster": {"server": "https://127.0.0.1:6443"}}],
        "users": [{"name": "u", "user": {"token": "secret-token"}}],
        "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u"}}],
    }))
    api = connection.connect(str(kubeconfig))
    try:
        assert api.server == "https://127.0.0.1:6443"
        assert api.authorization() == "Bearer secret-token"
    finally:
        api.close()


def test_connect_failures_say_what_to_give(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(connection.ConnectError, match=r"service account .*; run in a pod or give"):
        connection.connect(None)
    broken = tmp_path / "kubeconfig"
    broken.write_text("apiVersion: v1\nkind: Config\n")
    with pytest.raises(connection.ConnectError, match="give a working --kubeconfig"):
        connection.connect(str(broken))


def test_validate_allows_a_good_subnet_and_echoes_the_uid(client: FlaskClient) -> None:
    body = review(subnet("attach", cidrBlock="10.20.0.0/24", provider="attach.default"),
                  kind="Subnet", group="kubeovn.io", uid="abc-123")
    response = client.post("/validate", json=body)
    assert response.status_code == 200
    answer = response.get_json()
    assert answer["apiVersion"] == "admission.k8s.io/v1" and answer["kind"] == "AdmissionReview"
    assert answer["response"]["uid"] == "abc-123"
    assert answer["response"]["allowed"] is True


def test_validate_denies_a_bad_subnet_with_a_status(client: FlaskClient) -> None:
    body = review(subnet("bad", cidrBlock="10.20.0.0/33", provider="bad.default"), kind="Subnet",
                  group="kubeovn.io")
    answer = client.post("/validate", json=body).get_json()["response"]
    assert answer["allowed"] is False
    assert answer["status"]["code"] >= 400
    assert "10.20.0.0/33" in answer["status"]["message"]


def test_validate_passes_kinds_it_has_no_rules_for(client: FlaskClient) -> None:
    body = review({"metadata": {"name": "cm", "namespace": "default"}}, kind="ConfigMap", namespace="default")
    assert client.post("/validate", json=body).get_json()["response"]["allowed"] is True


def test_mutate_leaves_other_kinds_alone(client: FlaskClient) -> None:
    answer = client.post("/mutate", json=review(subnet("s", cidrBlock="10.0.0.0/24"), kind="Subnet",
                                                  group="kubeovn.io")).get_json()["response"]
    assert answer == {"uid": "uid-1", "allowed": True}


def test_mutate_allocates_through_the_store(client: FlaskClient, cache: ObjectCache) -> None:
    pod = {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "samplepod", "namespace": "default",
                     "annotations": {"k8s.v1.cni.cncf.io/networks": "macvlan"}},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
    }
    answer = client.post("/mutate", json=review(pod, kind="Pod", namespace="default")).get_json()["response"]

    assert answer["allowed"] is True
    assert answer["patchType"] == "JSONPatch"
    patch = json.loads(base64.b64decode(answer["patch"]))
    values = {op["path"]: op.get("value") for op in patch}
    flat = json.dumps(values)
    assert "macvlan.default.kubernetes.io~1ip_address" in flat
    assert "172.17.0.11" in flat  # the first address after the excluded range
    assert cache.get(objects.IPS, objects.ip_object_name("macvlan", "172.17.0.11")) is not None


@pytest.mark.parametrize("path", ["/validate", "/mutate"])
@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b"{not json", "body is not valid JSON"),
        (b"\xff\xfe", "body is not valid JSON"),
        (b"", "body is not valid JSON"),
        (b"[]", "body must be a JSON object (an AdmissionReview), not an array"),
        (b'{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}', "request must be an object"),
    ],
)
def test_malformed_bodies_get_400_json(client: FlaskClient, path: str, data: bytes, fragment: str) -> None:
    response = client.post(path, data=data, content_type="application/json")
    assert response.status_code == 400
    assert response.is_json
    assert fragment in response.get_json()["error"]


def test_unknown_path_and_wrong_method_answer_json(client: FlaskClient) -> None:
    missing = client.get("/nope")
    wrong = client.get("/validate")
    assert missing.status_code == 404 and missing.is_json and "error" in missing.get_json()
    assert wrong.status_code == 405 and wrong.is_json


def test_oversized_body_is_refused_with_413(cache: ObjectCache) -> None:
    app = make_app(cache)
    app.config["MAX_CONTENT_LENGTH"] = 1024
    response = app.test_client().post("/validate", data=b" " * 4096, content_type="application/json")
    assert response.status_code == 413
    assert response.is_json


def test_unexpected_errors_are_500_json_with_a_logged_traceback(
    client: FlaskClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from webhook import validate

    def explode(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("rule crashed")

    monkeypatch.setattr(validate, "review", explode)
    with caplog.at_level(logging.ERROR, logger="webhook.app"):
        response = client.post("/validate", json=review(subnet("s"), kind="Subnet", group="kubeovn.io"))

    assert response.status_code == 500
    assert response.is_json
    assert response.get_json()["error"].startswith("internal error in the webhook (RuntimeError)")
    assert "Traceback" not in response.get_data(as_text=True)
    assert any(r.exc_info and "rule crashed" in str(r.exc_info[1]) for r in caplog.records)


def test_each_review_logs_one_line_with_fields(client: FlaskClient, caplog: pytest.LogCaptureFixture) -> None:
    body = review(subnet("bad", cidrBlock="300.0.0.0/24"), kind="Subnet", group="kubeovn.io")
    with caplog.at_level(logging.INFO, logger="webhook.app"):
        client.post("/validate", json=body)
    lines = [r for r in caplog.records if r.name == "webhook.app"]
    assert len(lines) == 1
    fields = lines[0].fields  # type: ignore[attr-defined]
    assert fields["kind"] == "Subnet" and fields["object"] == "bad" and fields["operation"] == "CREATE"
    assert fields["allowed"] is False and fields["denial"]
    assert fields["duration_ms"] >= 0 and 0 <= fields["cpu_ms"] <= fields["duration_ms"] + 1
    assert lines[0].getMessage().startswith("validate Subnet bad CREATE: denied: ")
    formatted = json.loads(logs.JsonFormatter().format(lines[0]))
    assert formatted["allowed"] is False and formatted["kind"] == "Subnet" and formatted["level"] == "info"
    assert formatted["message"] == lines[0].getMessage() and "300.0.0.0/24" in formatted["denial"]


def test_an_allowed_reviews_json_line_keeps_its_message(client: FlaskClient,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="webhook.app"):
        client.post("/validate", json=review(subnet("fine", cidrBlock="10.9.9.0/24", provider="f.default"),
                                             kind="Subnet", group="kubeovn.io"))
    line = next(r for r in caplog.records if r.name == "webhook.app")
    formatted = json.loads(logs.JsonFormatter().format(line))
    assert formatted["allowed"] is True and formatted["denial"] == ""
    assert formatted["message"].startswith("validate Subnet fine CREATE: allowed")


def test_metrics_count_reviews(client: FlaskClient) -> None:
    client.post("/validate", json=review(subnet("m", cidrBlock="10.9.0.0/24", provider="m.default"),
                                         kind="Subnet", group="kubeovn.io"))
    client.post("/validate", data=b"[]", content_type="application/json")
    response = client.get("/metrics")
    text = response.get_data(as_text=True)
    assert response.status_code == 200
    assert response.content_type.startswith("text/plain")
    assert ('multinic_ipam_admission_reviews_total{kind="Subnet",operation="CREATE",result="allowed",'
            'webhook="validate"}') in text
    assert 'multinic_ipam_bad_reviews_total{webhook="validate"}' in text
    assert "multinic_ipam_admission_review_seconds_bucket" in text


def test_worker_app_runs_with_the_settings_serve_handed_down(monkeypatch: pytest.MonkeyPatch) -> None:
    handed = Settings(start_informers=False, start_lifecycle=False, kubeconfig="/nonexistent/kubeconfig",
                      identity="7", system_users=("system:serviceaccount:kube-system:ipam", "ops"))
    monkeypatch.setenv(SETTINGS_ENV, handed.encode())  # JSON-looking values stay strings
    app = webhook_app.worker_app()
    runtime = webhook_app.runtime_of(app)
    assert runtime.informers is None
    assert runtime.kubeconfig == "/nonexistent/kubeconfig"
    assert runtime.identity == "7"
    assert runtime.system_users == frozenset({"system:serviceaccount:kube-system:ipam", "ops"})
    # its own cache keeps only what the webhook reads (informers.compact)
    runtime.cache.put(objects.PODS, {"metadata": {"name": "p", "namespace": "n", "managedFields": [{}]},
                                     "spec": {"containers": [{"name": "c"}], "restartPolicy": "Always"}})
    assert runtime.cache.get(objects.PODS, "p", "n") == {
        "metadata": {"name": "p", "namespace": "n"}, "spec": {"restartPolicy": "Always"}}


def test_service_account_user_comes_from_the_token(tmp_path: Path) -> None:
    claims = {"sub": "system:serviceaccount:kube-system:multinic-ipam"}
    payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    token = tmp_path / "token"
    token.write_text(f"e30.{payload}.sig")
    assert webhook_app._service_account_user(token) == "system:serviceaccount:kube-system:multinic-ipam"
    token.write_text("garbage")
    assert webhook_app._service_account_user(token) is None
    assert webhook_app._service_account_user(tmp_path / "absent") is None


def test_log_config_rejects_an_unknown_format() -> None:
    with pytest.raises(ValueError, match="log format 'xml' is not supported; use one of text, json"):
        logs.dict_config("xml")
    assert logs.dict_config("json")["formatters"]["main"]["()"] == "webhook.logs.JsonFormatter"


# ---- fuzzing: no body, however odd, makes the webhook answer 500 -------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)
KINDS = st.sampled_from([
    ("", "v1", "Pod"), ("kubeovn.io", "v1", "Subnet"), ("kubeovn.io", "v1", "IPPool"),
    ("k8s.cni.cncf.io", "v1", "NetworkAttachmentDefinition"), ("apps", "v1", "Deployment"),
    ("apps", "v1", "StatefulSet"), ("batch", "v1", "CronJob"), ("", "v1", "ConfigMap"),
])
ANNOTATION_KEYS = st.sampled_from([
    "k8s.v1.cni.cncf.io/networks", "v1.multus-cni.io/default-network",
    "macvlan.default.kubernetes.io/ip_address", "macvlan.default.kubernetes.io/mac_address",
    "macvlan.default.kubernetes.io/ip_pool", "macvlan.default.kubernetes.io/routes",
    "macvlan.default.kubernetes.io/logical_switch", "ovn.kubernetes.io/ip_address",
])
ANNOTATION_VALUES = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["macvlan", "default/macvlan@eth1", "172.17.0.100", "10.0.0.0/8", "[]",
                     '[{"name": "macvlan", "ips": ["172.17.0.50"]}]', '[{"dst": "", "gw": "172.17.0.1"}]',
                     "00:00:00:11:22:33", "172.17.0.20,172.17.0.21", "macvlan,attachnet"]),
)
METADATA = st.fixed_dictionaries(
    {"name": st.sampled_from(["a", "web-0", "macvlan", ""]), "namespace": st.just("default")},
    optional={"annotations": st.dictionaries(ANNOTATION_KEYS, ANNOTATION_VALUES, max_size=4),
              "generateName": st.just("web-")},
)
OBJECTS = st.fixed_dictionaries(
    {"metadata": METADATA},
    optional={"spec": st.dictionaries(st.sampled_from(["cidrBlock", "provider", "gateway", "excludeIps",
                                                       "config", "subnet", "ips", "replicas", "template"]),
                                      JSON, max_size=4)},
)


def fuzz_settings() -> Any:
    return settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@fuzz_settings()
@given(body=JSON, path=st.sampled_from(["/validate", "/mutate"]))
def test_fuzz_any_json_body_is_never_a_500(client: FlaskClient, body: Any, path: str) -> None:
    response = client.post(path, data=json.dumps(body), content_type="application/json")
    assert response.status_code in (200, 400), response.get_data(as_text=True)


@fuzz_settings()
@given(
    kind=KINDS, obj=OBJECTS, how=st.tuples(st.sampled_from(["CREATE", "UPDATE", "DELETE"]), st.booleans()),
    path=st.sampled_from(["/validate", "/mutate"]),
)
def test_fuzz_well_formed_reviews_are_never_a_500(
    client: FlaskClient, kind: tuple[str, str, str], obj: dict[str, Any], how: tuple[str, bool], path: str
) -> None:
    group, version, name = kind
    operation, dry_run = how
    body = review(obj, kind=name, group=group, version=version, operation=operation, namespace="default",
                  old=obj if operation != "CREATE" else None)
    body["request"]["dryRun"] = dry_run
    response = client.post(path, json=body)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json()["response"]["uid"] == "uid-1"


def test_answers_are_compact_json_ending_in_a_newline_as_flasks_own(client: FlaskClient) -> None:
    response = client.get("/healthz")
    assert response.get_data() == b'{"status":"ok"}\n' and response.mimetype == "application/json"
