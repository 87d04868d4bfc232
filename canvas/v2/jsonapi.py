"""JSON:API plumbing of the v2 dialect: documents, resource objects, reading request documents and query
parameters, and paging with links. Errors are rendered by canvas.web from the shared error hierarchy."""
from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from flask import Response, current_app, request

from canvas.endpoint import view_method
from canvas.errors import BadRequestError, ConflictError, ForbiddenError, NotAcceptableError
from canvas.schema_fields import DEFAULT_PAGE_SIZE, INT64_MAX, MAX_PAGE_NUMBER, MAX_PAGE_SIZE, parse_id, parse_int_text
from canvas.web import V2_PREFIX, is_under, sent_a_document

MEDIA_TYPE = "application/vnd.api+json"
ACCEPTABLE_TYPES = (MEDIA_TYPE, "application/json")


# --- answers ------------------------------------------------------------------------------------------------------

def document(data: Any, *, status: int = 200, meta: dict | None = None, links: dict | None = None,
             headers: dict | None = None) -> Response:
    body: dict[str, Any] = {"data": data, "meta": meta or {}}
    if links:
        body["links"] = links
    return raw_json(body, status=status, headers=headers)


def raw_json(body: Any, *, status: int = 200, headers: dict | None = None) -> Response:
    text = json.dumps(body, default=_json_default, ensure_ascii=False)
    response = current_app.response_class(text, status=status, mimetype=MEDIA_TYPE)
    response.headers.update(headers or {})
    return response


def no_content() -> Response:
    response = current_app.response_class(status=204)
    del response.headers["Content-Type"]  # there is no content to have a type (Flask would say text/html)
    return response


def refuse_unknown_query_parameters() -> None:
    """Before every /v2 view: a query parameter the endpoint does not take is a 400 naming it, not silently
    ignored (`filter[statsu]=x` must not answer every flow). What an endpoint takes is what its documentation
    (@blp.doc parameters) says. Webhook URLs are exempt: senders add their own parameters."""
    if not request.path.startswith(V2_PREFIX + "/") or request.path.startswith(V2_PREFIX + "/hooks/"):
        return
    if request.url_rule is None or not request.args:
        return
    taken = _documented_query_parameters(current_app.view_functions[request.endpoint], request.method)
    unknown = sorted(name for name in request.args if name not in taken)
    if unknown:
        offered = ", ".join(sorted(taken)) or "none"
        raise BadRequestError(f"Unknown query parameter {unknown[0]}; this endpoint takes: {offered}",
                              parameter=unknown[0])


def _documented_query_parameters(view, method: str) -> set[str]:  # noqa: ANN001 - a Flask view function
    handler = view_method(view, method)
    documented = (getattr(handler, "_apidoc", None) or {}).get("manual_doc", {}).get("parameters", [])
    return {parameter["name"] for parameter in documented if parameter.get("in") == "query"}


def check_acceptable() -> None:
    """Before every /v2 view: a client that accepts neither JSON:API nor JSON gets 406, not an answer it cannot
    read (the seed lists 406)."""
    if not is_under(request.path, V2_PREFIX):
        return
    accepted = request.accept_mimetypes
    if request.headers.get("Accept") and not any(accepted.quality(kind) for kind in ACCEPTABLE_TYPES):
        raise NotAcceptableError(f"This API answers {MEDIA_TYPE} (or application/json); the request accepts only "
                                 f"{request.headers['Accept'][:200]}")


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso_time(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def iso_time(value: datetime | None) -> str | None:
    """ISO 8601 in UTC with milliseconds and a Z, as the seed writes them."""
    if value is None:
        return None
    return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def resource(kind: str, resource_id: Any, attributes: dict, *, self_link: str,
             relationships: dict | None = None) -> dict:
    entry = {"type": kind, "id": str(resource_id), "links": {"self": self_link}, "attributes": attributes}
    if relationships:
        entry["relationships"] = relationships
    return entry


def to_one(kind: str, resource_id: Any, link: str | None = None) -> dict:
    """A to-one relationship; `link` is where the related resource lives."""
    relation: dict[str, Any] = {"data": None if resource_id is None else {"type": kind, "id": str(resource_id)}}
    if link:
        relation["links"] = {"self": link}
    return relation


# --- request documents ------------------------------------------------------------------------------------------

def request_data(expected_type: str, *, resource_id: str | None = None, creates: bool = False) -> dict:
    """The `data` object of the body: an object of the expected type (and id, for PATCH)."""
    body = request.get_json(silent=True) if sent_a_document() else None
    if not isinstance(body, dict) or not isinstance(body.get("data"), dict):
        raise BadRequestError("The body must be a JSON:API document with a `data` object", field="data")
    data = body["data"]
    if "type" not in data:  # JSON:API: a resource object MUST contain a type
        raise BadRequestError(f"data.type is required ('{expected_type}')", field="type")
    if data["type"] != expected_type:
        raise ConflictError(f"data.type must be '{expected_type}', got {json.dumps(data.get('type'))}",
                            field="type")
    if "id" in data and not isinstance(data["id"], str):  # JSON:API: an id is a string
        raise BadRequestError(f"data.id must be a string, got {json.dumps(data['id'])[:60]}", field="id")
    if resource_id is not None and data.get("id") not in (None, resource_id):
        raise ConflictError(f"data.id '{data.get('id')}' does not match the URL's id {resource_id}", field="id")
    if creates and "id" in data:  # JSON:API: 403 for a client-generated id the server does not take
        raise ForbiddenError("data.id: this server makes the ids of new resources; send none", field="id")
    if not isinstance(data.get("relationships", {}), dict):
        raise BadRequestError("data.relationships must be an object", field="relationships")
    return data


def attributes_of(data: dict) -> dict:
    attributes = data.get("attributes", {})
    if not isinstance(attributes, dict):
        raise BadRequestError("data.attributes must be an object", field="attributes")
    return attributes


# --- query parameters --------------------------------------------------------------------------------------------

def int_parameter(name: str, default: int, *, minimum: int, maximum: int | None = None) -> int:
    raw = request.args.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return parse_int_text(raw.strip(), minimum, INT64_MAX if maximum is None else maximum)
    except ValueError as exc:
        raise BadRequestError(f"{name} {exc}", parameter=name) from None


def choice_parameter(name: str, allowed: tuple[str, ...]) -> str | None:
    raw = request.args.get(name)
    if raw is None or raw.strip() == "":
        return None
    value = raw.strip()
    if value not in allowed:
        raise BadRequestError(f"{name} must be one of {', '.join(allowed)}, got '{raw}'", parameter=name)
    return value


def uuid_parameter(name: str) -> uuid.UUID | None:
    raw = request.args.get(name)
    if raw is None or raw.strip() == "":
        return None
    try:
        return parse_id(raw)  # as sent: " id " is no id in a query, in either dialect
    except ValueError:
        raise BadRequestError(f"{name} must be an id, got '{raw}'", parameter=name) from None


def list_parameter(name: str) -> list[str]:
    """`name[]=a&name[]=b`, also `name=a,b`; blanks dropped."""
    values = request.args.getlist(name + "[]") + request.args.getlist(name)
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


# --- paging ---------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Page:
    number: int
    size: int

    @property
    def offset(self) -> int:
        return (self.number - 1) * self.size


def page_parameters() -> Page:
    return Page(int_parameter("page[number]", 1, minimum=1, maximum=MAX_PAGE_NUMBER),
                int_parameter("page[size]", DEFAULT_PAGE_SIZE, minimum=1, maximum=MAX_PAGE_SIZE))


def page_meta(page: Page, total: int) -> dict:
    return {"page": page.number, "per_page": page.size, "total": total, "total_pages": total_pages(page, total)}


def total_pages(page: Page, total: int) -> int:
    return max(1, -(-total // page.size))


def page_links(page: Page, total: int) -> dict:
    """self/first/last, and prev/next where such a page exists; other query parameters are kept."""
    last = total_pages(page, total)
    links = {"self": _page_url(page.number, page.size), "first": _page_url(1, page.size),
             "last": _page_url(last, page.size)}
    if 1 < page.number <= last + 1:
        links["prev"] = _page_url(page.number - 1, page.size)
    if page.number < last:
        links["next"] = _page_url(page.number + 1, page.size)
    return links


def _page_url(number: int, size: int) -> str:
    kept = [(key, value) for key, value in request.args.items(multi=True) if not key.startswith("page[")]
    query = urlencode(kept + [("page[number]", number), ("page[size]", size)])
    return f"{request.path}?{query}"
