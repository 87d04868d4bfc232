"""Side effects happen once: http.request against targets that fail in chosen ways, counting what each target did
with every record (records carry an id). Each record is processed exactly once per run, or the block fails saying
that the outcome is unknown; a paged read resumes at the failed page."""
from __future__ import annotations

import dataclasses
import socket
import time
from collections import Counter
from collections.abc import Iterator

import pytest
import requests
import urllib3.exceptions
from werkzeug.wrappers import Request, Response

from canvas.execution.blocks import _net_http
from canvas.execution.blocks._net_common import credential_redactor
from canvas.execution.blocks._net_http import HttpCall, HttpClient, HttpLimits, never_connected
from canvas.execution.blocks._net_paging import PAGE_ROUNDS
from canvas.execution.context import BlockError, TransientBlockError
from canvas.execution.data import Records
from canvas.execution.registry import get_block
from canvas.network import guard
from tests.integration.blocks.net_support import SHORT_TIMEOUT, assert_no_secrets, make_context
from tests.servers.http import json_response
from tests.servers.raw_http import DROP, HOLD, RawAnswer, RawHttpServer

IDS = [1, 2, 3, 4, 5]
API_KEY = "key-Orders-4711"


@pytest.fixture(autouse=True)
def quick_backoff(monkeypatch):
    monkeypatch.setattr(_net_http, "BACKOFF_BASE_SECONDS", 0.01)
    monkeypatch.setattr(_net_http, "ROUND_PAUSE_BASE_SECONDS", 0.01)


@pytest.fixture
def raw_server() -> Iterator:
    """Starts a RawHttpServer for a target: `raw_server(target)`; stopped at the end of the test."""
    servers: list[RawHttpServer] = []

    def start(target: "Target") -> RawHttpServer:
        server = RawHttpServer(lambda request: target.deliver(request.json(), request.headers)).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


class Target:
    """An orders API and what it did: `processed` counts the records it acted upon, by id.

    `faults` plans what happens to a record's next deliveries, in order, before it is handled normally (processed,
    201): "drop" processes it and closes the connection without answering, "hold" processes it and never answers,
    "500"/"503" process it and answer so, "400" rejects it, "429"/"503+retry-after" turn it away undone.
    With `honour_keys`, a repeated idempotency key gets the first answer again, and nothing is done twice."""

    def __init__(self, faults: dict[int, list[str]] | None = None, honour_keys: bool = False,
                 key_header: str = "Idempotency-Key"):
        self.faults = {record_id: list(plan) for record_id, plan in (faults or {}).items()}
        self.honour_keys, self.key_header = honour_keys, key_header.lower()
        self.processed: Counter = Counter()
        self.deliveries: list[tuple[int, str | None]] = []  # (record id, idempotency key) of every request
        self.bodies: list[dict] = []  # the record of every request, as sent
        self._done_keys: dict[str, RawAnswer] = {}

    def deliver(self, record: dict, headers) -> RawAnswer | str:  # noqa: ANN001 - werkzeug Headers or a dict
        record_id, key = record["id"], headers.get(self.key_header)
        self.deliveries.append((record_id, key))
        self.bodies.append(record)
        if self.honour_keys and key in self._done_keys:
            return self._done_keys[key]
        fault = self.faults[record_id].pop(0) if self.faults.get(record_id) else None
        if fault == "400":
            return RawAnswer(400, {"error": f"order {record_id} has no customer"})
        if fault == "429":
            return RawAnswer(429, {"error": "slow down"}, {"Retry-After": "1"})
        if fault == "503+retry-after":
            return RawAnswer(503, {"error": "overloaded, nothing done"}, {"Retry-After": "0"})
        self.processed[record_id] += 1
        if self.honour_keys and key:
            self._done_keys[key] = RawAnswer(201, {"saved": record_id})
        if fault in ("drop", "hold"):
            return DROP if fault == "drop" else HOLD
        if fault in ("500", "503"):
            return RawAnswer(int(fault), {"error": "saved, but the answer failed"})
        return RawAnswer(201, {"saved": record_id})

    def keys_of(self, record_id: int) -> list[str | None]:
        return [key for delivered, key in self.deliveries if delivered == record_id]


def on_werkzeug(http_server, target: Target):  # noqa: ANN001, ANN201 - the http_server fixture; gives it back
    def handle(request: Request) -> Response:
        answer = target.deliver(request.get_json(), request.headers)
        assert isinstance(answer, RawAnswer), "werkzeug cannot drop a connection: use raw_server"
        return json_response(answer.data, answer.status, answer.headers)

    http_server.route("/api/orders", handle)
    return http_server


def rest(server) -> dict:  # noqa: ANN001 - HttpServer or RawHttpServer
    return {"baseUrl": server.url("/api"), "authType": "none"}


def orders(ids: list[int] = IDS) -> Records:
    return Records(iter([{"id": record_id, "total": 10 * record_id} for record_id in ids]))


def post_each(server, tmp_path, run_id: str = "run-1", credentials: dict | None = None,  # noqa: ANN001
              **variables) -> list[dict]:
    """Runs http.request with each_record (POST by default) over the orders; gives its output, read whole."""
    variables = {"method": "POST", "path": "/orders", "bodyMode": "each_record", **variables}
    context = make_context("http.request", variables, credentials or rest(server), tmp_path)
    return list(get_block("http.request")().run(dataclasses.replace(context, run_id=run_id), orders()))


def post_each_fails(server, tmp_path, **variables) -> BlockError:  # noqa: ANN001
    with pytest.raises(BlockError) as raised:
        post_each(server, tmp_path, **variables)
    return raised.value


def assert_outcome_unknown(error: BlockError, record: int) -> None:
    assert type(error) is BlockError and not error.transient, f"{type(error).__name__}: {error}"
    assert error.outcome_unknown and not error.retry_safe
    assert f"(record {record}): the outcome is unknown" in str(error)
    assert "check the target before running this block again" in str(error)


# --- writes whose outcome is unknown are not repeated ------------------------------------------------------------


def test_a_connection_dropped_after_the_request_fails_the_block_as_outcome_unknown(raw_server, tmp_path):
    target = Target({3: ["drop"]})
    error = post_each_fails(raw_server(target), tmp_path)
    assert_outcome_unknown(error, 3)
    assert "the connection was closed after the request was sent" in str(error)
    assert target.processed == {1: 1, 2: 1, 3: 1}  # 3 once, as the target counted it; 4 and 5 never sent
    assert [record_id for record_id, _ in target.deliveries] == [1, 2, 3]


@pytest.mark.parametrize("method", ["POST", "PATCH"])
@pytest.mark.parametrize("status", ["500", "503"])
def test_a_5xx_after_processing_fails_the_block_as_outcome_unknown(http_server, tmp_path, method, status):
    target = Target({3: [status]})
    error = post_each_fails(on_werkzeug(http_server, target), tmp_path, method=method)
    assert_outcome_unknown(error, 3)
    assert f"the server answered HTTP {status}: " in str(error) and "saved, but the answer failed" in str(error)
    assert target.processed == {1: 1, 2: 1, 3: 1}


def test_no_answer_within_the_timeout_fails_the_block_as_outcome_unknown(raw_server, tmp_path):
    target = Target({2: ["hold"]})
    error = post_each_fails(raw_server(target), tmp_path, timeout=SHORT_TIMEOUT)
    assert_outcome_unknown(error, 2)
    assert f"no answer within {SHORT_TIMEOUT:g} s" in str(error)
    assert target.processed == {1: 1, 2: 1}


def test_the_outcome_unknown_message_keeps_secrets_out(http_server, tmp_path):
    http_server.route("/api/orders", lambda request: json_response(
        {"error": f"database down while storing for key {request.headers['X-Api-Key']}"}, 500))
    credentials = {**rest(http_server), "authType": "apikey_header", "apiKey": API_KEY}
    error = post_each_fails(http_server, tmp_path, credentials=credentials)
    assert error.outcome_unknown and "database down" in str(error)
    assert_no_secrets([str(error)], [API_KEY])
    assert http_server.hits("/api/orders") == 1


def test_an_idempotent_put_is_still_retried_after_a_5xx(http_server, tmp_path):
    target = Target({2: ["500"]})
    got = post_each(on_werkzeug(http_server, target), tmp_path, method="PUT")
    assert got == [{"saved": record_id} for record_id in IDS]
    assert target.processed[2] == 2  # a PUT repeated does no harm: that is what idempotent means


# --- failures that prove nothing was done are retried ------------------------------------------------------------


def test_429_with_retry_after_is_retried_and_every_record_processed_once(http_server, tmp_path):
    target = Target({3: ["429"]})
    started = time.monotonic()
    got = post_each(on_werkzeug(http_server, target), tmp_path)
    assert got == [{"saved": record_id} for record_id in IDS]
    assert target.processed == {record_id: 1 for record_id in IDS}
    assert len(target.keys_of(3)) == 2 and time.monotonic() - started >= 0.9  # the Retry-After was honoured


def test_503_with_retry_after_is_retried_and_every_record_processed_once(http_server, tmp_path):
    target = Target({2: ["503+retry-after", "503+retry-after"]})
    assert len(post_each(on_werkzeug(http_server, target), tmp_path)) == len(IDS)
    assert target.processed == {record_id: 1 for record_id in IDS} and len(target.keys_of(2)) == 3


def test_a_refused_connection_is_retried_and_safe_for_the_runner_to_repeat(closed_port, tmp_path):
    credentials = {"baseUrl": f"http://127.0.0.1:{closed_port}/api", "authType": "none"}
    error = post_each_fails(None, tmp_path, credentials=credentials, retries=1)
    assert type(error) is TransientBlockError and "connection refused" in str(error)
    assert error.retry_safe and not error.outcome_unknown  # nothing was sent: the runner may run the block again


def test_a_host_that_is_not_found_is_retried(monkeypatch, tmp_path):
    lookups = []

    def not_found(host, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003
        lookups.append(host)
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(guard.socket, "getaddrinfo", not_found)
    credentials = {"baseUrl": "http://orders.example/api", "authType": "none"}
    error = post_each_fails(None, tmp_path, credentials=credentials, retries=2)
    assert type(error) is TransientBlockError and "host not found" in str(error) and error.retry_safe
    assert lookups == ["orders.example"] * 3


def test_only_a_failure_to_connect_proves_that_nothing_was_sent():
    def wrapped(reason: Exception) -> urllib3.exceptions.MaxRetryError:
        return urllib3.exceptions.MaxRetryError(None, "/orders", reason)

    assert never_connected(requests.ConnectTimeout(wrapped(urllib3.exceptions.ConnectTimeoutError(None, "slow"))))
    assert never_connected(requests.ConnectionError(wrapped(urllib3.exceptions.NewConnectionError(None, "refused"))))
    assert not never_connected(requests.ReadTimeout(urllib3.exceptions.ReadTimeoutError(None, "/orders", "slow")))
    assert not never_connected(requests.ConnectionError(urllib3.exceptions.ProtocolError("Connection aborted.")))


def test_once_a_request_was_answered_a_later_failure_is_not_retry_safe(http_server, closed_port, tmp_path):
    http_server.route("/api/orders", lambda request: json_response({"saved": 1}, 201))
    context = make_context("http.request", {}, rest(http_server), tmp_path)
    with HttpClient(context, HttpLimits(timeout=5, retries=0), credential_redactor({})) as client:
        client.call(HttpCall("POST", http_server.url("/api/orders"), body=lambda: b"{}"))
        with pytest.raises(TransientBlockError) as raised:
            client.call(HttpCall("POST", f"http://127.0.0.1:{closed_port}/api/orders", body=lambda: b"{}"))
    assert not raised.value.retry_safe  # the first POST took effect: running the block again would repeat it


# --- a rejected record ---------------------------------------------------------------------------------------------


def test_a_400_for_one_record_fails_the_block_naming_the_record(http_server, tmp_path):
    target = Target({3: ["400"]})
    error = post_each_fails(on_werkzeug(http_server, target), tmp_path)
    assert type(error) is BlockError and not error.transient and not error.outcome_unknown
    assert "(record 3) failed: HTTP 400" in str(error) and "order 3 has no customer" in str(error)
    assert target.processed == {1: 1, 2: 1}
    assert [record_id for record_id, _ in target.deliveries] == [1, 2, 3]  # not retried; 4 and 5 never sent


def test_a_malformed_header_is_refused_before_sending_and_not_retried(http_server, tmp_path):
    error = post_each_fails(http_server, tmp_path, headers={"X-Note": "two\nlines"})
    assert type(error) is BlockError and "(record 1) cannot be sent: InvalidHeader" in str(error)
    assert not error.outcome_unknown and http_server.requests == []


# --- idempotency keys ----------------------------------------------------------------------------------------------


def test_with_a_key_a_dropped_request_is_sent_again_and_processed_once(raw_server, tmp_path):
    target = Target({3: ["drop"]}, honour_keys=True)
    got = post_each(raw_server(target), tmp_path, idempotencyKey=True)
    assert got == [{"saved": record_id} for record_id in IDS]
    assert target.processed == {record_id: 1 for record_id in IDS}
    first, again = target.keys_of(3)
    assert first and first == again  # the repeat carried the same key: the target recognised it
    assert len({target.keys_of(record_id)[0] for record_id in IDS}) == len(IDS)  # one key per record


def test_with_a_key_a_500_after_processing_is_retried_and_processed_once(http_server, tmp_path):
    target = Target({2: ["500"]}, honour_keys=True, key_header="X-Request-Once")
    got = post_each(on_werkzeug(http_server, target), tmp_path, idempotencyKey=True,
                    idempotencyHeader="X-Request-Once")
    assert len(got) == len(IDS) and target.processed == {record_id: 1 for record_id in IDS}
    assert len(set(target.keys_of(2))) == 1 and len(target.keys_of(2)) == 2


def test_keys_are_the_same_within_a_run_and_differ_between_runs(http_server, tmp_path):
    target = Target()
    on_werkzeug(http_server, target)
    post_each(http_server, tmp_path, idempotencyKey=True)
    post_each(http_server, tmp_path, idempotencyKey=True)  # the runner running the block again in the same run
    post_each(http_server, tmp_path, run_id="run-2", idempotencyKey=True)
    for record_id in IDS:
        first, again, next_run = target.keys_of(record_id)
        assert first == again != next_run


def test_keys_are_sent_only_when_asked_and_only_with_post_or_patch(http_server, tmp_path):
    target = Target()
    on_werkzeug(http_server, target)
    post_each(http_server, tmp_path)
    post_each(http_server, tmp_path, method="PUT", idempotencyKey=True)
    assert [key for _, key in target.deliveries] == [None] * (2 * len(IDS))


def test_all_records_with_a_key_carries_one_key_and_is_retried(raw_server, tmp_path):
    seen: list[str] = []

    def answer(request):  # noqa: ANN001, ANN202
        seen.append(request.headers["idempotency-key"])
        return DROP if len(seen) == 1 else RawAnswer(200, {"count": len(request.json())})

    server = RawHttpServer(answer).start()
    try:
        context = make_context("http.request", {"method": "POST", "path": "/bulk", "bodyMode": "all_records",
                                                "idempotencyKey": True}, rest(server), tmp_path)
        assert list(get_block("http.request")().run(context, orders())) == [{"count": len(IDS)}]
    finally:
        server.stop()
    assert len(seen) == 2 and seen[0] == seen[1]


def test_an_invalid_key_header_name_is_refused(http_server, tmp_path):
    error = post_each_fails(http_server, tmp_path, idempotencyKey=True, idempotencyHeader="Idempotency Key")
    assert "idempotencyHeader" in str(error) and http_server.requests == []


# --- a paged read resumes at the failed page -----------------------------------------------------------------------

ITEMS = [{"id": number} for number in range(1, 8)]  # pages of 3: full, full, one, then an empty page


def paged_items(failures: dict[int, list[Response]]):  # noqa: ANN201 - a werkzeug handler
    """Pages of ITEMS by `page`/`pageSize`; `failures[page]` are answered first, one per request of that page."""
    def handler(request: Request) -> Response:
        page, size = int(request.args["page"]), int(request.args["pageSize"])
        if failures.get(page):
            return failures[page].pop(0)
        return json_response(ITEMS[(page - 1) * size:page * size])

    return handler


def read_pages(http_server, tmp_path, **variables) -> list[dict]:  # noqa: ANN001
    variables = {"path": "/items", "pagination": "page", "pageSize": 3, "retries": 0, **variables}
    context = make_context("http.get", variables, rest(http_server), tmp_path)
    return list(get_block("http.get")().run(context, None))


def pages_fetched(http_server) -> list[int]:  # noqa: ANN001
    return [int(request.query["page"]) for request in http_server.requests]


def test_a_paged_read_resumes_at_the_failed_page(http_server, tmp_path):
    http_server.route("/api/items", paged_items({3: [json_response({"error": "busy"}, 500) for _ in range(2)]}))
    assert read_pages(http_server, tmp_path) == ITEMS
    assert pages_fetched(http_server) == [1, 2, 3, 3, 3, 4]  # pages 1 and 2 once; page 3 until it answered


def test_a_resumed_page_honours_retry_after(http_server, tmp_path):
    busy = Response(status=503, headers={"Retry-After": "1"})
    http_server.route("/api/items", paged_items({2: [busy]}))
    started = time.monotonic()
    assert read_pages(http_server, tmp_path) == ITEMS
    assert time.monotonic() - started >= 0.9 and pages_fetched(http_server) == [1, 2, 2, 3, 4]


def test_a_page_that_keeps_failing_fails_the_block_without_reading_the_earlier_pages_again(http_server, tmp_path):
    http_server.route("/api/items", paged_items({3: [json_response({"error": "busy"}, 500) for _ in range(99)]}))
    with pytest.raises(BlockError) as raised:
        read_pages(http_server, tmp_path, retries=1)
    error = raised.value
    assert type(error) is BlockError and not error.transient  # the runner would start again at page 1
    assert "(page 3) failed: HTTP 500" in str(error) and f"after {PAGE_ROUNDS} rounds of retries" in str(error)
    assert pages_fetched(http_server) == [1, 2] + [3] * (2 * PAGE_ROUNDS)


def test_a_first_page_that_keeps_failing_is_left_to_the_runner(http_server, tmp_path):
    http_server.route("/api/items", paged_items({1: [json_response({"error": "busy"}, 500) for _ in range(99)]}))
    with pytest.raises(TransientBlockError):
        read_pages(http_server, tmp_path, retries=1)
    assert pages_fetched(http_server) == [1, 1]  # nothing read yet: running the block again repeats nothing

