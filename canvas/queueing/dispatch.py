"""Dispatch: validate the block range, write the run row, then enqueue one RQ job whose id is the run id.

The one function every trigger uses: the API, the scheduler, webhooks and the v2 dialect.
"""
from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import NoReturn

import redis
from rq import Queue
from sqlalchemy import bindparam, insert, inspect, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value

from canvas.errors import BadRequestError, ConflictError, ServiceUnavailableError
from canvas.execution.graph import BlockGraph, RangeError, block_graph, outside_inputs, run_plan
from canvas.execution.run_records import bound_params, in_one_statement, named_values
from canvas.models import ACTIVE_RUN_STATES, BlockOutput, Workflow, WorkflowRun
from canvas.models.base import utcnow
from canvas.observability import metrics
from canvas.outages import OUTAGE_RETRY_AFTER_SECONDS
from canvas.queueing.keys import RUN_QUEUE

log = logging.getLogger(__name__)
RUN_JOB_FUNCTION = "canvas.execution.runner.execute_run"
DEFAULT_BLOCK_TIMEOUT_SECONDS = 15 * 60
# A run's outcome is in the database; RQ keeps a finished job (and what it returned) for a minute only, for people
# reading RQ's registries (a failed job is kept for a week, for the reaper and for them). Not 0: RQ deletes a job
# kept for no time by reading its executions back, one round trip at a time, inside the transaction that records
# the job's success (7 round trips, ~1.1 ms of a ~9.8 ms no-op run on PostgreSQL); an expiry is one more pipelined
# command. Redis holds at most a minute's worth of finished jobs.
JOB_RESULT_TTL_SECONDS = 60
JOB_FAILURE_TTL_SECONDS = 7 * 24 * 3600


def run_job(run_id: uuid.UUID, workflow_id: uuid.UUID) -> dict:
    """The RQ job of a run, for `Queue.enqueue_call` and `Queue.prepare_data` alike (the scheduler enqueues in
    batches): its id is the run id."""
    return _job(RUN_JOB_FUNCTION, (str(run_id),), run_id, f"run {run_id} of workflow {workflow_id}")


def _job(func: str, args: tuple, job_id: uuid.UUID, description: str) -> dict:
    """The settings every job of a run shares: no RQ timeout, since blocks have their own."""
    return {"func": func, "args": args, "job_id": str(job_id), "timeout": -1, "result_ttl": JOB_RESULT_TTL_SECONDS,
            "failure_ttl": JOB_FAILURE_TTL_SECONDS, "description": description}


@dataclass(frozen=True)
class RunRequest:
    workflow_id: uuid.UUID
    account_id: uuid.UUID
    run_from_block: int | None = None
    run_till_block: int | None = None
    trigger: str = "manual"
    dry_run: bool = False
    input_blob_key: str | None = None
    scheduled_times: list[str] | None = field(default=None)
    retry_of: uuid.UUID | None = None  # a retry of failed records: the run retried, and the records' positions there
    retried_positions: list[int] | None = None


def block_range(workflow: Workflow, run_from: int | None, run_till: int | None) -> tuple[int, int]:
    """Missing from = 1, missing till = last; 1 <= from <= till <= blocks, else a 400 naming the bound."""
    blocks = len(workflow.chain)
    first = 1 if run_from is None else run_from
    last = blocks if run_till is None else run_till
    if not 1 <= first <= blocks:
        raise BadRequestError(f"runFromBlock must be between 1 and {blocks}, got {first}", field="runFromBlock")
    if not first <= last <= blocks:
        raise BadRequestError(f"runTillBlock must be between runFromBlock ({first}) and {blocks}, got {last}",
                              field="runTillBlock")
    return first, last


def run_blocks(workflow: Workflow, graph: BlockGraph, run_from: int | None, run_till: int | None) -> list[int]:
    """The blocks a run of the range executes (canvas.execution.graph.run_plan): on a chain, from..till."""
    block_range(workflow, run_from, run_till)
    try:
        return run_plan(graph, run_from, run_till)
    except RangeError as error:
        names = {number: workflow.chain[number - 1].get("blockName") for number in (run_from, run_till)}
        raise BadRequestError(f"runTillBlock {run_till} ({names[run_till]}) is not downstream of runFromBlock "
                              f"{run_from} ({names[run_from]}): no block runs after the one and before the other",
                              field=error.field) from None


def latest_output(session: Session, workflow: Workflow, number: int) -> BlockOutput | None:
    """The newest stored output of block `number` (by its uniqueBlockId, so it survives template upgrades)."""
    unique_block_id = workflow.chain[number - 1]["uniqueBlockId"]
    query = (select(BlockOutput).where(BlockOutput.workflow_id == workflow.id,
                                       BlockOutput.unique_block_id == unique_block_id,
                                       BlockOutput.dry_run.is_(False))
             .order_by(BlockOutput.date_created.desc()).limit(1))
    return session.scalar(query)


def _require_stored_inputs(session: Session, workflow: Workflow, graph: BlockGraph, plan: list[int],
                           request: RunRequest) -> None:
    """Every block of the range whose parent is outside it reads that parent's stored output: a 409 naming both
    when there is none (a webhook body feeds the blocks with no parent in the range instead)."""
    planned = set(plan)
    for number, edges in outside_inputs(graph, plan).items():
        if request.input_blob_key and not graph.fed_from_within(number, planned):
            continue
        for edge in edges:
            if latest_output(session, workflow, edge.source) is None:
                _missing_output(workflow, graph, edge.source, number, plan)


def _missing_output(workflow: Workflow, graph: BlockGraph, source: int, number: int, plan: list[int]) -> NoReturn:
    name = workflow.chain[source - 1]["blockName"]
    if graph.is_path:
        raise ConflictError(f"Block {source} ({name}) has no stored output yet: run blocks 1..{source} first "
                            f"(runTillBlock {source})", field="runFromBlock")
    raise ConflictError(f"Block {source} ({name}) has no stored output yet, and block {number} "
                        f"({workflow.chain[number - 1]['blockName']}) reads it: run block {source} first "
                        f"(runTillBlock {source})", field="runFromBlock" if number == plan[0] else "runTillBlock")


INSERT_ATTEMPTS = 3  # a run refused each time for another that had ended by the look is being started that often


def create_run(session: Session, workflow: Workflow, request: RunRequest) -> WorkflowRun:
    """The Queued run row, committed. The database refuses a second active run of the same workflow."""
    graph = block_graph(workflow.chain)
    plan = run_blocks(workflow, graph, request.run_from_block, request.run_till_block)
    first, last = plan[0], plan[-1]
    _require_stored_inputs(session, workflow, graph, plan, request)
    # No "is one active?" query first: the database's unique index refuses a second active run, and the rare refusal
    # is what pays for the query that names the active run.
    run = WorkflowRun(workflow_id=workflow.id, account_id=request.account_id, status="Queued",
                      trigger=request.trigger, run_from_block=first, run_till_block=last, dry_run=request.dry_run,
                      block_numbers=None if plan == list(range(first, last + 1)) else plan,
                      template_version=workflow.template_version, input_blob_key=request.input_blob_key,
                      scheduled_times=request.scheduled_times, retry_of=request.retry_of,
                      retried_positions=request.retried_positions, date_queued=(now := utcnow()), heartbeat_at=now)
    _insert_while_none_active(session, workflow.id, run)
    _written(session, run, workflow)
    metrics.runs_started(run.trigger)
    return run


def _insert_while_none_active(session: Session, workflow_id: uuid.UUID, run: WorkflowRun) -> None:
    """The run's row, committed, or a 409 naming the active run that the database's unique index refused it for.
    That run may have ended between the refusal and the look for it: the insert, refused and so certainly not
    written, is made again (it was a 500 when the look found nothing; 102 of 600 requests from 4 threads against a
    worker ending the runs as fast)."""
    for _ in range(INSERT_ATTEMPTS):
        try:
            _insert_queued(session, run)
            session.commit()
            return
        except IntegrityError:
            session.rollback()
            refuse_if_active(session, workflow_id)
    raise ConflictError(f"Workflow {workflow_id} is already queued or running")


RUNS, WORKFLOWS = WorkflowRun.__table__, Workflow.__table__
# Parameters named run__<column>: the workflow's update must not take the run's id or account for its own columns.
INSERT_RUN = insert(RUNS).values(bound_params(RUNS, "run", tuple(RUNS.columns.keys())))
MARK_QUEUED = update(WORKFLOWS).where(WORKFLOWS.c.id == bindparam("run__workflow_id")).values(status="Queued")
# PostgreSQL: the run's row and its workflow marked Queued in one statement (the update a data-modifying CTE of the
# insert): when the database refuses the run (another one is active), the workflow is left as it was.
INSERT_QUEUED = INSERT_RUN.add_cte(MARK_QUEUED.cte("queued"))


def _insert_queued(session: Session, run: WorkflowRun) -> None:
    """The run's row and its workflow marked Queued, as prebuilt Core statements in the session's transaction: the
    ORM's flush of the two objects cost more Python time than the rest of a dispatch's database work."""
    params = named_values("run", _filled_in(run))
    connection = session.connection()
    if in_one_statement(connection):
        connection.execute(INSERT_QUEUED, params)
    else:
        connection.execute(INSERT_RUN, params)
        connection.execute(MARK_QUEUED, params)


def _filled_in(run: WorkflowRun) -> dict:
    """Every column of a new run: the value set on it, else its column's default (as a flush fills them in), now set
    on the object as well."""
    values = inspect(run).dict
    row = {}
    for column in RUNS.columns:
        default = column.default
        if column.key in values:
            row[column.key] = values[column.key]
        elif default is not None:
            row[column.key] = default.arg(None) if default.is_callable else default.arg
        else:
            row[column.key] = None
        set_committed_value(run, column.key, row[column.key])
    return row


def _written(session: Session, run: WorkflowRun, workflow: Workflow) -> None:
    """The objects stand for the rows as written: the run persistent in the session (every column loaded, no
    change pending), the workflow Queued."""
    make_transient_to_detached(run)
    session.add(run)
    set_committed_value(workflow, "status", "Queued")


def active_run(session: Session, workflow_id: uuid.UUID) -> WorkflowRun | None:
    """The workflow's queued or running run (the database allows one at a time)."""
    return session.scalar(select(WorkflowRun).where(WorkflowRun.workflow_id == workflow_id,
                                                    WorkflowRun.status.in_(ACTIVE_RUN_STATES)))


def refuse_if_active(session: Session, workflow_id: uuid.UUID) -> None:
    active = active_run(session, workflow_id)
    if active is not None:
        raise ConflictError(f"Workflow {workflow_id} is already queued or running (run {active.id})")


def enqueue_run(session: Session, connection: redis.Redis, workflow: Workflow, run: WorkflowRun) -> None:
    """Enqueue after the row exists; if Redis refuses, the run fails with the reason and the caller gets a 503."""
    try:
        enqueue_jobs(connection, [run_job(run.id, workflow.id)])
    except redis.RedisError as exc:
        log.error("could not enqueue run %s: %s", run.id, exc.__class__.__name__)
        fail_unqueued_run(session, workflow, run,
                          f"could not be queued: Redis is unavailable ({exc.__class__.__name__})")
        raise ServiceUnavailableError("The run could not be queued: the queue (Redis) is unavailable. "
                                      "Nothing is left running; try again later.",
                                      retry_after=OUTAGE_RETRY_AFTER_SECONDS) from None


def enqueue_jobs(connection: redis.Redis, jobs: Iterable[dict]) -> None:
    """Jobs (`Queue.enqueue_call` arguments) on the run queue in one round trip, all or none (MULTI/EXEC). RQ's own
    enqueue takes two (the queue's registration, then the job): against a Redis across a network, a round trip more
    per dispatch. The client's CPU hardly moves (an enqueue 0.41 -> 0.27 ms here, within the noise of a dispatch's
    ~3 ms)."""
    queue = Queue(RUN_QUEUE, connection=connection)
    with connection.pipeline() as pipeline:
        for job in jobs:
            queue.enqueue_call(**job, pipeline=pipeline)
        pipeline.execute()


def fail_unqueued_run(session: Session, workflow: Workflow, run: WorkflowRun, reason: str) -> None:
    """Its callbacks and notification need the Redis that just refused: the reaper's follow-up sweep
    (canvas.execution.run_endings) queues them once Redis is back."""
    run.status, run.error, run.error_class, run.date_finished = "Failed", reason, "QueueUnavailable", utcnow()
    workflow.status = "Failed"
    session.commit()
    metrics.run_finished("Failed", run.trigger)


def dispatch(session: Session, connection: redis.Redis, workflow: Workflow, request: RunRequest) -> WorkflowRun:
    run = create_run(session, workflow, request)
    enqueue_run(session, connection, workflow, run)
    log.info("run %s of workflow %s queued (blocks %d..%d, trigger %s%s)", run.id, workflow.id,
             run.run_from_block, run.run_till_block, run.trigger, ", dry run" if run.dry_run else "")
    return run



BLOCK_JOB_FUNCTION = "canvas.execution.runner.execute_block"


def block_job(run_id: uuid.UUID, block_run_id: uuid.UUID, number: int) -> dict:
    """The RQ job of one block of a parallel branch: its id is the block run's id."""
    return _job(BLOCK_JOB_FUNCTION, (str(run_id), str(block_run_id)), block_run_id,
                f"block {number} of run {run_id}")
