"""Starting, reading, cancelling runs and reading their stored outputs."""
from __future__ import annotations

import logging
import uuid
from typing import Any

import redis
from rq.command import send_stop_job_command
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import Job
from sqlalchemy import select, update
from sqlalchemy.orm import Session, selectinload

from canvas.applications import service as applications
from canvas.errors import BadRequestError, ConflictError, NotFoundError
from canvas.models import ACTIVE_RUN_STATES, BlockOutput, BlockRun, RegisteredApplication, Workflow, WorkflowRun
from canvas.models.base import utcnow
from canvas.observability import metrics
from canvas.queueing import keys
from canvas.queueing.dispatch import RunRequest, dispatch
from canvas.runs.retry_records import prepare_retry
from canvas.workflows import service as workflows

log = logging.getLogger(__name__)
RUN_STATES = ("Queued", "Running", "Succeeded", "Failed", "Cancelled")
TRIGGERS = ("manual", "schedule", "webhook", "api")
CANCEL_FLAG_TTL_SECONDS = 24 * 3600


def start_run(session: Session, connection: redis.Redis, account_id: uuid.UUID, data: dict,
              trigger: str = "manual", blob_store=None) -> WorkflowRun:  # noqa: ANN001 - canvas.storage.BlobStore
    workflow = workflows.get_workflow(session, account_id, data["workflowId"])
    check_bindings_granted(session, workflow)
    if data.get("retryFailedRecords"):
        request = _retry_request(session, blob_store, account_id, workflow, data, trigger)
    else:
        request = RunRequest(workflow.id, account_id, data.get("runFromBlock"), data.get("runTillBlock"), trigger,
                             bool(data.get("dryRun")), data.get("inputBlobKey"), data.get("scheduledTimes"))
    return dispatch(session, connection, workflow, request)


def _retry_request(session: Session, blob_store, account_id: uuid.UUID, workflow: Workflow, data: dict,  # noqa: ANN001
                   trigger: str) -> RunRequest:
    if data.get("runFromBlock") is not None:
        raise BadRequestError("runFromBlock: not with retryFailedRecords, whose run starts at the retried block",
                              field="runFromBlock")
    spec = data["retryFailedRecords"]
    source = get_run(session, account_id, spec["runId"])
    retry = prepare_retry(session, blob_store, source, workflow, spec)
    return RunRequest(workflow.id, account_id, retry.block, data.get("runTillBlock"), trigger, bool(data.get("dryRun")),
                      retry.input_blob_key, retry_of=retry.source_run_id, retried_positions=retry.positions)


def check_bindings_granted(session: Session, workflow: Workflow) -> None:
    """A workflow bound to an application restricted to other workflows is refused (403) before anything runs."""
    for binding in workflow.bindings:
        registered = session.get(RegisteredApplication, binding.registered_application_id)
        applications.check_grant(session, registered, workflow.id)


def get_run(session: Session, account_id: uuid.UUID, run_id: Any) -> WorkflowRun:
    try:
        run = session.get(WorkflowRun, uuid.UUID(str(run_id)))
    except ValueError:
        raise BadRequestError(f"runId: '{run_id}' is not a valid id", field="runId") from None
    if run is None or run.account_id != account_id:
        raise NotFoundError(f"Unknown run {run_id}", field="runId")
    return run


# Runs newest first; runs queued at one instant by id, in the direction the indexes on (date_queued, id) are read
# backwards in (ix_workflow_run_queued, ix_workflow_run_workflow_queued): a deep page then skips its rows in index
# order, where ties by id ascending had SQLite sort every skipped row's instant (half the time of the middle page of
# 100,000 executions).
NEWEST_FIRST = (WorkflowRun.date_queued.desc(), WorkflowRun.id.desc())


def list_runs(session: Session, account_id: uuid.UUID, args: dict) -> tuple[list[WorkflowRun], int]:
    """Runs of one workflow (deleted workflows' history stays readable), newest first, with the total count."""
    workflow = workflows.history_owner(session, account_id, args["workflowId"])
    query = select(WorkflowRun).where(WorkflowRun.workflow_id == workflow.id).options(WITH_BLOCKS)
    if args.get("status"):
        query = query.where(WorkflowRun.status == args["status"])
    if args.get("trigger"):
        query = query.where(WorkflowRun.trigger == args["trigger"])
    return workflows.page_of(session, query, NEWEST_FIRST, args["page"], args["pageSize"])


def cancel_run(session: Session, connection: redis.Redis, prefix: str | None, account_id: uuid.UUID,
               run_id: Any, force: bool = False) -> WorkflowRun:
    """A queued run leaves the queue; a running one stops after the block in flight (or at once with `force`)."""
    run = get_run(session, account_id, run_id)
    if run.status not in ACTIVE_RUN_STATES:
        raise ConflictError(f"Run {run.id} is already {run.status}")
    if run.status == "Queued" and _cancel_queued(session, connection, run):
        return run
    _request_cancel(session, connection, prefix, run, force)
    return run


def _cancel_queued(session: Session, connection: redis.Redis, run: WorkflowRun) -> bool:
    claimed = session.execute(update(WorkflowRun).where(WorkflowRun.id == run.id, WorkflowRun.status == "Queued")
                              .values(status="Cancelled", date_finished=utcnow(), cancel_requested=True,
                                      error="cancelled before it started"))
    if not claimed.rowcount:
        session.rollback()  # a worker took it meanwhile: cancel it as a running run
        session.refresh(run)
        return False
    workflow = session.get(Workflow, run.workflow_id)
    workflow.status = "Ready"
    session.commit()
    metrics.run_finished("Cancelled", run.trigger)
    _remove_job(connection, run.id)
    session.refresh(run)
    return True


def _remove_job(connection: redis.Redis, run_id: uuid.UUID) -> None:
    try:
        Job.fetch(str(run_id), connection=connection).cancel()
    except (NoSuchJobError, InvalidJobOperation):
        pass
    except redis.RedisError as exc:  # the runner also refuses runs that are no longer Queued
        log.warning("could not remove the job of run %s from the queue: %s", run_id, exc.__class__.__name__)


def _request_cancel(session: Session, connection: redis.Redis, prefix: str | None, run: WorkflowRun,
                    force: bool) -> None:
    run.cancel_requested = True
    session.commit()
    try:
        connection.set(keys.run_cancel_key(prefix, str(run.id)), "1", ex=CANCEL_FLAG_TTL_SECONDS)
        if force:
            send_stop_job_command(connection, str(run.id))
    except (redis.RedisError, InvalidJobOperation, NoSuchJobError) as exc:
        log.warning("cancel of run %s: %s; it stops at the next block boundary", run.id, exc.__class__.__name__)


def block_errors(session: Session, account_id: uuid.UUID, run_id: Any, number: int) -> BlockRun:
    """The block run whose error output (records set aside under onRecordError continue) is asked for."""
    run = get_run(session, account_id, run_id)
    block_run = session.scalar(select(BlockRun).where(BlockRun.run_id == run.id, BlockRun.number == number))
    if block_run is None:
        raise NotFoundError(f"Run {run.id} has no block {number}")
    return block_run


def block_output(session: Session, account_id: uuid.UUID, run_id: Any, number: int) -> BlockOutput:
    run = get_run(session, account_id, run_id)
    output = session.scalar(select(BlockOutput).where(BlockOutput.run_id == run.id, BlockOutput.number == number))
    if output is None:
        raise NotFoundError(f"Run {run.id} has no stored output for block {number}")
    return output


WITH_BLOCKS = selectinload(WorkflowRun.blocks).selectinload(BlockRun.output)  # run_to_api of a page of runs


def run_to_api(session: Session, run: WorkflowRun, workflows: dict | None = None) -> dict:
    """`workflows`: the page's workflows by id, kept by the caller (the session holds objects weakly, and would
    load the same workflow again for every run of a page)."""
    workflows = {} if workflows is None else workflows
    workflow = workflows.get(run.workflow_id) or workflows.setdefault(run.workflow_id,
                                                                       session.get(Workflow, run.workflow_id))
    block_rows = {block.number: block for block in run.blocks}
    blocks = [_block_to_api(number, workflow.chain[number - 1] if number <= len(workflow.chain) else {},
                            block_rows.get(number)) for number in run.block_plan]
    return {
        "id": run.id, "workflowId": run.workflow_id, "status": run.status, "trigger": run.trigger,
        "runFromBlock": run.run_from_block, "runTillBlock": run.run_till_block, "dryRun": run.dry_run,
        "templateVersion": run.template_version, "dateQueued": run.date_queued, "dateStarted": run.date_started,
        "dateFinished": run.date_finished, "error": run.error, "errorClass": run.error_class,
        "failedBlock": run.failed_block, "recordsFailed": run.records_failed or 0,
        "retryOf": None if run.retry_of is None else {"runId": run.retry_of, "block": run.run_from_block,
                                                      "positions": run.retried_positions},
        "scheduledTimes": run.scheduled_times, "blocks": blocks,
    }


def _block_to_api(number: int, entry: dict, row: BlockRun | None) -> dict:
    output = row.output if row else None
    return {
        "number": number,
        "uniqueBlockId": row.unique_block_id if row else entry.get("uniqueBlockId"),
        "blockName": row.block_name if row else entry.get("blockName"),
        "block": row.block_key if row else entry.get("block"),
        "status": row.status if row else "Pending",
        "dateStarted": row.date_started if row else None,
        "dateFinished": row.date_finished if row else None,
        "recordsIn": row.records_in if row else None,
        "recordsOut": row.records_out if row else None,
        "recordsRead": row.records_read if row else None,
        "recordsFailed": (row.records_failed or 0) if row else 0,
        "attempts": row.attempts if row else 0,
        "error": row.error if row else None,
        "errorClass": row.error_class if row else None,
        "output": None if output is None else {"contentType": output.content_type, "size": output.size,
                                                "recordCount": output.record_count, "sha256": output.sha256,
                                                "fileName": output.file_name},
        "log": row.log if row else [],
    }
