"""From firings and the workflows' current state to the rows to write: which occurrences fire, wait, are skipped
or missed. Pure: the caller loads the state and writes the plan in one transaction.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone, tzinfo

from canvas.scheduling.occurrences import MISS, WAIT, Firing, is_fire_time
from canvas.scheduling.quartz import CronExpression

Key = tuple[uuid.UUID, datetime]
ACCOUNT_DEACTIVATED = "the workflow's account is deactivated"  # the reason recorded; nobody is mailed about it


@dataclass(slots=True)
class WorkflowState:
    """What deciding needs to know about one workflow, read just before deciding."""

    workflow_id: uuid.UUID
    account_id: uuid.UUID
    blocks: int
    template_version: str | None
    enabled: bool  # scheduled, not deleted
    expression: CronExpression | None
    zone: tzinfo | None
    date_changed: datetime
    overlap_policy: str
    version: int = 0
    active_run: tuple[uuid.UUID, str] | None = None  # (run id, status) of its queued or running run
    waiting: bool = False  # an occurrence already waits for the active run to end
    account_active: bool = True  # a deactivated account's schedules record their occurrences skipped

    def produces(self, time: datetime, version: int | None) -> bool:
        """Whether ``time`` is an occurrence of the schedule as it stands now: a job built from an older version
        may offer times of the old expression (the search is skipped for the current version's times)."""
        if not self.enabled or self.expression is None or time <= self.date_changed:
            return False
        return version == self.version or is_fire_time(self.expression, self.zone, time)

    def next_after(self, time: datetime) -> datetime | None:
        fire_time = self.expression.next_fire_time(time, self.zone)
        return None if fire_time is None else fire_time.astimezone(timezone.utc)


@dataclass(slots=True)
class PlannedRun:
    run_id: uuid.UUID
    workflow_id: uuid.UUID
    account_id: uuid.UUID
    blocks: int
    template_version: str | None
    times: tuple[datetime, ...]


@dataclass(slots=True)
class Plan:
    ledger: list[dict] = field(default_factory=list)  # schedule_occurrence rows
    runs: list[PlannedRun] = field(default_factory=list)  # runs to create now
    next_times: dict[uuid.UUID, datetime | None] = field(default_factory=dict)  # workflow -> dateNextSchedule


def decide(firings: list[Firing], states: dict[uuid.UUID, WorkflowState], now: datetime, scheduler: str) -> Plan:
    """The plan for a batch. Firings of one workflow are decided in order, each seeing the runs the earlier ones
    start, and an occurrence offered twice (a replaced job, a backlog) is planned once."""
    plan, seen, context = Plan(), set(), _Context(now, scheduler)
    for firing in firings:
        state = states.get(firing.workflow_id)
        if state is None:
            continue
        times = [time.astimezone(timezone.utc) for time in firing.times]
        times = [time for time in times
                 if (state.workflow_id, time) not in seen and state.produces(time, firing.version)]
        if not times:
            continue
        seen.update((state.workflow_id, time) for time in times)
        _decide_one(plan, state, firing, tuple(times), context)
        plan.next_times[state.workflow_id] = state.next_after(max(times))
    return plan


@dataclass(frozen=True, slots=True)
class _Context:
    now: datetime
    scheduler: str

    def row(self, workflow_id: uuid.UUID, time: datetime, outcome: str, reason: str | None,
            run_id: uuid.UUID | None = None) -> dict:
        return {"workflow_id": workflow_id, "scheduled_time": time, "outcome": outcome, "reason": reason,
                "run_id": run_id, "dispatch_time": self.now if outcome == "fired" else None,
                "scheduler": self.scheduler, "date_recorded": self.now}


def _decide_one(plan: Plan, state: WorkflowState, firing: Firing, times: tuple[datetime, ...],
                context: _Context) -> None:
    if not state.account_active:
        _record(plan, state, times, "skipped", ACCOUNT_DEACTIVATED, context)
    elif firing.action == MISS:
        _record(plan, state, times, "missed", firing.reason, context)
    elif firing.action == WAIT:
        _wait(plan, state, times, firing.reason, context)
    elif state.active_run is not None or state.waiting:
        _overlap(plan, state, times, context)
    else:
        _fire(plan, state, times, firing.reason, context)


def _record(plan: Plan, state: WorkflowState, times: tuple[datetime, ...], outcome: str, reason: str | None,
            context: _Context, run_id: uuid.UUID | None = None) -> None:
    plan.ledger.extend(context.row(state.workflow_id, time, outcome, reason, run_id) for time in times)


def _fire(plan: Plan, state: WorkflowState, times: tuple[datetime, ...], reason: str | None,
          context: _Context) -> None:
    run = PlannedRun(uuid.uuid4(), state.workflow_id, state.account_id, state.blocks, state.template_version, times)
    plan.runs.append(run)
    _record(plan, state, times, "fired", reason, context, run.run_id)
    state.active_run = (run.run_id, "Queued")


def _wait(plan: Plan, state: WorkflowState, times: tuple[datetime, ...], reason: str | None,
          context: _Context) -> None:
    """Queued rows carry the id of the run they will start once the workflow has no active run."""
    _record(plan, state, times, "queued", reason, context, uuid.uuid4())
    state.waiting = True


def _overlap(plan: Plan, state: WorkflowState, times: tuple[datetime, ...], context: _Context) -> None:
    """An occurrence due while a run is active, or while earlier occurrences still wait for their turn (between a
    run's end and the release of the next: they go first, a newer occurrence must not overtake them)."""
    if state.active_run is None:
        reason = "earlier occurrences are still waiting to run"
    else:
        run_id, status = state.active_run
        if state.overlap_policy == "queue" and not state.waiting:
            _wait(plan, state, times, f"queued behind run {run_id} ({status}) (overlap policy queue)", context)
            return
        reason = f"previous run {run_id} still {status}"
    if state.overlap_policy == "queue":
        reason += "; another occurrence already waits for it (overlap policy queue keeps one)"
    _record(plan, state, times, "skipped", reason, context)
