"""Checking a registered application's credentials against its application's credential fields.

No message built here ever contains a credential value: values may be passwords, and messages reach logs and API
callers. Field names and the fields' display Names are safe to show.
"""
from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from canvas.applications.catalog import ApplicationSpec, CredentialField
from canvas.errors import ValidationError

MASK = "********"
AUTHENTICATION_ERROR = "Authentication Error: "  # the prefix Canvas puts before credential problems
_DIGITS = re.compile(r"^[0-9]+$")
_BOOL_WORDS = {"true": True, "false": False}
_LINE_BREAKS = ("\r", "\n")  # only a textarea (an SSH private key) holds several lines


def parse_credentials_json(raw: Any) -> dict[str, Any]:
    """The object inside RegApplication's `credentialsJson`, which Canvas sends as a JSON string, not an object."""
    if not isinstance(raw, str):
        raise ValidationError(
            f"credentialsJson must be a string holding a JSON object, got {_json_type_name(raw)}",
            field="credentialsJson",
        )
    try:
        parsed = json.loads(raw, parse_constant=_refuse_constant)
    except (json.JSONDecodeError, _NotJsonConstant) as error:
        # The decoder's message states the problem and position only, never the text around it.
        raise ValidationError(f"credentialsJson is not valid JSON: {error}", field="credentialsJson") from None
    if not isinstance(parsed, dict):
        raise ValidationError(
            f"credentialsJson must hold a JSON object, got {_json_type_name(parsed)}", field="credentialsJson"
        )
    return parsed


def validate_credentials(spec: ApplicationSpec, values: Mapping[str, Any]) -> dict[str, Any]:
    """Normalised credentials (numbers as int, bools as bool, strings exactly as given), in the application's field
    order; fields without a value (absent, null or "") are left out. Raises ValidationError."""
    _refuse_unknown_fields(spec, values)
    _refuse_missing_fields(spec, values)
    normalised: dict[str, Any] = {}
    problems: list[str] = []
    for credential_field in spec.credential_fields:
        value = values.get(credential_field.short_name)
        if _is_empty(value):
            continue
        try:
            normalised[credential_field.short_name] = _normalise(credential_field, value)
        except ValueError as problem:
            problems.append(str(problem))
    if problems:
        raise ValidationError(AUTHENTICATION_ERROR + "\n".join(problems), field="credentialsJson")
    return normalised


def merge_credentials(spec: ApplicationSpec, stored: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """A partial update: given keys replace stored ones, null clears one, and the mask sent back for a secret
    (as a client shows credentials it read masked) keeps the stored secret. Validated like new credentials."""
    _refuse_unknown_fields(spec, update)
    known = set(spec.field_names)
    # Stored keys the catalog no longer knows are dropped: the caller did not send them and cannot fix them.
    merged = {name: value for name, value in stored.items() if name in known}
    for name, value in update.items():
        if value is None:
            merged.pop(name, None)
        elif value == MASK and name in spec.secret_field_names and name in merged:
            continue
        else:
            merged[name] = value
    return validate_credentials(spec, merged)


def mask_credentials(spec: ApplicationSpec, values: Mapping[str, Any]) -> dict[str, Any]:
    """Credentials fit to show: secret values replaced by the mask (an empty one stays empty so that the caller can
    see it is unset). Keys the catalog does not know are masked too, since nothing says they are harmless."""
    known = set(spec.field_names)
    secret = spec.secret_field_names
    return {
        name: value if _is_empty(value) or (name in known and name not in secret) else MASK
        for name, value in values.items()
    }


def _refuse_unknown_fields(spec: ApplicationSpec, values: Mapping[str, Any]) -> None:
    known = set(spec.field_names)
    for name in values:
        if name not in known:
            raise ValidationError(
                f"Unknown credential field '{name}' for application {spec.name}", field=f"credentialsJson.{name}"
            )


def _refuse_missing_fields(spec: ApplicationSpec, values: Mapping[str, Any]) -> None:
    missing = [
        credential_field
        for credential_field in spec.credential_fields
        if not credential_field.optional and _is_empty(values.get(credential_field.short_name))
    ]
    if missing:
        lines = [f"You must enter a value for {credential_field.name}." for credential_field in missing]
        raise ValidationError(AUTHENTICATION_ERROR + "\n".join(lines), field="credentialsJson")


def _is_empty(value: Any) -> bool:
    return value is None or value == ""


def _normalise(credential_field: CredentialField, value: Any) -> Any:
    """The value in its field's type, or ValueError whose text names the field and never quotes the value."""
    if credential_field.type == "number":
        return _as_number(credential_field, value)
    if credential_field.type == "bool":
        return _as_bool(credential_field, value)
    if credential_field.type == "select":
        return _as_option(credential_field, value)
    if not isinstance(value, str):
        raise ValueError(f"{credential_field.name} must be text")
    if credential_field.type != "textarea" and any(character in value for character in _LINE_BREAKS):
        # A line break ends an FTP or SMTP command and an HTTP header early; the libraries then refuse it deep in a
        # verification or a run ("an illegal newline character should not be contained").
        raise ValueError(f"{credential_field.name} must be a single line (it holds a line break)")
    return value


def _as_number(credential_field: CredentialField, value: Any) -> int:
    if isinstance(value, bool):
        pass  # JSON true is not the number 1
    elif isinstance(value, int):
        return value
    elif isinstance(value, float) and value.is_integer():
        return int(value)
    elif isinstance(value, str) and _DIGITS.match(value):
        return int(value)
    raise ValueError(f"{credential_field.name} must be a number")


def _as_bool(credential_field: CredentialField, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in _BOOL_WORDS:
        return _BOOL_WORDS[value.lower()]
    raise ValueError(f"{credential_field.name} must be true or false")


def _as_option(credential_field: CredentialField, value: Any) -> str:
    allowed = credential_field.option_values
    if isinstance(value, str) and value in allowed:
        return value
    raise ValueError(f"{credential_field.name} must be one of {', '.join(allowed)}")


def _json_type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, (list, tuple)):
        return "an array"
    return type(value).__name__


class _NotJsonConstant(ValueError):
    pass


def _refuse_constant(name: str) -> Any:
    # json.loads accepts NaN and Infinity, which are not JSON and which no credential field can hold.
    raise _NotJsonConstant(f"{name} is not allowed")
