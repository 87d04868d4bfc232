"""Per-block run settings of a workflow's chain entry: `retries` and `timeoutSeconds`, set through Workflow POST
and UpdateWorkflow next to `variables`, kept with the variable overrides and copied onto the resolved chain, where
the runner reads them. A block listed without a setting goes back to the service's default for it; a block not
listed keeps what it has."""
from __future__ import annotations

from typing import Any

SETTING_NAMES = ("retries", "timeoutSeconds")
MAX_BLOCK_RETRIES = 10
MAX_BLOCK_TIMEOUT_SECONDS = 24 * 3600.0


def listed_settings(entry: dict) -> dict[str, Any]:
    """The settings a chain entry of a request gives (already validated by its schema)."""
    return {name: entry[name] for name in SETTING_NAMES if entry.get(name) is not None}


def settings_from_json(raw: list[dict] | None) -> dict[str, dict]:
    """Block id -> its settings, from a workflow's stored overrides."""
    stored = {entry["uniqueBlockId"]: listed_settings(entry) for entry in raw or []}
    return {block_id: settings for block_id, settings in stored.items() if settings}
