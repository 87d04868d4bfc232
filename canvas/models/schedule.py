"""Workflow schedules: each workflow's parsed schedule and policies, and the ledger of its occurrences.

`workflow.is_scheduled` and `workflow.schedule_frequency` (the JSON string as the client sent it) stay the Canvas-facing
truth; `WorkflowSchedule` holds what the schedulers need without re-reading that JSON: the normalised Quartz
expression, the effective time zone, the policies, and a version that tells a scheduler its copy is stale.
"""
from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text, Uuid, text
from sqlalchemy.orm import Mapped, mapped_column

from canvas.models.base import Base, UtcDateTime, utcnow

OVERLAP_POLICIES = ("skip", "queue")
MISFIRE_POLICIES = ("coalesce", "skip", "run_each")
DEFAULT_OVERLAP_POLICY = "skip"
DEFAULT_MISFIRE_POLICY = "coalesce"

# Ledger outcomes. `queued` waits for the workflow's active run to end (overlap policy `queue`, or a `run_each`
# catch-up); `failed` means the run could not be queued (Redis unavailable).
OUTCOMES = ("fired", "skipped", "missed", "queued", "failed")


class WorkflowSchedule(Base):
    """One workflow's schedule as the schedulers read it. A row exists once a schedule or policy was ever set."""

    __tablename__ = "workflow_schedule"

    workflow_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workflow.id", ondelete="CASCADE"), primary_key=True)
    cron_expression: Mapped[str | None] = mapped_column(String(200))  # normalised Quartz text
    time_zone: Mapped[str] = mapped_column(String(64), default="UTC")  # effective IANA zone, resolved when set
    overlap_policy: Mapped[str] = mapped_column(String(10), default=DEFAULT_OVERLAP_POLICY)
    misfire_policy: Mapped[str] = mapped_column(String(10), default=DEFAULT_MISFIRE_POLICY)
    # Bumped on every change: a scheduler whose copy carries another version reloads it.
    version: Mapped[int] = mapped_column(Integer, default=1)
    # When the expression, zone or on/off state last changed: occurrences before it were never due.
    date_changed: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class ScheduleOccurrence(Base):
    """The ledger: one row per (workflow, scheduled fire time), written by the scheduler that claims it.

    The primary key is the claim: a second scheduler inserting the same occurrence finds the row and does nothing.
    """

    __tablename__ = "schedule_occurrence"
    __table_args__ = (
        # The few occurrences waiting for a run to end, found without scanning the ledger.
        Index("ix_schedule_occurrence_queued", "workflow_id", "scheduled_time",
              sqlite_where=text("outcome = 'queued'"), postgresql_where=text("outcome = 'queued'")),
    )

    workflow_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workflow.id", ondelete="CASCADE"), primary_key=True)
    scheduled_time: Mapped[datetime] = mapped_column(UtcDateTime, primary_key=True)
    outcome: Mapped[str] = mapped_column(String(10))
    reason: Mapped[str | None] = mapped_column(Text)
    # The run this occurrence started (fired), or will start (queued); no foreign key: the claim is written in the
    # same statement batch as the run, before the run row exists.
    run_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, index=True)
    dispatch_time: Mapped[datetime | None] = mapped_column(UtcDateTime)
    scheduler: Mapped[str] = mapped_column(String(120))  # which scheduler process recorded it
    date_recorded: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
