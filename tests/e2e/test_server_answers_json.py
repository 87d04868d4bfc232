"""The answers the HTTP server gives on its own, before the app sees a request (a request line or headers too long,
a malformed request), are JSON like every other answer: a real `canvas api` process, spoken to over a socket."""
from __future__ import annotations

import json
import socket

import pytest

from tests.process_tools import canvas_env, free_port, start_canvas, wait_for_http

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def api_address(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("server-answers")
    port = free_port()
    process = start_canvas("api", "--port", str(port), env=canvas_env(data_dir, CANVAS_API_WORKERS="1"),
                           log_path=data_dir / "api.log")
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
