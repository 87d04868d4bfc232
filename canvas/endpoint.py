"""Metadata of API endpoints, attached to view methods, read by auth, GetMetaData and Describe.

Declaring it next to the view keeps one source of truth: GetMetaData is generated from the registered routes.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import marshmallow as ma

META_ATTRIBUTE = "_canvas_endpoint"
ID_PARAMETER = "Guid id"  # the Canvas document's parameter of endpoints that act on one thing by its id
_DTO_SCHEMAS: dict[str, type[ma.Schema]] = {}


@dataclass(frozen=True)
class RoleRule:
    """Who may call an endpoint, checked with authentication, before the body is read: a caller without the role
    learns nothing of the endpoint's schema."""

    allows: Callable[[Any], bool]  # the key account's Role -> allowed
    refusal: str


@dataclass(frozen=True)
class EndpointMeta:
    name: str
    authenticate: bool = True
    parameters: str = ""
    returns: str = ""
    extension: bool = False
    role: RoleRule | None = None
    acts_on_path_id: bool = False  # a body endpoint that also acts on an id in its path (route_with_optional_id)

    @property
    def takes_path_id(self) -> bool:
        return self.parameters == ID_PARAMETER or self.acts_on_path_id


def canvas_endpoint(name: str, *, authenticate: bool = True, parameters: str = "", returns: str = "",
                    extension: bool = False, role: RoleRule | None = None, acts_on_path_id: bool = False) -> Callable:
    """Mark a view method as the Canvas endpoint `name`. Its docstring's first line is its description."""

    def decorate(view: Callable) -> Callable:
        setattr(view, META_ATTRIBUTE, EndpointMeta(name, authenticate, parameters, returns, extension, role,
                                                   acts_on_path_id))
        return view

    return decorate


def endpoint_meta(view_function: Callable, method: str) -> EndpointMeta | None:
    return getattr(view_method(view_function, method), META_ATTRIBUTE, None)


def description_of(view_function: Callable, method: str) -> str:
    handler = view_method(view_function, method)
    doc = (handler.__doc__ or "").strip()
    return doc.splitlines()[0] if doc else ""


def view_method(view_function: Callable, method: str) -> Callable | None:
    """The view method serving `method`; HEAD is served by GET (as Flask's MethodView does), so it is GET's
    metadata, authentication included, that applies to it."""
    view_class = getattr(view_function, "view_class", None)
    if view_class is None:
        return view_function
    method = method.lower()
    handler = getattr(view_class, method, None)
    if handler is None and method == "head":
        handler = getattr(view_class, "get", None)
    return handler


def dto(name: str) -> Callable[[type[ma.Schema]], type[ma.Schema]]:
    """Register a request schema under its Canvas DTO name, for Describe."""

    def register(schema: type[ma.Schema]) -> type[ma.Schema]:
        _DTO_SCHEMAS[name.lower()] = schema
        schema.dto_name = name
        return schema

    return register


def dto_schema(name: str) -> type[ma.Schema] | None:
    return _DTO_SCHEMAS.get((name or "").strip().lower())


def dto_names() -> list[str]:
    return sorted(schema.dto_name for schema in _DTO_SCHEMAS.values())


def dto_name_of(schema: Any) -> str:
    schema_class = schema if isinstance(schema, type) else type(schema)
    return getattr(schema_class, "dto_name", schema_class.__name__.removesuffix("Schema"))


def route_with_optional_id(blp, path: str) -> Callable:  # noqa: ANN001 - flask_smorest.Blueprint
    """Canvas endpoints that take a `Guid id` accept it as a path segment and as a query parameter."""

    def register(view_class: type) -> type:
        blp.route(path, endpoint=view_class.__name__)(view_class)
        # only the methods that take the id: another one answers 405 before its body is read (it was read first, so
        # a bad body got a 400 about the body rather than about the path)
        with_id = [method.upper() for method in ("get", "post", "put", "patch", "delete")
                   if (meta := getattr(getattr(view_class, method, None), META_ATTRIBUTE, None)) is not None
                   and meta.takes_path_id]
        blp.route(f"{path}/<id:path_id>", endpoint=view_class.__name__ + "ById", methods=with_id)(view_class)
        return view_class

    return register


def id_argument(path_id: str | None, query: dict) -> str:
    from canvas.errors import BadRequestError

    value = path_id or query.get("id")
    if not value:
        raise BadRequestError("id: a Guid id is required, in the path or as ?id=", parameter="id")
    return value
