"""Marshmallow fields and the base request schema shared by every capability: the one rule for each kind of value.

- ids: `parse_id` / `Id` (and the `id` path converter in canvas.web): 8-4-4-4-12 hex digits with dashes, any case;
- integers: `Int` (JSON integers in bodies) and `QueryInt` (decimal digits in queries and paths), always in range;
- instants: `parse_instant_text`, ISO 8601, read as UTC without an offset, within the years a datetime holds;
- booleans: `StrictBoolean`, JSON true or false and nothing else;
- JSON inside strings: `JsonString`, checked by the one JSON decoder (canvas.json_input);
- Canvas property names and query keys: `CanvasSchema`, matched ignoring case as ASP.NET binds them.
"""
from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

import marshmallow as ma

from canvas.json_input import JsonInputError, check_document_text, check_nesting

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
INT64_MAX = 2**63 - 1
MAX_PAGE_SIZE = 500
MAX_PAGE_NUMBER = INT64_MAX // MAX_PAGE_SIZE  # so that the offset (page - 1) * size is a signed 64-bit integer
DEFAULT_PAGE_SIZE = 50
ID_FORMAT = "8-4-4-4-12 hexadecimal digits"
_CANONICAL_ID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_DECIMAL = re.compile(r"-?[0-9]{1,20}")  # no sign +, spaces, underscores or exponents, which int() would take


# --- ids -----------------------------------------------------------------------------------------------------------

def parse_id(value: Any) -> uuid.UUID:
    """The one id parser. uuid.UUID() also takes {braces}, urn:uuid: and undashed forms, which the contract does
    not; uppercase hex is taken, as ASP.NET's Guid binding takes it."""
    if isinstance(value, uuid.UUID):
        return value
    if isinstance(value, str) and _CANONICAL_ID.fullmatch(value):
        return uuid.UUID(value)
    raise ValueError(f"not an id ({ID_FORMAT})")


class Id(ma.fields.UUID):
    """An id in a request, parsed by parse_id. Dumps as marshmallow's UUID does."""

    def _validated(self, value: Any) -> uuid.UUID:
        try:
            return parse_id(value)
        except ValueError:
            raise self.make_error("invalid_uuid") from None


# --- integers -------------------------------------------------------------------------------------------------------

def _with_range(kwargs: dict, minimum: int, maximum: int) -> dict:
    validators = kwargs.get("validate") or []
    validators = list(validators) if isinstance(validators, (list, tuple)) else [validators]
    return {**kwargs, "validate": [ma.validate.Range(minimum, maximum), *validators]}


class Int(ma.fields.Integer):
    """An integer in a JSON body: a JSON integer (not true, not 1.0, not "1"), always within a range, by default
    that of a signed 32-bit column, so that no value reaches the database to overflow there."""

    def __init__(self, *, minimum: int = INT32_MIN, maximum: int = INT32_MAX, **kwargs):
        kwargs.setdefault("strict", True)
        super().__init__(**_with_range(kwargs, minimum, maximum))

    def _validated(self, value: Any) -> int:
        if isinstance(value, bool):  # a bool is an int to Python, never to a caller
            raise self.make_error("invalid")
        return super()._validated(value)


class QueryInt(Int):
    """An integer in a query string or a path: its plain decimal digits."""

    def __init__(self, **kwargs):
        kwargs.setdefault("strict", False)
        super().__init__(**kwargs)

    def _validated(self, value: Any) -> int:
        if isinstance(value, str) and not _DECIMAL.fullmatch(value):
            raise self.make_error("invalid")
        return super()._validated(value)


def parse_int_text(text: str, minimum: int, maximum: int) -> int:
    """The integer rule of QueryInt, for values read outside marshmallow (path segments, v2 query parameters)."""
    if not _DECIMAL.fullmatch(text):
        raise ValueError(f"must be an integer, got '{text[:40]}'")
    value = int(text)
    if not minimum <= value <= maximum:
        raise ValueError(f"must be between {minimum} and {maximum}, got {text[:40]}")
    return value


# --- instants -------------------------------------------------------------------------------------------------------

def parse_instant_text(text: str) -> datetime:
    """An ISO 8601 instant, in UTC; one without an offset is read as UTC, as every time of this
    service is. ValueError when it is none, or when its offset takes it past the years a datetime holds
    (9999-12-31T23:59-01:00): such a value used to fail only once bound into a query."""
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    try:
        return value.astimezone(timezone.utc)
    except OverflowError:
        raise ValueError(f"'{text[:40]}' is out of range in UTC") from None


def page_number_field() -> QueryInt:
    return QueryInt(load_default=1, minimum=1, maximum=MAX_PAGE_NUMBER)


def page_size_field() -> QueryInt:
    return QueryInt(load_default=DEFAULT_PAGE_SIZE, minimum=1, maximum=MAX_PAGE_SIZE)


# --- booleans -------------------------------------------------------------------------------------------------------

class StrictBoolean(ma.fields.Boolean):
    """JSON true or false only. marshmallow also takes "yes", "false", 1 and 0, so `"isScheduled": "false"` could
    turn a schedule on: System.Text.Json binds nothing but true and false to a bool, and neither do we."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs) -> bool:
        if not isinstance(value, bool):
            raise self.make_error("invalid", input=value)
        return value


class Number(ma.fields.Float):
    """A JSON number only: marshmallow's Float also takes "5" and true."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.make_error("invalid", input=value)
        return super()._deserialize(value, attr, data, **kwargs)


# --- JSON inside a string -----------------------------------------------------------------------------------------

class JsonString(ma.fields.Raw):
    """A JSON document carried inside a string (Canvas's `credentialsJson`, `scheduleFrequency`).

    Accepts any JSON value so that the service can say exactly what is wrong with a non-string; a string is held to
    the rules of the request body itself (nesting, storable text), since the service decodes it in turn."""

    describe_as = "string"

    def __init__(self, **kwargs):
        kwargs.setdefault("allow_none", True)
        kwargs.setdefault("metadata", {"type": "string", "description": "a JSON document inside a string"})
        super().__init__(**kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs) -> Any:
        if isinstance(value, str):
            check_embedded_json(value)
        return super()._deserialize(value, attr, data, **kwargs)


def check_embedded_json(text: str) -> None:
    """Hold JSON carried in a string field to the rules of the request body (the service decodes it later)."""
    try:
        check_nesting(text, what="The JSON document")
        check_document_text(json.loads(text))
    except JsonInputError as exc:
        raise ma.ValidationError(f"{exc.message}, at {exc.where}" if exc.path else exc.message) from None
    except ValueError:
        return  # not JSON at all: the service says what it expected


# --- Canvas property names ------------------------------------------------------------------------------------------

class CanvasSchema(ma.Schema):
    """Base of every Canvas request schema (bodies and queries). ASP.NET binds `WorkflowId` and `?Id=` to workflowId
    and id, so clients of the original send them: keys are matched to the declared names ignoring case. Unknown
    keys are still refused, by name; two keys equal but for case are refused naming both."""

    @ma.pre_load
    def bind_names_ignoring_case(self, data: Any, **kwargs) -> Any:
        if not isinstance(data, Mapping):
            return data  # marshmallow refuses it as "Invalid input type."
        declared = {(field.data_key or name).lower(): field.data_key or name
                    for name, field in self.load_fields.items()}
        bound: dict[str, Any] = {}
        sent_as: dict[str, str] = {}
        for key in data:
            name = declared.get(key.lower(), key) if isinstance(key, str) else key
            if name in bound:
                raise ma.ValidationError(f"'{sent_as[name]}' and '{key}' name the same property (property names are "
                                         "matched ignoring case); send it once", field_name=key)
            bound[name], sent_as[name] = data[key], key
        return bound
