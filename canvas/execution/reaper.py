"""Looks after runs nobody else is looking after, with the database as the source of truth (Redis is a transport
that may restart or lose its data):

* A Running run whose lease has not been renewed for ``LOST_RUN_GRACE_SECONDS`` has lost its worker (killed, paused,
  cut off from the database). Its lease is revoked and the run failed "worker lost" in one conditional statement, so
  a worker that comes back finds its writes refused (canvas.execution.lease) and stops.
* A Queued run whose RQ job is not waiting in Redis (lost with Redis's data, failed before any worker claimed the
  run, or taken by a worker that could not start it) and that has waited longer than the grace period is queued
  again under the same run id, at most ``REQUEUE_LIMIT`` times; then it is failed with a reason a person
  understands. A job a worker has taken or started while its run is still Queued may be one the worker is starting
  at that very moment (a backlog's runs have all waited past the grace period): it counts as stranded only if the
  same reaper saw it so in its previous round too. A duplicate job is harmless (only one claim of a Queued run can
  succeed), but it costs a worker a dequeue and says in the log that something went wrong. A scheduled run that could
  not be queued in time follows its workflow's misfire policy: under ``skip`` it is not run late (it ends
  Cancelled, its occurrences recorded missed).

Every worker and every scheduler runs this every ``REAPER_INTERVAL_SECONDS``; two of them acting on one run is
harmless, since every change is conditional on what the reaper saw.
"""
from __future__ import annotations

import logging
import threading
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import redis
from rq import Queue
from rq.job import Job, JobStatus
from rq.registry import FailedJobRegistry
from sqlalchemy import func, select, update

from canvas.db import Database
from canvas.execution.run_endings import follow_up_missing
from canvas.models import BlockRun, ScheduleOccurrence, Workflow, WorkflowRun, WorkflowSchedule
from canvas.models.base import utcnow
from canvas.observability import metrics
from canvas.queueing.dispatch import enqueue_jobs, run_job
from canvas.queueing.keys import RUN_QUEUE

log = logging.getLogger(__name__)
WORKER_LOST = "worker lost"  # how every such error starts
JOB_LOST = "job lost"
# A block its worker was running when lost: for whoever decides whether to run it again.
OUTCOME_UNKNOWN = ("its outcome is unknown: what it did before its worker was lost (a file written, a request sent) "
                   "may have happened")
WAITING_JOB_STATES = {JobStatus.QUEUED.value, JobStatus.DEFERRED.value, JobStatus.SCHEDULED.value}
RECOVERY_BATCH = 1000  # queued runs looked at per round, the longest waiting first


@dataclass(frozen=True)
class ReaperConfig:
    grace_seconds: float
    requeue_limit: int
    misfire_grace_seconds: float = 60.0
    redis_prefix: str | None = None

    @classmethod
    def from_settings(cls, settings: dict) -> ReaperConfig:
        return cls(float(settings["LOST_RUN_GRACE_SECONDS"]), int(settings["REQUEUE_LIMIT"]),
                   float(settings["SCHEDULER_MISFIRE_GRACE_SECONDS"]), settings.get("REDIS_PREFIX"))


def reap_lost_runs(database: Database, connection: redis.Redis, config: ReaperConfig,
                   in_flight: InFlightJobs | None = None) -> list[uuid.UUID]:
    """Fails the runs whose worker is lost, then queues again the stranded queued runs. The first part needs only
    the database; a Redis error in the second propagates after the first has been done. ``in_flight``: the caller's
    memory of its previous round (without it, a job in flight is never taken for stuck)."""
    settled = fail_lost_runs(database, config.grace_seconds)
    settled += recover_stranded_runs(database, connection, config, in_flight or InFlightJobs())
    # Every run ended here, and every final run whose recorder could not queue its callbacks and notification
    # (a worker that died after its final write, a dispatch that failed a run because Redis refused it).
    follow_up_missing(database, connection)
    return settled


# --- running runs whose worker is gone -------------------------------------------------------------------------------

def fail_lost_runs(database: Database, grace_seconds: float) -> list[uuid.UUID]:
    cutoff = utcnow() - timedelta(seconds=grace_seconds)
    last_heard = func.coalesce(WorkflowRun.heartbeat_at, WorkflowRun.date_started)
    with database.sessions() as session:
        silent = list(session.execute(
            select(WorkflowRun.id, WorkflowRun.lease_token, WorkflowRun.worker_name, last_heard,
                   WorkflowRun.cancel_requested)
            .where(WorkflowRun.status == "Running", last_heard < cutoff)))
    failed = []
    for run_id, token, worker, heard, cancel_requested in silent:
        reason = _worker_lost(worker, heard, grace_seconds)
        if _revoke(database, run_id, token, cutoff, "Cancelled" if cancel_requested else "Failed", reason):
            log.warning("run %s: %s", run_id, reason)
            failed.append(run_id)
    return failed


def _worker_lost(worker: str | None, heard: datetime, grace_seconds: float) -> str:
    return (f"{WORKER_LOST}: its worker ({worker or 'unknown'}) stopped renewing the run's lease; last heard of at "
            f"{heard:%Y-%m-%d %H:%M:%S} UTC, more than {grace_seconds:g} s before; the run was stopped")


def _revoke(database: Database, run_id: uuid.UUID, token: int, cutoff: datetime, status: str, reason: str) -> bool:
    """Ends the run and revokes its lease, only if it is still Running, under the token seen, and still silent."""
    now = utcnow()
    with database.transaction() as session:
        changed = session.execute(
            update(WorkflowRun)
            .where(WorkflowRun.id == run_id, WorkflowRun.status == "Running", WorkflowRun.lease_token == token,
                   func.coalesce(WorkflowRun.heartbeat_at, WorkflowRun.date_started) < cutoff)
            .values(status=status, error=reason, error_class="WorkerLost", date_finished=now,
                    lease_token=WorkflowRun.lease_token + 1))
        if not changed.rowcount:
            return False
        run = session.get(WorkflowRun, run_id)
        for block in session.scalars(select(BlockRun).where(BlockRun.run_id == run_id,
                                                            BlockRun.status.in_(("Running", "Queued")))):
            if block.status == "Queued":  # a parallel branch's block no worker had started
                block.status, block.error, block.date_finished = "Cancelled", "not started: the run was lost", now
                continue
            block.status, block.error, block.error_class, block.date_finished = (status, f"{reason}; {OUTCOME_UNKNOWN}",
                                                                                 "WorkerLost", now)
            run.failed_block = block.number
        _settle_workflow(session, run.workflow_id, status, now)
    metrics.run_finished(status, run.trigger)
    return True


def _settle_workflow(session, workflow_id: uuid.UUID, status: str, when: datetime) -> None:  # noqa: ANN001
    workflow = session.get(Workflow, workflow_id)
    workflow.status = "Failed" if status == "Failed" else "Ready"
    workflow.date_last_run = when


# --- queued runs whose job is gone -----------------------------------------------------------------------------------

def recover_stranded_runs(database: Database, connection: redis.Redis, config: ReaperConfig,
                          in_flight_before: InFlightJobs) -> list[uuid.UUID]:
    cutoff = utcnow() - timedelta(seconds=config.grace_seconds)
    last_sent = func.coalesce(WorkflowRun.heartbeat_at, WorkflowRun.date_queued)
    with database.sessions() as session:
        waiting = list(session.execute(
            select(WorkflowRun.id, WorkflowRun.workflow_id, WorkflowRun.dispatch_count, WorkflowRun.scheduled_times,
                   WorkflowSchedule.misfire_policy)
            .outerjoin(WorkflowSchedule, (WorkflowSchedule.workflow_id == WorkflowRun.workflow_id)
                       & (WorkflowRun.trigger == "schedule"))
            .where(WorkflowRun.status == "Queued", last_sent < cutoff)
            .order_by(last_sent).limit(RECOVERY_BATCH)))
    job_states = _job_states(connection, [row[0] for row in waiting])
    taken = _taken_not_started(connection) if waiting else set()
    in_flight = {run_id for run_id, state in job_states.items() if _in_flight(state, str(run_id) in taken)}
    seen_before = in_flight_before.seen_again(in_flight)
    recovered = []
    for run_id, workflow_id, dispatched, scheduled_times, misfire_policy in waiting:
        why = _not_waiting(job_states[run_id], str(run_id) in taken)
        if why is None or (run_id in in_flight and run_id not in seen_before):
            continue
        if misfire_policy == "skip" and _too_late(scheduled_times, config.misfire_grace_seconds):
            if _skip_missed(database, run_id, dispatched, config.misfire_grace_seconds):
                recovered.append(run_id)
        elif dispatched > config.requeue_limit:
            if _fail_unstartable(database, run_id, dispatched, why):
                recovered.append(run_id)
        elif _queue_again(database, connection, run_id, workflow_id, dispatched):
            log.warning("run %s was Queued but its job %s; queued it again (%d of %d)", run_id, why, dispatched,
                        config.requeue_limit)
            metrics.run_requeued(_requeue_reason(job_states[run_id], run_id in in_flight))
            recovered.append(run_id)
    return recovered


def _job_states(connection: redis.Redis, run_ids: list[uuid.UUID]) -> dict[uuid.UUID, str | None]:
    """The RQ status of each run's job (None: no such job), read in one round trip: a long backlog of runs waiting
    for a worker is looked at every round, and only its status field is needed."""
    with connection.pipeline(transaction=False) as pipeline:
        for run_id in run_ids:
            pipeline.hget(Job.key_for(str(run_id)), "status")
        states = pipeline.execute()
    return {run_id: state.decode() if isinstance(state, bytes) else state for run_id, state in zip(run_ids, states)}


def _taken_not_started(connection: redis.Redis) -> set[str]:
    """The jobs a worker has taken from the queue and not (yet) started: RQ moves a job to the queue's intermediate
    list as it takes it, and out once the job is in its started registry. A worker that could not write that step
    (Redis refusing writes, a worker killed in between) leaves it there, its status still "queued": RQ's own cleanup
    fails it only some ten minutes later. In the reaper's eyes (a run Queued past the grace period) it is stuck;
    were it starting after all, queueing it again is harmless, as a duplicate job is."""
    queue = Queue(RUN_QUEUE, connection=connection)
    return {job_id.decode() if isinstance(job_id, bytes) else job_id
            for job_id in connection.lrange(queue.intermediate_queue_key, 0, -1)}


def _in_flight(state: str | None, taken: bool) -> bool:
    """A job between a worker taking it and the worker's claim of its run: milliseconds, unless the worker died or
    cannot write to Redis or the database on the way."""
    return state == JobStatus.STARTED.value or (taken and state == JobStatus.QUEUED.value)


class InFlightJobs:
    """A reaper's memory (a worker's reaper thread, a scheduler's chore): the runs whose job it saw in flight in its
    previous round. Seen so twice, a reaper interval apart, a job is stuck, not being started."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._previous: set[uuid.UUID] = set()

    def seen_again(self, now: set[uuid.UUID]) -> set[uuid.UUID]:
        """Those of `now` seen in the previous round; `now` becomes the previous round."""
        with self._lock:
            again, self._previous = now & self._previous, now
        return again


def _not_waiting(state: str | None, taken: bool) -> str | None:
    """Why the run's job will not reach a worker, or None while it is waiting in the queue."""
    if state is None:
        return "is no longer in Redis"
    if taken and state == JobStatus.QUEUED.value:
        return "was taken from the queue by a worker that could not start it"
    if state in WAITING_JOB_STATES:
        return None
    return f"is {state} in Redis but the run never started"


def _requeue_reason(state: str | None, in_flight: bool) -> str:
    """canvas_runs_requeued_total's label."""
    if state is None:
        return "job_missing"
    return "job_stuck" if in_flight else "job_ended"


def _queue_again(database: Database, connection: redis.Redis, run_id: uuid.UUID, workflow_id: uuid.UUID,
                 dispatched: int) -> bool:
    """Counted first, on condition that the run is still Queued as the reaper saw it, then queued: a worker may have
    claimed the run since the reaper read it (its job started, or finished, in Redis by the time the reaper looked
    there), and such a run gets no second job. A count whose enqueue then fails leaves the run Queued with its
    clock restarted: it is queued again a grace period later."""
    with database.transaction() as session:
        changed = session.execute(update(WorkflowRun)
                                  .where(WorkflowRun.id == run_id, WorkflowRun.status == "Queued",
                                         WorkflowRun.dispatch_count == dispatched)
                                  .values(dispatch_count=dispatched + 1, heartbeat_at=utcnow()))
    if not changed.rowcount:
        return False
    queue = Queue(RUN_QUEUE, connection=connection)
    FailedJobRegistry(queue=queue).remove(str(run_id))  # a job that failed before its claim: not failed any more
    connection.lrem(queue.intermediate_queue_key, 1, str(run_id))  # nor taken: RQ's cleanup would fail it later
    enqueue_jobs(connection, [run_job(run_id, workflow_id)])
    return True


def _too_late(scheduled_times: list[str] | None, misfire_grace_seconds: float) -> bool:
    if not scheduled_times:
        return False
    newest = max(datetime.fromisoformat(scheduled) for scheduled in scheduled_times)
    return utcnow() - newest > timedelta(seconds=misfire_grace_seconds)


def _skip_missed(database: Database, run_id: uuid.UUID, dispatched: int, misfire_grace_seconds: float) -> bool:
    """A scheduled run whose job was lost past its misfire grace, under misfire policy skip: as if never fired."""
    reason = (f"missed: the scheduled run could not be queued within the misfire grace time of "
              f"{misfire_grace_seconds:g} s (Redis was unavailable); misfire policy skip")
    with database.transaction() as session:
        if not _end_queued(session, run_id, dispatched, "Cancelled", reason, "Missed", utcnow()):
            return False
        session.execute(update(ScheduleOccurrence).where(ScheduleOccurrence.run_id == run_id)
                        .values(outcome="missed", reason=reason))
        workflow = session.get(Workflow, session.get(WorkflowRun, run_id).workflow_id)
        workflow.status = "Ready"
    metrics.run_finished("Cancelled", "schedule")  # only scheduled runs are skipped as missed
    log.warning("run %s: %s", run_id, reason)
    return True


def _fail_unstartable(database: Database, run_id: uuid.UUID, dispatched: int, why: str) -> bool:
    reason = (f"{JOB_LOST}: the run was queued {dispatched} times but never reached a worker (its job {why}; Redis "
              f"restarted or lost its data, or a worker failed before starting it); the run was not started")
    now = utcnow()
    with database.transaction() as session:
        if not _end_queued(session, run_id, dispatched, "Failed", reason, "JobLost", now):
            return False
        run = session.get(WorkflowRun, run_id)
        _settle_workflow(session, run.workflow_id, "Failed", now)
    metrics.run_finished("Failed", run.trigger)
    log.error("run %s: %s", run_id, reason)
    return True


def _end_queued(session, run_id: uuid.UUID, dispatched: int, status: str, reason: str, error_class: str,  # noqa: ANN001
                now: datetime) -> bool:
    """Ends a run that never started, only if it is still Queued as the reaper saw it (its token raised, as every
    ending the reaper writes)."""
    changed = session.execute(update(WorkflowRun)
                              .where(WorkflowRun.id == run_id, WorkflowRun.status == "Queued",
                                     WorkflowRun.dispatch_count == dispatched)
                              .values(status=status, error=reason, error_class=error_class, date_finished=now,
                                      lease_token=WorkflowRun.lease_token + 1))
    return bool(changed.rowcount)
