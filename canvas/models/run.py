"""Runs of workflows, their block runs, and stored block outputs."""
from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, Index, Integer, String, Text, Uuid, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from canvas.models.base import Base, UtcDateTime, new_id, utcnow

ACTIVE_RUN_STATES = ("Queued", "Running")
FINAL_RUN_STATES = ("Succeeded", "Failed", "Cancelled")
NOT_FOLLOWED_UP = "followed_up_at IS NULL"  # with date_finished set: a final run not followed up yet
FAILED = "status = 'Failed'"  # as a query must write it (not a parameter) for the partial index to serve it


class WorkflowRun(Base):
    """One execution of a workflow over a block range. Its id is the id of its RQ job."""

    __tablename__ = "workflow_run"
    __table_args__ = (
        # At most one queued or running run per workflow, enforced by the database itself.
        Index("uq_workflow_run_active", "workflow_id", unique=True,
              sqlite_where=text("status IN ('Queued', 'Running')"),
              postgresql_where=text("status IN ('Queued', 'Running')")),
        # GET WorkflowRuns: a workflow's runs, newest first (with the id: a deep page's ids from the index alone)
        Index("ix_workflow_run_workflow_queued", "workflow_id", "date_queued", "id"),
        # /v2/executions: the runs of a workspace's (or a User's) workflows, newest first, a page at a time (with the
        # workflow, whose visibility is checked, and the id: a deep page's ids from the index alone)
        Index("ix_workflow_run_queued", "date_queued", "id", "workflow_id"),
        Index("ix_workflow_run_status_heartbeat", "status", "heartbeat_at"),  # the reaper's question
        # /v2/logs: the failed runs of a workspace, newest first (a line each). Partial: the runs that succeed, nearly
        # all, never touch it, as a run's writes touch every index of the rows they rewrite.
        Index("ix_workflow_run_failed", "date_finished", "id", "workflow_id",
              sqlite_where=text(FAILED), postgresql_where=text(FAILED)),
        # A workflow's runs, newest finished first: its last outcome (notifications), its failed runs (/v2/logs)
        Index("ix_workflow_run_workflow_finished", "workflow_id", "date_finished", "id", "status"),
        # The follow-up sweep's question: final runs (date_finished set) whose callbacks and notification were not
        # queued yet. Few: the index holds them and the active runs.
        Index("ix_workflow_run_not_followed_up", "date_finished",
              sqlite_where=text(NOT_FOLLOWED_UP), postgresql_where=text(NOT_FOLLOWED_UP)),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    workflow_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workflow.id"))
    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("account.id"), index=True)
    status: Mapped[str] = mapped_column(String(20), default="Queued")
    trigger: Mapped[str] = mapped_column(String(20), default="manual")  # manual | schedule | webhook | api
    run_from_block: Mapped[int] = mapped_column(Integer)
    run_till_block: Mapped[int] = mapped_column(Integer)
    # The blocks it runs, when they are not every block from run_from_block to run_till_block (a range on a graph).
    block_numbers: Mapped[list | None] = mapped_column(JSON)
    dry_run: Mapped[bool] = mapped_column(Boolean, default=False)
    template_version: Mapped[str | None] = mapped_column(String(40))
    flow_version: Mapped[str | None] = mapped_column(String(64))
    input_blob_key: Mapped[str | None] = mapped_column(String(300))  # a webhook body fed to the first block
    scheduled_times: Mapped[list | None] = mapped_column(JSON)  # occurrences a schedule run covers
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    worker_name: Mapped[str | None] = mapped_column(String(200))
    # The fencing token: raised by every claim and every revocation. A worker's writes to the run are conditional on
    # the token it claimed with, so a worker that lost the run cannot change it any more.
    lease_token: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # The last sign of life: its (re)queueing while Queued, its worker's lease renewal while Running.
    heartbeat_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    dispatch_count: Mapped[int] = mapped_column(Integer, default=1, server_default="1")  # times enqueued
    error: Mapped[str | None] = mapped_column(Text)
    error_class: Mapped[str | None] = mapped_column(String(200))
    failed_block: Mapped[int | None] = mapped_column(Integer)
    records_failed: Mapped[int | None] = mapped_column(Integer)  # records its blocks set aside (onRecordError)
    # A run that retries the failed records of `retry_of` at its first block: its input record k was the failed
    # record at position retried_positions[k-1] of that block in that run.
    retry_of: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    retried_positions: Mapped[list | None] = mapped_column(JSON)
    date_queued: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    date_started: Mapped[datetime | None] = mapped_column(UtcDateTime)
    date_finished: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # When its callbacks and notification were queued (canvas.execution.run_endings); null on a final run: not yet.
    followed_up_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    blocks: Mapped[list[BlockRun]] = relationship(order_by="BlockRun.number", cascade="all, delete-orphan")

    @property
    def block_plan(self) -> list[int]:
        """The blocks it executes: its range, or on a graph the blocks the range selected."""
        return list(self.block_numbers or range(self.run_from_block, self.run_till_block + 1))


class BlockRun(Base):
    __tablename__ = "block_run"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    run_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workflow_run.id", ondelete="CASCADE"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    unique_block_id: Mapped[str] = mapped_column(String(36))
    block_name: Mapped[str] = mapped_column(String(200))
    block_key: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(20), default="Pending")  # Queued (parallel branch) | Running | ...
    # A block of a parallel branch run by another worker than its run's: who claimed it, and its last sign of life.
    worker_name: Mapped[str | None] = mapped_column(String(200))
    heartbeat_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    records_in: Mapped[int | None] = mapped_column(Integer)
    records_out: Mapped[int | None] = mapped_column(Integer)
    records_read: Mapped[int | None] = mapped_column(Integer)  # of its input records; grows while it runs
    # Records it could not process and set aside (onRecordError continue), kept as JSON lines at errors_blob_key.
    records_failed: Mapped[int | None] = mapped_column(Integer)
    errors_blob_key: Mapped[str | None] = mapped_column(String(300))
    # Input records whose side effect the block confirmed, in order (a resumable block): a later run of the block on
    # the same input (the stored output input_output_id) starts after them.
    records_confirmed: Mapped[int | None] = mapped_column(Integer)
    input_output_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    error: Mapped[str | None] = mapped_column(Text)
    error_class: Mapped[str | None] = mapped_column(String(200))
    log: Mapped[list] = mapped_column(JSON, default=list)
    output_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("block_output.id", ondelete="SET NULL"))
    date_started: Mapped[datetime | None] = mapped_column(UtcDateTime)
    date_finished: Mapped[datetime | None] = mapped_column(UtcDateTime)

    output: Mapped[BlockOutput | None] = relationship(foreign_keys=[output_id])


class BlockOutput(Base):
    """A stored output of one block in one run: where its bytes are, and what they are."""

    __tablename__ = "block_output"
    __table_args__ = (Index("ix_block_output_latest", "workflow_id", "unique_block_id", "date_created"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    workflow_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workflow.id"))
    run_id: Mapped[uuid.UUID] = mapped_column(Uuid, index=True)
    number: Mapped[int] = mapped_column(Integer)
    unique_block_id: Mapped[str] = mapped_column(String(36))
    blob_key: Mapped[str] = mapped_column(String(300))
    kind: Mapped[str] = mapped_column(String(20))  # records | file | none
    content_type: Mapped[str] = mapped_column(String(200))
    file_name: Mapped[str | None] = mapped_column(String(300))
    size: Mapped[int] = mapped_column(Integer)
    record_count: Mapped[int | None] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    dry_run: Mapped[bool] = mapped_column(Boolean, default=False)
    date_created: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class LogLine(Base):
    """A line a block logged, one row each, written with the block's end (in its statement or transaction): what
    /v2/logs pages through, newest first, from an index per way of asking (a workspace's lines, an account's, a
    flow's). The block run keeps its lines as well, for the run history; these rows exist so that a page deep in a
    workspace's lines is read from an index instead of by walking every run before it.

    The workflow's organization and account are copied in (a workflow never changes hands): they are what a
    caller's visibility is checked against, and the indexes begin with them."""

    __tablename__ = "log_line"
    __table_args__ = (
        Index("ix_log_line_organization_time", "organization_id", "logged_at", "id"),
        Index("ix_log_line_account_time", "account_id", "logged_at", "id"),
        Index("ix_log_line_workflow_time", "workflow_id", "logged_at", "id"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    block_run_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("block_run.id", ondelete="CASCADE"))
    run_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    workflow_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    account_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    organization_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    position: Mapped[int] = mapped_column(Integer)  # in its block's lines, from 0
    # When it was logged: its stated time, else (a line without one, or with one that is not an ISO 8601 instant)
    # its block's end. The order of the list, and what from/to select on.
    logged_at: Mapped[datetime] = mapped_column(UtcDateTime)
    stated_time: Mapped[str | None] = mapped_column(Text)  # the time as the block wrote it, shown as is
    level: Mapped[int] = mapped_column(Integer)  # 10 trace, 20 debug, 30 info, 40 warning, 50 error, 60 fatal
    message: Mapped[str] = mapped_column(Text)
