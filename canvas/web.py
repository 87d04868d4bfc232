"""HTTP plumbing shared by both dialects: error rendering, request-body checks, case-insensitive Canvas paths."""
from __future__ import annotations

import json
import logging
import uuid
from typing import Any

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from canvas.errors import (
    BadRequestError,
    CanvasError,
    PayloadTooLargeError,
    UnsupportedMediaTypeError,
)
from canvas.outages import unreachable_service

log = logging.getLogger(__name__)
V2_PREFIX = "/v2"
V2_REALM = "Canvas v2: account e-mail and API key"
JSON_MEDIA_TYPES = {"application/json", "application/vnd.api+json"}
OUTAGE_RETRY_AFTER_SECONDS = 5


# --- rendering -------------------------------------------------------------------------------------------------

def render_error(status: int, message: str, error: CanvasError | None = None) -> Response:
    if request.path.startswith(V2_PREFIX + "/") or request.path == V2_PREFIX:
        return _render_jsonapi_error(status, message, error)
    response = jsonify({"State": status, "Msg": message})
    response.status_code = status
    return response


def _render_jsonapi_error(status: int, message: str, error: CanvasError | None) -> Response:
    entry: dict[str, Any] = {"status": str(status), "title": _title(status, error), "detail": message}
    if error is not None and error.field:
        entry["source"] = {"pointer": "/data/attributes/" + error.field.replace(".", "/")}
    elif error is not None and error.parameter:
        entry["source"] = {"parameter": error.parameter}
    response = jsonify({"errors": [entry]})
    response.status_code = status
    response.mimetype = "application/vnd.api+json"
    if status == 401:  # RFC 9110: a 401 names its scheme, or HTTP clients (urllib's Basic handler) never send one
        response.headers["WWW-Authenticate"] = f'Basic realm="{V2_REALM}", charset="UTF-8"'
    return response


def _title(status: int, error: CanvasError | None) -> str:
    if error is not None:
        return error.title
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


# --- error handlers ----------------------------------------------------------------------------------------------

def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(CanvasError, _handle_canvas_error)
    app.register_error_handler(HTTPException, _handle_http_exception)
    app.register_error_handler(Exception, _handle_unexpected)


def _handle_canvas_error(error: CanvasError) -> Response:
    response = render_error(error.status, error.message, error)
    if error.retry_after is not None:
        response.headers["Retry-After"] = str(error.retry_after)
    return response


def _handle_http_exception(error: HTTPException) -> Response:
    status = error.code or 500
    if status == 422 and _webargs_messages(error) is not None:
        return _render_validation_failure(_webargs_messages(error))
    message = _http_message(status, error)
    response = render_error(status, message)
    if status == 405 and getattr(error, "valid_methods", None):
        response.headers["Allow"] = ", ".join(error.valid_methods)
    return response


def _http_message(status: int, error: HTTPException) -> str:
    if status == 404:
        return f"No endpoint {request.path}"
    if status == 405:
        allowed = ", ".join(sorted(set(getattr(error, "valid_methods", None) or []) - {"HEAD", "OPTIONS"}))
        return f"Method {request.method} is not allowed for {request.path}; allowed: {allowed}"
    if status == 413:
        limit = request.max_content_length
        return f"Request body is larger than the limit of {limit} bytes"
    data_message = (getattr(error, "data", None) or {}).get("message")
    return data_message or error.description or error.name


def _webargs_messages(error: HTTPException) -> dict | None:
    data = getattr(error, "data", None) or {}
    return data.get("messages")


def _render_validation_failure(messages: dict) -> Response:
    """webargs reports schema errors as 422; the Canvas contract answers 400 naming each field."""
    problems = list(_flatten_messages(messages))
    field = problems[0][0] if problems else None
    text = "; ".join(f"{path}: {msg}" if path else msg for path, msg in problems) or "Invalid request"
    return render_error(400, text, BadRequestError(text, field=field, parameter=field))


def _flatten_messages(node: Any, path: str = "") -> list[tuple[str, str]]:
    if isinstance(node, dict):
        found = []
        for key, value in node.items():
            if key in ("json", "query", "form", "view_args", "headers") and not path:
                found += _flatten_messages(value, "")
            elif key == "_schema":
                found += _flatten_messages(value, path)
            else:
                found += _flatten_messages(value, f"{path}.{key}" if path else str(key))
        return found
    if isinstance(node, list):
        return [item for entry in node for item in _flatten_messages(entry, path)]
    return [(path, _friendly(str(node)))]


def _friendly(message: str) -> str:
    if message == "Invalid input type.":
        return "Request body must be a JSON object"
    return message


def _handle_unexpected(error: Exception) -> Response:
    if isinstance(error, HTTPException):
        return _handle_http_exception(error)
    service = unreachable_service(error)
    if service in ("the database", "Redis"):  # an outage, not a bug: say so, and that trying again is the cure
        log.warning("%s %s: %s is unreachable (%s)", request.method, request.path, service, type(error).__name__)
        what = "its database" if service == "the database" else service
        response = render_error(503, f"The service cannot reach {what} at the moment; try again shortly")
        response.headers["Retry-After"] = str(OUTAGE_RETRY_AFTER_SECONDS)
        return response
    reference = uuid.uuid4().hex[:12]
    log.exception("unhandled error (reference %s) on %s %s", reference, request.method, request.path)
    return render_error(500, f"Internal error; reference {reference} in the service log")


# --- request body checks -------------------------------------------------------------------------------------------

def check_request_body() -> None:
    """Before any view: a body must be JSON of a sane size, so no view ever sees a malformed one."""
    if request.method not in ("POST", "PUT", "PATCH", "DELETE") or request.routing_exception is not None:
        return
    if not request.content_length and not request.headers.get("Transfer-Encoding"):
        return
    limit = request.max_content_length
    if limit is not None and (request.content_length or 0) > limit:
        raise PayloadTooLargeError(f"Request body is larger than the limit of {limit} bytes")
    if request.mimetype not in JSON_MEDIA_TYPES and not request.mimetype.endswith("+json"):
        raise UnsupportedMediaTypeError(
            f"Content-Type must be application/json, got '{request.mimetype or 'none'}'")
    raw = request.get_data(cache=True)
    if raw.strip():
        _parse_json_or_fail(raw)


def _parse_json_or_fail(raw: bytes) -> None:
    try:
        json.loads(raw)
    except UnicodeDecodeError:
        raise BadRequestError("Request body is not UTF-8 encoded JSON") from None
    except ValueError as exc:
        raise BadRequestError(f"Malformed JSON body: {exc}") from None


# --- case-insensitive endpoint names -------------------------------------------------------------------------------

class CaseInsensitiveApiPaths:
    """`/api/workflows` reaches `/api/Workflows`, as on the ASP.NET original. Ids and other segments are untouched."""

    def __init__(self, wsgi_app, app: Flask, prefix: str = "/api/"):  # noqa: ANN001
        self.wsgi_app = wsgi_app
        self.app = app
        self.prefix = prefix
        self._canonical: dict[str, str] | None = None

    def _canonical_segments(self) -> dict[str, str]:
        if self._canonical is None:
            segments: dict[str, str] = {}
            for rule in self.app.url_map.iter_rules():
                if rule.rule.startswith(self.prefix):
                    for segment in rule.rule.split("/"):
                        if segment and "<" not in segment:
                            segments.setdefault(segment.lower(), segment)
            self._canonical = segments
        return self._canonical

    def __call__(self, environ, start_response):  # noqa: ANN001
        path = environ.get("PATH_INFO", "")
        if path[: len(self.prefix)].lower() == self.prefix:
            canonical = self._canonical_segments()
            environ["PATH_INFO"] = "/".join(canonical.get(part.lower(), part) for part in path.split("/"))
        return self.wsgi_app(environ, start_response)
