"""A real HTTP(S) server (werkzeug) on 127.0.0.1, on a free port, where a test registers a handler per path.

    server.route("/items", lambda request: json_response([{"id": 1}]))
    server.route("/old", redirect_to(server.url("/items")))
    requests.get(server.url("/old"))
    assert server.hits("/items") == 1

Every request is recorded (method, path, query, headers, body) for assertions.
"""
from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from typing import Any, Callable

from werkzeug.datastructures import Headers
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from tests.servers.certs import TlsCerts

Handler = Callable[[Request], Response]
POLL_SECONDS = 0.05


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: Headers  # case-insensitive: headers["x-api-key"]
    body: bytes = field(repr=False)

    def json(self) -> Any:
        return json.loads(self.body)


def json_response(data: Any, status: int = 200, headers: dict | None = None) -> Response:
    return Response(json.dumps(data), status=status, headers=headers, content_type="application/json")


def redirect_to(url: str, status: int = 302) -> Handler:
    """A handler that redirects every request to `url`."""
    return lambda request: Response(status=status, headers={"Location": url})


def respond(data: Any = None, status: int = 200) -> Handler:
    """A handler that always gives the same JSON answer (an empty body when data is None)."""
    if data is None:
        return lambda request: Response(status=status)
    return lambda request: json_response(data, status)


class _QuietRequestHandler(WSGIRequestHandler):
    def log(self, type, message, *args):  # the access log would print query strings (API keys!) to the test output
        pass


class HttpServer:
    """Threaded werkzeug server; unknown paths answer 404. `tls_certs` serves HTTPS instead."""

    def __init__(self, *, host: str = "127.0.0.1", tls_certs: TlsCerts | None = None):
        self.host = host
        self.tls_certs = tls_certs
        self.port = 0
        self.requests: list[RecordedRequest] = []
        self._routes: dict[str, Handler] = {}
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def scheme(self) -> str:
        return "https" if self.tls_certs else "http"

    def url(self, path: str = "/") -> str:
        return f"{self.scheme}://{self.host}:{self.port}{path}"

    def route(self, path: str, handler: Handler | None = None):
        """Register `handler` for `path` (any method); also usable as a decorator."""
        if handler is None:
            return lambda function: self.route(path, function)
        self._routes[path] = handler
        return handler

    def hits(self, path: str) -> int:
        return sum(1 for request in self.requests if request.path == path)

    def _app(self, environ, start_response):
        request = Request(environ)
        body = request.get_data(cache=True)
        self.requests.append(
            RecordedRequest(request.method, request.path, dict(request.args), Headers(request.headers), body)
        )
        handler = self._routes.get(request.path)
        response = handler(request) if handler else Response("no handler for this path", status=404)
        return response(environ, start_response)

    def start(self) -> "HttpServer":
        ssl_context = self.tls_certs.server_context() if self.tls_certs else None
        self._server = make_server(
            self.host, 0, self._app, threaded=True, request_handler=_QuietRequestHandler, ssl_context=ssl_context
        )
        self.port = self._server.server_port
        self._thread = threading.Thread(target=self._serve, name=f"httpd-{self.port}", daemon=True)
        self._thread.start()
        return self

    def _serve(self) -> None:
        assert self._server is not None
        self._server.serve_forever(poll_interval=POLL_SECONDS)  # short poll: stop() returns quickly

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def __enter__(self) -> "HttpServer":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()
