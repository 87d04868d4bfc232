"""Builds GetMetaData and Describe answers from the app's routes and the registered request schemas."""
from __future__ import annotations

from collections.abc import Iterable

import marshmallow as ma
from flask import Flask

from canvas.endpoint import EndpointMeta, description_of, dto_name_of, dto_schema, endpoint_meta
from canvas.errors import NotFoundError

IGNORED_METHODS = {"HEAD", "OPTIONS"}


def endpoint_catalog(app: Flask, prefix: str = "/api/") -> list[dict]:
    entries, seen = [], set()
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith(prefix):
            continue
        view = app.view_functions[rule.endpoint]
        for method in sorted(rule.methods - IGNORED_METHODS):
            meta = endpoint_meta(view, method)
            if meta is None or (meta.name, method) in seen:
                continue
            seen.add((meta.name, method))
            entries.append(_entry(meta, method, description_of(view, method)))
    return entries


def _entry(meta: EndpointMeta, method: str, description: str) -> dict:
    return {
        "name": meta.name,
        "parameters": meta.parameters,
        "verb": method,
        "authenticate": meta.authenticate,
        "description": description,
        "returns": meta.returns,
    }


def describe(name: str | None) -> list[dict]:
    schema_class = dto_schema(name or "")
    if schema_class is None:
        raise NotFoundError(f"Unknown type {name!r}", parameter="name")
    return [_describe_field(field_name, field) for field_name, field in _declared(schema_class)]


def _declared(schema_class: type[ma.Schema]) -> Iterable[tuple[str, ma.fields.Field]]:
    return schema_class._declared_fields.items()


def _describe_field(name: str, field: ma.fields.Field) -> dict:
    type_name, generic = _type_of(field)
    return {
        "typeName": type_name,
        "propertyName": field.data_key or name,
        "genericParameters": generic,
        "isRequired": bool(field.required),
    }


SCALAR_TYPES = [
    (ma.fields.UUID, "guid"),
    (ma.fields.Boolean, "boolean"),
    (ma.fields.Integer, "int"),
    (ma.fields.Float, "double"),
    (ma.fields.DateTime, "dateTime"),
    (ma.fields.String, "string"),
]


def _type_of(field: ma.fields.Field) -> tuple[str, str]:
    if getattr(field, "describe_as", None):
        return field.describe_as, ""
    if isinstance(field, ma.fields.Dict):
        keys = _type_of(field.key_field)[0] if field.key_field else "string"
        values = _type_of(field.value_field)[0] if field.value_field else "object"
        return "dictionary", f"{keys},{values}"
    if isinstance(field, ma.fields.List):
        return "iEnumerable", _type_of(field.inner)[0]
    if isinstance(field, ma.fields.Nested):
        name = dto_name_of(field.nested if isinstance(field.nested, type) else type(field.schema))
        return name[:1].lower() + name[1:], ""
    for field_class, type_name in SCALAR_TYPES:
        if isinstance(field, field_class):
            return type_name, ""
    return "object", ""
