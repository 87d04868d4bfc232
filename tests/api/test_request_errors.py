"""Every non-2xx answer under /api has the Canvas error body; no input produces a 500."""
from __future__ import annotations

import json
import uuid

import pytest


def assert_canvas_error(response, status: int) -> dict:
    assert response.status_code == status, response.data[:300]
    assert response.mimetype == "application/json"
    body = response.json
    assert set(body) == {"State", "Msg"} and body["State"] == status and body["Msg"]
    assert "Traceback" not in body["Msg"] and "<html" not in response.get_data(as_text=True).lower()
    return body


def test_unknown_route_is_a_canvas_404(client):
    body = assert_canvas_error(client.get("/api/NoSuchThing"), 404)
    assert "/api/NoSuchThing" in body["Msg"]


def test_wrong_method_is_a_canvas_405_with_allow_header(client):
    response = client.delete("/api/Authenticate")
    assert_canvas_error(response, 405)
    assert "GET" in response.headers["Allow"]


def test_endpoint_names_match_case_insensitively(client, org):
    assert client.get("/api/authenticate", headers=org.admin_headers).json is True
    assert client.get("/API/GETMETADATA").status_code == 200


def test_malformed_json_is_a_400_that_says_so(client, org):
    response = client.post("/api/Account", data=b'{"email": ', headers={**org.admin_headers,
                                                                        "Content-Type": "application/json"})
    assert "Malformed JSON" in assert_canvas_error(response, 400)["Msg"]


def test_wrong_content_type_is_a_415(client, org):
    response = client.post("/api/Account", data="email=x", headers={**org.admin_headers,
                                                                    "Content-Type": "application/x-www-form-urlencoded"})
    assert "application/json" in assert_canvas_error(response, 415)["Msg"]


def test_body_over_the_limit_is_a_413(make_app):
    app = make_app(MAX_REQUEST_BYTES=1024)
    from tests.conftest import Org

    org = Org(app, "Big")
    response = app.test_client().post("/api/Account", data=json.dumps({"email": "x" * 5000}),
                                      headers={**org.admin_headers, "Content-Type": "application/json"})
    assert "1024" in assert_canvas_error(response, 413)["Msg"]


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(b"[]", id="array"),
        pytest.param(b'"text"', id="string"),
        pytest.param(b"null", id="null"),
        pytest.param(b"123", id="number"),
        pytest.param(b'{"email": {"nested": [1, 2, {"deep": null}]}}', id="nested-object"),
        pytest.param(b'{"email": "a@b.c", "activated": 1e999}', id="huge-number"),
        pytest.param("{\"email\": \"\udcff\"}".encode("utf-8", "surrogatepass"), id="lone-surrogate"),
        pytest.param(b"\xff\xfe\x00", id="not-utf8"),
        pytest.param(b'{"email": "' + b"a" * 100_000 + b'@b.c"}', id="very-long-value"),
    ],
)
def test_odd_bodies_never_produce_a_500(client, org, payload):
    response = client.post("/api/Account", data=payload, headers={**org.admin_headers,
                                                                   "Content-Type": "application/json"})
    assert 400 <= response.status_code < 500
    assert_canvas_error(response, response.status_code)


@pytest.mark.parametrize("encode", [
    pytest.param(lambda text: b"\xef\xbb\xbf" + text.encode(), id="utf-8 with a byte order mark"),
    pytest.param(lambda text: text.encode("utf-16"), id="utf-16"),
    pytest.param(lambda text: text.encode("utf-32-le"), id="utf-32"),
])
def test_a_body_in_an_encoding_json_allows_is_read_as_the_v2_dialect_reads_it(client, org, encode):
    """The before-request check and v2 read such bodies (json.detect_encoding, RFC 8259 section 8.1); the Canvas
    dialect's arguments must read them too, as ASP.NET does a UTF-8 byte order mark, not answer werkzeug's generic
    400."""
    email = f"encoded-{uuid.uuid4().hex[:8]}@example.test"
    body = json.dumps({"email": email, "firstName": "Åse", "lastName": "Ødegård", "roleName": "User"})
    created = client.post("/api/Account", data=encode(body), headers={**org.admin_headers,
                                                                       "Content-Type": "application/json"})
    assert created.status_code == 200, created.json
    account = next(entry for entry in client.get("/api/Accounts", headers=org.admin_headers).json
                   if entry["id"] == created.json)
    assert (account["email"], account["lastName"]) == (email, "Ødegård")


def test_a_body_of_blanks_is_read_as_no_body_naming_what_is_missing(client, org):
    answer = client.post("/api/Account", data=b"  \n", headers={**org.admin_headers, "Content-Type": "application/json"})
    assert "email" in assert_canvas_error(answer, 400)["Msg"]


def test_query_argument_errors_name_the_parameter(client):
    body = assert_canvas_error(client.get("/api/Describe"), 400)
    assert body["Msg"].startswith("name:")


@pytest.mark.parametrize("path", ["/api/Workflows", "/api/RegApplication/00000000-0000-0000-0000-0000000000aa"])
def test_options_answers_204_with_allow_and_no_html(client, path):
    answer = client.options(path)
    assert answer.status_code == 204 and "GET" in answer.headers["Allow"]
    assert "Content-Type" not in answer.headers and answer.get_data() == b""
