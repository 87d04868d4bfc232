"""OpenAPI descriptions of the v2 dialect. Requests are read by canvas.v2.jsonapi (JSON:API needs `source.parameter`
for query errors, which webargs cannot give), so these only document: parameters, bodies and answers."""
from __future__ import annotations

from typing import Any

from canvas.v2.jsonapi import MEDIA_TYPE

SECURITY = [{"BasicAuth": []}]


def query(name: str, description: str, kind: str = "string") -> dict:
    return {"name": name, "in": "query", "required": False, "description": description, "schema": {"type": kind}}


PAGE_PARAMETERS = [
    query("page[number]", "Page number, from 1 (default 1)", "integer"),
    query("page[size]", "Items per page, 1..500 (default 50)", "integer"),
]
WORKSPACE_PARAMETER = query("workspace_id", "the caller's organization id (optional; another one is 404)")
FLOW_LIST_PARAMETERS = PAGE_PARAMETERS + [
    query("filter[status]", "active | inactive"),
    query("filter[type]", "ordinary | long_running"),
    query("filter[user]", "id of the user (account) who created the flow"),
    query("filter[has_draft]", "true: only flows with a draft; false: only flows without one"),
    query("sort", "created_at, updated_at or name; prefix - for descending (default: by id)"),
    query("search", "case-insensitive substring of name or description"),
    WORKSPACE_PARAMETER,
]
LOG_PARAMETERS = [
    WORKSPACE_PARAMETER,
    query("flow_ids[]", "flow ids (repeatable)"),
    query("from", "ISO 8601 start of the period"),
    query("to", "ISO 8601 end of the period"),
    query("search", "case-insensitive text in the message"),
    query("offset", "items to skip (default 0)", "integer"),
    query("limit", "items to return, 1..1000 (default 100)", "integer"),
    query("levels[]", "10 trace, 20 debug, 30 info, 40 warn, 50 error, 60 fatal (repeatable)", "integer"),
]

_DOCUMENT = {"type": "object", "properties": {"data": {"type": "object"}, "meta": {"type": "object"},
                                              "links": {"type": "object"}}}
_ERRORS = {"type": "object", "properties": {"errors": {"type": "array", "items": {"type": "object", "properties": {
    "status": {"type": "string"}, "title": {"type": "string"}, "detail": {"type": "string"},
    "source": {"type": "object", "properties": {"pointer": {"type": "string"}, "parameter": {"type": "string"}}}}}}}}


def body(description: str) -> dict:
    return {"required": True, "description": description,
            "content": {MEDIA_TYPE: {"schema": _DOCUMENT}, "application/json": {"schema": _DOCUMENT}}}


def answers(success: int, description: str, *errors: int) -> dict[Any, dict]:
    documented: dict[Any, dict] = {success: {"description": description,
                                             "content": {MEDIA_TYPE: {"schema": _DOCUMENT}}}}
    for status in (400, 401, 403, 404, *errors):
        documented[status] = {"description": "JSON:API errors", "content": {MEDIA_TYPE: {"schema": _ERRORS}}}
    return documented


def doc(success: int, description: str, *errors: int, parameters: list | None = None,
        request_body: str | None = None, security: list | None = None) -> dict:
    """Keyword arguments for flask-smorest's @blp.doc."""
    entry: dict[str, Any] = {"responses": answers(success, description, *errors),
                             "security": SECURITY if security is None else security}
    if parameters:
        entry["parameters"] = parameters
    if request_body:
        entry["requestBody"] = body(request_body)
    return entry
