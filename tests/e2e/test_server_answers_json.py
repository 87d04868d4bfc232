"""The answers the HTTP server gives on its own, before the app sees a request (a request line or headers too long,
a malformed request), are JSON like every other answer: a real `canvas api` process, spoken to over a socket.
And the links it gives lead to where it listens, whatever Host a caller sends."""
from __future__ import annotations

import json
import socket

import pytest
import requests

from tests.process_tools import canvas_env, free_port, run_canvas, start_canvas, wait_for_http

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def api_environment(tmp_path_factory) -> dict:
    return canvas_env(tmp_path_factory.mktemp("server-answers"), CANVAS_API_WORKERS="1")


@pytest.fixture(scope="module")
def api_address(api_environment):
    port = free_port()
    data_dir = api_environment["CANVAS_DATA_DIR"]
    process = start_canvas("api", "--port", str(port), env=api_environment, log_path=f"{data_dir}/api.log")
    try:
        wait_for_http(f"http://127.0.0.1:{port}/healthz", process)
        yield "127.0.0.1", port
    finally:
        process.terminate()
        process.wait(30)


def exchange(address: tuple[str, int], raw: bytes) -> tuple[int, dict[str, str], bytes]:
    """Sends `raw` as it is and reads the whole answer (the server closes after an error): status, headers, body."""
    with socket.create_connection(address, timeout=10) as connection:
        connection.sendall(raw)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in header_lines)}
    return int(status_line.split()[1]), headers, body


def request(path: str, *headers: str) -> bytes:
    lines = [f"GET {path} HTTP/1.1", "Host: localhost", *headers, "", ""]
    return "\r\n".join(lines).encode("latin-1")


@pytest.mark.parametrize(("label", "raw", "status"), [
    ("URI too long", request("/api/Workflows?" + "a" * 9000), 414),
    ("URI too long on /v2", request("/v2/flows?" + "a" * 9000), 414),
    ("header too long", request("/api/Authenticate", "X-Big: " + "b" * 9000), 431),
    ("too many headers", request("/api/Authenticate", *(f"X-Many-{n}: 1" for n in range(120))), 431),
    ("malformed request line", b"BOGUS\r\n\r\n", 400),
    ("invalid method", b"G(ET / HTTP/1.1\r\nHost: x\r\n\r\n", 400),
])
def test_the_servers_own_answers_are_json(api_address, label, raw, status):
    answered, headers, body = exchange(api_address, raw)
    assert answered == status, label
    assert headers["content-type"] == "application/json", label
    document = json.loads(body)
    assert document["State"] == status
    assert isinstance(document["Msg"], str) and document["Msg"], label
    assert b"<html" not in body.lower()


def test_a_webhook_url_leads_to_where_the_api_listens_whatever_host_is_sent(api_address, api_environment):
    created = run_canvas("org", "create", "--name", "Links", "--admin-email", "admin@links.test", "--json",
                         env=api_environment)
    assert created.returncode == 0, created.stderr
    secret = json.loads(created.stdout)["secretKey"]
    base = "http://{}:{}".format(*api_address)
    session = requests.Session()
    session.auth = ("admin@links.test", secret)
    session.headers["Host"] = "attacker.example"
    graph = {"nodes": [{"id": "only", "command": "records.from_variable", "fields": {"records": [{"a": 1}]}}],
             "edges": []}
    flow = session.post(f"{base}/v2/flows", json={"data": {"type": "flow", "attributes": {
        "name": "Hooked", "type": "ordinary", "graph": graph}}}, timeout=30)
    assert flow.status_code == 201, flow.text
    hook = session.post(f"{base}/v2/flows/{flow.json()['data']['id']}/webhooks", timeout=30)
    assert hook.status_code == 201, hook.text
    url = hook.json()["data"]["attributes"]["url"]
    assert url.startswith(f"{base}/v2/hooks/"), url
    called = requests.post(url, json={"b": 2}, timeout=30)
    assert called.status_code == 202, called.text


def test_a_long_search_reaches_the_app(api_address):
    """A 5,000-character query (a long search or filter) is within the request line the server allows: the app
    answers it (here 401, no keys), not the server's 414."""
    answered, headers, body = exchange(api_address, request("/v2/flows?search=" + "s" * 5000))
    assert answered == 401 and headers["content-type"] == "application/vnd.api+json", body[:200]


def test_a_body_answered_before_it_was_read_leaves_the_connection_usable(api_address):
    """A 3 MB body refused before it is read (wrong keys: 401, then 429): the next request on the same kept-alive
    connection is answered. Before the app read what was left of such a body, 8 of 90 follow-ups got the connection
    closed without an answer."""
    base = f"http://{api_address[0]}:{api_address[1]}"
    headers = {"Consumer": "nobody", "SecretKey": "wrong", "Content-Type": "application/json"}
    body = json.dumps({"email": "x" * 3_000_000})
    answered = []
    for _ in range(40):
        with requests.Session() as session:
            first = session.post(f"{base}/api/RegApplication", headers=headers, data=body, timeout=30)
            assert first.status_code in (401, 429) and first.headers.get("Connection") != "close"
            try:
                answered.append(session.post(f"{base}/api/RegApplication", headers=headers, data="{}",
                                             timeout=30).status_code)
            except requests.ConnectionError:
                answered.append(None)
    assert None not in answered and set(answered) <= {401, 429}
