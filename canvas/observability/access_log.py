"""Request ids and the access log of the API, from the app's own request hooks.

Every answer carries an ``X-Request-ID`` header: the caller's own, when it sent a sane one (printable, bounded), or
one made here; every line logged while the request is served carries it (``request_id``), and so does the one
access line per request: time, method, route (the URL rule, so that lines of one endpoint group together whatever
ids are in the path), path, status, duration and remote address.

The line comes from the app rather than from gunicorn's access log (turned off in config/gunicorn.py): only the app
knows the matched route and the request id, and its line goes through the same handler and format (text or JSON)
as every other line. What gunicorn answers itself, before the app sees a request (a request line too long, a
malformed request), is not in the access log; gunicorn's error log says it.

The query string is left out of the path: an activation link carries its token there.
"""
from __future__ import annotations

import logging
import re
import time
import uuid

from flask import Flask, Response, g, request

from canvas.observability.logging import bind_request_id, unbind_request_id

REQUEST_ID_HEADER = "X-Request-ID"
MAX_REQUEST_ID_LENGTH = 128
# Printable ASCII without spaces, quotes or backslashes: it goes into log lines and back into a header as it is.
_SANE_REQUEST_ID = re.compile(rf"[!#-\[\]-~]{{1,{MAX_REQUEST_ID_LENGTH}}}")

access_log = logging.getLogger("canvas.access")


def init_request_logging(app: Flask) -> None:
    """Register before every other request hook: a request an earlier hook refuses still gets its id and its line."""
    app.before_request(start_request)
    app.after_request(finish_request)
    app.teardown_request(end_request)


def accepted_request_id(sent: str | None) -> str:
    """The caller's id if it is sane, else a new one (an odd id is not worth refusing the request for)."""
    if sent is not None and _SANE_REQUEST_ID.fullmatch(sent):
        return sent
    return uuid.uuid4().hex


def start_request() -> None:
    g.request_started = time.perf_counter()
    g.request_id = accepted_request_id(request.headers.get(REQUEST_ID_HEADER))
    g.request_id_token = bind_request_id(g.request_id)


def finish_request(response: Response) -> Response:
    request_id = g.get("request_id") or accepted_request_id(None)
    response.headers[REQUEST_ID_HEADER] = request_id
    started = g.get("request_started")
    duration_ms = round((time.perf_counter() - started) * 1000, 2) if started is not None else None
    if access_log.isEnabledFor(logging.INFO):
        _log_access(response.status_code, duration_ms)
    return response


def end_request(_error: BaseException | None) -> None:
    token = g.pop("request_id_token", None)
    if token is not None:
        unbind_request_id(token)


def _log_access(status: int, duration_ms: float | None) -> None:
    route = request.url_rule.rule if request.url_rule is not None else None
    remote = request.remote_addr
    access_log.info('%s "%s %s" %s %s ms route=%s', remote or "-", request.method, request.path, status,
                    "-" if duration_ms is None else f"{duration_ms:.1f}", route or "-",
                    extra={"method": request.method, "route": route, "path": request.path, "status": status,
                           "duration_ms": duration_ms, "remote_addr": remote})
