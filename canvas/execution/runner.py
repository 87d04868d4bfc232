"""The run executor an RQ worker calls: blocks from..till in order, each block's output stored before the next starts.

Every state change is a short transaction of its own, so the API sees progress as it happens and a crash loses at
most the block in flight. Each of those transactions is fenced by the run's lease (canvas.execution.lease): a worker
that lost the run stops it and writes nothing more, and a final state, once written, is never changed.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy.engine import Row
from sqlalchemy.exc import DBAPIError

from canvas.execution import credentials as run_credentials
from canvas.execution import run_records as records
from canvas.execution.blocks.base import merged_variables, resolve_variables
from canvas.execution.context import (
    PLATFORM_RELAY, BlockAuthenticationError, BlockCancelledError, BlockContext, BlockError,
)
from canvas.execution.data import BlockData
from canvas.execution.lease import (
    DatabaseUnreachableError, FencedWriter, LeaseLostError, LeaseTiming, RunLease, is_connection_error, lease_keeper,
)
from canvas.execution.placeholders import PlaceholderValues
from canvas.execution.progress import DEFAULT_INTERVAL_SECONDS, BlockProgress
from canvas.execution.record_errors import RecordErrors
from canvas.execution.recorder import recording_block
from canvas.execution.registry import get_block
from canvas.applications.redaction import Redactor
from canvas.execution.run_log import BlockLog
from canvas.execution.serialization import OutputInfo, load_output, store_output
from canvas.execution.timeouts import time_limit
from canvas.v2 import callbacks
from canvas.models.base import utcnow
from canvas.queueing import keys
from canvas.storage.blob import BlobStoreError, FileHub
from canvas.v2.edge import with_edge

log = logging.getLogger(__name__)
InputFactory = Callable[[], BlockData]


class RunCancelled(Exception):
    pass


@dataclass
class RunState:
    run_id: uuid.UUID
    workflow_id: uuid.UUID
    account_id: uuid.UUID
    workflow_name: str
    chain: list[dict]
    bindings: dict[str, uuid.UUID]
    first: int
    last: int
    dry_run: bool
    time_zone: ZoneInfo
    input_blob_key: str | None
    lease: RunLease
    writer: FencedWriter
    error_text: str | None = None  # the failing block's error, secrets redacted
    first_block_run_id: uuid.UUID | None = None
    number: int = 0  # the block in hand
    lease_trouble: bool = False  # a block was stopped because the run's lease could not be confirmed
    records_failed: int = 0  # input records its blocks set aside (onRecordError continue)
    first_input: Row | None = None  # the stored output the first block reads, when it reads one

    @property
    def first_input_id(self) -> uuid.UUID | None:
        return None if self.first_input is None else self.first_input.id
    recorded: set = field(default_factory=set)  # block runs whose completion is already written
    started: float = field(default_factory=time.monotonic)


@dataclass
class CompletedBlock:
    """A block that succeeded; written to the database with the next step's transaction."""

    block_run_id: uuid.UUID
    output: dict  # the block_output row to insert
    attempts: int
    log: list[dict]
    records_read: int | None  # of its input records; None when its input was not records
    records_failed: int = 0
    errors_blob_key: str | None = None


def execute_run(run_id: str) -> str:
    """The RQ job function. The worker process has pushed an app context; we only read its services."""
    from flask import current_app

    services = current_app.extensions["canvas"]
    services.db.after_fork()
    return Runner(services).run(uuid.UUID(run_id))


class Runner:
    def __init__(self, services):  # noqa: ANN001 - canvas.extensions.Services
        self.services = services
        self.db = services.db
        self.settings = services.settings
        self.blob_store = services.blob_store
        self.temp_dir = services.data_dir / "tmp"
        self.temp_dir.mkdir(exist_ok=True)
        self.timing = LeaseTiming.from_settings(self.settings)
        self._cancel_checked_at = 0.0
        self._cancelled = False

    # --- the run -------------------------------------------------------------------------------------------------

    def run(self, run_id: uuid.UUID) -> str:
        state = self._start(run_id)
        if state is None:
            return "not started"
        with lease_keeper(self.db.engine, self.timing).holding(state.lease):
            try:
                return self._run_blocks(state)
            except LeaseLostError as lost:
                log.warning("%s; this worker stopped it at block %d and wrote nothing more", lost, state.number)
                return "lease lost"
            except DatabaseUnreachableError as error:
                return self._stop_unreachable(state, error)

    def _run_blocks(self, state: RunState) -> str:
        completed = None
        try:
            state.number = state.first
            make_input = self._initial_input(state)
            for number in range(state.first, state.last + 1):
                state.number = number
                if completed is not None:
                    self._check_cancelled(state, number)
                    block_run_id = self._advance(state, completed, number)
                    make_input = self._reader(completed.output)
                else:
                    block_run_id = state.first_block_run_id
                completed = self._run_block(state, number, make_input, block_run_id)
        except (LeaseLostError, DatabaseUnreachableError):
            raise
        except (RunCancelled, BlockCancelledError):
            if state.lease_trouble:  # nobody cancelled it: the lease could not be confirmed
                raise self._lease_trouble(state) from None
            return self._finish(state, "Cancelled", state.number, None, completed)
        except BlockError as error:
            return self._finish(state, "Failed", state.number, error, completed)
        except Exception as error:  # noqa: BLE001 - a bug must fail the run, not leave it Running
            shown = _readable(state, error)
            if isinstance(shown, INFRASTRUCTURE_ERRORS):  # the driver's text, if any, for the log only
                log.warning("run %s: %s%s", state.run_id, shown, "" if shown is error else f" ({error})")
            else:
                log.exception("run %s: unexpected error in block %d", state.run_id, state.number)
            return self._finish(state, "Failed", state.number, shown, completed)
        return self._finish(state, "Succeeded", state.last, None, completed)

    def _lease_trouble(self, state: RunState) -> Exception:
        if state.lease.revoked:
            return LeaseLostError(f"run {state.run_id} was declared lost and ended by another process")
        return DatabaseUnreachableError(f"database connection lost while running block {state.number}; the run was "
                                        f"stopped (its lease could not be renewed for {state.lease.silent_for():.0f} s)")

    def _stop_unreachable(self, state: RunState, error: DatabaseUnreachableError) -> str:
        """The database stayed away past the lease's deadline. The run has stopped; its failure is recorded if the
        database comes back within another grace period and the run is still this worker's (else the reaper
        settles it as lost)."""
        log.error("run %s: %s", state.run_id, error)
        try:
            return self._finish(state, "Failed", state.number, error, None,
                                until=state.lease.clock() + self.timing.grace, settle_blocks=True)
        except (LeaseLostError, DatabaseUnreachableError) as final:
            log.warning("run %s: its failure was not recorded (%s); the reaper settles it", state.run_id, final)
            return "stopped"

    def _start(self, run_id: uuid.UUID) -> RunState | None:
        """Claim the run (Queued -> Running, atomically, so a cancel cannot slip in between; raising its fencing
        token) and begin its first block, in one transaction. A lost connection is waited out for a grace period;
        a claim whose COMMIT was lost is recognised by its worker name and start time."""
        now, worker, first_block_run_id = utcnow(), _worker_name(), uuid.uuid4()
        deadline, pause = time.monotonic() + self.timing.grace, 0.05
        while True:
            try:
                with records.bookkeeping(self.db.engine) as connection:
                    claimed = records.claim_run(connection, run_id, now, worker)
                    if claimed is None:
                        log.info("run %s is no longer queued (cancelled, or started by another worker); nothing to "
                                 "do", run_id)
                        return None
                    return self._begin_run(connection, run_id, claimed, first_block_run_id, begin=True)
            except DBAPIError as error:
                if not is_connection_error(error) or time.monotonic() >= deadline:
                    raise  # RQ keeps the job as failed; the reaper queues the run again (it is still Queued)
                log.warning("run %s: database unavailable while claiming it (%s); trying again", run_id,
                            type(error.orig or error).__name__)
                time.sleep(pause)
                pause = min(pause * 2, self.timing.renew)
                state = self._claim_landed(run_id, worker, now, first_block_run_id)
                if state is not None:
                    return state

    def _claim_landed(self, run_id: uuid.UUID, worker: str, now: datetime,
                      first_block_run_id: uuid.UUID) -> RunState | None:
        try:
            with self.db.engine.connect() as connection:
                claimed = records.claimed_by(connection, run_id, worker, now)
                return None if claimed is None else self._begin_run(connection, run_id, claimed, first_block_run_id,
                                                                    begin=False)
        except DBAPIError as error:
            if not is_connection_error(error):
                raise
            return None

    def _begin_run(self, connection, run_id: uuid.UUID, claimed, first_block_run_id: uuid.UUID,  # noqa: ANN001
                   begin: bool) -> RunState:
        workflow = records.workflow_for_run(connection, claimed.workflow_id, mark_running=begin)
        uses_applications = any(entry.get("application") for entry in workflow.chain)
        lease = RunLease(run_id, claimed.lease_token, self.timing)
        state = RunState(run_id, workflow.id, claimed.account_id, workflow.name, list(workflow.chain),
                         records.bindings(connection, workflow.id) if uses_applications else {},
                         claimed.run_from_block, claimed.run_till_block, claimed.dry_run,
                         run_credentials.workflow_time_zone(connection, workflow), claimed.input_blob_key,
                         lease, FencedWriter(self.db.engine, lease), first_block_run_id=first_block_run_id)
        records_in = None
        if state.first > 1 and not state.input_blob_key:
            state.first_input = records.latest_output_row(connection, workflow.id,
                                                          state.chain[state.first - 2]["uniqueBlockId"])
            records_in = None if state.first_input is None else state.first_input.record_count
        if begin:
            self._begin_block(connection, state, state.first, records_in, first_block_run_id, state.first_input_id)
        return state

    def _initial_input(self, state: RunState) -> InputFactory:
        if state.input_blob_key:
            info = OutputInfo("records", "application/x-ndjson", None, None)
            return lambda: load_output(self.blob_store, state.input_blob_key, info)
        if state.first == 1:
            return lambda: None
        output = state.first_input  # read with the claim
        if output is None:
            raise BlockError(f"block {state.first - 1} has no stored output to start from")
        return self._reader(output)

    def _reader(self, output: Row | dict) -> InputFactory:
        if isinstance(output, dict):
            info = OutputInfo(output["kind"], output["content_type"], output["record_count"], output["file_name"])
            key = output["blob_key"]
        else:
            info = OutputInfo(output.kind, output.content_type, output.record_count, output.file_name)
            key = output.blob_key
        return lambda: load_output(self.blob_store, key, info)

    # --- one block -------------------------------------------------------------------------------------------------

    def _run_block(self, state: RunState, number: int, make_input: InputFactory,
                   block_run_id: uuid.UUID) -> CompletedBlock:
        entry = state.chain[number - 1]
        make_input = with_edge(entry, make_input)  # a v2 flow edge's condition and mapper, if it has them
        block_class = get_block(entry["block"])
        credentials, secrets = state.writer.read(f"reading the credentials of block {number}",
                                                 lambda: run_credentials.for_block(self.services, state, entry))
        redact = Redactor(secrets)
        block_log = BlockLog(block_class.key, redact)
        progress = BlockProgress(self._progress_recorder(state, block_run_id),
                                 float(self.settings.get("PROGRESS_INTERVAL_SECONDS", DEFAULT_INTERVAL_SECONDS)))
        record_errors = RecordErrors(self.temp_dir, redact)
        try:
            variables = resolve_variables(block_class, merged_variables(block_class, entry.get("variables") or {}),
                                          self._placeholder_values(state, number))
            context = self._context(state, number, variables, credentials, block_log, record_errors)
            block = recording_block(block_class) if state.dry_run and block_class.side_effects else block_class()
            if block.resumable:
                context = self._resumable(state, number, block_run_id, context)
            output, attempts = self._attempts(state, number, block, context, make_input, progress)
        except Exception as error:
            self._fail_block(state, block_run_id, block_log, error, redact, progress, record_errors)
            raise
        errors_key = self._store_record_errors(state, number, record_errors)
        return CompletedBlock(block_run_id, output, attempts, block_log.finished_lines(), progress.read,
                              record_errors.count, errors_key)

    def _resumable(self, state: RunState, number: int, block_run_id: uuid.UUID,
                   context: BlockContext) -> BlockContext:
        """Confirmations go to the block run as they come; the first block of a run (runFromBlock) starts after the
        records that the block's last run on the same input confirmed, if it did not finish."""
        def confirm(count: int) -> None:
            state.writer.write_once(f"the records block {number} confirmed", lambda connection: (
                records.confirm_records(connection, block_run_id, count)))

        resume_after = 0
        if number == state.first and state.first_input_id is not None:
            resume_after = state.writer.read(f"how far block {number} got before", lambda: self._confirmed_before(
                state, number))
        return dataclasses.replace(context, confirm=confirm, resume_after=resume_after)

    def _confirmed_before(self, state: RunState, number: int) -> int:
        with self.db.engine.connect() as connection:
            return records.unfinished_confirmations(connection, state.workflow_id, state.run_id,
                                                    state.chain[number - 1]["uniqueBlockId"], state.first_input_id)

    def _store_record_errors(self, state: RunState, number: int, record_errors: RecordErrors) -> str | None:
        state.records_failed += record_errors.count
        return record_errors.store(self.blob_store, f"runs/{state.workflow_id}/{state.run_id}-block-{number}.errors")

    def _attempts(self, state: RunState, number: int, block, context: BlockContext,  # noqa: ANN001
                  make_input: InputFactory, progress: BlockProgress) -> tuple[dict, int]:
        """Run the block and store its output, retrying with exponential backoff and jitter the failures that are
        safe to retry: transient ones, and for a block with side effects only those raised before it sent anything
        (a repeat of a write whose outcome is unknown could do it twice)."""
        entry = state.chain[number - 1]
        retries = int(entry["retries"] if entry.get("retries") is not None else self.settings.get("BLOCK_RETRIES", 2))
        for attempt in range(1, retries + 2):
            try:
                progress.restart()
                with time_limit(self._block_timeout(state, number), f"block {number}"):
                    output = block.run(context, progress.counted(make_input()))
                    stored, info = store_output(self.blob_store, self._output_key(state, number, attempt), output,
                                                progress.stored)
                return self._output_row(state, number, stored, info), attempt
            except BlockError as error:
                if not _safe_to_retry(error, block) or attempt > retries:
                    error.attempts = attempt  # run history shows how often it was tried
                    raise
                delay = self._backoff(attempt)
                context.logger.warning("attempt %d failed (%s); retrying in %.1f s", attempt, error, delay)
                if context.record_errors is not None:
                    context.record_errors.discard()  # the next attempt reads its input from the start
                time.sleep(delay)
        raise AssertionError("unreachable")

    def _backoff(self, attempt: int) -> float:
        base = float(self.settings.get("BLOCK_RETRY_BASE_SECONDS", 2.0))
        return min(60.0, base * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)

    def _block_timeout(self, state: RunState, number: int) -> float:
        entry = state.chain[number - 1]
        return float(entry.get("timeoutSeconds") or self.settings.get("BLOCK_TIMEOUT_SECONDS", 900))

    def _output_key(self, state: RunState, number: int, attempt: int) -> str:
        return f"runs/{state.workflow_id}/{state.run_id}-block-{number}-{attempt}.out"

    def _output_row(self, state: RunState, number: int, stored, info: OutputInfo) -> dict:  # noqa: ANN001
        entry = state.chain[number - 1]
        return {"id": uuid.uuid4(), "workflow_id": state.workflow_id, "run_id": state.run_id, "number": number,
                "unique_block_id": entry["uniqueBlockId"], "blob_key": stored.key, "kind": info.kind,
                "content_type": info.content_type or "application/octet-stream", "file_name": info.file_name,
                "size": stored.size, "record_count": info.record_count, "sha256": stored.sha256,
                "dry_run": state.dry_run, "date_created": utcnow()}

    def _context(self, state: RunState, number: int, variables: dict, credentials: dict | None,
                 block_log: BlockLog, record_errors: RecordErrors | None = None) -> BlockContext:
        policy = self.services.network_policy
        if credentials and credentials.get(PLATFORM_RELAY):  # the operator's relay, not a tenant's address
            policy = dataclasses.replace(policy, allow_private=True)
        return BlockContext(
            variables=variables, credentials=credentials, logger=block_log.logger, blob_store=self.blob_store,
            file_hub=FileHub(self.blob_store, str(state.account_id)), run_id=str(state.run_id), block_number=number,
            workflow_name=state.workflow_name, network_policy=policy,
            is_cancelled=lambda: self._cancel_requested(state), temp_dir=self.temp_dir,
            owner_email=lambda: run_credentials.owner_email(self.services, state.account_id),
            on_record_error=state.chain[number - 1].get("onRecordError") or "fail", record_errors=record_errors)

    def _placeholder_values(self, state: RunState, number: int) -> PlaceholderValues:
        return PlaceholderValues(now=datetime.now(state.time_zone), workflow_name=state.workflow_name,
                                 run_id=str(state.run_id), block_number=number)

    # --- bookkeeping -----------------------------------------------------------------------------------------------

    def _progress_recorder(self, state: RunState, block_run_id: uuid.UUID):  # noqa: ANN202
        def record(read: int | None, written: int | None) -> None:
            state.writer.write_once(f"the progress of block {state.number}", lambda connection: records.record_progress(
                connection, block_run_id, read, written))

        return record

    def _begin_block(self, connection, state: RunState, number: int, records_in: int | None,  # noqa: ANN001
                     block_run_id: uuid.UUID, input_output_id: uuid.UUID | None) -> None:
        entry = state.chain[number - 1]
        records.insert_block_run(connection, state.workflow_id, {
            "id": block_run_id, "run_id": state.run_id, "number": number, "unique_block_id": entry["uniqueBlockId"],
            "block_name": entry["blockName"], "block_key": entry["block"], "status": "Running", "attempts": 0,
            "records_in": records_in, "log": [], "date_started": utcnow(), "input_output_id": input_output_id})

    def _advance(self, state: RunState, completed: CompletedBlock, number: int) -> uuid.UUID:
        """Record the finished block and begin the next one in one transaction."""
        block_run_id = uuid.uuid4()

        def record(connection) -> None:  # noqa: ANN001
            self._record_completed(connection, completed)
            self._begin_block(connection, state, number, completed.output["record_count"], block_run_id,
                              completed.output["id"])

        state.writer.write(f"recording block {number - 1}", record,
                           landed=lambda connection: records.block_run_exists(connection, block_run_id))
        state.recorded.add(completed.block_run_id)
        return block_run_id

    def _record_completed(self, connection, completed: CompletedBlock) -> None:  # noqa: ANN001
        records.record_completed(connection, completed.output, completed.block_run_id, completed.attempts,
                                 completed.log, completed.records_read, utcnow(),
                                 completed.records_failed or None, completed.errors_blob_key)

    def _fail_block(self, state: RunState, block_run_id: uuid.UUID, block_log: BlockLog, error: BaseException,
                    redact: Redactor, progress: BlockProgress, record_errors: RecordErrors) -> None:
        if isinstance(error, (LeaseLostError, DatabaseUnreachableError)) or state.lease_trouble:
            return  # nothing of it is this worker's to record (or can be recorded now): see _stop_unreachable
        cancelled = isinstance(error, (BlockCancelledError, RunCancelled))
        shown = _readable(state, error)
        state.error_text = redact(str(shown) if isinstance(shown, (BlockError, *INFRASTRUCTURE_ERRORS))
                                  else f"{type(shown).__name__}: {shown}")
        # How far it read is worth keeping; records it stored belong to no output, so none are "out".
        errors_key = self._store_record_errors(state, state.number, record_errors)
        values = {"status": "Cancelled" if cancelled else "Failed", "now": utcnow(),
                  "error": state.error_text[:4000], "error_class": type(shown).__name__,
                  "attempts": getattr(error, "attempts", 1), "records_read": progress.read,
                  "lines": block_log.finished_lines(), "records_failed": record_errors.count or None,
                  "errors_blob_key": errors_key}
        state.writer.write(f"recording the failure of block {state.number}",
                           lambda connection: records.fail_block_run(connection, block_run_id, values),
                           landed=lambda connection: records.block_run_ended(connection, block_run_id))
        if isinstance(error, BlockAuthenticationError):
            run_credentials.mark_faulted(self.services, state, state.chain[state.number - 1], redact(str(error)))

    def _finish(self, state: RunState, status: str, number: int, error: BaseException | None,
                completed: CompletedBlock | None, until: float | None = None, settle_blocks: bool = False) -> str:
        """End the run; the last completed block not yet recorded is recorded in the same transaction. Fenced: a run
        that is no longer this worker's keeps the final state it has, and no callback is sent from here."""
        finished = utcnow()
        run_values = {"status": status, "date_finished": finished, "records_failed": state.records_failed or None}
        if error is not None:
            run_values.update(error=(state.error_text or str(error) or type(error).__name__)[:4000],
                              error_class=type(error).__name__, failed_block=number)
        workflow_values = {"status": "Failed" if status == "Failed" else "Ready", "current_block": number,
                           "date_last_run": finished}

        def record(connection) -> None:  # noqa: ANN001
            if completed is not None and completed.block_run_id not in state.recorded:
                self._record_completed(connection, completed)
            records.finish_run(connection, state.run_id, state.workflow_id, run_values, workflow_values)
            if settle_blocks:  # the block in flight when the run was stopped from outside the block
                records.end_running_blocks(connection, state.run_id, status, run_values["error"],
                                           run_values["error_class"], finished)

        state.writer.write("finishing the run", record, until=until, landed=lambda connection: records.run_ended_as(
            connection, state.run_id, state.lease.token, status))
        _log_outcome(state, status, number)
        callbacks.run_finished(self.services, state.run_id, state.workflow_id, status)
        return status

    # --- cancellation ----------------------------------------------------------------------------------------------

    def _check_cancelled(self, state: RunState, number: int) -> None:
        if not state.writer.confirm():
            state.lease_trouble = True
            raise self._lease_trouble(state)
        if state.writer.read("checking for a cancel", lambda: self._cancel_recorded(state)):
            raise RunCancelled(f"cancelled before block {number}")

    def _cancel_recorded(self, state: RunState) -> bool:
        with self.db.engine.connect() as connection:
            return records.cancel_requested(connection, state.run_id)

    def _cancel_requested(self, state: RunState) -> bool:
        """Checked by blocks inside long loops: the lease (a block of a run this worker no longer holds stops), then
        a Redis flag, read at most once a second."""
        if not state.writer.confirm():
            state.lease_trouble = True
            return True
        now = time.monotonic()
        if not self._cancelled and now - self._cancel_checked_at >= 1.0:
            self._cancel_checked_at = now
            key = keys.run_cancel_key(self.settings.get("REDIS_PREFIX"), str(state.run_id))
            try:
                self._cancelled = bool(self.services.redis.exists(key))
            except Exception:  # noqa: BLE001 - Redis down: cancellation waits for the next block boundary
                return False
        return self._cancelled


def _safe_to_retry(error: BlockError, block) -> bool:  # noqa: ANN001 - a Block
    if not error.transient or getattr(error, "outcome_unknown", False):
        return False
    return not getattr(block, "side_effects", False) or bool(getattr(error, "retry_safe", False))


# Failures of the platform's own services, whose messages are written for people: no traceback, no class name.
INFRASTRUCTURE_ERRORS = (DatabaseUnreachableError, BlobStoreError)


def _readable(state: RunState, error: BaseException) -> BaseException:
    """The error the run history shows: a lost database connection in words (the driver's text is for the log)."""
    if isinstance(error, DBAPIError) and is_connection_error(error):
        return DatabaseUnreachableError(f"database connection lost while running block {state.number}; "
                                        "the run was stopped")
    return error


def _log_outcome(state: RunState, status: str, number: int) -> None:
    """One line per run for the worker's log: which workflow, which blocks, how long, and why it failed."""
    seconds = time.monotonic() - state.started
    where = f"run {state.run_id} of workflow {state.workflow_name!r} (blocks {state.first}-{state.last})"
    if status == "Failed":
        block_name = state.chain[number - 1].get("blockName") if number <= len(state.chain) else None
        log.warning("%s failed at block %d (%s) after %.2f s: %s", where, number, block_name, seconds,
                    state.error_text or "see the run history")
    else:
        log.info("%s %s in %.2f s", where, status.lower(), seconds)


def _worker_name() -> str:
    try:
        from rq import get_current_job

        job = get_current_job()
        if job is not None and job.worker_name:
            return job.worker_name
    except Exception:  # noqa: BLE001 - outside RQ
        pass
    return f"pid-{os.getpid()}"
