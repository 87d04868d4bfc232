"""A bare HTTP/1.1 server on 127.0.0.1 for the failures a server library does not produce on purpose.

It reads each request whole (request line, headers, a Content-Length body), records it, and then does what the
test's `answer` function says: answers (status, headers, JSON body; then closes the connection), DROP (closes the
connection without a word: the client has sent everything and gets nothing back), or HOLD (keeps the connection
open and silent until stop(): the client's read times out).

    server = RawHttpServer(lambda request: DROP if request.json()["id"] == 3 else RawAnswer(201, {"ok": True}))
"""
from __future__ import annotations

import json
import socket
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Union
from urllib.parse import parse_qsl, urlsplit

ACCEPT_POLL_SECONDS = 0.05
READ_TIMEOUT_SECONDS = 10.0
DROP = "drop"
HOLD = "hold"
REASONS = {200: "OK", 201: "Created", 400: "Bad Request", 429: "Too Many Requests", 500: "Internal Server Error",
           502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}


@dataclass(frozen=True)
class RawRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # names in lower case
    body: bytes = field(repr=False)

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(frozen=True)
class RawAnswer:
    status: int
    data: Any = None  # sent as JSON; None: an empty body
    headers: dict = field(default_factory=dict)

    def encoded(self) -> bytes:
        body = b"" if self.data is None else json.dumps(self.data).encode()
        lines = [f"HTTP/1.1 {self.status} {REASONS.get(self.status, 'Status')}", "Connection: close",
                 f"Content-Length: {len(body)}", "Content-Type: application/json",
                 *(f"{name}: {value}" for name, value in self.headers.items())]
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


Answer = Callable[[RawRequest], Union[RawAnswer, str]]


class RawHttpServer:
    def __init__(self, answer: Answer, host: str = "127.0.0.1"):
        self.answer, self.host = answer, host
        self.port = 0
        self.requests: list[RawRequest] = []
        self._listener: socket.socket | None = None
        self._held: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()

    def url(self, path: str = "/") -> str:
        return f"http://{self.host}:{self.port}{path}"

    def start(self) -> "RawHttpServer":
        self._listener = socket.create_server((self.host, 0))
        self._listener.settimeout(ACCEPT_POLL_SECONDS)
        self.port = self._listener.getsockname()[1]
        self._spawn(self._accept_loop)
        return self

    def stop(self) -> None:
        self._stopping.set()
        for connection in self._held:
            connection.close()
        for thread in self._threads:
            thread.join(timeout=10)
        if self._listener is not None:
            self._listener.close()

    def __enter__(self) -> "RawHttpServer":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def _spawn(self, target: Callable, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, name=f"raw-http-{self.port}", daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self._stopping.is_set():
            try:
                connection, _ = self._listener.accept()
            except (TimeoutError, OSError):
                continue
            self._spawn(self._serve, connection)

    def _serve(self, connection: socket.socket) -> None:
        connection.settimeout(READ_TIMEOUT_SECONDS)
        try:
            request = _read_request(connection)
        except (OSError, ValueError):
            connection.close()
            return
        self.requests.append(request)
        action = self.answer(request)
        if action == HOLD:
            self._held.append(connection)  # closed by stop(); the client times out first
            return
        if isinstance(action, RawAnswer):
            connection.sendall(action.encoded())
        connection.close()  # DROP: the request was read whole, and nothing is answered


def _read_request(connection: socket.socket) -> RawRequest:
    """One request: the head up to the blank line, then exactly Content-Length bytes of body (no chunked bodies)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = connection.recv(65536)
        if not chunk:
            raise ValueError("the client closed the connection before the end of the request head")
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    request_line, *header_lines = head.decode("latin-1").split("\r\n")
    method, target, _version = request_line.split(" ", 2)
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = connection.recv(65536)
        if not chunk:
            raise ValueError("the client closed the connection before the end of the body")
        body += chunk
    parts = urlsplit(target)
    return RawRequest(method, parts.path, dict(parse_qsl(parts.query)), headers, body[:length])
