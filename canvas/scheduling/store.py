"""Reading the enabled schedules for the scheduler: their versions (cheap, every reconcile) and their details (at
start and for the ones that changed)."""
from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import Select, func, select, update
from sqlalchemy.orm import Session

from canvas.models import ScheduleOccurrence, Workflow, WorkflowSchedule

CHUNK = 1000  # ids per IN list


@dataclass(frozen=True, slots=True)
class ScheduleRow:
    workflow_id: uuid.UUID
    version: int
    cron_expression: str
    time_zone: str
    misfire_policy: str
    date_changed: datetime
    last_occurrence: datetime | None  # the newest ledger entry, whatever its outcome
    date_next_schedule: datetime | None

    @property
    def window_start(self) -> datetime:
        """Occurrences after this instant may be due and unclaimed."""
        if self.last_occurrence is None:
            return self.date_changed
        return max(self.date_changed, self.last_occurrence)


def _enabled(query: Select) -> Select:
    return (query.join(Workflow, Workflow.id == WorkflowSchedule.workflow_id)
            .where(Workflow.is_scheduled.is_(True), Workflow.date_deleted.is_(None),
                   WorkflowSchedule.cron_expression.is_not(None)))


def enabled_versions(session: Session) -> dict[uuid.UUID, int]:
    """Every enabled schedule's version: what a reconcile compares with the scheduler's copy."""
    return dict(session.execute(_enabled(select(WorkflowSchedule.workflow_id, WorkflowSchedule.version))).all())


def load_schedules(session: Session, workflow_ids: Iterable[uuid.UUID] | None = None) -> Iterator[ScheduleRow]:
    """The enabled schedules (all, or those of ``workflow_ids``) with each one's newest ledger entry, found through
    the ledger's primary key one workflow at a time rather than by grouping the whole ledger."""
    last = (select(func.max(ScheduleOccurrence.scheduled_time))
            .where(ScheduleOccurrence.workflow_id == WorkflowSchedule.workflow_id).scalar_subquery())
    query = _enabled(select(WorkflowSchedule.workflow_id, WorkflowSchedule.version, WorkflowSchedule.cron_expression,
                            WorkflowSchedule.time_zone, WorkflowSchedule.misfire_policy,
                            WorkflowSchedule.date_changed, last, Workflow.date_next_schedule))
    if workflow_ids is None:
        yield from (_row(values) for values in session.execute(query))
        return
    ids = list(workflow_ids)
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start:start + CHUNK]
        yield from (_row(values) for values in session.execute(query.where(WorkflowSchedule.workflow_id.in_(chunk))))


def _row(values) -> ScheduleRow:  # noqa: ANN001 - a result row
    workflow_id, version, cron, zone, misfire, changed, last, next_time = values
    return ScheduleRow(workflow_id, version, cron, zone, misfire, as_utc(changed), as_utc(last), next_time)


def store_next_times(session: Session, next_times: dict[uuid.UUID, datetime | None]) -> None:
    """Correct stored dateNextSchedule values in one executemany."""
    if next_times:
        session.execute(update(Workflow), [{"id": workflow_id, "date_next_schedule": next_time}
                                           for workflow_id, next_time in next_times.items()])


def as_utc(value: datetime | str | None) -> datetime | None:
    """A time as aware UTC: naive values are UTC already (database columns), and the max() of a UTC column comes
    back as the database's raw value on SQLite (a string-typed aggregate)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)
