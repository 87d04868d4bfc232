"""Audit log retention: entries older than CANVAS_AUDIT_RETENTION_DAYS are removed in batches by the schedulers'
periodic chore; 0 keeps them forever."""
from __future__ import annotations

import time
import uuid
from datetime import timedelta

from sqlalchemy import select, update

from canvas.audit import service as audit
from canvas.audit.actor import SYSTEM_ACTOR
from canvas.models import AuditEntry
from canvas.models.base import utcnow
from canvas.scheduling.scheduler import SchedulerConfig
from canvas.settings import load_settings
from tests.integration.test_scheduler_engine import start_engine  # noqa: F401 - fixture


def add_entries(services, count: int, age_days: float) -> set[uuid.UUID]:
    organization_id = uuid.uuid4()
    with services.db.transaction() as session:
        rows = [audit.record(session, "workflow.update", "workflow", uuid.uuid4(), {}, actor=SYSTEM_ACTOR,
                             organization_id=organization_id) for _ in range(count)]
        session.flush()
        ids = {row.id for row in rows}
        session.execute(update(AuditEntry).where(AuditEntry.id.in_(ids))
                        .values(occurred_at=utcnow() - timedelta(days=age_days)))
    return ids


def remaining(services, made: set[uuid.UUID]) -> set[uuid.UUID]:
    """Which of the entries this test made are still there (other tests' entries are not this test's business)."""
    with services.db.transaction() as session:
        return set(session.scalars(select(AuditEntry.id).where(AuditEntry.id.in_(made))))


def test_only_entries_past_the_retention_are_removed_batch_by_batch(services):
    expired = add_entries(services, 25, age_days=8)
    kept = add_entries(services, 3, age_days=6)
    assert audit.prune_expired(services.db, 7, batch=10) == 25
    assert remaining(services, expired | kept) == kept


def test_a_retention_of_0_keeps_every_entry(services):
    ancient = add_entries(services, 2, age_days=5000)
    assert audit.prune_expired(services.db, 0) == 0
    assert remaining(services, ancient) == ancient


def test_the_scheduler_removes_expired_entries_periodically(services, start_engine):  # noqa: F811 - fixture
    expired = add_entries(services, 4, age_days=31)
    kept = add_entries(services, 2, age_days=29)
    start_engine(audit_retention_days=30, reap_interval_seconds=0.2, audit_prune_interval_seconds=0.2)
    deadline = time.monotonic() + 10
    while remaining(services, expired) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert remaining(services, expired | kept) == kept
    later = add_entries(services, 1, age_days=40)  # the chore goes on: an entry that expires later goes too
    while remaining(services, later) and time.monotonic() < deadline + 5:
        time.sleep(0.05)
    assert remaining(services, expired | kept | later) == kept


def test_the_retention_is_read_from_the_environment():
    settings = load_settings(environ={"CANVAS_AUDIT_RETENTION_DAYS": "30"})
    assert settings["AUDIT_RETENTION_DAYS"] == 30
    assert SchedulerConfig.from_settings(settings).audit_retention_days == 30
    assert load_settings(environ={})["AUDIT_RETENTION_DAYS"] == 365

