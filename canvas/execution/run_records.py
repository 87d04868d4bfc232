"""The runner's writes to run, block-run, output and workflow rows, as Core statements built once.

A run of short blocks is dominated by this bookkeeping; prebuilt statements with bound parameters skip the ORM's
per-call statement construction (measured: about a third of a no-op run's cost).
"""
from __future__ import annotations

import functools
import uuid
from collections import namedtuple
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import (JSON, Select, String, Update, bindparam, case, column, exists, func, insert, literal,
                        literal_column, or_, select, true, update)
from sqlalchemy.engine import Connection, Engine, Row

from canvas.execution.run_log import line_rows
from canvas.models import Account, BlockOutput, BlockRun, FlowCallback, LogLine, Workflow, WorkflowRun

RUNS, WORKFLOWS, CALLBACKS = WorkflowRun.__table__, Workflow.__table__, FlowCallback.__table__
BLOCK_RUNS, OUTPUTS, ACCOUNTS = BlockRun.__table__, BlockOutput.__table__, Account.__table__
LOG_LINES = LogLine.__table__


# Parameters of a statement with several writes are named part__column: a parameter named like a column would be
# set by every write to a table that has that column.
def bound_params(table, part: str, names: tuple) -> dict:  # noqa: ANN001 - a Table
    return {name: bindparam(f"{part}__{name}", type_=table.c[name].type) for name in names}


def named_values(part: str, values: dict) -> dict:
    return {f"{part}__{name}": value for name, value in values.items()}


def written_in(status: str):  # noqa: ANN201 - a ColumnElement
    """A fixed status to compare a run's status with, written into the SQL instead of bound: SQLite prepares a
    statement again at every execution when it compares a bound value with a column that a partial index's WHERE
    names (workflow_run's status: uq_workflow_run_active, ix_workflow_run_failed), to learn whether the index
    applies - unless a unique key already picks the row. Measured: the workflow's read at a run's claim (its last
    outcome) took 120-190 us with its two statuses bound, 25 us with them written in."""
    return literal_column(f"'{status}'", String)


CLAIMED = (RUNS.c.workflow_id, RUNS.c.account_id, RUNS.c.run_from_block, RUNS.c.run_till_block, RUNS.c.dry_run,
           RUNS.c.input_blob_key, RUNS.c.lease_token, RUNS.c.block_numbers,
           RUNS.c.trigger)  # the trigger: only a label of the run's metrics
CLAIM_RUN = (update(RUNS).where(RUNS.c.id == bindparam("run_id"), RUNS.c.status == "Queued")
             .values(status="Running", date_started=bindparam("now"), worker_name=bindparam("worker"),
                     heartbeat_at=bindparam("now"), lease_token=RUNS.c.lease_token + 1)
             .returning(*CLAIMED))
# The fence: renews the lease only while the run is still Running under this token (on PostgreSQL it also locks the
# run row until the commit, so a reaper cannot revoke the lease between the fence and the write it guards).
RENEW_LEASE = (update(RUNS).where(RUNS.c.id == bindparam("run_id"), RUNS.c.lease_token == bindparam("token"),
                                  RUNS.c.status == "Running")
               .values(heartbeat_at=bindparam("now"))
               .returning(RUNS.c.cancel_requested))  # every renewal also says whether a cancel was asked for
CLAIMED_BY = select(*CLAIMED).where(RUNS.c.id == bindparam("run_id"), RUNS.c.status == "Running",
                                             RUNS.c.worker_name == bindparam("worker"),
                                             RUNS.c.date_started == bindparam("now"))
RUN_ENDED_AS = select(RUNS.c.id).where(RUNS.c.id == bindparam("run_id"), RUNS.c.lease_token == bindparam("token"),
                                       RUNS.c.status == bindparam("status"))
LOCK_RUN = select(RUNS.c.id).where(RUNS.c.id == bindparam("run_id")).with_for_update()
BLOCK_RUN_EXISTS = select(BLOCK_RUNS.c.id).where(BLOCK_RUNS.c.id == bindparam("block_run_id"))
BLOCK_RUN_ENDED = select(BLOCK_RUNS.c.id).where(BLOCK_RUNS.c.id == bindparam("block_run_id"),
                                                BLOCK_RUNS.c.status != "Running")
# Whether the run has callbacks to send when it ends is asked here, once, so a run without any (most) costs no
# query at its end.
HAS_CALLBACKS = exists().where(CALLBACKS.c.workflow_id == WORKFLOWS.c.id).label("has_callbacks")
# Likewise whether anybody is mailed about its runs (canvas.notifications.settings.audience, roughly: a workflow's
# settings, or its account's global notifications to a default address).
NOTIFIES = or_(WORKFLOWS.c.notification_settings.is_not(None),
               exists().where(ACCOUNTS.c.id == WORKFLOWS.c.account_id, ACCOUNTS.c.global_notifications.is_(True),
                              ACCOUNTS.c.default_notification_email.is_not(None)))
HAS_NOTIFICATIONS = NOTIFIES.label("has_notifications")
# And, only then, whether the workflow's previous finished run failed: a success after it is a recovery to mail,
# any other success needs no follow-up (no other run of the workflow can end while this one is active).
# (Two comparisons, not IN: an IN list is an "expanding" parameter, which makes SQLAlchemy render the statement
# again at every execution: a tenth of a millisecond of a claim's Python time.)
LAST_OUTCOME = (select(RUNS.c.status).where(RUNS.c.workflow_id == WORKFLOWS.c.id, RUNS.c.dry_run.is_(False),
                                            or_(RUNS.c.status == written_in("Succeeded"),
                                                RUNS.c.status == written_in("Failed")))
                .order_by(RUNS.c.date_finished.desc()).limit(1).scalar_subquery())
AFTER_FAILURE = case((NOTIFIES, LAST_OUTCOME == "Failed"), else_=False).label("after_failure")
WORKFLOW_COLUMNS = (WORKFLOWS.c.id, WORKFLOWS.c.name, WORKFLOWS.c.chain, WORKFLOWS.c.account_id,
                    WORKFLOWS.c.schedule_frequency, WORKFLOWS.c.failure_policy, HAS_CALLBACKS, HAS_NOTIFICATIONS,
                    AFTER_FAILURE)
WORKFLOW_FOR_RUN = select(*WORKFLOW_COLUMNS).where(WORKFLOWS.c.id == bindparam("workflow_id"))
SET_WORKFLOW_RUNNING = (update(WORKFLOWS).where(WORKFLOWS.c.id == bindparam("workflow_id"))
                        .values(status="Running", current_block=bindparam("number")))
# On PostgreSQL the claim, the workflow marked Running at the run's first block, the first block's run and the
# workflow's read are one statement, sent without BEGIN and COMMIT (a round trip instead of four): the workflow is
# updated and the block run inserted only when the claim took, and the read sees the columns the update does not
# touch. The block's number (RunState.first: the first of block_numbers, else run_from_block) and name come from the
# claimed run and the workflow's chain; its input (records_in, input_output_id), known once the stored outputs it
# reads are, is written right after when it has one (a run starting mid-chain): until its input is written the block
# has started nothing, so a worker lost in between leaves nothing to resume from.
ClaimedRun = namedtuple("ClaimedRun", [column.name for column in CLAIMED])
WorkflowForRun = namedtuple("WorkflowForRun", [column.name for column in WORKFLOW_COLUMNS])
_CLAIMED = CLAIM_RUN.cte("claimed")
_FIRST = func.coalesce(_CLAIMED.c.block_numbers[0].as_integer(), _CLAIMED.c.run_from_block)
_FIRST_ENTRY = WORKFLOWS.c.chain.op("->")(_FIRST - 1)
BEGIN_FIRST_BLOCK = insert(BLOCK_RUNS).from_select(
    ("id", "run_id", "number", "unique_block_id", "block_name", "block_key", "status", "attempts", "log",
     "date_started"),
    select(bindparam("block_run_id", type_=BLOCK_RUNS.c.id.type), bindparam("run_id", type_=RUNS.c.id.type), _FIRST,
           *(_FIRST_ENTRY.op("->>")(literal(key)) for key in ("uniqueBlockId", "blockName", "block")),
           literal("Running"), literal(0), literal([], BLOCK_RUNS.c.log.type),
           bindparam("now", type_=RUNS.c.date_started.type))
    .where(WORKFLOWS.c.id == _CLAIMED.c.workflow_id,
           _FIRST_ENTRY.is_not(None)))  # a block the workflow lost since the run was queued: the runner fails it
CLAIM_RUN_WITH_WORKFLOW = (
    select(*_CLAIMED.c, *(column.label(f"workflow_{column.name}") for column in WORKFLOW_COLUMNS))
    .where(WORKFLOWS.c.id == _CLAIMED.c.workflow_id)
    .add_cte(update(WORKFLOWS).where(WORKFLOWS.c.id == _CLAIMED.c.workflow_id)
             .values(status="Running", current_block=_CLAIMED.c.run_from_block).cte("running"),
             BEGIN_FIRST_BLOCK.cte("begun")))
SET_BLOCK_INPUT = (update(BLOCK_RUNS).where(BLOCK_RUNS.c.id == bindparam("block_run_id"))
                   .values(records_in=bindparam("records_in"), input_output_id=bindparam("input_output_id")))
SET_CURRENT_BLOCK = (update(WORKFLOWS).where(WORKFLOWS.c.id == bindparam("workflow_id"))
                     .values(current_block=bindparam("number")))
INSERT_BLOCK_RUN = insert(BLOCK_RUNS)
INSERT_OUTPUT = insert(OUTPUTS)
COMPLETION_COLUMNS = ("status", "date_finished", "attempts", "records_out", "records_read", "output_id",
                      "records_failed", "errors_blob_key", "log")
COMPLETE_BLOCK_RUN = (update(BLOCK_RUNS).where(BLOCK_RUNS.c.id == bindparam("block__id"))
                      .values(**bound_params(BLOCK_RUNS, "block", COMPLETION_COLUMNS)))
RECORD_PROGRESS = (update(BLOCK_RUNS).where(BLOCK_RUNS.c.id == bindparam("block_run_id"),
                                            BLOCK_RUNS.c.status == "Running")  # never over a finished block's counts
                   .values(records_read=bindparam("records_read"), records_out=bindparam("records_out")))
FAIL_BLOCK_RUN = (update(BLOCK_RUNS).where(BLOCK_RUNS.c.id == bindparam("block_run_id"))
                  .values(status=bindparam("status"), date_finished=bindparam("now"), error=bindparam("error"),
                          error_class=bindparam("error_class"), attempts=bindparam("attempts"),
                          records_read=bindparam("records_read"), records_out=None,
                          records_failed=bindparam("records_failed"), errors_blob_key=bindparam("errors_blob_key"),
                          log=bindparam("lines", type_=BLOCK_RUNS.c.log.type)))
END_RUNNING_BLOCKS = (update(BLOCK_RUNS).where(BLOCK_RUNS.c.run_id == bindparam("of_run"),
                                               BLOCK_RUNS.c.status == "Running")
                      .values(status=bindparam("status"), error=bindparam("error"),
                              error_class=bindparam("error_class"), date_finished=bindparam("now")))
CANCEL_REQUESTED = select(RUNS.c.cancel_requested).where(RUNS.c.id == bindparam("run_id"))
# A block's lines are indexed (log_line) under its workflow's organization and account, found through its block run.
LINE_VALUES = ("position", "logged_at", "stated_time", "level", "message")
_LINE_OWNERS = select(WORKFLOWS.c.organization_id, WORKFLOWS.c.account_id, WORKFLOWS.c.id, BLOCK_RUNS.c.run_id,
                      BLOCK_RUNS.c.id).select_from(
    BLOCK_RUNS.join(RUNS, RUNS.c.id == BLOCK_RUNS.c.run_id).join(WORKFLOWS, WORKFLOWS.c.id == RUNS.c.workflow_id))
_LINE_COLUMNS = ("organization_id", "account_id", "workflow_id", "run_id", "block_run_id", *LINE_VALUES)
INSERT_LINES = insert(LOG_LINES).from_select(
    _LINE_COLUMNS, _LINE_OWNERS.add_columns(*(bindparam(name, type_=LOG_LINES.c[name].type) for name in LINE_VALUES))
    .where(BLOCK_RUNS.c.id == bindparam("block_run_id")))
# The same inside one statement (PostgreSQL): the lines as one JSON parameter, read as rows by json_to_recordset.
_LINE_RECORDS = (func.json_to_recordset(bindparam("lines__rows", type_=JSON))
                 .table_valued(*(column(name, LOG_LINES.c[name].type) for name in LINE_VALUES))
                 .render_derived(with_types=True))


ASYNC_COMMIT = "canvas.async_commit"  # marks a pooled PostgreSQL connection already set to synchronous_commit off


@contextmanager
def bookkeeping(engine: Engine, one_statement: bool = False) -> Iterator[Connection]:
    """A transaction for run bookkeeping. On PostgreSQL it does not wait for its WAL flush (synchronous_commit
    off): a database crash may lose the last few milliseconds of run progress, which the reaper then settles as
    "worker lost", and in exchange a short run spends no time waiting on the disk. Outputs are not at risk: a
    block output row refers to a blob written before it.

    ``one_statement``: on PostgreSQL no transaction is opened around the work, each statement commits by itself
    (the driver sends BEGIN and COMMIT as round trips of their own): for work that is a single statement, atomic by
    itself, or whose later statements may land apart from the first (they are written again if it is retried).

    The setting is made once per pooled connection (a session setting, not one statement per transaction); only
    worker processes write bookkeeping, and everything a worker writes is run bookkeeping."""
    with engine.connect() as connection:
        if connection.dialect.name == "postgresql" and not connection.info.get(ASYNC_COMMIT):
            connection.exec_driver_sql("SET synchronous_commit = off")
            connection.commit()
            connection.info[ASYNC_COMMIT] = True
        if one_statement and connection.dialect.name == "postgresql":
            yield connection.execution_options(isolation_level="AUTOCOMMIT")
            return
        with connection.begin():
            yield connection


def in_one_statement(bind: Engine | Connection) -> bool:
    """PostgreSQL, whose data-modifying CTEs make a run's start (its row and its workflow marked Queued: see
    canvas.queueing.dispatch), its claim (which then begins its first block: see
    CLAIM_RUN_WITH_WORKFLOW), each step from a block to the next (`advance`) and its end one statement each."""
    return bind.dialect.name == "postgresql"


def claim_run(connection: Connection, run_id: uuid.UUID, now: datetime, worker: str,
              first_block_run_id: uuid.UUID) -> tuple[Row, Row] | None:
    """Queued -> Running: the claimed run and its workflow, marked Running at the run's first block; None when the
    run is no longer queued (and nothing is written). On PostgreSQL the first block's run, `first_block_run_id`, is
    begun with it (see CLAIM_RUN_WITH_WORKFLOW)."""
    params = {"run_id": run_id, "now": now, "worker": worker}
    if in_one_statement(connection):
        row = connection.execute(CLAIM_RUN_WITH_WORKFLOW, {**params, "block_run_id": first_block_run_id}).first()
        return None if row is None else (ClaimedRun(*row[:len(CLAIMED)]), WorkflowForRun(*row[len(CLAIMED):]))
    claimed = connection.execute(CLAIM_RUN, params).first()
    if claimed is None:
        return None
    return claimed, workflow_for_run(connection, claimed.workflow_id, claimed.run_from_block)


def claimed_by(connection: Connection, run_id: uuid.UUID, worker: str, now: datetime) -> Row | None:
    """What `claim_run` returns, for a claim this worker made at `now` whose commit landed after all."""
    return connection.execute(CLAIMED_BY, {"run_id": run_id, "worker": worker, "now": now}).first()


def renew_lease(connection: Connection, run_id: uuid.UUID, token: int, now: datetime,
                node: tuple[uuid.UUID, str] | None = None) -> Row | None:
    """The renewal (its `cancel_requested`), or None when the lease is lost. `node`: (block run id, worker) of a
    block run by another worker than its run's: its claim is fenced too."""
    renewal = connection.execute(RENEW_LEASE, {"run_id": run_id, "token": token, "now": now}).first()
    if renewal is None or node is None:
        return renewal
    held = connection.execute(RENEW_NODE, {"block_run_id": node[0], "worker": node[1], "now": now}).rowcount == 1
    return renewal if held else None


def run_ended_as(connection: Connection, run_id: uuid.UUID, token: int, status: str) -> bool:
    return connection.execute(RUN_ENDED_AS, {"run_id": run_id, "token": token, "status": status}).first() is not None


def lock_run(connection: Connection, run_id: uuid.UUID) -> None:
    """The run's row locked until the transaction ends (PostgreSQL; SQLite's writers take turns anyway)."""
    connection.execute(LOCK_RUN, {"run_id": run_id})


def block_run_exists(connection: Connection, block_run_id: uuid.UUID) -> bool:
    return connection.execute(BLOCK_RUN_EXISTS, {"block_run_id": block_run_id}).first() is not None


def block_run_ended(connection: Connection, block_run_id: uuid.UUID) -> bool:
    return connection.execute(BLOCK_RUN_ENDED, {"block_run_id": block_run_id}).first() is not None


def fail_block_run(connection: Connection, block_run_id: uuid.UUID, values: dict) -> None:
    connection.execute(FAIL_BLOCK_RUN, {"block_run_id": block_run_id, **values})
    insert_lines(connection, block_run_id, line_rows(values["lines"], values["now"]))


def insert_lines(connection: Connection, block_run_id: uuid.UUID, rows: list[dict]) -> None:
    """Index a block's lines (rows from run_log.line_rows) with the write that records them."""
    if rows:
        connection.execute(INSERT_LINES, [{**row, "block_run_id": block_run_id} for row in rows])


def workflow_for_run(connection: Connection, workflow_id: uuid.UUID, first_block: int | None = None) -> Row:
    """The workflow a run runs; `first_block`: the run starts now, at that block (the workflow shows it)."""
    if first_block is not None:
        connection.execute(SET_WORKFLOW_RUNNING, {"workflow_id": workflow_id, "number": first_block})
    return connection.execute(WORKFLOW_FOR_RUN, {"workflow_id": workflow_id}).one()


def set_block_input(connection: Connection, block_run_id: uuid.UUID, records_in: int | None,
                    input_output_id: uuid.UUID | None) -> None:
    connection.execute(SET_BLOCK_INPUT, {"block_run_id": block_run_id, "records_in": records_in,
                                         "input_output_id": input_output_id})


def insert_block_run(connection: Connection, workflow_id: uuid.UUID, values: dict, show: bool = True) -> None:
    """`show`: the workflow's current block becomes this one (not needed when the run's start already said so)."""
    connection.execute(INSERT_BLOCK_RUN, values)
    if show:
        connection.execute(SET_CURRENT_BLOCK, {"workflow_id": workflow_id, "number": values["number"]})


@dataclass(frozen=True)
class Completion:
    """A block that succeeded, as written: its output row, its block run's new values and its lines' log_line rows."""

    output: dict
    block_run_id: uuid.UUID
    values: dict
    lines: list[dict]

    @property
    def shape(self) -> tuple[tuple, bool]:
        """What the statement recording it depends on: the output's columns, and whether it logged lines."""
        return tuple(self.output), bool(self.lines)


def completion(output: dict, block_run_id: uuid.UUID, attempts: int, lines: list[dict], records_read: int | None,
               now: datetime, records_failed: int | None = None, errors_blob_key: str | None = None) -> Completion:
    values = ("Succeeded", now, attempts, output["record_count"], records_read, output["id"], records_failed,
              errors_blob_key, lines)
    return Completion(output, block_run_id, dict(zip(COMPLETION_COLUMNS, values)), line_rows(lines, now))


def record_completed(connection: Connection, completed: Completion) -> None:
    connection.execute(INSERT_OUTPUT, completed.output)
    connection.execute(COMPLETE_BLOCK_RUN,
                       {**named_values("block", completed.values), "block__id": completed.block_run_id})
    insert_lines(connection, completed.block_run_id, completed.lines)


def record_progress(connection: Connection, block_run_id: uuid.UUID, records_read: int | None,
                    records_out: int | None) -> None:
    connection.execute(RECORD_PROGRESS, {"block_run_id": block_run_id, "records_read": records_read,
                                         "records_out": records_out})


def finish_run(connection: Connection, run_id: uuid.UUID, token: int, workflow_id: uuid.UUID, run_values: dict,
               workflow_values: dict, completed: Completion | None = None) -> bool:
    """End the run, fenced like a lease renewal: only while it is still Running under `token` (else False, and
    nothing is written); `completed`, its last block, is recorded with it."""
    params = {"run__id": run_id, "run__token": token, "workflow__id": workflow_id, **named_values("run", run_values),
              **named_values("workflow", workflow_values)}
    if in_one_statement(connection):
        shape = (tuple(run_values), tuple(workflow_values), None if completed is None else completed.shape)
        return connection.execute(_finish_statement(*shape), {**params, **_completion_params(completed)}
                                  ).first() is not None
    end_run, update_workflow = _finish_statements(tuple(run_values), tuple(workflow_values))
    if connection.execute(end_run, params).rowcount != 1:
        return False
    connection.execute(update_workflow, params)
    if completed is not None:
        record_completed(connection, completed)
    return True


# The run row's write fenced by the worker's lease: only while the run is still Running under the worker's token.
FENCED_RUN = update(RUNS).where(RUNS.c.id == bindparam("run__id"), RUNS.c.lease_token == bindparam("run__token"),
                                RUNS.c.status == "Running")


def _completion_params(completed: Completion | None) -> dict:
    """The parameters of `_completion_writes` for a completed block (none without one)."""
    if completed is None:
        return {}
    lines = {"lines__rows": [{**row, "logged_at": row["logged_at"].isoformat()} for row in completed.lines]}
    return {**named_values("output", completed.output), **named_values("block", completed.values),
            "block__id": completed.block_run_id, **(lines if completed.lines else {})}


def _completion_writes(shape: tuple[tuple, bool] | None, fence) -> list:  # noqa: ANN001 - an EXISTS clause
    """A completed block's output row, block run's completion and lines (Completion.shape: when it logged any),
    each written only when `fence` holds."""
    if shape is None:
        return []
    output_names, with_lines = shape
    writes = [insert(OUTPUTS).from_select(output_names,
                                          select(*bound_params(OUTPUTS, "output", output_names).values()).where(fence)),
              COMPLETE_BLOCK_RUN.where(fence)]
    if with_lines:
        owned = _LINE_OWNERS.join_from(BLOCK_RUNS, _LINE_RECORDS, true())  # each line with its block's owners
        writes.append(insert(LOG_LINES).from_select(_LINE_COLUMNS, owned.add_columns(*_LINE_RECORDS.c).where(
            BLOCK_RUNS.c.id == bindparam("block__id"), fence)))
    return writes


# The end-of-run and step statements are built once per shape (the names of the values each part writes), not per
# run: building the expressions cost more Python time per run than compiling them (SQLAlchemy caches the compiled
# form, not the expression).
@functools.cache
def _finish_statements(run_names: tuple, workflow_names: tuple) -> tuple[Update, Update]:
    """SQLite: the fenced end of the run, then its workflow's update."""
    return (FENCED_RUN.values(**bound_params(RUNS, "run", run_names)),
            update(WORKFLOWS).where(WORKFLOWS.c.id == bindparam("workflow__id"))
            .values(**bound_params(WORKFLOWS, "workflow", workflow_names)))


@functools.cache
def _finish_statement(run_names: tuple, workflow_names: tuple, completed: tuple[tuple, bool] | None) -> Select:
    """PostgreSQL: the run's end and the writes that go with it as one statement (one round trip instead of up to
    four), each write conditional on the fenced end of the run, so that a lost lease still writes nothing."""
    ended = FENCED_RUN.values(**bound_params(RUNS, "run", run_names)).returning(RUNS.c.id).cte("ended")
    fence = select(ended.c.id).exists()
    writes = [update(WORKFLOWS).where(WORKFLOWS.c.id == bindparam("workflow__id"), fence)
              .values(**bound_params(WORKFLOWS, "workflow", workflow_names)), *_completion_writes(completed, fence)]
    return select(ended.c.id).add_cte(*(write.cte(f"write_{n}") for n, write in enumerate(writes)))


def advance(connection: Connection, run_id: uuid.UUID, token: int, now: datetime, workflow_id: uuid.UUID,
            begin: dict, completed: Completion | None = None) -> Row | None:
    """PostgreSQL: a run's step from one block to the next as one statement - the lease renewed (fenced by
    `token`), `completed` recorded, the block run `begin` inserted and shown as the workflow's current block - each
    write only when the renewal took and no cancel was asked for. The renewal (its `cancel_requested`), or None when
    the lease is lost; in both those cases nothing is written."""
    params = {"run__id": run_id, "run__token": token, "run__now": now, "workflow__id": workflow_id,
              **named_values("begin", begin), **_completion_params(completed)}
    statement = _advance_statement(tuple(begin), None if completed is None else completed.shape)
    return connection.execute(statement, params).first()


@functools.cache
def _advance_statement(begin_names: tuple, completed: tuple[tuple, bool] | None) -> Select:
    renewed = (FENCED_RUN.values(heartbeat_at=bindparam("run__now")).returning(RUNS.c.cancel_requested)
               .cte("renewed"))
    go = select(renewed.c.cancel_requested).where(renewed.c.cancel_requested.is_not(True)).exists()
    writes = [*_completion_writes(completed, go),
              insert(BLOCK_RUNS).from_select(
                  begin_names, select(*bound_params(BLOCK_RUNS, "begin", begin_names).values()).where(go)),
              update(WORKFLOWS).where(WORKFLOWS.c.id == bindparam("workflow__id"), go)
              .values(current_block=bindparam("begin__number"))]
    return select(renewed.c.cancel_requested).add_cte(*(write.cte(f"write_{n}") for n, write in enumerate(writes)))


def end_running_blocks(connection: Connection, run_id: uuid.UUID, status: str, error: str | None,
                       error_class: str | None, now: datetime) -> None:
    connection.execute(END_RUNNING_BLOCKS, {"of_run": run_id, "status": status, "error": error,
                                            "error_class": error_class, "now": now})


def latest_output_row(connection: Connection, workflow_id: uuid.UUID, unique_block_id: str) -> Row | None:
    """The block's newest stored output (id, where and what it is): what a run starting after it reads."""
    query = (select(OUTPUTS.c.id, OUTPUTS.c.record_count, OUTPUTS.c.kind, OUTPUTS.c.content_type,
                    OUTPUTS.c.file_name, OUTPUTS.c.blob_key)
             .where(OUTPUTS.c.workflow_id == workflow_id, OUTPUTS.c.unique_block_id == unique_block_id,
                    OUTPUTS.c.dry_run.is_(False))
             .order_by(OUTPUTS.c.date_created.desc()).limit(1))
    return connection.execute(query).first()


CONFIRM_RECORDS = (update(BLOCK_RUNS).where(BLOCK_RUNS.c.id == bindparam("block_run_id"))
                   .values(records_confirmed=bindparam("count")))


def confirm_records(connection: Connection, block_run_id: uuid.UUID, count: int) -> None:
    connection.execute(CONFIRM_RECORDS, {"block_run_id": block_run_id, "count": count})


def unfinished_confirmations(connection: Connection, workflow_id: uuid.UUID, run_id: uuid.UUID,
                             unique_block_id: str, input_output_id: uuid.UUID) -> int:
    """Records confirmed by the block's previous run, when that run of it did not finish and read the same input."""
    previous = connection.execute(
        select(BLOCK_RUNS.c.status, BLOCK_RUNS.c.records_confirmed, BLOCK_RUNS.c.input_output_id)
        .join(RUNS, RUNS.c.id == BLOCK_RUNS.c.run_id)
        .where(RUNS.c.workflow_id == workflow_id, RUNS.c.id != run_id, RUNS.c.dry_run.is_(False),
               BLOCK_RUNS.c.unique_block_id == unique_block_id)
        .order_by(BLOCK_RUNS.c.date_started.desc()).limit(1)).first()
    if previous is None or previous.status not in ("Failed", "Cancelled") or previous.input_output_id != input_output_id:
        return 0
    return previous.records_confirmed or 0


def bindings(connection: Connection, workflow_id: uuid.UUID) -> dict:
    from canvas.models import WorkflowApplication

    table = WorkflowApplication.__table__
    rows = connection.execute(select(table.c.short_name, table.c.registered_application_id)
                              .where(table.c.workflow_id == workflow_id))
    return {short_name: registered_id for short_name, registered_id in rows}


def cancel_requested(connection: Connection, run_id: uuid.UUID) -> bool:
    return bool(connection.execute(CANCEL_REQUESTED, {"run_id": run_id}).scalar())


# --- blocks of parallel branches: queued for any worker, claimed by one, watched by the run's worker -------------

RENEW_NODE = (update(BLOCK_RUNS).where(BLOCK_RUNS.c.id == bindparam("block_run_id"), BLOCK_RUNS.c.status == "Running",
                                       BLOCK_RUNS.c.worker_name == bindparam("worker"))
              .values(heartbeat_at=bindparam("now")))
CLAIM_NODE = (update(BLOCK_RUNS).where(BLOCK_RUNS.c.id == bindparam("block_run_id"), BLOCK_RUNS.c.status == "Queued")
              .values(status="Running", worker_name=bindparam("worker"), heartbeat_at=bindparam("now"),
                      date_started=bindparam("now"))
              .returning(BLOCK_RUNS.c.run_id, BLOCK_RUNS.c.number))
RUN_OF_NODE = select(RUNS.c.status, *CLAIMED).where(RUNS.c.id == bindparam("run_id"))
NODE_STATES = select(BLOCK_RUNS.c.id, BLOCK_RUNS.c.number, BLOCK_RUNS.c.status, BLOCK_RUNS.c.error,
                     BLOCK_RUNS.c.output_id, BLOCK_RUNS.c.heartbeat_at
                     ).where(BLOCK_RUNS.c.run_id == bindparam("of_run"))
OUTPUT_BY_ID = select(OUTPUTS.c.id, OUTPUTS.c.record_count, OUTPUTS.c.kind, OUTPUTS.c.content_type,
                      OUTPUTS.c.file_name, OUTPUTS.c.blob_key).where(OUTPUTS.c.id == bindparam("output_id"))
END_QUEUED_NODES = (update(BLOCK_RUNS).where(BLOCK_RUNS.c.run_id == bindparam("of_run"),
                                             BLOCK_RUNS.c.status == "Queued")
                    .values(status=bindparam("status"), error=bindparam("error"), date_finished=bindparam("now")))
LOSE_SILENT_NODE = (update(BLOCK_RUNS).where(BLOCK_RUNS.c.id == bindparam("block_run_id"),
                                             BLOCK_RUNS.c.status == "Running",
                                             BLOCK_RUNS.c.heartbeat_at < bindparam("cutoff"))
                    .values(status="Failed", error=bindparam("error"), error_class="WorkerLost",
                            date_finished=bindparam("now")))
SKIP_BLOCK_RUN = (update(BLOCK_RUNS).where(BLOCK_RUNS.c.id == bindparam("block_run_id"))
                  .values(status="Skipped", date_finished=bindparam("now"), error=bindparam("why"),
                          log=bindparam("lines", type_=BLOCK_RUNS.c.log.type)))


def claim_node(connection: Connection, block_run_id: uuid.UUID, worker: str, now: datetime) -> Row | None:
    return connection.execute(CLAIM_NODE, {"block_run_id": block_run_id, "worker": worker, "now": now}).first()


def node_claimed_by(connection: Connection, block_run_id: uuid.UUID, worker: str) -> bool:
    return connection.execute(select(BLOCK_RUNS.c.id).where(BLOCK_RUNS.c.id == block_run_id,
                                                            BLOCK_RUNS.c.worker_name == worker)).first() is not None


def run_of_node(connection: Connection, run_id: uuid.UUID) -> Row:
    return connection.execute(RUN_OF_NODE, {"run_id": run_id}).one()


def node_states(connection: Connection, run_id: uuid.UUID) -> list[Row]:
    return list(connection.execute(NODE_STATES, {"of_run": run_id}))


def output_by_id(connection: Connection, output_id: uuid.UUID) -> Row | None:
    return connection.execute(OUTPUT_BY_ID, {"output_id": output_id}).first()


def end_queued_nodes(connection: Connection, run_id: uuid.UUID, status: str, error: str, now: datetime) -> None:
    connection.execute(END_QUEUED_NODES, {"of_run": run_id, "status": status, "error": error, "now": now})


def end_block_run(connection: Connection, block_run_id: uuid.UUID, status: str, error: str, now: datetime) -> None:
    connection.execute(update(BLOCK_RUNS).where(BLOCK_RUNS.c.id == block_run_id)
                       .values(status=status, error=error, date_finished=now))


def lose_silent_node(connection: Connection, block_run_id: uuid.UUID, cutoff: datetime, error: str,
                     now: datetime) -> bool:
    return connection.execute(LOSE_SILENT_NODE, {"block_run_id": block_run_id, "cutoff": cutoff, "error": error,
                                                 "now": now}).rowcount == 1


def skip_block_run(connection: Connection, block_run_id: uuid.UUID, why: str, lines: list[dict],
                   now: datetime) -> None:
    connection.execute(SKIP_BLOCK_RUN, {"block_run_id": block_run_id, "why": why, "lines": lines, "now": now})
    insert_lines(connection, block_run_id, line_rows(lines, now))
