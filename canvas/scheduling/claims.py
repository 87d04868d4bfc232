"""Claiming occurrences and dispatching their runs, a batch at a time.

One transaction per batch: lock the batch's workflows (in id order, so two schedulers never deadlock on them), read
their active runs, insert the ledger rows with ON CONFLICT DO NOTHING (the rows that come back are this scheduler's
claims; the others belong to a scheduler that got there first), insert the Queued run rows of the claimed firings and
update the workflows. After the commit, one Redis pipeline enqueues every run: the same job a manual run gets from
``canvas.queueing.dispatch``, with the run id as job id.

The database is the source of truth and Redis only a transport: runs that cannot be enqueued because Redis is away
stay Queued, and their occurrences "fired"; the reaper (``canvas.execution.reaper``) queues again every Queued run
whose job is missing once its grace period has passed. Occurrences that cannot be claimed because the database is
away are handed back to the scheduler, whose next reload finds them unclaimed.
"""
from __future__ import annotations

import logging
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import datetime
from zoneinfo import ZoneInfo

import redis
from rq import Queue
from sqlalchemy import func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from canvas.db import Database
from canvas.models import (
    ACTIVE_RUN_STATES, Account, ScheduleOccurrence, Workflow, WorkflowRun, WorkflowSchedule,
)
from canvas.models.base import utcnow
from canvas.observability import metrics
from canvas.notifications.events import MISSED_OUTCOMES, queue_missed_occurrences
from canvas.outages import DATABASE, OutageLog, unreachable_service
from canvas.queueing.dispatch import run_job
from canvas.queueing.keys import RUN_QUEUE
from canvas.scheduling.decisions import ACCOUNT_DEACTIVATED, Key, Plan, PlannedRun, WorkflowState, decide
from canvas.scheduling.occurrences import Firing
from canvas.scheduling.store import as_utc
from canvas.scheduling.trigger import parse_cached

log = logging.getLogger(__name__)
RETRY_PAUSES_SECONDS = (0.05, 0.25, 1.0)


class OccurrenceDispatcher:
    """Turns firings into ledger rows and runs, exactly once across schedulers."""

    def __init__(self, database: Database, connection: redis.Redis, scheduler_name: str,
                 on_unclaimed: Callable[[set[uuid.UUID]], None] | None = None,
                 outages: OutageLog | None = None) -> None:
        self.database = database
        self.queue = Queue(RUN_QUEUE, connection=connection)
        self.scheduler_name = scheduler_name
        self.on_unclaimed = on_unclaimed  # told which workflows' occurrences could not be claimed at all
        self.outages = outages or OutageLog(log, f"scheduler {scheduler_name}")  # one line per outage, not per batch
        self._warned_left_queued = False

    def handle(self, firings: list[Firing]) -> Counter:
        """Claim and dispatch a batch. If an active run appeared meanwhile (the database refuses a second one),
        the firings are retried one by one, so one workflow cannot sink the rest."""
        firings = sorted(firings, key=lambda firing: (firing.workflow_id, firing.times[0]))
        try:
            return self._with_retries(firings)
        except IntegrityError:
            log.info("a batch of %d firings met a new active run; retrying one by one", len(firings))
        outcomes = Counter()
        for firing in firings:
            outcomes += self._one(firing)
        return outcomes

    def _one(self, firing: Firing) -> Counter:
        for _attempt in range(2):  # the second attempt reads the active run that the first one met
            try:
                return self._with_retries([firing])
            except IntegrityError:
                continue
        log.error("could not claim the occurrences of workflow %s; they will be reloaded", firing.workflow_id)
        return self._give_up([firing])

    def _with_retries(self, firings: list[Firing]) -> Counter:
        """Deadlocks, lock timeouts and lost connections are retried briefly; then the occurrences are handed back
        (the scheduler reloads those schedules, and the reload finds them unclaimed)."""
        error: OperationalError | None = None
        for pause in RETRY_PAUSES_SECONDS:
            try:
                outcomes = self._handle_batch(firings)
            except OperationalError as exc:
                log.debug("claiming %d firings failed (%s); retrying", len(firings), type(exc).__name__)
                error = exc
                time.sleep(pause)
            else:
                self.outages.succeeded(DATABASE)
                return outcomes
        self.outages.failed(error, f"claiming {len(firings)} occurrences",
                            "unclaimed occurrences are handed back and claimed once it answers")
        return self._give_up(firings)

    def _give_up(self, firings: list[Firing]) -> Counter:
        workflows = {firing.workflow_id for firing in firings}
        if self.on_unclaimed is not None:
            self.on_unclaimed(workflows)
        return Counter(unclaimed=len(firings))

    def _handle_batch(self, firings: list[Firing]) -> Counter:
        began = time.perf_counter()
        with self.database.sessions() as session:
            states = load_states(session, {firing.workflow_id for firing in firings})
            plan = decide(firings, states, utcnow(), self.scheduler_name)
            runs, claimed = write_plan(session, plan)
            session.commit()
        committed = time.perf_counter()
        self.enqueue(runs)
        self._notify_missed(plan.ledger, claimed)
        metrics.occurrences_claimed(row for row in plan.ledger
                                    if (row["workflow_id"], row["scheduled_time"]) in claimed)
        log.debug("batch of %d firings: %d claimed, %d runs; %.0f ms to commit, %.0f ms to enqueue", len(firings),
                  len(claimed), len(runs), (committed - began) * 1000, (time.perf_counter() - committed) * 1000)
        return Counter(row["outcome"] for row in plan.ledger if (row["workflow_id"], row["scheduled_time"]) in claimed)

    def _notify_missed(self, ledger: list[dict], claimed: set[Key]) -> None:
        """Occurrences this scheduler recorded missed or skipped: mailed to whom the workflow's settings say."""
        missed = [row for row in ledger if row["outcome"] in MISSED_OUTCOMES and row["reason"] != ACCOUNT_DEACTIVATED
                  and (row["workflow_id"], row["scheduled_time"]) in claimed]
        if missed:
            with self.database.sessions() as session:
                queue_missed_occurrences(session, self.queue.connection, missed)

    def enqueue(self, runs: list[PlannedRun]) -> None:
        """One pipeline for the batch (MULTI/EXEC: all enqueued or none). If Redis refuses, the runs stay Queued in
        the database and their occurrences "fired": the reaper queues them again once Redis answers."""
        if not runs:
            return
        metrics.runs_started("schedule", len(runs))  # started whether or not Redis takes them now (see above)
        try:
            self.queue.enqueue_many([_job_data(run) for run in runs])
        except redis.RedisError as exc:
            self._left_queued(runs, exc)
        else:
            self._warned_left_queued = False
            self.outages.succeeded("Redis")

    def _left_queued(self, runs: list[PlannedRun], error: redis.RedisError) -> None:
        """Warned once per outage (later batches at debug level); a refusal by a Redis that answers (out of memory,
        say) every time."""
        unreachable = unreachable_service(error) is not None
        level = logging.DEBUG if unreachable and self._warned_left_queued else logging.WARNING
        log.log(level, "%d scheduled runs not queued (%s); they stay Queued and will be queued when Redis returns",
                len(runs), error.__class__.__name__)
        self._warned_left_queued = unreachable
        if unreachable:
            self.outages.failed(error, "queueing scheduled runs", "the runs stay Queued until it returns")

    def release_waiting(self) -> int:
        """Start the oldest waiting occurrence of each workflow whose active run has ended."""
        with self.database.sessions() as session:
            waiting = oldest_waiting(session)
        released = []
        for workflow_id, run_id in waiting.items():
            run = self._release(workflow_id, run_id)
            if run is not None:
                released.append(run)
        self.enqueue(released)
        return len(released)

    def _release(self, workflow_id: uuid.UUID, run_id: uuid.UUID) -> PlannedRun | None:
        try:
            with self.database.sessions() as session:
                run = release_one(session, workflow_id, run_id, self.scheduler_name)
                session.commit()
                return run
        except (IntegrityError, OperationalError):  # an active run appeared meanwhile, or a lock conflict: later
            return None


# --- reading --------------------------------------------------------------------------------------------------------

def load_states(session: Session, workflow_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, WorkflowState]:
    """The batch's workflows, locked until the commit (PostgreSQL; SQLite has one writer anyway)."""
    ids = sorted(set(workflow_ids))
    query = (select(Workflow.id, Workflow.account_id, func.json_array_length(Workflow.chain),
                    Workflow.template_version, Workflow.is_scheduled, Workflow.date_deleted,
                    WorkflowSchedule.cron_expression, WorkflowSchedule.time_zone, WorkflowSchedule.date_changed,
                    WorkflowSchedule.overlap_policy, WorkflowSchedule.version, Account.active)
             .join(WorkflowSchedule, WorkflowSchedule.workflow_id == Workflow.id)
             .join(Account, Account.id == Workflow.account_id)
             .where(Workflow.id.in_(ids)).order_by(Workflow.id).with_for_update(of=Workflow))
    states = {row[0]: _state(row) for row in session.execute(query)}
    for workflow_id, run_id, status in session.execute(
            select(WorkflowRun.workflow_id, WorkflowRun.id, WorkflowRun.status)
            .where(WorkflowRun.workflow_id.in_(ids), WorkflowRun.status.in_(ACTIVE_RUN_STATES))):
        states[workflow_id].active_run = (run_id, status)
    for workflow_id in session.scalars(select(ScheduleOccurrence.workflow_id).distinct()
                                       .where(ScheduleOccurrence.workflow_id.in_(ids),
                                              ScheduleOccurrence.outcome == "queued")):
        states[workflow_id].waiting = True
    return states


def _state(row) -> WorkflowState:  # noqa: ANN001 - a result row
    (workflow_id, account_id, blocks, template_version, is_scheduled, date_deleted, cron, zone, date_changed,
     overlap, version, account_active) = row
    enabled = bool(is_scheduled) and date_deleted is None and cron is not None
    return WorkflowState(workflow_id, account_id, blocks or 0, template_version, enabled,
                         parse_cached(cron) if enabled else None, ZoneInfo(zone) if enabled else None,
                         date_changed, overlap, version, account_active=bool(account_active))


def oldest_waiting(session: Session, limit: int = 1000) -> dict[uuid.UUID, uuid.UUID]:
    """Workflow -> run id of its oldest waiting occurrence, for workflows without an active run."""
    active = select(WorkflowRun.workflow_id).where(WorkflowRun.status.in_(ACTIVE_RUN_STATES))
    rows = session.execute(select(ScheduleOccurrence.workflow_id, ScheduleOccurrence.run_id)
                           .where(ScheduleOccurrence.outcome == "queued",
                                  ScheduleOccurrence.workflow_id.not_in(active))
                           .order_by(ScheduleOccurrence.scheduled_time).limit(limit))
    oldest: dict[uuid.UUID, uuid.UUID] = {}
    for workflow_id, run_id in rows:
        oldest.setdefault(workflow_id, run_id)
    return oldest


# --- writing --------------------------------------------------------------------------------------------------------

def write_plan(session: Session, plan: Plan) -> tuple[list[PlannedRun], set[Key]]:
    """Insert the claims; create only the runs whose occurrences this scheduler claimed. Returns (runs, claims)."""
    claimed = claim(session, plan.ledger)
    runs = [_narrowed(run, claimed) for run in plan.runs]
    runs = [run for run in runs if run.times]
    now = utcnow()
    if runs:
        session.execute(WorkflowRun.__table__.insert(), [_run_row(run, now) for run in runs])
    claimed_workflows = {workflow_id for workflow_id, _time in claimed}
    started = {run.workflow_id for run in runs}
    updates = [{"id": workflow_id, "date_next_schedule": next_time, **({"status": "Queued"} if workflow_id in started
                                                                         else {})}
               for workflow_id, next_time in plan.next_times.items() if workflow_id in claimed_workflows]
    if updates:
        session.execute(update(Workflow), updates)
    return runs, claimed


def claim(session: Session, rows: list[dict]) -> set[Key]:
    """INSERT ... ON CONFLICT DO NOTHING RETURNING: the keys that come back are ours."""
    if not rows:
        return set()
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    table = ScheduleOccurrence.__table__
    statement = (dialect.insert(table).on_conflict_do_nothing(index_elements=["workflow_id", "scheduled_time"])
                 .returning(table.c.workflow_id, table.c.scheduled_time))
    return {(workflow_id, as_utc(scheduled)) for workflow_id, scheduled in session.execute(statement, rows)}


def release_one(session: Session, workflow_id: uuid.UUID, run_id: uuid.UUID, scheduler: str) -> PlannedRun | None:
    """Turn one waiting group of occurrences into its run, unless another scheduler did, or the schedule went off."""
    states = load_states(session, [workflow_id])
    state = states.get(workflow_id)
    if state is None or state.active_run is not None:
        return None
    now = utcnow()
    waiting = (ScheduleOccurrence.run_id == run_id) & (ScheduleOccurrence.outcome == "queued")
    if not state.enabled:
        session.execute(update(ScheduleOccurrence).where(waiting).values(
            outcome="skipped", reason="the schedule was turned off before it could run", date_recorded=now))
        return None
    times = sorted(as_utc(scheduled) for scheduled in session.scalars(
        update(ScheduleOccurrence).where(waiting).values(outcome="fired", dispatch_time=now, scheduler=scheduler)
        .returning(ScheduleOccurrence.scheduled_time)))
    if not times:
        return None
    run = PlannedRun(run_id, workflow_id, state.account_id, state.blocks, state.template_version, tuple(times))
    session.execute(WorkflowRun.__table__.insert(), [_run_row(run, now)])
    session.execute(update(Workflow).where(Workflow.id == workflow_id).values(status="Queued"))
    return run


def _narrowed(run: PlannedRun, claimed: set[Key]) -> PlannedRun:
    run.times = tuple(time for time in run.times if (run.workflow_id, time) in claimed)
    return run


def _run_row(run: PlannedRun, now: datetime) -> dict:
    return {"id": run.run_id, "workflow_id": run.workflow_id, "account_id": run.account_id, "status": "Queued",
            "trigger": "schedule", "run_from_block": 1, "run_till_block": run.blocks, "dry_run": False,
            "template_version": run.template_version, "cancel_requested": False, "date_queued": now,
            "scheduled_times": [time.isoformat() for time in run.times]}


def _job_data(run: PlannedRun):  # noqa: ANN202 - rq's EnqueueData
    return Queue.prepare_data(**run_job(run.run_id, run.workflow_id))

