"""The node daemon: waiting, fallbacks, errors, concurrency and its socket (cni.daemon)."""

from __future__ import annotations

import json
import os
import stat
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from cni import client, daemon, errors
from tests.unit.cni.helpers import StaticPods, annotated_pod, fake_daemon, serve_in_thread, short_dir

REQUEST = {"namespace": "default", "name": "p1", "provider": "macvlan.default", "ifname": "net1"}


def test_waits_for_annotations_that_arrive_late() -> None:
    pods = StaticPods([annotated_pod("p1", allocated=False)])
    timer = threading.Timer(0.3, pods.put, [annotated_pod("p1")])
    timer.start()
    answer = daemon.Responder(pods, wait_seconds=20).answer(REQUEST)
    timer.join()
    assert answer["ips"] == [{"address": "172.17.0.12/16", "family": 4}]


class FlakyPods(StaticPods):
    """A source whose cache never has the pod and whose reads fail `failures` times first."""

    def __init__(self, failures: int) -> None:
        super().__init__([annotated_pod("p1")])
        self.failures = failures
        self.reads = 0

    def cached(self, namespace: str, name: str) -> Any:
        return None

    def read(self, namespace: str, name: str) -> Any:
        self.reads += 1
        if self.reads <= self.failures:
            raise ConnectionRefusedError("API server restarting")
        return super().cached(namespace, name)

    def wait_for_change(self, timeout: float) -> None:
        return None


def test_rides_out_an_unreachable_api_server_with_direct_reads() -> None:
    pods = FlakyPods(failures=3)
    answer = daemon.Responder(pods, wait_seconds=20).answer(REQUEST)
    assert pods.reads == 4 and answer["ips"][0]["address"] == "172.17.0.12/16"


def test_gives_up_after_the_deadline_saying_the_api_server_is_unreachable() -> None:
    ticks = iter(range(100))
    responder = daemon.Responder(FlakyPods(failures=1000), wait_seconds=5, clock=lambda: float(next(ticks)))
    with pytest.raises(daemon.DaemonError, match="API server is unreachable") as caught:
        responder.answer(REQUEST)
    assert caught.value.code == errors.TRY_AGAIN_LATER


def test_recreated_pod_with_another_uid_is_refused() -> None:
    responder = daemon.Responder(StaticPods([annotated_pod("p1", uid="new")]))
    with pytest.raises(daemon.DaemonError, match="has UID new, not old"):
        responder.answer({**REQUEST, "pod_uid": "old"})


@pytest.mark.parametrize(("body", "field"), [({"name": "p1", "provider": "x"}, "namespace"),
                                             ({**REQUEST, "provider": ""}, "provider"),
                                             ({**REQUEST, "name": 3}, "name")])
def test_bad_requests_are_code_7_naming_the_field(body: dict, field: str) -> None:
    with pytest.raises(daemon.DaemonError, match=f"field {field} is") as caught:
        daemon.Responder(StaticPods()).answer(body)
    assert caught.value.code == errors.INVALID_CONFIG


def test_socket_is_0600_in_a_created_parent_and_removed_on_close() -> None:
    with short_dir() as directory:
        path = directory / "deep" / "run" / "d.sock"
        server = serve_in_thread(str(path), daemon.Responder(StaticPods()))
        try:
            mode = os.stat(path).st_mode
            assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o600
            assert client.request(str(path), "GET", "/v1/healthz") == {"ok": True}
        finally:
            server.shutdown()
            server.server_close()
        assert not path.exists()


def test_a_stale_socket_file_is_replaced() -> None:
    with short_dir() as directory:
        path = directory / "d.sock"
        path.write_text("stale")
        server = serve_in_thread(str(path), daemon.Responder(StaticPods()))
        try:
            assert client.request(str(path), "GET", "/v1/healthz") == {"ok": True}
        finally:
            server.shutdown()
            server.server_close()


class BarrierPods(StaticPods):
    """Every read waits until `parties` reads are in flight: only a concurrent server gets past it."""

    def __init__(self, parties: int) -> None:
        super().__init__([annotated_pod(f"p{i}") for i in range(parties)])
        self.barrier = threading.Barrier(parties, timeout=20)

    def cached(self, namespace: str, name: str) -> Any:
        return None

    def read(self, namespace: str, name: str) -> Any:
        self.barrier.wait()
        return super().cached(namespace, name)


def test_serves_calls_concurrently() -> None:
    # More callers than socketserver's default backlog of 5, all connecting at once.
    pods = BarrierPods(24)
    with fake_daemon(pods, wait_seconds=30) as socket, ThreadPoolExecutor(24) as pool:
        answers = list(pool.map(
            lambda i: client.allocation(socket, {**REQUEST, "name": f"p{i}"}), range(24)))
    assert [a.ips[0].address for a in answers] == ["172.17.0.12/16"] * 24
    assert not pods.barrier.broken


@pytest.mark.parametrize(("method", "path", "body", "status"), [
    ("POST", "/v1/allocation", b"{nope", 400), ("POST", "/v1/allocation", b"[]", 400),
    ("POST", "/v2/other", b"{}", 404), ("GET", "/nothing", None, 404),
])
def test_http_errors_are_json_with_a_code(method: str, path: str, body: bytes | None, status: int) -> None:
    with fake_daemon(StaticPods()) as socket:
        answered, raw = client.exchange(socket, method, path, body or b"", timeout=10)
    payload = json.loads(raw)
    assert answered == status
    assert isinstance(payload["code"], int) and payload["msg"]


def test_node_command_is_registered_with_the_documented_defaults() -> None:
    from webhook import cli

    args = cli.build_parser().parse_args(["node", "--kubeconfig", "k", "--node-name", "n1"])
    assert (args.socket, args.wait_seconds, args.node_name) == (daemon.DEFAULT_SOCKET, 10.0, "n1")
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["node", "--wait-seconds", "-1"])


def test_each_call_logs_one_line_with_pod_provider_and_outcome(caplog: pytest.LogCaptureFixture) -> None:
    pods = StaticPods([annotated_pod("p1"), annotated_pod("bare", allocated=False)])
    with caplog.at_level("INFO", logger="multinic_ipam.node"), fake_daemon(pods, wait_seconds=0.1) as socket:
        client.allocation(socket, REQUEST)
        with pytest.raises(errors.CniError):
            client.allocation(socket, {**REQUEST, "name": "bare"})
    lines = [r.getMessage() for r in caplog.records if r.name == "multinic_ipam.node"]
    assert len(lines) == 2
    assert lines[0].startswith("allocation default/p1 macvlan.default net1 -> 172.17.0.12/16 in ")
    assert lines[1].startswith("allocation default/bare macvlan.default net1 failed in ")
    assert lines[1].endswith("code 11: pod default/bare has no address for provider macvlan.default; "
                             "is the admission webhook installed?")


def test_pod_dict_keeps_what_the_daemon_reads_from_a_served_pod() -> None:
    from cni import podwatch

    pod = {"apiVersion": "v1", "kind": "Pod", "status": {"phase": "Running"},
           "metadata": {"name": "p", "namespace": "ns", "uid": "u", "labels": {"a": "b"}},
           "spec": {"containers": [], "nodeName": "n1"}}
    assert podwatch.pod_dict(pod) == {
        "metadata": {"namespace": "ns", "name": "p", "uid": "u", "annotations": {}},
        "spec": {"nodeName": "n1"},
    }


class CountingPods(StaticPods):
    """Counts direct reads: an annotated pod in the cache needs none."""

    reads = 0

    def read(self, namespace: str, name: str) -> Any:
        self.reads += 1
        return super().cached(namespace, name)


def test_cached_pod_with_a_per_interface_allocation_is_answered_without_a_read() -> None:
    pod = annotated_pod("twice", provider="macvlan.default.net2",
                        networks="default/macvlan@net1,default/macvlan@net2")
    pods = CountingPods([pod])
    answer = daemon.Responder(pods).answer({**REQUEST, "name": "twice", "ifname": "net2"})
    assert answer["ips"][0]["address"] == "172.17.0.12/16"
    assert pods.reads == 0


def _call_threads() -> int:
    return sum(t.name == "node-daemon-call" and t.is_alive() for t in threading.enumerate())


def test_call_threads_are_reused_bounded_and_stopped() -> None:
    before = _call_threads()
    threads = daemon.CallThreads(limit=3)
    done: list[int] = []
    for index in range(5):  # one after another: the idle thread takes each
        finished = threading.Event()
        threads.submit(lambda i, event: (done.append(i), event.set()), index, finished)
        assert finished.wait(5)
    assert _call_threads() - before == 1
    gate = threading.Event()
    for index in range(5):  # at once, each blocking: at most 3 threads, the rest wait their turn
        threads.submit(lambda i: (gate.wait(5), done.append(i)), 10 + index)
    time.sleep(0.2)
    assert _call_threads() - before == 3 and len(done) == 5
    gate.set()
    deadline = time.monotonic() + 5
    while len(done) < 10 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sorted(done) == [0, 1, 2, 3, 4, 10, 11, 12, 13, 14]
    threads.stop()
    deadline = time.monotonic() + 5
    while _call_threads() > before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _call_threads() == before
