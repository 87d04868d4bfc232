"""HTTP plumbing shared by both dialects: error rendering, request-body checks, case-insensitive Canvas paths."""
from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import Any

import flask_smorest
from flask import Flask, Request, Response, current_app, jsonify, request
from flask.json.provider import DefaultJSONProvider
from marshmallow import missing
from webargs.flaskparser import FlaskParser, is_json_request
from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import HTTPException
from werkzeug.routing import BaseConverter

from canvas.errors import (
    BadRequestError,
    CanvasError,
    NotFoundError,
    PayloadTooLargeError,
    ServiceUnavailableError,
    UnsupportedMediaTypeError,
)
from canvas.json_input import JsonInputError, check_text, decode_json
from canvas.outages import DATABASE, OUTAGE_RETRY_AFTER_SECONDS, database_is_full, outage_text, unreachable_service
from canvas.schema_fields import ID_FORMAT, INT32_MAX, parse_id, parse_int_text
from canvas.storage.blob import BlobStoreError
from canvas.v2.vocabulary import v2_field, v2_message

log = logging.getLogger(__name__)
V2_PREFIX = "/v2"
V2_REALM = "Canvas v2: account e-mail and API key"
JSON_MEDIA_TYPES = {"application/json", "application/vnd.api+json"}


# --- rendering -------------------------------------------------------------------------------------------------

# app.extensions[ERROR_PAGES]: {path prefix: page(status, message)}, for what answers with pages rather than JSON
# (the console): a request under the prefix that no view of it took (an unknown path, a method it does not take, an
# unexpected error) is answered with its page too.
ERROR_PAGES = "canvas.error_pages"


def is_under(path: str, prefix: str) -> bool:
    """`path` is `prefix` or below it (/v2, /v2/flows; not /v2x)."""
    return path == prefix or path.startswith(prefix + "/")


def render_error(status: int, message: str, error: CanvasError | None = None) -> Response:
    page = _error_page_for(request.path)
    if page is not None:
        return page(status, message)
    if _is_v2():
        return _render_jsonapi_error(status, message, error)
    response = jsonify({"State": status, "Msg": message})
    response.status_code = status
    return response


def _error_page_for(path: str) -> Callable[[int, str], Response] | None:
    for prefix, page in current_app.extensions.get(ERROR_PAGES, {}).items():
        if is_under(path, prefix):
            return page
    return None


def _render_jsonapi_error(status: int, message: str, error: CanvasError | None) -> Response:
    entry: dict[str, Any] = {"status": str(status), "title": _title(status, error), "detail": v2_message(message)}
    source = _jsonapi_source(error)
    if source:
        entry["source"] = source
    response = jsonify({"errors": [entry]})
    response.status_code = status
    response.mimetype = "application/vnd.api+json"
    if status == 401:  # RFC 9110: a 401 names its scheme, or HTTP clients (urllib's Basic handler) never send one
        response.headers["WWW-Authenticate"] = f'Basic realm="{V2_REALM}", charset="UTF-8"'
    return response


# Faults named by these fields are in the document's members, not in `data.attributes`
_DOCUMENT_MEMBERS = {"data": "/data", "type": "/data/type", "id": "/data/id",
                     "relationships": "/data/relationships", "component": "/data/relationships/component"}


def _jsonapi_source(error: CanvasError | None) -> dict | None:
    """Where the fault is: a pointer into the request's document (only when it sent one: a DELETE has none to
    point into), else the query parameter."""
    if error is None:
        return None
    if error.field and sent_a_document():
        field = v2_field(error.field)
        return {"pointer": _DOCUMENT_MEMBERS.get(field) or "/data/attributes/" + field.replace(".", "/")}
    if error.parameter:
        return {"parameter": v2_field(error.parameter)}
    return None


def _title(status: int, error: CanvasError | None) -> str:
    if error is not None:
        return error.title
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


class CanvasFlask(Flask):
    """Flask answering an OPTIONS request (which it serves for every route) with 204 and Allow, no body: Flask's
    own answer was a 200 with an empty text/html body, where every other answer of the API is JSON or nothing."""

    def make_default_options_response(self) -> Response:
        response = super().make_default_options_response()
        response.status_code = 204
        response.headers.pop("Content-Type", None)
        return response


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
    problems = list(flatten_messages(messages))
    field = problems[0][0] if problems else None
    text = "; ".join(f"{path}: {msg}" if path else msg for path, msg in problems) or "Invalid request"
    return render_error(400, text, BadRequestError(text, field=field, parameter=field))


def flatten_messages(node: Any, path: str = "") -> list[tuple[str, str]]:
    """A marshmallow error tree as (dotted field path, message) pairs, in the Canvas dialect's 400 wording order."""
    if isinstance(node, dict):
        found = []
        for key, value in node.items():
            if key in ("json", "query", "form", "view_args", "headers") and not path:
                found += flatten_messages(value, "")
            elif key == "_schema":
                found += flatten_messages(value, path)
            else:
                found += flatten_messages(value, f"{path}.{key}" if path else str(key))
        return found
    if isinstance(node, list):
        return [item for entry in node for item in flatten_messages(entry, path)]
    return [(path, _friendly(str(node)))]


def _friendly(message: str) -> str:
    if message == "Invalid input type.":
        return "Request body must be a JSON object"
    return message


def _handle_unexpected(error: Exception) -> Response:
    if isinstance(error, HTTPException):
        return _handle_http_exception(error)
    outage = _outage(error)
    if outage is not None:  # through the handler of the request's blueprint: the console answers with its page
        return current_app.handle_user_exception(outage)
    reference = uuid.uuid4().hex[:12]
    log.exception("unhandled error (reference %s) on %s %s", reference, request.method, request.path)
    return render_error(500, f"Internal error; reference {reference} in the service log")


def _outage(error: Exception) -> ServiceUnavailableError | None:
    """A service the API works with is away (the database, Redis) or cannot be used (the file storage: unreachable,
    refusing this service's credentials, a full disk): a 503 saying so, with Retry-After, instead of a bug's 500,
    since trying again is the cure. The log says which service and why: the class for the database and Redis (their
    errors' text may hold a URL), the store's own message (written for the operator: it names the setting, never a
    secret)."""
    if isinstance(error, BlobStoreError):
        log.warning("%s %s: the file storage cannot be used: %s", request.method, request.path, error)
        problem = "cannot use its file storage"
    elif (service := unreachable_service(error)) in (DATABASE, "Redis"):
        log.warning("%s %s: %s", request.method, request.path, outage_text(service, error))
        if database_is_full(error):
            problem = "cannot write to its database"
        else:
            problem = f"cannot reach {'its database' if service == 'the database' else service}"
    else:
        return None
    return ServiceUnavailableError(f"The service {problem} at the moment; try again shortly",
                                   retry_after=OUTAGE_RETRY_AFTER_SECONDS)


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
    if sent_a_document():
        request.get_json(force=True)  # kept by flask for the view: a body is decoded once


def sent_a_document(req: Request | None = None) -> bool:
    """The request has a body beyond blanks (kept by werkzeug: reading it here leaves it for the view)."""
    return bool((req or request).get_data(cache=True).strip())


def _parse_json_or_fail(raw: bytes) -> Any:
    """The request document, decoded by the one decoder; a refusal names where the fault is."""
    try:
        return decode_json(raw)
    except UnicodeDecodeError:
        raise BadRequestError("Request body is not UTF-8 encoded JSON") from None
    except JsonInputError as exc:
        raise _refusal_of_body_value(exc) from None
    except ValueError as exc:
        raise BadRequestError(f"Malformed JSON body: {exc}") from None


def _refusal_of_body_value(exc: JsonInputError) -> BadRequestError:
    message = f"{exc.where}: {exc.message}" if exc.path else exc.message
    if not _is_v2():
        return BadRequestError(message, field=exc.where or None)
    attribute = exc.path[2:] if exc.path[:2] == ("data", "attributes") else ()  # JSON:API points into attributes
    return BadRequestError(message, field=".".join(str(part) for part in attribute) or None)


def _is_v2() -> bool:
    return is_under(request.path, V2_PREFIX)


class RequestJSONProvider(DefaultJSONProvider):
    """flask's `request.get_json` decodes with the one request decoder too, so no view can read a body that the
    before-request check would refuse."""

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return _parse_json_or_fail(s)


class RequestArgumentsParser(FlaskParser):
    """webargs reads a JSON body through `request.get_json`: the one request decoder, and the document the
    before-request check decoded (flask keeps it). Its own `json.loads` refused what that check admits (a UTF-8
    byte order mark, UTF-16 or UTF-32: RFC 8259 section 8.1) with werkzeug's generic 400 naming nothing."""

    def _raw_load_json(self, req: Request) -> Any:
        if not is_json_request(req) or not sent_a_document(req):
            return missing  # no body: the schema names the fields it requires
        return req.get_json(force=True)


class Blueprint(flask_smorest.Blueprint):
    """The API's blueprints: flask-smorest's, with their arguments read by RequestArgumentsParser."""

    ARGUMENTS_PARSER = RequestArgumentsParser()


# --- path and query values -------------------------------------------------------------------------------------------

class RefusedPathValue:
    """What a path converter yields for a segment it refuses: routing goes on (no misleading "No endpoint" 404),
    and refuse_bad_path_and_query_values answers it naming the parameter, after authentication."""

    def __init__(self, reason: str, error_class: type[CanvasError]):
        self.reason, self.error_class = reason, error_class


class IdConverter(BaseConverter):
    """`<id:name>`: an id in the path, by parse_id, as its canonical lowercase text. One that is no id names no
    resource: 404, as an unknown one."""

    regex = "[^/]+"

    def to_python(self, value: str) -> Any:
        try:
            return str(parse_id(value))
        except ValueError:
            return RefusedPathValue(f"'{value[:60]}' is not an id ({ID_FORMAT}), so it names nothing", NotFoundError)


class PositionConverter(BaseConverter):
    """`<position:name>`: a number counted from 1 (a block's) in the path, within a signed 32-bit column. werkzeug's
    `int` takes any count of digits, and the database then fails on 99999999999999999999999."""

    regex = "[^/]+"

    def to_python(self, value: str) -> Any:
        try:
            return parse_int_text(value, 1, INT32_MAX)
        except ValueError as exc:
            return RefusedPathValue(str(exc), BadRequestError)


PATH_CONVERTERS = {"id": IdConverter, "position": PositionConverter}


def refuse_bad_path_and_query_values() -> None:
    """Before any view: path values the converters refused, and text no database can store in path segments and
    query strings (NUL characters), are answered naming the parameter."""
    for name, value in (request.view_args or {}).items():
        if isinstance(value, RefusedPathValue):
            raise value.error_class(f"{name}: {value.reason}", parameter=name)
        if isinstance(value, str):
            check_parameter_text(name, value)
    refuse_unstorable_values(request.args)


def refuse_unstorable_values(values: MultiDict) -> None:
    """Query or form values, and their names, that no database can store, answered naming the parameter."""
    for name, value in values.items(multi=True):
        check_parameter_text(name, name)
        check_parameter_text(name, value)


def check_parameter_text(name: str, value: str) -> None:
    """A query, path or form value no database can store (canvas.json_input.check_text), refused naming it."""
    try:
        check_text(value)
    except JsonInputError as exc:
        raise BadRequestError(f"{_printable(name)}: {exc.message}", parameter=_printable(name)) from None


def _printable(name: str) -> str:
    """A parameter name fit to be shown back, even when it is the offending text."""
    return name.encode("unicode_escape").decode("ascii")


# --- request bodies answered before they were read ------------------------------------------------------------------

DRAIN_LIMIT_BYTES = 64 * 1024 * 1024


class DrainedRequestBodies:
    """Reads what is left of a request's body once the app has answered without reading it all (a 401, a 413, a
    415 come before the body is read): the connection stays in step for the client's next request on it. Left to
    the HTTP server, a kept-alive connection whose client was still sending was sometimes closed with no answer to
    the next request (2 of 30, a 3 MB body refused with 401, gunicorn 27's threads). Beyond DRAIN_LIMIT_BYTES the
    server's own handling applies (read, or the connection closed)."""

    def __init__(self, wsgi_app, limit: int = DRAIN_LIMIT_BYTES):  # noqa: ANN001
        self.wsgi_app, self.limit = wsgi_app, limit

    def __call__(self, environ, start_response):  # noqa: ANN001, ANN204
        try:
            return self.wsgi_app(environ, start_response)
        finally:
            _drain(environ.get("wsgi.input"), self.limit)


def _drain(stream, limit: int) -> None:  # noqa: ANN001 - the server's wsgi.input
    if stream is None:
        return
    left = limit
    try:
        while left > 0 and (chunk := stream.read(min(65536, left))):
            left -= len(chunk)
    except (OSError, ValueError):  # the client went away, or the server's stream is closed: nothing to keep in step
        return


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
