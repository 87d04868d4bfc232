"""http.get / http.request against a real HTTP server on loopback: pagination styles, bodies, retries, limits."""
from __future__ import annotations

import json
import time

import pytest
from werkzeug.wrappers import Request, Response

from canvas.execution.blocks import _net_http
from canvas.execution.context import BlockAuthenticationError, TransientBlockError
from canvas.execution.data import Records
from canvas.execution.registry import get_block
from tests.integration.blocks.net_support import SHORT_TIMEOUT, failure, make_context, records
from tests.servers.http import json_response, respond

ITEMS = [{"id": number} for number in range(1, 8)]  # 7 items: pages of 3 are full, full, then one


@pytest.fixture(autouse=True)
def quick_backoff(monkeypatch):
    monkeypatch.setattr(_net_http, "BACKOFF_BASE_SECONDS", 0.01)


def rest(server, **overrides) -> dict:
    return {"baseUrl": server.url("/api"), "authType": "none", **overrides}


def get(server, tmp_path, **variables) -> list[dict]:
    return records("http.get", tmp_path, variables=variables, credentials=rest(server))


def test_a_json_array_gives_one_record_per_item(http_server, tmp_path):
    http_server.route("/api/items", respond([{"id": 1}, {"id": 2}, 3]))
    assert get(http_server, tmp_path, path="/items") == [{"id": 1}, {"id": 2}, {"value": 3}]


def test_records_path_digs_into_the_answer_and_an_object_is_one_record(http_server, tmp_path):
    http_server.route("/api/nested", respond({"data": {"items": [{"id": 1}]}}))
    http_server.route("/api/one", respond({"id": 9, "name": "only"}))
    assert get(http_server, tmp_path, path="/nested", recordsPath="data.items") == [{"id": 1}]
    assert get(http_server, tmp_path, path="/one") == [{"id": 9, "name": "only"}]
    assert get(http_server, tmp_path, path="/nested", recordsPath="data.missing") == []


def test_headers_and_query_are_sent(http_server, tmp_path):
    http_server.route("/api/items", respond([]))
    get(http_server, tmp_path, path="/items", query={"active": True, "q": "a b"}, headers={"X-Trace": "42"})
    sent = http_server.requests[-1]
    assert sent.query == {"active": "true", "q": "a b"} and sent.headers["X-Trace"] == "42"


def paged(parameter: str, size_parameter: str, first: int = 1):
    def handler(request: Request) -> Response:
        size = int(request.args[size_parameter])
        start = (int(request.args[parameter]) - first) * size
        return json_response({"results": ITEMS[start:start + size]})

    return handler


def test_page_pagination_stops_on_an_empty_page(http_server, tmp_path):
    http_server.route("/api/items", paged("p", "n", first=0))
    got = get(http_server, tmp_path, path="/items", pagination="page", pageParam="p", sizeParam="n", pageSize=3,
              firstPage=0, recordsPath="results")
    assert got == ITEMS
    assert [r.query["p"] for r in http_server.requests] == ["0", "1", "2", "3"]


def test_offset_pagination_advances_by_the_records_received(http_server, tmp_path):
    def handler(request: Request) -> Response:
        offset, limit = int(request.args["offset"]), int(request.args["limit"])
        return json_response(ITEMS[offset:offset + min(limit, 2)])  # the API caps pages at 2

    http_server.route("/api/items", handler)
    assert get(http_server, tmp_path, path="/items", pagination="offset", pageSize=3) == ITEMS
    assert [r.query["offset"] for r in http_server.requests] == ["0", "2", "4", "6", "7"]


def test_link_pagination_follows_rel_next(http_server, tmp_path):
    def handler(request: Request) -> Response:
        page = int(request.args.get("page", "1"))
        headers = {"Link": f'</api/items?page={page + 1}>; rel="next"'} if page < 3 else {}
        return json_response(ITEMS[(page - 1) * 3:page * 3], headers=headers)

    http_server.route("/api/items", handler)
    assert get(http_server, tmp_path, path="/items", pagination="link") == ITEMS
    assert http_server.hits("/api/items") == 3


def test_link_pagination_refuses_a_next_link_to_another_server(http_server, tmp_path):
    http_server.route("/api/items", lambda request: json_response(
        [{"id": 1}], headers={"Link": '<http://127.0.0.2:1/steal>; rel="next"'}))
    error = failure("http.get", tmp_path, variables={"path": "/items", "pagination": "link"},
                    credentials=rest(http_server))
    assert "another server" in str(error)


def test_cursor_pagination_reads_the_next_cursor_from_the_answer(http_server, tmp_path):
    cursors = {None: (ITEMS[:4], "c2"), "c2": (ITEMS[4:], None)}

    def handler(request: Request) -> Response:
        items, next_cursor = cursors[request.args.get("after")]
        return json_response({"items": items, "meta": {"next": next_cursor}})

    http_server.route("/api/items", handler)
    got = get(http_server, tmp_path, path="/items", pagination="cursor", cursorPath="meta.next",
              cursorParam="after", recordsPath="items")
    assert got == ITEMS and http_server.hits("/api/items") == 2


def test_pages_are_fetched_only_as_the_records_are_read(http_server, tmp_path):
    http_server.route("/api/items", paged("page", "pageSize"))
    variables = {"path": "/items", "pagination": "page", "pageSize": 3, "recordsPath": "results"}
    output = get_block("http.get")().run(make_context("http.get", variables, rest(http_server), tmp_path), None)
    iterator = iter(output)
    assert next(iterator) == ITEMS[0] and http_server.hits("/api/items") == 1
    assert len(list(iterator)) == len(ITEMS) - 1


def test_each_record_sends_one_request_per_record(http_server, tmp_path):
    http_server.route("/api/items", lambda request: json_response({"saved": request.get_json()["id"]}, 201))
    got = records("http.request", tmp_path, credentials=rest(http_server), data=Records(iter(ITEMS[:3])),
                  variables={"method": "POST", "path": "/items", "bodyMode": "each_record"})
    assert got == [{"saved": 1}, {"saved": 2}, {"saved": 3}]
    assert [r.json() for r in http_server.requests] == ITEMS[:3]
    assert http_server.requests[0].headers["Content-Type"] == "application/json"


def test_all_records_sends_one_json_array(http_server, tmp_path):
    http_server.route("/api/bulk", respond({"count": 7}))
    got = records("http.request", tmp_path, credentials=rest(http_server), data=Records(iter(ITEMS)),
                  variables={"method": "PUT", "path": "/bulk", "bodyMode": "all_records"})
    assert got == [{"count": 7}]
    assert http_server.requests[0].method == "PUT" and http_server.requests[0].json() == ITEMS


def sequence(*answers: Response):
    remaining = list(answers)
    return lambda request: remaining.pop(0) if len(remaining) > 1 else remaining[0]


def test_429_waits_for_retry_after_then_succeeds(http_server, tmp_path):
    http_server.route("/api/items", sequence(Response(status=429, headers={"Retry-After": "1"}),
                                             json_response([{"id": 1}])))
    started = time.monotonic()
    assert get(http_server, tmp_path, path="/items") == [{"id": 1}]
    assert time.monotonic() - started >= 0.9 and http_server.hits("/api/items") == 2


def test_429_asking_for_a_long_pause_is_handed_to_the_runner(http_server, tmp_path):
    http_server.route("/api/items", lambda request: Response(status=429, headers={"Retry-After": "3600"}))
    error = failure("http.get", tmp_path, TransientBlockError, variables={"path": "/items"},
                    credentials=rest(http_server))
    assert "429" in str(error) and "3600" in str(error) and http_server.hits("/api/items") == 1


def test_5xx_is_retried_then_succeeds(http_server, tmp_path):
    http_server.route("/api/items", sequence(respond({"e": 1}, 503)(None), respond({"e": 1}, 502)(None),
                                             json_response([{"id": 1}])))
    assert get(http_server, tmp_path, path="/items") == [{"id": 1}]
    assert http_server.hits("/api/items") == 3


def test_5xx_that_persists_becomes_transient_after_the_retries(http_server, tmp_path):
    http_server.route("/api/items", respond({"error": "database down"}, 500))
    error = failure("http.get", tmp_path, TransientBlockError, variables={"path": "/items", "retries": 2},
                    credentials=rest(http_server))
    assert "HTTP 500" in str(error) and "database down" in str(error)
    assert http_server.hits("/api/items") == 3


def test_401_is_an_authentication_error_and_not_retried(http_server, tmp_path):
    http_server.route("/api/items", respond({"error": "who are you"}, 401))
    failure("http.get", tmp_path, BlockAuthenticationError, variables={"path": "/items"},
            credentials=rest(http_server))
    assert http_server.hits("/api/items") == 1


def test_404_is_final_and_quotes_the_answer(http_server, tmp_path):
    error = failure("http.get", tmp_path, variables={"path": "/nowhere"}, credentials=rest(http_server))
    assert "HTTP 404" in str(error) and "no handler" in str(error)


def test_malformed_json_is_a_clear_error(http_server, tmp_path):
    http_server.route("/api/items", lambda request: Response('[{"id": 1},', content_type="application/json"))
    error = failure("http.get", tmp_path, variables={"path": "/items"}, credentials=rest(http_server))
    assert "not valid JSON" in str(error) and "line 1" in str(error)


def test_a_write_answered_2xx_with_no_json_is_done_once_and_the_next_record_goes_on(http_server, tmp_path):
    """It failed the block after the target had made record 1 ("201 created" as text), record 2 never sent: a rerun
    made record 1 again."""
    http_server.route("/api/items", lambda request: Response("created", status=201, content_type="text/plain"))
    got = records("http.request", tmp_path, credentials=rest(http_server), data=Records(iter(ITEMS[:2])),
                  variables={"method": "POST", "path": "/items", "bodyMode": "each_record"})
    assert got == [] and [r.json() for r in http_server.requests] == ITEMS[:2]


def test_a_read_answered_with_no_json_still_fails(http_server, tmp_path):
    http_server.route("/api/items", lambda request: Response("<html>", content_type="text/html"))
    assert "not valid JSON" in str(failure("http.get", tmp_path, variables={"path": "/items"},
                                           credentials=rest(http_server)))


def test_an_answer_nested_too_deeply_is_a_clear_error(http_server, tmp_path):
    http_server.route("/api/items", lambda request: Response("[" * 100_000 + "]" * 100_000,
                                                             content_type="application/json"))
    error = failure("http.get", tmp_path, variables={"path": "/items"}, credentials=rest(http_server))
    assert "not valid JSON: nested more deeply than" in str(error)


def test_a_redirect_loop_fails_at_once_without_retries(http_server, tmp_path):
    http_server.route("/api/a", lambda request: Response(status=302, headers={"Location": "/api/b"}))
    http_server.route("/api/b", lambda request: Response(status=302, headers={"Location": "/api/a"}))
    error = failure("http.get", tmp_path, variables={"path": "/a"}, credentials=rest(http_server))
    assert not error.transient and "redirects (a redirect loop?)" in str(error)
    assert len(http_server.requests) <= 31, "one attempt's hops, no retries"


def test_an_answer_beyond_max_response_bytes_is_abandoned(http_server, tmp_path):
    big = json.dumps([{"text": "x" * 100}] * 50)
    http_server.route("/api/declared", lambda request: Response(big, content_type="application/json"))
    http_server.route("/api/chunked", lambda request: Response(iter([big[:2000], big[2000:]]),
                                                               content_type="application/json"))
    for path in ("/declared", "/chunked"):
        error = failure("http.get", tmp_path, variables={"path": path, "maxResponseBytes": 1000},
                        credentials=rest(http_server))
        assert "maxResponseBytes" in str(error)


def test_a_closed_port_is_transient(closed_port, tmp_path):
    credentials = {"baseUrl": f"http://127.0.0.1:{closed_port}", "authType": "none"}
    error = failure("http.get", tmp_path, TransientBlockError, variables={"retries": 1}, credentials=credentials)
    assert "connection refused" in str(error)


def test_a_silent_server_times_out(silent_server, tmp_path):
    credentials = {"baseUrl": f"http://127.0.0.1:{silent_server.port}", "authType": "none"}
    started = time.monotonic()
    error = failure("http.get", tmp_path, TransientBlockError, credentials=credentials,
                    variables={"retries": 0, "timeout": SHORT_TIMEOUT})
    assert "timed out" in str(error) and time.monotonic() - started < SHORT_TIMEOUT + 5
