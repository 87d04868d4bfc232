"""Recording and reading the audit log, as plain functions over a session.

`record()` adds its entry to the caller's session without committing: the entry is written in the same transaction
as the change, so it exists if and only if the change committed. Secret values never enter an entry, not even as a
hash: a secret field that changed reads SECRET_MARKER on both sides.
"""
from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import LargeBinary, delete, inspect, select
from sqlalchemy.orm import Session

from canvas.audit.actor import AuditActor, current_actor
from canvas.models import AuditEntry
from canvas.models.base import utcnow

log = logging.getLogger(__name__)
SECRET_MARKER = "(changed)"
# Column names that hold secrets or values derived from them (encrypted tokens, keyed hashes, salts).
SECRET_NAME_PARTS = ("secret", "credential", "token", "password", "salt", "hash", "cipher")
# Columns that change on every write and say nothing the entry's time does not.
NOISE_COLUMNS = frozenset({"date_modified", "date_changed", "content_hash"})
PRUNE_BATCH = 1000


def is_secret_field(name: str) -> bool:
    lowered = name.lower()
    return any(part in lowered for part in SECRET_NAME_PARTS)


def snapshot(row: Any) -> dict[str, Any]:
    """The row's column values, JSON-ready, secrets masked: what `record_change` compares with the row later."""
    if row is None:
        return {}
    shown = {}
    for column in inspect(row).mapper.column_attrs:
        name = column.key
        value = getattr(row, name)
        if name in NOISE_COLUMNS:
            continue
        if is_secret_field(name) or isinstance(column.columns[0].type, LargeBinary):
            shown[name] = _SecretToken(value)
        else:
            shown[name] = json_value(value)
    return shown


class _SecretToken:
    """A secret field in a snapshot: equal to another token of the same value, so that a change shows, but holding
    only the process's own hash of it, in memory, never written anywhere."""

    def __init__(self, value: Any) -> None:
        self._fingerprint = hash(repr(value)) if value is not None else None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _SecretToken) and other._fingerprint == self._fingerprint

    def __hash__(self) -> int:
        return hash(self._fingerprint)

    @property
    def is_set(self) -> bool:
        return self._fingerprint is not None


def json_value(value: Any) -> Any:
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return [json_value(item) for item in value]
    if isinstance(value, dict):
        return {str(key): json_value(item) for key, item in value.items()}
    if hasattr(value, "value") and not isinstance(value, (int, float, str, bool)):  # an enum
        return value.value
    return value


def changes_between(before: dict[str, Any], after: dict[str, Any]) -> dict[str, dict]:
    """field -> {before, after} for each field that differs; a secret shows only that it changed (or was set)."""
    changed = {}
    for name in sorted(set(before) | set(after)):
        old, new = before.get(name), after.get(name)
        if old == new:
            continue
        if isinstance(old, _SecretToken) or isinstance(new, _SecretToken):
            change = _secret_change(old, new)
            if change is not None:
                changed[name] = change
        else:
            changed[name] = {"before": _masked(old), "after": _masked(new)}
    return changed


# Inside JSON values (a block's variables, a flow's node config): keys that name secrets. A block may take keys in a
# variable (quinyx.get_employees `apiKeys`); the values are compared unmasked, so a change still shows.
NESTED_SECRET_PARTS = (*SECRET_NAME_PARTS, "apikey", "api_key")


def _masked(value: Any) -> Any:
    if isinstance(value, list):
        return [_masked(item) for item in value]
    if isinstance(value, dict):
        return {key: SECRET_MARKER if item not in (None, "", [], {}) and _names_secret(key) else _masked(item)
                for key, item in value.items()}
    return value


def _names_secret(key: str) -> bool:
    lowered = key.lower().replace("-", "_")
    return any(part in lowered for part in NESTED_SECRET_PARTS)


def _secret_change(old: Any, new: Any) -> dict | None:
    """None when the secret was unset on both sides (a new row without one, say): nothing to tell."""
    was_set = isinstance(old, _SecretToken) and old.is_set
    is_set = isinstance(new, _SecretToken) and new.is_set
    if not was_set and not is_set:
        return None
    return {"before": SECRET_MARKER if was_set else None, "after": SECRET_MARKER if is_set else None}


def record(session: Session, action: str, object_type: str, object_id: Any, changes: dict | None = None, *,
           organization_id: uuid.UUID | None = None, actor: AuditActor | None = None) -> AuditEntry:
    """An entry in the caller's transaction. `organization_id`: whose Admins may read it (default: the actor's)."""
    actor = actor or current_actor()
    entry = AuditEntry(organization_id=organization_id or actor.organization_id, actor_id=actor.account_id,
                       actor_kind=actor.kind, acting_as_id=actor.acting_as_id, occurred_at=utcnow(), action=action,
                       object_type=object_type, object_id=str(object_id) if object_id is not None else None,
                       changes=changes or {}, request_id=actor.request_id)
    session.add(entry)
    return entry


def record_change(session: Session, action: str, object_type: str, row: Any, before: dict[str, Any], *,
                  object_id: Any = None, organization_id: uuid.UUID | None = None,
                  extra: dict | None = None) -> AuditEntry:
    """An entry with the fields of `row` that differ from `before` (a `snapshot` taken before the change; {} for a
    new row), plus `extra` (changes of related rows the caller summarised)."""
    changes = changes_between(before, snapshot(row))
    changes.update(extra or {})
    identity = object_id if object_id is not None else getattr(row, "id", None)
    return record(session, action, object_type, identity, changes, organization_id=organization_id)


def record_removal(session: Session, action: str, object_type: str, row: Any, *,
                   organization_id: uuid.UUID | None = None) -> AuditEntry:
    """An entry for a row about to be deleted: its fields as they were."""
    return record(session, action, object_type, getattr(row, "id", None), changes_between(snapshot(row), {}),
                  organization_id=organization_id)


def secret_changed() -> dict:
    """The change of a secret: that it changed, never what it was or became."""
    return {"before": SECRET_MARKER, "after": SECRET_MARKER}


# --- reading ---------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class AuditFilters:
    action: str | None = None
    object_type: str | None = None
    object_id: str | None = None
    actor_id: uuid.UUID | None = None
    since: datetime | None = None
    until: datetime | None = None


def entries_query(organization_id: uuid.UUID, filters: AuditFilters):
    """The organization's entries matching the filters; the caller orders and pages (see `NEWEST_FIRST`)."""
    query = select(AuditEntry).where(AuditEntry.organization_id == organization_id)
    if filters.action:
        query = query.where(AuditEntry.action == filters.action)
    if filters.object_type:
        query = query.where(AuditEntry.object_type == filters.object_type)
    if filters.object_id:
        query = query.where(AuditEntry.object_id == filters.object_id)
    if filters.actor_id is not None:
        query = query.where(AuditEntry.actor_id == filters.actor_id)
    if filters.since is not None:
        query = query.where(AuditEntry.occurred_at >= filters.since)
    if filters.until is not None:
        query = query.where(AuditEntry.occurred_at < filters.until)
    return query


NEWEST_FIRST = (AuditEntry.occurred_at.desc(), AuditEntry.id.desc())


# --- retention -------------------------------------------------------------------------------------------------------

def prune_expired(database, retention_days: float, now: datetime | None = None,
                  batch: int = PRUNE_BATCH) -> int:
    """Removes entries older than the retention, a batch per transaction (no long lock on a big table, and a
    prune that stops half way has removed whole batches); 0 days keeps them forever. Returns how many went."""
    if retention_days <= 0:
        return 0
    cutoff = (now or utcnow()) - timedelta(days=retention_days)
    removed = 0
    while True:
        with database.transaction() as session:
            ids = session.scalars(select(AuditEntry.id).where(AuditEntry.occurred_at < cutoff)
                                  .order_by(AuditEntry.occurred_at).limit(batch)).all()
            if ids:
                session.execute(delete(AuditEntry).where(AuditEntry.id.in_(ids)))
        removed += len(ids)
        if len(ids) < batch:
            if removed:
                log.info("audit log: %d entries older than %g days removed", removed, retention_days)
            return removed
