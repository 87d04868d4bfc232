"""The run executor an RQ worker calls: blocks from..till in order, each block's output stored before the next starts.

Every state change is a short transaction of its own, so the API sees progress as it happens and a crash loses at
most the block in flight. Each of those transactions is fenced by the run's lease (canvas.execution.lease): a worker
that lost the run stops it and writes nothing more, and a final state, once written, is never changed.
"""
from __future__ import annotations

import dataclasses
import errno
import logging
import os
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property
from typing import NoReturn
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
from canvas.execution.edges import joined, peeked, with_edge
from canvas.execution.graph import DEFAULT_FAILURE_POLICY, BlockGraph, block_graph, outside_inputs
from canvas.execution import run_callbacks, run_endings
from canvas.observability import metrics
from canvas.execution.lease import (
    DatabaseUnreachableError, FencedWriter, LeaseLostError, LeaseTiming, RunLease, database_trouble,
    is_connection_error, lease_keeper,
)
from canvas.execution.placeholders import PlaceholderValues
from canvas.execution.progress import DEFAULT_INTERVAL_SECONDS, BlockProgress
from canvas.execution.record_errors import RecordErrors
from canvas.execution.recorder import recording_block
from canvas.execution.registry import get_block
from canvas.applications.redaction import Redactor
from canvas.execution.run_log import BlockLog
from canvas.execution.serialization import OutputInfo, load_output, store_output
from canvas.execution.shutdown import WorkerShutdownError, not_interrupted, stop_reason
from canvas.execution.timeouts import time_limit
from canvas.models.base import utcnow
from canvas.observability.logging import enter_block, logged_run_of, redact_block_lines
from canvas.queueing import keys
from canvas.queueing.dispatch import block_job, enqueue_jobs
from canvas.storage.blob import BlobStoreError, FileHub, StoredBlob

log = logging.getLogger(__name__)
POLL_FIRST_SECONDS, POLL_MAX_SECONDS = 0.02, 0.5  # waiting for blocks on other workers
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
    graph: BlockGraph
    plan: list[int]  # the blocks this run executes, in block order
    policy: str  # failFast | continue
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
    has_callbacks: bool = False  # the workflow has run callbacks to send when the run ends
    has_notifications: bool = False  # somebody may be mailed about the run's end (canvas.notifications)
    after_failure: bool = False  # (only known with has_notifications) the workflow's previous run failed
    trigger: str | None = None  # manual | schedule | webhook | ...: a label of the run's metrics
    unfit: str | None = None  # why the plan no longer fits the workflow (changed after the run was queued)
    # What the blocks read, by block number: stored outputs of parents outside the plan, outputs made in this run.
    outputs: dict[int, Row | dict] = field(default_factory=dict)
    outside: set[int] = field(default_factory=set)  # the block numbers in `outputs` that are stored, not this run's
    settled: dict[int, str] = field(default_factory=dict)  # block number -> Succeeded | Skipped | Failed | Cancelled
    begun: dict[int, uuid.UUID] = field(default_factory=dict)  # block number -> its block run, wherever it runs
    elsewhere: set[int] = field(default_factory=set)  # queued for, or running on, another worker
    unclaimed: set[int] = field(default_factory=set)  # of those, the ones no worker had claimed when last looked
    blocked: set[int] = field(default_factory=set)  # will not run: a block they depend on failed
    failures: list[tuple[int, str]] = field(default_factory=list)  # (block number, error) in the order they failed
    recorded: set = field(default_factory=set)  # block runs whose completion is already written
    finished_here: CompletedBlock | SkippedBlock | None = None  # the last block run here (recorded if in `recorded`)
    started: float = field(default_factory=time.monotonic)

    @property
    def unrecorded(self) -> CompletedBlock | SkippedBlock | None:
        """The last block that finished here while its completion is not written yet: the next write records it
        (the next block's beginning, the run's end, or a write of its own before waiting on other workers)."""
        done = self.finished_here
        return None if done is None or done.block_run_id in self.recorded else done

    @property
    def first(self) -> int:
        return self.plan[0]

    @property
    def last(self) -> int:
        return self.plan[-1]

    @cached_property
    def planned(self) -> frozenset[int]:
        return frozenset(self.plan)

    def fed_by_run_input(self, number: int) -> bool:
        """A webhook body (the run's input) feeds the blocks of the plan that have no parent in the plan."""
        return bool(self.input_blob_key) and not self.graph.fed_from_within(number, self.planned)

    def ready(self) -> list[int]:
        """Blocks not begun whose parents in the plan have all succeeded or been skipped, in block order."""
        return [number for number in self.plan if number not in self.begun and number not in self.blocked
                and all(edge.source not in self.planned or self.settled.get(edge.source) in ("Succeeded", "Skipped")
                        for edge in self.graph.parents(number))]

    def settle(self, number: int, status: str, output: Row | dict | None = None) -> None:
        self.settled[number] = status
        self.elsewhere.discard(number)
        self.unclaimed.discard(number)
        if output is not None:
            self.outputs[number] = output
        if status in ("Failed", "Cancelled"):
            self.blocked |= self.graph.descendants(number) & self.planned

    def stored_input(self, number: int) -> Row | None:
        """The stored output that is the block's one input, when it has exactly one parent and that parent is
        outside the plan (a resumable block picks up after what it confirmed on that same input)."""
        parents = self.graph.parents(number)
        if self.fed_by_run_input(number) or len(parents) != 1 or parents[0].source not in self.outside:
            return None
        return self.outputs.get(parents[0].source)

    def input_output_id(self, number: int) -> uuid.UUID | None:
        parents = self.graph.parents(number)
        if self.fed_by_run_input(number) or len(parents) != 1:
            return None
        output = self.outputs.get(parents[0].source)
        return None if output is None else _field(output, "id")

    def records_in(self, number: int) -> int | None:
        if self.fed_by_run_input(number):
            return None
        counts = [_field(self.outputs[edge.source], "record_count") for edge in self.graph.parents(number)
                  if edge.source in self.outputs]
        return None if not counts or None in counts else sum(counts)


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


@dataclass
class SkippedBlock:
    """A block none of whose inputs delivered anything (a condition kept no record, or its parents were skipped)."""

    block_run_id: uuid.UUID
    why: str


def execute_run(run_id: str) -> str:
    """The RQ job function. The worker process has pushed an app context; we only read its services."""
    from flask import current_app

    services = current_app.extensions["canvas"]
    services.db.after_fork()
    return Runner(services).run(uuid.UUID(run_id))


def execute_block(run_id: str, block_run_id: str) -> str:
    """The RQ job of one block of a parallel branch, for any worker; the run's own worker runs it if none does."""
    from flask import current_app

    services = current_app.extensions["canvas"]
    services.db.after_fork()
    return Runner(services).run_elsewhere(uuid.UUID(run_id), uuid.UUID(block_run_id))


class Runner:
    def __init__(self, services):  # noqa: ANN001 - canvas.extensions.Services
        self.services = services
        self.db = services.db
        self.settings = services.settings
        self.blob_store = services.blob_store
        self.temp_dir = services.data_dir / "tmp"
        self.temp_dir.mkdir(exist_ok=True)
        self.timing = LeaseTiming.from_settings(self.settings)
        self._in_one_statement = records.in_one_statement(self.db.engine)
        self._cancel_checked_at = 0.0
        self._cancelled = False

    # --- the run -------------------------------------------------------------------------------------------------

    def run(self, run_id: uuid.UUID) -> str:
        state = self._start(run_id)
        if state is None:
            return "not started"
        with logged_run_of(state), lease_keeper(self.db.engine, self.timing).holding(state.lease):
            try:
                return self._run_blocks(state)
            except LeaseLostError as lost:
                log.warning("%s; this worker stopped it at block %d and wrote nothing more", lost, state.number)
                return "lease lost"
            except DatabaseUnreachableError as error:
                return self._stop_unreachable(state, error)

    def _run_blocks(self, state: RunState) -> str:
        """Blocks in block order, one at a time in this worker; when several are ready at once (branches), the
        others are queued for any worker, and this one takes them back if nobody has by the time it is free."""
        try:
            number, block_run_id = state.first, state.first_block_run_id
            if state.unfit is not None:
                state.number = number
                self._fail_unfit(state, block_run_id)
            while number is not None:
                state.number = number
                self._run_here(state, number, block_run_id)
                number, block_run_id = self._next_block(state)
        except (LeaseLostError, DatabaseUnreachableError):
            raise
        except (RunCancelled, BlockCancelledError):
            if state.lease_trouble:  # nobody cancelled it: the lease could not be confirmed
                raise self._lease_trouble(state) from None
            if stop_reason() is not None:  # nor here: the worker is shutting down (canvas.execution.shutdown)
                return self._stop_for_shutdown(state)
            self._settle_elsewhere(state, "Cancelled", "not started: the run was cancelled")
            return self._finish(state, "Cancelled", state.number, None)
        except BlockError as error:  # failFast
            failed = state.failures[0][0] if state.failures else state.number
            self._settle_elsewhere(state, "Cancelled", f"not started: block {failed} failed")
            return self._finish(state, "Failed", failed, self._run_error(state, error))
        except Exception as error:  # noqa: BLE001 - a bug must fail the run, not leave it Running
            shown = _readable(state, error)
            if isinstance(shown, INFRASTRUCTURE_ERRORS):  # the driver's text, if any, for the log only
                log.warning("run %s: %s%s", state.run_id, shown, "" if shown is error else f" ({error})")
            else:
                log.exception("run %s: unexpected error in block %d", state.run_id, state.number)
            number = _stopped_after_failures(state, state.number, state.error_text or str(shown))
            self._settle_elsewhere(state, "Cancelled", f"not started: block {state.number} failed")
            return self._finish(state, "Failed", number, shown)
        if state.failures:  # policy continue: every block that could run has run
            failed = state.failures[0][0]
            return self._finish(state, "Failed", failed, self._run_error(state, None))
        return self._finish(state, "Succeeded", state.last, None)

    def _fail_unfit(self, state: RunState, block_run_id: uuid.UUID) -> NoReturn:
        """A run whose blocks the workflow no longer has fails with that reason, its first block run with it
        (before, the worker crashed on the missing block and the run ended "worker lost" a grace period later)."""
        log.warning("run %s: %s", state.run_id, state.unfit)
        state.error_text = state.unfit
        values = {"status": "Failed", "now": utcnow(), "error": state.unfit, "error_class": BlockError.__name__,
                  "attempts": 0, "records_read": None, "lines": [], "records_failed": None, "errors_blob_key": None}
        state.writer.write(f"recording why block {state.number} cannot run",
                           lambda connection: records.fail_block_run(connection, block_run_id, values),
                           landed=lambda connection: records.block_run_ended(connection, block_run_id))
        raise BlockError(state.unfit)

    def _stop_for_shutdown(self, state: RunState) -> str:
        reason = state.error_text = stop_reason()
        number = _stopped_after_failures(state, state.number, reason)
        self._settle_elsewhere(state, "Cancelled", f"not started: {reason}")
        return self._finish(state, "Failed", number, WorkerShutdownError(reason))

    def _run_here(self, state: RunState, number: int, block_run_id: uuid.UUID) -> None:
        """Run one block here and settle it; a failure is raised unless the policy lets the others go on."""
        try:
            done = self._run_block(state, number, block_run_id)
        except BlockCancelledError:
            raise  # stopped, not failed (a cancel, the worker's shutdown, an unconfirmed lease): see _run_blocks
        except BlockError as error:
            state.failures.append((number, state.error_text or str(error)))
            state.settle(number, "Failed")
            if state.policy != "continue" or state.lease_trouble:
                raise
            state.error_text = None  # its text is in `failures`: a later stop must not show it as its own
            return
        if isinstance(done, SkippedBlock):
            state.settle(number, "Skipped")
        else:
            state.settle(number, "Succeeded", done.output)
        state.finished_here = done

    def _run_error(self, state: RunState, error: BaseException | None) -> BaseException:
        """The run's error: the failed block's own when one failed, every failed block named when several did."""
        if len(state.failures) <= 1 and error is not None:
            return error
        if len(state.failures) == 1:
            return BlockError(state.failures[0][1])
        state.error_text = _failed_blocks(state)
        return BlockError(state.error_text)

    def _next_block(self, state: RunState) -> tuple[int | None, uuid.UUID | None]:
        """The next block for this worker: a ready one (begun in the same transaction that records the block
        finished here, the other ready ones queued for other workers), else one queued for another worker that none
        has taken; or None when every block of the plan has ended (the block finished here is then recorded with the
        run's end). Nothing of the run is in flight here: a database outage is waited out past the lease's deadline
        (FencedWriter.patient)."""
        with state.writer.patient(self.timing.grace):
            return self._wait_for_next_block(state)

    def _wait_for_next_block(self, state: RunState) -> tuple[int | None, uuid.UUID | None]:
        pause = POLL_FIRST_SECONDS
        while True:
            if state.elsewhere:
                self._watch_elsewhere(state)
            if state.failures and state.policy != "continue":
                raise BlockError(state.failures[0][1])
            ready = state.ready()
            if ready:
                return self._begin_ready(state, ready)
            if not state.elsewhere:
                return None, None
            if state.unrecorded is not None:  # written before the wait, which may be long
                self._record_alone(state)
            self._check_cancelled(state, min(state.elsewhere))
            taken = self._take_back(state)
            if taken is not None:
                return taken
            time.sleep(pause)
            pause = min(pause * 2, POLL_MAX_SECONDS)

    def _begin_ready(self, state: RunState, ready: list[int]) -> tuple[int, uuid.UUID]:
        """Record the block finished here and begin the first ready block here, queueing the others, in one
        transaction (on PostgreSQL, when there are no others, in one statement: records.advance), unless the run was
        cancelled (its lease's renewal, the first statement of the transaction, says so)."""
        number, others, done = ready[0], ready[1:], state.unrecorded
        block_run_id = uuid.uuid4()
        queued = {other: uuid.uuid4() for other in others}

        def record(connection) -> None:  # noqa: ANN001
            if state.lease.cancel_requested:  # as the fence of this transaction just read it: nothing is written
                raise RunCancelled(f"cancelled before block {number}")
            if done is not None:
                self._record_done(connection, done)
            self._begin_block(connection, state, number, block_run_id)
            for other, other_id in queued.items():
                self._begin_block(connection, state, other, other_id, status="Queued")

        def advance(connection) -> None:  # noqa: ANN001 - the same, as one statement (PostgreSQL)
            began = state.lease.now()
            state.writer.renewed(records.advance(
                connection, state.run_id, state.lease.token, utcnow(), state.workflow_id,
                self._block_run_values(state, number, block_run_id), None if done is None else _completion(done)),
                began)
            if state.lease.cancel_requested:  # the statement wrote nothing
                raise RunCancelled(f"cancelled before block {number}")

        def landed(connection) -> bool:  # noqa: ANN001
            return records.block_run_exists(connection, block_run_id)

        what = f"recording block {state.number}" if done is not None else f"beginning block {number}"
        # The common step (a block done, the next begun here) as one statement where the database can; a skipped
        # block, blocks queued for other workers or a block held for another worker's run take the transaction.
        if self._in_one_statement and not queued and not isinstance(done, SkippedBlock) and state.lease.node is None:
            state.writer.write(what, advance, landed=landed, fences_itself=True, one_statement=True)
        else:
            state.writer.write(what, record, landed=landed)
        if done is not None:
            state.recorded.add(done.block_run_id)
        state.begun[number] = block_run_id
        for other, other_id in queued.items():
            state.begun[other] = other_id
            state.elsewhere.add(other)
            state.unclaimed.add(other)
        if queued:
            self._queue_blocks(state, queued)
        return number, block_run_id

    def _record_alone(self, state: RunState) -> None:
        done = state.unrecorded
        state.writer.write(f"recording block {state.number}", lambda connection: self._record_done(connection, done),
                           landed=lambda connection: records.block_run_ended(connection, done.block_run_id))
        state.recorded.add(done.block_run_id)

    def _queue_blocks(self, state: RunState, queued: dict[int, uuid.UUID]) -> None:
        """One RQ job per block for any free worker. Not queued (Redis unreachable) is not lost: this worker takes
        queued blocks back when it is free."""
        try:
            enqueue_jobs(self.services.redis, [block_job(state.run_id, block_run_id, number)
                                               for number, block_run_id in queued.items()])
        except Exception as error:  # noqa: BLE001 - Redis trouble: the blocks run here instead
            log.warning("run %s: blocks %s not queued for other workers (%s); this worker runs them", state.run_id,
                        sorted(queued), type(error).__name__)

    def _take_back(self, state: RunState) -> tuple[int, uuid.UUID] | None:
        """Claim the first block queued for other workers that none has started, to run it here."""
        worker = _worker_name()
        for number in sorted(state.unclaimed):
            block_run_id, claims = state.begun[number], []
            state.writer.write(f"taking back block {number}", lambda connection, block_run_id=block_run_id: (
                claims.append(records.claim_node(connection, block_run_id, worker, utcnow()))),
                landed=lambda connection, block_run_id=block_run_id: records.node_claimed_by(
                    connection, block_run_id, worker))
            state.unclaimed.discard(number)
            if not claims or claims[-1] is not None:  # claimed now, or by the attempt whose COMMIT got lost
                state.elsewhere.discard(number)
                return number, block_run_id
        return None

    def _watch_elsewhere(self, state: RunState) -> None:
        """Settle the blocks other workers have ended; a block whose worker has gone silent past the grace period
        fails as lost (its outcome is unknown, so it is not run again)."""
        rows = state.writer.read("checking blocks on other workers", lambda: self._node_rows(state))
        cutoff = utcnow() - timedelta(seconds=self.timing.grace)
        # Their workers could not reach the database during an outage this worker saw end: a grace period from then
        back = state.writer.back_at
        silent_since_before = back is None or back < cutoff
        for row in rows:
            if row.number not in state.elsewhere:
                continue
            if row.status == "Queued":
                state.unclaimed.add(row.number)
                continue
            state.unclaimed.discard(row.number)
            if (row.status == "Running" and row.heartbeat_at is not None and row.heartbeat_at < cutoff
                    and silent_since_before):
                self._lose_block(state, row, cutoff)
            elif row.status == "Succeeded":
                output = state.writer.read("reading a block's output", lambda row=row: self._output(row.output_id))
                state.settle(row.number, "Succeeded", output)
            elif row.status in ("Failed", "Cancelled", "Skipped"):
                if row.status == "Failed":
                    state.failures.append((row.number, row.error or "failed"))
                state.settle(row.number, row.status)

    def _lose_block(self, state: RunState, row: Row, cutoff: datetime) -> None:
        error = (f"worker lost while running block {row.number}: no sign of life for {self.timing.grace:.0f} s; "
                 "not run again, as its outcome is unknown")
        state.writer.write(f"declaring block {row.number} lost", lambda connection: records.lose_silent_node(
            connection, row.id, cutoff, error, utcnow()))
        log.warning("run %s: %s", state.run_id, error)

    def _node_rows(self, state: RunState) -> list[Row]:
        with self.db.engine.connect() as connection:
            return records.node_states(connection, state.run_id)

    def _output(self, output_id: uuid.UUID) -> Row | None:
        with self.db.engine.connect() as connection:
            return records.output_by_id(connection, output_id)

    def _settle_elsewhere(self, state: RunState, status: str, why: str) -> None:
        """Before the run ends: blocks queued for other workers and not started never will be; those running
        elsewhere are let finish (they stop at a cancel), up to the grace period of a silent worker."""
        if not state.elsewhere:
            return
        with state.writer.patient(self.timing.grace):  # nothing in flight here either (see _next_block)
            state.writer.write("ending blocks not started", lambda connection: records.end_queued_nodes(
                connection, state.run_id, status, why, utcnow()))
            pause = POLL_FIRST_SECONDS
            while True:
                self._watch_elsewhere(state)  # what it settles leaves `elsewhere`: what is left is still running
                if not state.elsewhere:
                    return
                time.sleep(pause)
                pause = min(pause * 2, POLL_MAX_SECONDS)

    def _lease_trouble(self, state: RunState) -> Exception:
        if state.lease.revoked:
            return LeaseLostError(f"run {state.run_id} was declared lost and ended by another process")
        return DatabaseUnreachableError(database_trouble(state.lease.trouble), f"while running block {state.number}",
                                        f" (its lease could not be renewed for {state.lease.silent_for():.0f} s)")

    def _stop_unreachable(self, state: RunState, error: DatabaseUnreachableError) -> str:
        """The database stayed away past the lease's deadline. The run has stopped; its failure is recorded if the
        database comes back within another grace period and the run is still this worker's (else the reaper
        settles it as lost). The last block that finished here keeps its success if the write recording it went
        unconfirmed: it is recorded with the run's end unless that write had landed after all."""
        number, error = _where_stopped(state, error)
        number = _stopped_after_failures(state, number, str(error))
        log.error("run %s: %s", state.run_id, error)
        return self._finish(state, "Failed", number, error, after_outage=True)

    def _start(self, run_id: uuid.UUID) -> RunState | None:
        """Claim the run (Queued -> Running, atomically, so a cancel cannot slip in between; raising its fencing
        token) and begin its first block, in one transaction. A lost connection is waited out for a grace period;
        a claim whose COMMIT was lost is recognised by its worker name and start time."""
        now, worker, first_block_run_id = utcnow(), _worker_name(), uuid.uuid4()
        deadline, pause = time.monotonic() + self.timing.grace, 0.05
        while True:
            try:
                with records.bookkeeping(self.db.engine, one_statement=True) as connection:
                    claim = records.claim_run(connection, run_id, now, worker, first_block_run_id)
                    if claim is None:
                        log.info("run %s is no longer queued (cancelled, or started by another worker); nothing to "
                                 "do", run_id)
                        return None
                    return self._begin_run(connection, run_id, *claim, first_block_run_id, begin=True)
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
            with records.bookkeeping(self.db.engine, one_statement=True) as connection:  # the input it may write
                claimed = records.claimed_by(connection, run_id, worker, now)
                if claimed is None:
                    return None
                workflow = records.workflow_for_run(connection, claimed.workflow_id)
                return self._begin_run(connection, run_id, claimed, workflow, first_block_run_id, begin=False)
        except DBAPIError as error:
            if not is_connection_error(error):
                raise
            return None

    def _begin_run(self, connection, run_id: uuid.UUID, claimed, workflow,  # noqa: ANN001
                   first_block_run_id: uuid.UUID, begin: bool) -> RunState:
        state = self._run_state(connection, run_id, claimed, workflow)
        state.first_block_run_id = first_block_run_id
        state.begun[state.first] = first_block_run_id
        if state.unfit is not None:
            return state  # its blocks are not the workflow's any more: _run_blocks fails it before anything else
        if begin and not self._in_one_statement:  # the workflow's current block was set with the claim
            self._begin_block(connection, state, state.first, first_block_run_id, show=False)
        else:  # begun by the claim, or by a claim whose commit was lost: its input may remain to be written
            records_in, input_output_id = state.records_in(state.first), state.input_output_id(state.first)
            if records_in is not None or input_output_id is not None:
                records.set_block_input(connection, first_block_run_id, records_in, input_output_id)
        return state

    def _run_state(self, connection, run_id: uuid.UUID, claimed, workflow) -> RunState:  # noqa: ANN001
        """The run as its blocks need it; the stored outputs of parents outside the plan are read now (no other run
        of the workflow can store one while this run is active)."""
        uses_applications = any(entry.get("application") for entry in workflow.chain)
        lease = RunLease(run_id, claimed.lease_token, self.timing)
        graph = block_graph(workflow.chain)
        plan = list(claimed.block_numbers or range(claimed.run_from_block, claimed.run_till_block + 1))
        state = RunState(run_id, workflow.id, claimed.account_id, workflow.name, list(workflow.chain),
                         records.bindings(connection, workflow.id) if uses_applications else {}, graph, plan,
                         workflow.failure_policy or DEFAULT_FAILURE_POLICY, claimed.dry_run,
                         run_credentials.workflow_time_zone(connection, workflow), claimed.input_blob_key,
                         lease, FencedWriter(self.db.engine, lease), has_callbacks=bool(workflow.has_callbacks),
                         has_notifications=bool(workflow.has_notifications),
                         after_failure=bool(workflow.after_failure), trigger=claimed.trigger,
                         unfit=_unfit_plan(workflow.chain, plan))
        if state.unfit is not None:
            return state
        for number, edges in outside_inputs(graph, plan).items():
            if state.fed_by_run_input(number):
                continue
            for edge in edges:
                if edge.source in state.outputs:
                    continue
                stored = records.latest_output_row(connection, workflow.id,
                                                   state.chain[edge.source - 1]["uniqueBlockId"])
                if stored is not None:
                    state.outputs[edge.source] = stored
                    state.outside.add(edge.source)
        return state

    def rehearse(self, connection, run_id: uuid.UUID) -> None:  # noqa: ANN001
        """The bookkeeping of a run of two blocks that succeed, on `connection`, for the statements' sake alone
        (canvas.execution.warm_up, which rolls it back): the claim, a renewal, the step from block 1 to block 2 and
        the end, each block with and without log lines, as `run` writes them."""
        now, first_block_run_id = utcnow(), uuid.uuid4()
        claim = records.claim_run(connection, run_id, now, _worker_name(), first_block_run_id)
        state = self._begin_run(connection, run_id, *claim, first_block_run_id, begin=True)
        token = state.lease.token
        records.renew_lease(connection, run_id, token, now)
        for lines in (False, True):
            done, second = self._rehearsed(state, 1, first_block_run_id, lines), uuid.uuid4()
            if self._in_one_statement:
                records.advance(connection, run_id, token, now, state.workflow_id,
                                self._block_run_values(state, 2, second), _completion(done))
            else:
                self._record_done(connection, done)
                self._begin_block(connection, state, 2, second)
            run_values, workflow_values, _ = _end_values(state, "Succeeded", 2, None, now)
            records.finish_run(connection, run_id, token, state.workflow_id, run_values, workflow_values,
                               _completion(self._rehearsed(state, 2, second, lines)))

    def _rehearsed(self, state: RunState, number: int, block_run_id: uuid.UUID, lines: bool) -> CompletedBlock:
        """A block of `rehearse` that succeeded without output, with a log line or none."""
        stored = StoredBlob(f"rehearsal/{block_run_id}", 0, "")
        output = self._output_row(state, number, stored, OutputInfo("none", None, None, None))
        log_lines = [{"time": utcnow().isoformat(), "level": "INFO", "message": "rehearsal"}] if lines else []
        return CompletedBlock(block_run_id, output, 1, log_lines, None)

    # --- a block of a parallel branch, on another worker ---------------------------------------------------------

    def run_elsewhere(self, run_id: uuid.UUID, block_run_id: uuid.UUID) -> str:
        """Run one block queued by its run's worker, if nobody has started it. Its writes are fenced by the run's
        lease and by this worker's claim on the block, so a block declared lost or a run that has ended takes
        nothing more from it."""
        worker = _worker_name()
        with records.bookkeeping(self.db.engine) as connection:
            claimed = records.claim_node(connection, block_run_id, worker, utcnow())
            if claimed is None:
                return "not started"  # its run's worker took it back, or the run ended
            run = records.run_of_node(connection, run_id)
            if run.status != "Running":
                records.end_block_run(connection, block_run_id, "Cancelled", "not started: the run had ended",
                                      utcnow())
                return "not started"
            state = self._run_state(connection, run_id, run, records.workflow_for_run(connection, run.workflow_id))
            for row in records.node_states(connection, run_id):
                if row.status == "Succeeded" and row.output_id is not None:
                    state.outputs[row.number] = records.output_by_id(connection, row.output_id)
                    state.settled[row.number] = "Succeeded"
                elif row.status == "Skipped":
                    state.settled[row.number] = "Skipped"
        state.lease.node = (block_run_id, worker)
        state.number = claimed.number
        with logged_run_of(state), lease_keeper(self.db.engine, self.timing).holding(state.lease):
            try:
                done = self._run_block(state, claimed.number, block_run_id)
                with state.writer.patient(self.timing.grace):  # it ran: what it did is known, and waits to be written
                    state.writer.write(f"recording block {claimed.number}",
                                       lambda connection: self._record_done(connection, done),
                                       landed=lambda connection: records.block_run_ended(connection, block_run_id))
                return "skipped" if isinstance(done, SkippedBlock) else "succeeded"
            except LeaseLostError as lost:
                log.warning("%s; this worker stopped block %d and wrote nothing more", lost, claimed.number)
                return "lease lost"
            except DatabaseUnreachableError as error:
                log.error("run %s, block %d: %s", run_id, claimed.number, error)
                return "stopped"
            except Exception:  # noqa: BLE001 - recorded as the block's failure (_fail_block); its run decides
                return "failed"

    # --- what a block reads ----------------------------------------------------------------------------------------

    def _node_input(self, state: RunState, number: int) -> InputFactory | None:
        """What the block reads: the run's input, nothing (a start block), or its parents' outputs through their
        edges' conditions and mappers, joined in block order. None: no edge delivers anything, the block is
        skipped."""
        if state.fed_by_run_input(number):
            info = OutputInfo("records", "application/x-ndjson", None, None)
            return lambda: load_output(self.blob_store, state.input_blob_key, info)
        parents = state.graph.parents(number)
        if not parents:
            return lambda: None
        delivering = []
        for edge in parents:
            output = state.outputs.get(edge.source)
            if output is None:
                if edge.source not in state.planned:  # checked when the run was made; deleted since?
                    raise BlockError(f"block {edge.source} has no stored output to start from")
                continue  # skipped in this run
            make_input = with_edge(edge.settings, self._reader(output))
            if edge.has_condition and not peeked(make_input())[1]:
                continue
            delivering.append(make_input)
        if not delivering:
            return None
        if len(delivering) == 1:
            return delivering[0]
        return lambda: joined([make_input() for make_input in delivering], number, state.chain[number - 1])

    def _reader(self, output: Row | dict) -> InputFactory:
        info = OutputInfo(_field(output, "kind"), _field(output, "content_type"), _field(output, "record_count"),
                          _field(output, "file_name"))
        key = _field(output, "blob_key")
        return lambda: load_output(self.blob_store, key, info)

    # --- one block -------------------------------------------------------------------------------------------------

    def _run_block(self, state: RunState, number: int, block_run_id: uuid.UUID) -> CompletedBlock | SkippedBlock:
        enter_block(number)  # the process log's lines say which block they come from
        entry = state.chain[number - 1]
        make_input = self._node_input(state, number)
        if make_input is None:
            why = "skipped: no input reached it (a condition kept no record, or the blocks feeding it were skipped)"
            log.info("run %s: block %d (%s) %s", state.run_id, number, entry.get("blockName"), why)
            return SkippedBlock(block_run_id, why)
        block_class = get_block(entry["block"])
        credentials, secrets = state.writer.read(f"reading the credentials of block {number}",
                                                 lambda: run_credentials.for_block(self.services, state, entry))
        redact = Redactor(secrets)
        redact_block_lines(redact)  # any logger's lines, not only the block's own
        block_log = BlockLog(block_class.key, redact)
        progress = BlockProgress(self._progress_recorder(state, block_run_id),
                                 float(self.settings.get("PROGRESS_INTERVAL_SECONDS", DEFAULT_INTERVAL_SECONDS)))
        record_errors = RecordErrors(self.temp_dir, redact)
        began = time.monotonic()
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
            metrics.block_finished(entry["block"], _block_outcome(error), time.monotonic() - began, progress.read)
            raise
        metrics.block_finished(entry["block"], "succeeded", time.monotonic() - began, progress.read,
                               output.get("record_count"))
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
        if state.stored_input(number) is not None:
            resume_after = state.writer.read(f"how far block {number} got before", lambda: self._confirmed_before(
                state, number))
        return dataclasses.replace(context, confirm=confirm, resume_after=resume_after)

    def _confirmed_before(self, state: RunState, number: int) -> int:
        with self.db.engine.connect() as connection:
            return records.unfinished_confirmations(connection, state.workflow_id, state.run_id,
                                                    state.chain[number - 1]["uniqueBlockId"],
                                                    state.stored_input(number).id)

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
            on_record_error=state.chain[number - 1].get("onRecordError") or "fail", record_errors=record_errors,
            time_zone=state.time_zone)

    def _placeholder_values(self, state: RunState, number: int) -> PlaceholderValues:
        return PlaceholderValues(now=utcnow().astimezone(state.time_zone), workflow_name=state.workflow_name,
                                 run_id=str(state.run_id), block_number=number)

    # --- bookkeeping -----------------------------------------------------------------------------------------------

    def _progress_recorder(self, state: RunState, block_run_id: uuid.UUID):  # noqa: ANN202
        def record(read: int | None, written: int | None) -> None:
            state.writer.write_once(f"the progress of block {state.number}", lambda connection: records.record_progress(
                connection, block_run_id, read, written))

        return record

    def _begin_block(self, connection, state: RunState, number: int, block_run_id: uuid.UUID,  # noqa: ANN001
                     status: str = "Running", show: bool = True) -> None:
        records.insert_block_run(connection, state.workflow_id, self._block_run_values(
            state, number, block_run_id, status), show=show and status == "Running")

    @staticmethod
    def _block_run_values(state: RunState, number: int, block_run_id: uuid.UUID, status: str = "Running") -> dict:
        entry = state.chain[number - 1]
        return {"id": block_run_id, "run_id": state.run_id, "number": number,
                "unique_block_id": entry["uniqueBlockId"], "block_name": entry["blockName"],
                "block_key": entry["block"], "status": status, "attempts": 0, "records_in": state.records_in(number),
                "log": [], "date_started": utcnow() if status == "Running" else None,
                "input_output_id": state.input_output_id(number)}

    def _record_done(self, connection, done: CompletedBlock | SkippedBlock) -> None:  # noqa: ANN001
        if isinstance(done, SkippedBlock):
            records.skip_block_run(connection, done.block_run_id, done.why, [], utcnow())
            return
        records.record_completed(connection, _completion(done))

    def _fail_block(self, state: RunState, block_run_id: uuid.UUID, block_log: BlockLog, error: BaseException,
                    redact: Redactor, progress: BlockProgress, record_errors: RecordErrors) -> None:
        if isinstance(error, (LeaseLostError, DatabaseUnreachableError)) or state.lease_trouble:
            return  # nothing of it is this worker's to record (or can be recorded now): see _stop_unreachable
        shown = _readable(state, error)
        cancelled = isinstance(shown, (BlockCancelledError, RunCancelled))
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
                after_outage: bool = False) -> str:
        """End the run; the last completed block not yet recorded is recorded in the same transaction. Fenced: a run
        that is no longer this worker's keeps the final state it has, and no callback is sent from here.
        An end the database's outage leaves unconfirmed past the lease's deadline is written once it is back, as it
        was (the outcome is known and nothing runs any more), within another grace period. ``after_outage``: the
        run's end after such an outage, which writes nothing an unconfirmed write landed already (this end, or
        the block finished here) and, for a run the outage stopped, also ends its blocks in flight and queued."""
        finished = utcnow()
        run_values, workflow_values, follow_up = _end_values(state, status, number, error, finished)
        completed = state.unrecorded

        def record(connection) -> None:  # noqa: ANN001
            unrecorded = completed
            if after_outage:  # the run's row locked: a write still on its way (PostgreSQL) lands before, or not at all
                records.lock_run(connection, state.run_id)
                if records.run_ended_as(connection, state.run_id, state.lease.token, status):
                    return
                if unrecorded is not None and records.block_run_ended(connection, unrecorded.block_run_id):
                    unrecorded = None
            with_end = _completion(unrecorded) if isinstance(unrecorded, CompletedBlock) else None  # in its statement
            if not records.finish_run(connection, state.run_id, state.lease.token, state.workflow_id, run_values,
                                      workflow_values, with_end):
                state.lease.revoked = True
                raise LeaseLostError(f"run {state.run_id} was declared lost and ended by another process")
            if isinstance(unrecorded, SkippedBlock):
                self._record_done(connection, unrecorded)
            if after_outage and error is not None:  # a run stopped: its block in flight; any queued for others
                # the stop is theirs; blocks that failed before it have their own errors (_stopped_after_failures)
                in_flight = str(error)[:4000] if state.failures else run_values["error"]
                records.end_running_blocks(connection, state.run_id, status, in_flight, run_values["error_class"],
                                           finished)
                records.end_queued_nodes(connection, state.run_id, "Cancelled", "not started: the run was stopped",
                                         finished)

        state.lease.ending = True
        try:
            with not_interrupted():  # a worker's stop signal now would only leave the run Running
                state.writer.write("finishing the run", record, landed=lambda connection: (
                    records.run_ended_as(connection, state.run_id, state.lease.token, status)), fences_itself=True,
                    one_statement=not after_outage and not isinstance(completed, SkippedBlock),  # finish_run alone
                    until=state.lease.clock() + self.timing.grace if after_outage else None)
        except (LeaseLostError, DatabaseUnreachableError) as final:
            if after_outage:
                log.warning("run %s: its end was not recorded (%s); the reaper settles it", state.run_id, final)
                return "stopped"
            if isinstance(final, LeaseLostError):
                raise
            log.warning("run %s: its end (%s) is unconfirmed: %s; it is written once the database is back",
                        state.run_id, status, final)
            return self._finish(state, status, number, error, after_outage=True)
        _log_outcome(state, status, number)
        metrics.run_finished(status, state.trigger, time.monotonic() - state.started)
        if follow_up:
            run_endings.follow_up(self.db, self.services.redis, [state.run_id])
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
        if stop_reason() is not None:
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


def _where_stopped(state: RunState, error: DatabaseUnreachableError) -> tuple[int, DatabaseUnreachableError]:
    """Where a run stopped by a database outage fails: at the block in hand when it had not finished; after one
    that had, at the first block of the plan not ended (the one the lost step began, or one left to other workers),
    so that a re-run from the failed block does not repeat a block whose side effects already happened."""
    if state.settled.get(state.number) not in ("Succeeded", "Skipped"):
        return state.number, error
    left = [number for number in state.plan if number not in state.settled and number not in state.blocked]
    if not left:
        return state.number, error
    if left[0] in state.elsewhere:
        return left[0], DatabaseUnreachableError(error.cause, f"while waiting for block {left[0]} on another worker")
    return left[0], DatabaseUnreachableError(error.cause, f"before block {left[0]} started")


def _failed_blocks(state: RunState) -> str:
    """Every block that failed, named, with its error."""
    if len(state.failures) == 1:
        number, text = state.failures[0]
        return f"block {number} ({state.chain[number - 1].get('blockName')}) failed: {text}"
    named = "; ".join(f"block {number} ({state.chain[number - 1].get('blockName')}): {text}"
                      for number, text in state.failures)
    return f"{len(state.failures)} blocks failed: {named}"


def _stopped_after_failures(state: RunState, number: int, stop: str) -> int:
    """Where a run stopped before its end (a database outage, the worker's shutdown, a platform error) fails: after
    blocks that had failed (policy continue; or failFast, stopped while ending the run) at the first of them, as a run
    that went on to its end would, its error naming them before what stopped it; else at `number`."""
    if not state.failures:
        return number
    state.error_text = f"{_failed_blocks(state)}; then {stop}"
    return state.failures[0][0]


def _unfit_plan(chain: list[dict], plan: list[int]) -> str | None:
    """Why a run's blocks (planned when it was queued) are not all in the workflow's chain as it is now, if so."""
    missing = [number for number in plan if not 1 <= number <= len(chain)]
    if not missing:
        return None
    blocks = f"{len(chain)} block{'s' if len(chain) != 1 else ''}"
    return (f"the workflow changed after this run was queued: it has {blocks} now, and the run was to run "
            f"{'blocks' if len(missing) > 1 else 'block'} {', '.join(map(str, missing))}; start the run again")


def _end_values(state: RunState, status: str, number: int, error: BaseException | None,
                finished: datetime) -> tuple[dict, dict, bool]:
    """What the run's end writes to the run and to its workflow, and whether it is followed up (callbacks, mail)."""
    run_values = {"status": status, "date_finished": finished, "records_failed": state.records_failed or None}
    if error is not None:
        run_values.update(error=(state.error_text or str(error) or type(error).__name__)[:4000],
                          error_class=type(error).__name__, failed_block=number)
    workflow_values = {"status": "Failed" if status == "Failed" else "Ready", "current_block": number,
                       "date_last_run": finished}
    follow_up = _needs_follow_up(state, status)
    if not follow_up:  # nothing to send: followed up by the final write itself (no transaction more)
        run_values["followed_up_at"] = finished
    return run_values, workflow_values, follow_up


def _needs_follow_up(state: RunState, status: str) -> bool:
    """Whether the run's end may send a callback or a notification (canvas.execution.run_endings)."""
    mailed = status == "Failed" or (status == "Succeeded" and state.after_failure)  # a failure or a recovery
    return ((state.has_callbacks and status in run_callbacks.EVENTS)
            or (state.has_notifications and not state.dry_run and mailed))


def _completion(done: CompletedBlock) -> records.Completion:
    return records.completion(done.output, done.block_run_id, done.attempts, done.log, done.records_read, utcnow(),
                              done.records_failed or None, done.errors_blob_key)


def _safe_to_retry(error: BlockError, block) -> bool:  # noqa: ANN001 - a Block
    if not error.transient or getattr(error, "outcome_unknown", False):
        return False
    return not getattr(block, "side_effects", False) or bool(getattr(error, "retry_safe", False))


class WorkerDiskError(Exception):
    """The worker's own disk refused a block's write (its temporary files): full, over quota, or past a file-size
    limit. The path is the operator's, for the worker's log; the run history says what happened and what to do."""


# What a disk answers when it takes no more: full, over quota, a file past its size limit (RLIMIT_FSIZE).
DISK_REFUSALS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
# Failures of the platform's own services, whose messages are written for people: no traceback, no class name.
INFRASTRUCTURE_ERRORS = (DatabaseUnreachableError, BlobStoreError, WorkerShutdownError, WorkerDiskError)


def _readable(state: RunState, error: BaseException) -> BaseException:
    """The error the run history shows: a lost database connection or a full disk in words (the driver's text and
    the path are for the log); a block that stopped because the worker is shutting down, with that reason."""
    if isinstance(error, (BlockCancelledError, RunCancelled)) and stop_reason() is not None:
        return WorkerShutdownError(stop_reason())
    if isinstance(error, DBAPIError) and is_connection_error(error):
        return DatabaseUnreachableError(database_trouble(error), f"while running block {state.number}")
    if isinstance(error, OSError) and error.errno in DISK_REFUSALS:
        return WorkerDiskError(f"the worker could not write to its disk while running block {state.number} "
                               f"({os.strerror(error.errno)}): free space on the worker's disk (its data directory) "
                               "and run the block again")
    return error


def _block_outcome(error: BaseException) -> str:
    """A block's outcome as a metric label: cancelled (by a person, or a run that is no longer this worker's) or
    failed."""
    return "cancelled" if isinstance(error, (BlockCancelledError, RunCancelled, LeaseLostError)) else "failed"


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


def _field(output: Row | dict, name: str):  # noqa: ANN202 - a stored output as a row, or one made in this run
    return output[name] if isinstance(output, dict) else getattr(output, name)
