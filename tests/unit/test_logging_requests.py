"""Request ids and access lines of the API (canvas.observability.access_log), through the app: every answer, errors
included, carries X-Request-ID, and the access line and every line logged during the request carry the same id."""
from __future__ import annotations

import io
import json
import logging
import uuid
from collections.abc import Iterator

import pytest

from canvas.observability.logging import process_handler


class JsonLines:
    def __init__(self) -> None:
        self.buffer = io.StringIO()

    def all(self) -> list[dict]:
        return [json.loads(line) for line in self.buffer.getvalue().splitlines()]

    def access(self) -> list[dict]:
        return [line for line in self.all() if line["logger"] == "canvas.access"]


@pytest.fixture
def json_log() -> Iterator[JsonLines]:
    """The JSON process handler on the service's loggers, at INFO, for the test."""
    lines = JsonLines()
    handler = process_handler("json", lines.buffer)
    canvas_logger = logging.getLogger("canvas")
    level = canvas_logger.level
    canvas_logger.addHandler(handler)
    canvas_logger.setLevel(logging.INFO)
    try:
        yield lines
    finally:
        canvas_logger.removeHandler(handler)
        canvas_logger.setLevel(level)


def test_an_answer_carries_a_new_request_id_and_its_access_line_the_same(client, org, json_log):
    answer = client.get("/api/Workflows", headers=org.admin_headers)
    assert answer.status_code == 200
    request_id = answer.headers["X-Request-ID"]
    assert len(request_id) == 32
    [line] = json_log.access()
    assert line["request_id"] == request_id
    assert (line["method"], line["route"], line["path"], line["status"]) == ("GET", "/api/Workflows", "/api/Workflows",
                                                                             200)
    assert 0 <= line["duration_ms"] < 60_000 and line["remote_addr"] == "127.0.0.1"
    assert line["level"] == "INFO" and line["time"].endswith("Z")


def test_the_callers_request_id_is_answered_and_logged(client, org, json_log):
    answer = client.get("/api/Workflows", headers={**org.admin_headers, "X-Request-ID": "lb-7f3a:42"})
    assert answer.headers["X-Request-ID"] == "lb-7f3a:42"
    assert json_log.access()[0]["request_id"] == "lb-7f3a:42"


def test_an_odd_request_id_is_replaced_not_refused(client, org, json_log):
    answer = client.get("/api/Workflows", headers={**org.admin_headers, "X-Request-ID": "x" * 500})
    assert answer.status_code == 200
    assert answer.headers["X-Request-ID"] != "x" * 500 and len(answer.headers["X-Request-ID"]) == 32


def test_the_route_is_the_url_rule_not_the_id_in_the_path(client, org, json_log):
    missing = str(uuid.uuid4())
    answer = client.get(f"/api/Workflow/{missing}", headers=org.admin_headers)
    assert answer.status_code == 404
    [line] = json_log.access()
    assert line["path"] == f"/api/Workflow/{missing}" and missing not in line["route"]
    assert line["route"].startswith("/api/Workflow/<") and line["status"] == 404


@pytest.mark.parametrize("method, path, headers, status", [
    ("GET", "/api/NoSuchThing", "admin", 404),
    ("GET", "/api/Workflows", None, 401),
    ("POST", "/api/Workflow", "admin", 400),
], ids=["unknown-path", "no-credentials", "malformed-body"])
def test_error_answers_carry_the_request_id_too(client, org, json_log, method, path, headers, status):
    answer = client.open(path, method=method, headers=org.admin_headers if headers else {}, data="{",
                         content_type="application/json")
    assert answer.status_code == status
    [line] = json_log.access()
    assert line["status"] == status and line["request_id"] == answer.headers["X-Request-ID"]
    if status == 404:
        assert "route" not in line  # no rule matched


def test_the_query_string_stays_out_of_the_access_line(client, json_log):
    client.get("/api/ActivateAccount?token=one-time-activation-token")
    written = json_log.buffer.getvalue()
    assert "one-time-activation-token" not in written
    assert json_log.access()[0]["path"] == "/api/ActivateAccount"


def test_lines_logged_while_serving_carry_the_request_id(app, json_log):
    @app.route("/test-only/logs")
    def log_something():  # noqa: ANN202
        logging.getLogger("canvas.test").info("working on it")
        return {"ok": True}

    answer = app.test_client().get("/test-only/logs", headers={"X-Request-ID": "trace-1"})
    working = [line for line in json_log.all() if line["message"] == "working on it"]
    assert working and working[0]["request_id"] == "trace-1" == answer.headers["X-Request-ID"]
    logging.getLogger("canvas.test").info("after the request")
    assert "request_id" not in json_log.all()[-1]


def test_a_head_request_is_logged_like_any_other(client, org, json_log):
    answer = client.head("/api/Workflows", headers=org.admin_headers)
    assert answer.headers["X-Request-ID"]
    assert json_log.access()[0]["method"] == "HEAD"
