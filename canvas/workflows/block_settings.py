"""Per-block run settings of a workflow's chain entry: `retries`, `timeoutSeconds` and `onRecordError` (`fail`,
the default, or `continue`: records the block cannot process go to its error output), set through Workflow POST
and UpdateWorkflow next to `variables`, kept with the variable overrides and copied onto the resolved chain, where
the runner reads them. A block listed without a setting goes back to the service's default for it; a block not
listed keeps what it has."""
from __future__ import annotations

from typing import Any

import marshmallow as ma

from canvas.errors import BadRequestError
from canvas.execution.context import ON_RECORD_ERROR
from canvas.schema_fields import Int, Number

SETTING_NAMES = ("retries", "timeoutSeconds", "onRecordError")
V2_NODE_FIELDS = {"retries": "retries", "timeoutSeconds": "timeout_seconds",
                  "onRecordError": "on_record_error"}  # the v2 dialect's names
MAX_BLOCK_RETRIES = 10
MAX_BLOCK_TIMEOUT_SECONDS = 24 * 3600.0


def retries_field(**metadata: Any) -> Int:
    return Int(allow_none=True, minimum=0, maximum=MAX_BLOCK_RETRIES, metadata=metadata)


def timeout_seconds_field(**metadata: Any) -> Number:
    return Number(allow_none=True, allow_nan=False, validate=ma.validate.Range(1, MAX_BLOCK_TIMEOUT_SECONDS),
                  metadata=metadata)


def on_record_error_field(**metadata: Any) -> ma.fields.String:
    return ma.fields.String(allow_none=True, validate=ma.validate.OneOf(ON_RECORD_ERROR), metadata=metadata)


class BlockSettingsSchema(ma.Schema):
    retries = retries_field()
    timeoutSeconds = timeout_seconds_field()
    onRecordError = on_record_error_field()


def node_settings(node: dict, where: str) -> dict[str, Any]:
    """The settings of a v2 node (`retries`, `timeout_seconds`), checked by the same rules as a Canvas chain entry's,
    under their chain names."""
    given = {name: node[v2_name] for name, v2_name in V2_NODE_FIELDS.items() if v2_name in node}
    try:
        return listed_settings(BlockSettingsSchema().load(given))
    except ma.ValidationError as error:
        name, messages = next(iter(error.messages.items()))
        field = f"{where}.{V2_NODE_FIELDS[name]}"
        raise BadRequestError(f"{field}: {' '.join(messages)}", field=field) from None


def node_fields(entry: dict) -> dict[str, Any]:
    """A chain entry's settings as v2 node fields."""
    return {v2_name: entry[name] for name, v2_name in V2_NODE_FIELDS.items() if entry.get(name) is not None}


def listed_settings(entry: dict) -> dict[str, Any]:
    """The settings a chain entry of a request gives (already validated by its schema)."""
    return {name: entry[name] for name in SETTING_NAMES if entry.get(name) is not None}


def settings_from_json(raw: list[dict] | None) -> dict[str, dict]:
    """Block id -> its settings, from a workflow's stored overrides."""
    stored = {entry["uniqueBlockId"]: listed_settings(entry) for entry in raw or []}
    return {block_id: settings for block_id, settings in stored.items() if settings}
