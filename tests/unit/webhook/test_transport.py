"""The transport's own rules: Status → exception, the watch-line splitter, paged lists, watches."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator

import pytest
from kubernetes import client

from tests.unit.webhook.fake_apiserver import PODS_PATH, SUBNETS_PATH, FakeApi
from webhook.cluster import errors
from webhook.cluster.transport import Transport, lines


def status(code: int, reason: str = "", message: str = "it said so") -> bytes:
    return json.dumps({"kind": "Status", "code": code, "reason": reason, "message": message}).encode()


@pytest.mark.parametrize(("code", "reason", "creating", "expected"), [
    (404, "NotFound", False, errors.NotFound),
    (409, "AlreadyExists", False, errors.AlreadyExists),
    (409, "Conflict", True, errors.Conflict),
    (409, "", True, errors.AlreadyExists),  # a bare 409 on create: the name is taken
    (409, "", False, errors.Conflict),
    (410, "Expired", False, errors.Gone),
    (422, "Invalid", False, errors.Invalid),
    (403, "Forbidden", False, errors.Forbidden),
    (401, "Unauthorized", False, errors.Unauthorized),
    (429, "TooManyRequests", False, errors.TooManyRequests),
    (504, "", False, errors.ServerTimeout),
    (500, "ServerTimeout", False, errors.ServerTimeout),
    (500, "InternalError", False, errors.ApiError),
])
def test_a_status_becomes_its_exception(code: int, reason: str, creating: bool, expected: type) -> None:
    error = errors.status_error(code, status(code, reason), creating=creating)
    assert type(error) is expected
    assert (error.status, error.reason, error.message) == (code, reason, "it said so")
    assert str(error) == f"API server answered {code}: it said so"


def test_only_throttling_timeouts_and_silence_are_retriable() -> None:
    assert errors.status_error(429, status(429)).retriable
    assert errors.status_error(504, status(504)).retriable
    assert errors.Unreachable("no route").retriable and errors.Unreachable("no route").status == 0
    assert not errors.status_error(409, status(409)).retriable
    assert not errors.status_error(500, status(500)).retriable


def test_a_body_that_is_not_a_status_is_the_message() -> None:
    error = errors.status_error(502, b"<html>bad gateway</html>")
    assert type(error) is errors.ApiError and error.message == "<html>bad gateway</html>"


def test_a_watch_error_event_carries_its_status() -> None:
    error = errors.status_object_error({"kind": "Status", "code": 410, "reason": "Expired",
                                        "message": "too old"})
    assert isinstance(error, errors.Gone) and error.message == "too old"


def test_lines_are_whole_however_the_stream_is_cut() -> None:
    events = [json.dumps({"n": n, "pad": "x" * n}).encode() for n in range(40)]
    stream = b"\n".join(events) + b"\n"
    for size in (1, 2, 3, 7, 64, len(stream)):
        chunks = [stream[i:i + size] for i in range(0, len(stream), size)]
        assert list(lines(chunks)) == events, size


def test_lines_skip_blanks_and_keep_an_unterminated_last_line() -> None:
    assert list(lines([b"a\n\n  \nb", b"c", b"\n", b"d"])) == [b"a", b"bc", b"d"]
    assert list(lines([b"", b"\n", b"x\n"])) == [b"x"]


def test_a_long_line_in_many_chunks_is_joined_once() -> None:
    """Linear: one 4 MB event in 64 KiB chunks is joined from its pieces once, not re-copied
    with every chunk (which made the old splitter quadratic)."""
    line = b"y" * (4 << 20)
    chunks = [line[i:i + 65536] for i in range(0, len(line), 65536)] + [b"\n"]
    started = time.perf_counter()
    assert list(lines(chunks)) == [line]
    assert time.perf_counter() - started < 0.5


@pytest.fixture
def fake() -> Iterator[FakeApi]:
    api = FakeApi([SUBNETS_PATH, PODS_PATH])
    yield api
    api.close()


def transport_for(fake: FakeApi) -> Transport:
    configuration = client.Configuration()
    configuration.host = fake.host
    return Transport.for_client(client.ApiClient(configuration), timeout=5.0)


def test_a_list_is_read_in_pages_and_keeps_its_resource_version(fake: FakeApi) -> None:
    for n in range(5):
        fake.put(PODS_PATH, f"p{n}", namespace="default")
    fake.page_size = 2
    items, version = transport_for(fake).list(PODS_PATH, {"fieldSelector": "spec.nodeName=n1"})
    assert [i["metadata"]["name"] for i in items] == ["p0", "p1", "p2", "p3", "p4"]
    assert version == str(fake.version)
    queries = [query for path, query in fake.requests]
    assert [q.get("continue") for q in queries] == [None, ["2"], ["4"]]
    assert all(q["limit"] == ["500"] and q["fieldSelector"] == ["spec.nodeName=n1"] for q in queries)


def test_a_failed_page_raises_its_status(fake: FakeApi) -> None:
    fake.failures = 1
    with pytest.raises(errors.ApiError, match="500: etcd down"):
        transport_for(fake).list(PODS_PATH)
    with pytest.raises(errors.NotFound):
        transport_for(fake).list("/apis/example.com/v1/widgets")


def test_a_watch_streams_events_and_closing_it_ends_a_quiet_one(fake: FakeApi) -> None:
    watch = transport_for(fake).watch(SUBNETS_PATH, {"resourceVersion": "1"}, timeout=30.0)
    seen: list[dict] = []
    reader = threading.Thread(target=lambda: seen.extend(watch.events()))
    reader.start()
    fake.put(SUBNETS_PATH, "a")
    deadline = time.monotonic() + 5
    while not seen and time.monotonic() < deadline:
        time.sleep(0.01)
    watch.close()  # the stream is quiet now: the read must end at once
    reader.join(2.0)
    assert not reader.is_alive()
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in seen] == [("ADDED", "a")]


def test_a_watch_error_event_raises_gone(fake: FakeApi) -> None:
    watch = transport_for(fake).watch(SUBNETS_PATH, {"resourceVersion": "1"}, timeout=30.0)
    fake.expire_watches(SUBNETS_PATH)
    with pytest.raises(errors.Gone, match="too old resource version"):
        next(watch.events())
    watch.close()
    fake.gone_watches = 1
    with pytest.raises(errors.Gone):
        transport_for(fake).watch(SUBNETS_PATH, {}, timeout=5.0)
