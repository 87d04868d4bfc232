"""Fails runs whose worker is gone (no heartbeat) or whose queued job vanished, so no workflow stays stuck."""
from __future__ import annotations

import logging
import uuid
from datetime import timedelta

import redis
from rq.job import Job
from sqlalchemy import select, update

from canvas.db import Database
from canvas.models import BlockRun, Workflow, WorkflowRun
from canvas.models.base import utcnow
from canvas.queueing import keys

log = logging.getLogger(__name__)
WORKER_LOST = "worker lost: the worker running this run stopped without finishing it"
JOB_LOST = "job lost: the queued job is no longer in Redis"


def reap_lost_runs(database: Database, connection: redis.Redis, prefix: str | None,
                   grace_seconds: float) -> list[uuid.UUID]:
    cutoff = utcnow() - timedelta(seconds=grace_seconds)
    with database.sessions() as session:
        candidates = list(session.execute(
            select(WorkflowRun.id, WorkflowRun.status, WorkflowRun.cancel_requested)
            .where(WorkflowRun.status.in_(("Running", "Queued")),
                   ((WorkflowRun.status == "Running") & (WorkflowRun.date_started < cutoff))
                   | ((WorkflowRun.status == "Queued") & (WorkflowRun.date_queued < cutoff)))))
    reaped = []
    for run_id, status, cancel_requested in candidates:
        reason = _lost_reason(connection, prefix, run_id, status)
        if reason and _fail(database, run_id, status, "Cancelled" if cancel_requested else "Failed", reason):
            log.warning("run %s: %s", run_id, reason)
            reaped.append(run_id)
    return reaped


def _lost_reason(connection: redis.Redis, prefix: str | None, run_id: uuid.UUID, status: str) -> str | None:
    try:
        if status == "Running":
            return None if connection.exists(keys.run_heartbeat_key(prefix, str(run_id))) else WORKER_LOST
        return None if Job.exists(str(run_id), connection=connection) else JOB_LOST
    except redis.RedisError:
        return None  # cannot tell while Redis is away: judge again later


def _fail(database: Database, run_id: uuid.UUID, expected_status: str, new_status: str, reason: str) -> bool:
    with database.transaction() as session:
        changed = session.execute(update(WorkflowRun)
                                  .where(WorkflowRun.id == run_id, WorkflowRun.status == expected_status)
                                  .values(status=new_status, error=reason, error_class="WorkerLost",
                                          date_finished=utcnow()))
        if not changed.rowcount:
            return False
        run = session.get(WorkflowRun, run_id)
        for block in session.scalars(select(BlockRun).where(BlockRun.run_id == run_id, BlockRun.status == "Running")):
            block.status, block.error, block.error_class, block.date_finished = new_status, reason, "WorkerLost", utcnow()
            run.failed_block = block.number
        workflow = session.get(Workflow, run.workflow_id)
        workflow.status = "Failed" if new_status == "Failed" else "Ready"
        workflow.date_last_run = run.date_finished
    return True
