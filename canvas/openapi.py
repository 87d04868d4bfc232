"""The OpenAPI document tells the truth about every answer: each operation lists the statuses it really answers,
with the error body of its dialect, and no catch-all `default`.

Views declare their success answers with flask-smorest (`@blp.response`, `@blp.alt_response`). The errors are added
here, in one place, from what every operation of a kind can meet: authentication, arguments, a request body, an id in
the path, the database. Errors only some views raise (409 from a conflict, 503 from Redis or SMTP...) are declared on
those views with `@may_answer(...)`.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

import swagger_ui_bundle
from apispec import BasePlugin
from flask import Blueprint, Flask, current_app, json
from flask_smorest import Api

from canvas.endpoint import endpoint_meta, view_method
from canvas.v2.jsonapi import MEDIA_TYPE as JSONAPI_MEDIA_TYPE

ERROR_STATUSES_ATTRIBUTE = "_canvas_error_statuses"
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
WRITE_METHODS = ("post", "put", "patch", "delete")
V2_PREFIX, V2_PUBLIC_PREFIX = "/v2/", "/v2/hooks/"
# A Canvas `{path_id}` route serves the methods that take a `Guid id` (canvas.endpoint.route_with_optional_id); the
# others are documented only on the route without it.

CANVAS_ERROR_SCHEMA = {
    "type": "object",
    "description": "Every error answer of the Canvas dialect: the HTTP status and a message naming what is wrong",
    "required": ["State", "Msg"],
    "properties": {"State": {"type": "integer"}, "Msg": {"type": "string"}},
}
JSONAPI_ERRORS_SCHEMA = {
    "type": "object",
    "description": "Every error answer of the JSON:API dialect",
    "required": ["errors"],
    "properties": {"errors": {"type": "array", "minItems": 1, "items": {
        "type": "object",
        "required": ["status", "title", "detail"],
        "properties": {
            "status": {"type": "string", "description": "the HTTP status, as a string"},
            "title": {"type": "string"},
            "detail": {"type": "string"},
            "source": {"type": "object", "properties": {"pointer": {"type": "string"},
                                                        "parameter": {"type": "string"}}},
        }}}},
}
JSONAPI_RESOURCE_DOCUMENT = {"type": "object", "required": ["data"], "properties": {
    "data": {"type": "object"}, "meta": {"type": "object"}, "links": {"type": "object"}}}
JSONAPI_LIST_DOCUMENT = {"type": "object", "required": ["data"], "properties": {
    "data": {"type": "array", "items": {"type": "object"}}, "meta": {"type": "object"}, "links": {"type": "object"}}}
V2_LOGS_ANSWER = {"type": "object", "required": ["total", "hits"], "properties": {
    "total": {"type": "integer"}, "hits": {"type": "array", "items": {"type": "object"}}}}
# GET paths whose last segment names one thing, not a collection
V2_SINGLE_THINGS = ("me", "draft")
V2_NON_DOCUMENTS = {"/v2/logs": V2_LOGS_ANSWER}


def may_answer(*statuses: int) -> Callable:
    """Declare error statuses a view answers beyond those its kind implies (see `operation_errors`)."""

    def decorate(view: Callable) -> Callable:
        setattr(view, ERROR_STATUSES_ATTRIBUTE, frozenset(statuses) | getattr(view, ERROR_STATUSES_ATTRIBUTE,
                                                                              frozenset()))
        return view

    return decorate


class TruthfulResponsesPlugin(BasePlugin):
    """An apispec plugin: it sees each path as flask-smorest registers it and sets its error answers."""

    def __init__(self, app: Flask):
        self.app = app

    def init_spec(self, spec) -> None:  # noqa: ANN001 - apispec.APISpec
        super().init_spec(spec)
        spec.components.schema("CanvasError", CANVAS_ERROR_SCHEMA)
        spec.components.schema("JsonApiErrors", JSONAPI_ERRORS_SCHEMA)

    def operation_helper(self, path: str | None = None, operations: dict | None = None, **kwargs: Any) -> None:
        rule = kwargs.get("rule")
        if rule is None or not operations:
            return
        view = self.app.view_functions[rule.endpoint]
        for method in [name for name in operations if name in HTTP_METHODS]:
            if _id_route_without_id(path, view, method):
                del operations[method]
                continue
            _set_answers(path, method, operations[method], view)


class DocumentedOnceApi(Api):
    """flask-smorest's Api, documenting a process's first app only. Documenting the views (apispec paths, marshmallow
    schemas converted, deep copies) was about half of an app's build (100 ms), again for every app a process builds
    (the tests build about two thousand); the document depends on the code alone, so later apps of the process that
    register the same blueprints serve the first one's, as it was finished (`register_documented`)."""

    finished_documents: dict[tuple[str, ...], dict] = {}  # blueprint names -> the finished document
    document: dict | None = None  # this app's, once its blueprints are registered

    def register_documented(self, blueprints: list) -> None:
        """Register `blueprints` (flask-smorest's), documented unless an earlier app of the process did the same."""
        names = tuple(blueprint.name for blueprint in blueprints)
        self.document = self.finished_documents.get(names)
        for blueprint in blueprints:
            if self.document is None:
                self.register_blueprint(blueprint)
                continue
            self._app.extensions["flask-smorest"]["blp_name_to_api"][blueprint.name] = self  # as Api's does
            self._app.register_blueprint(blueprint)
        if self.document is None:
            drop_unanswered_schemas(self.spec)
            self.document = self.finished_documents[names] = self.spec.to_dict()

    def _openapi_json(self):  # noqa: ANN202 - flask-smorest's view of /openapi.json
        document = self.spec.to_dict() if self.document is None else self.document
        return current_app.response_class(json.dumps(document, indent=2, sort_keys=False),
                                          mimetype="application/json")


def drop_unanswered_schemas(spec) -> None:  # noqa: ANN001 - apispec.APISpec
    """flask-smorest registers its own error and pagination bodies; no answer of either dialect has them."""
    for name in ("Error", "PaginationMetadata"):
        spec.components.schemas.pop(name, None)


def _id_route_without_id(path: str, view: Callable, method: str) -> bool:
    if not path.startswith("/api/") or "{path_id}" not in path:
        return False
    meta = endpoint_meta(view, method)
    return meta is None or not meta.takes_path_id


def _set_answers(path: str, method: str, operation: dict, view: Callable) -> None:
    responses = {str(status): answer for status, answer in operation.get("responses", {}).items()}
    declared = {int(status) for status in responses if status.isdigit() and int(status) >= 400}
    successes = {status: answer for status, answer in responses.items() if status.isdigit() and int(status) < 400}
    v2 = path.startswith(V2_PREFIX)
    if v2:
        successes = {status: _v2_success(path, method, status, answer) for status, answer in successes.items()}
    # v2 views declare their own extras (409, 415, 422 for a graph the engine cannot run...); the only error a
    # Canvas view declares through flask-smorest is webargs' 422, which canvas.web answers as 400.
    extras = declared - {400, 401, 403, 404} if v2 else set()
    statuses = operation_errors(path, method, operation, view) | extras | _declared_on(view, method)
    operation["responses"] = {**successes, **{str(status): _error_answer(status, v2) for status in sorted(statuses)}}


def operation_errors(path: str, method: str, operation: dict, view: Callable) -> set[int]:
    """The errors an operation of this kind can answer, from the checks every request of it goes through."""
    statuses: set[int] = set()
    if _authenticated(path, method, view):
        statuses |= {401, 403, 503}  # keys, tenancy (allowlist, ManagedAccountId, role), the database behind them
        statuses.add(429)  # canvas.ratelimits: per key, per organization, failed authentications per address
    if method in WRITE_METHODS:
        statuses |= {400, 413, 415}  # canvas.web.check_request_body: malformed JSON, too large, not JSON
    if operation.get("parameters") or operation.get("requestBody"):
        statuses.add(400)
    if "{" in path:
        statuses |= {400, 404}  # a malformed or unknown id
    if path.startswith(V2_PREFIX):
        statuses.add(406)  # canvas.v2.jsonapi.check_acceptable: an Accept without JSON
        if not path.startswith(V2_PUBLIC_PREFIX):
            statuses.add(400)  # canvas.v2.jsonapi.refuse_unknown_query_parameters
            if method in ("post", "put", "patch"):
                statuses.add(409)  # canvas.v2.jsonapi.request_data: a document of another type (or id)
        else:
            statuses |= {401, 503}  # a webhook's HMAC signature; the database behind the token
    return statuses


def _authenticated(path: str, method: str, view: Callable) -> bool:
    if path.startswith(V2_PREFIX):
        return not path.startswith(V2_PUBLIC_PREFIX)
    meta = endpoint_meta(view, method)
    return meta is not None and meta.authenticate  # as canvas.auth.resolver decides


def _declared_on(view: Callable, method: str) -> frozenset[int]:
    return getattr(view_method(view, method), ERROR_STATUSES_ATTRIBUTE, frozenset())


def _error_answer(status: int, v2: bool) -> dict:
    schema, media_type = ("JsonApiErrors", JSONAPI_MEDIA_TYPE) if v2 else ("CanvasError", "application/json")
    answer: dict[str, Any] = {"description": HTTPStatus(status).phrase,
                              "content": {media_type: {"schema": {"$ref": f"#/components/schemas/{schema}"}}}}
    if status in (429, 503):
        answer["headers"] = {"Retry-After": {"description": "Seconds to wait before trying again",
                                             "schema": {"type": "integer"}}}
    return answer


def _v2_success(path: str, method: str, status: str, answer: Any) -> Any:
    """v2 answers are JSON:API documents whose `data` is an array for collections, an object otherwise."""
    if not isinstance(answer, dict) or "content" not in answer:
        return answer
    schema = V2_NON_DOCUMENTS.get(path) or (
        JSONAPI_LIST_DOCUMENT if _is_collection(path, method) else JSONAPI_RESOURCE_DOCUMENT)
    return {**answer, "content": {JSONAPI_MEDIA_TYPE: {"schema": schema}}}


def _is_collection(path: str, method: str) -> bool:
    last = path.rstrip("/").rsplit("/", 1)[-1]
    return method == "get" and not re.fullmatch(r"\{\w+\}", last) and last not in V2_SINGLE_THINGS


# --- Swagger UI, served by the app itself ----------------------------------------------------------------------

SWAGGER_UI_ASSETS_PATH = "/docs/assets"


def swagger_ui_assets() -> Blueprint:
    """Swagger UI's files from the pinned swagger-ui-bundle package: /docs works offline, and always with the
    version that was tested, where a CDN would serve whatever is newest, or nothing."""
    return Blueprint("swagger_ui_assets", __name__, static_folder=swagger_ui_bundle.swagger_ui_path,
                     static_url_path=SWAGGER_UI_ASSETS_PATH)
