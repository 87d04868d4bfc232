"""Retrying failed records: a new run of a workflow that starts at one block of an earlier run, on just the records
that block set aside (its error output), some of them replaced by edited records, and goes on with the following
blocks on what succeeds. The new run names the run it retries (`retryOf`), and its input record k is the failed
record at position `positions[k-1]` there, so each record's outcome can be followed across the two runs.
"""
from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from canvas.db import end_reading
from canvas.errors import BadRequestError, ConflictError
from canvas.execution.data import Records
from canvas.execution.serialization import store_output
from canvas.models import ACTIVE_RUN_STATES, BlockRun, Workflow, WorkflowRun

MAX_FAILED_RECORDS = 100_000  # records one retry takes


@dataclass(frozen=True)
class RetryInput:
    block: int
    input_blob_key: str
    source_run_id: uuid.UUID
    positions: list[int]


def prepare_retry(session: Session, blob_store, source: WorkflowRun, workflow: Workflow,  # noqa: ANN001
                  spec: dict) -> RetryInput:
    """The retried records, stored as the new run's input. `spec`: {runId, block, records?: [{position, record}]}."""
    if source.workflow_id != workflow.id:
        raise BadRequestError(f"retryFailedRecords.runId: run {source.id} is not a run of workflow {workflow.id}",
                              field="retryFailedRecords.runId")
    if source.status in ACTIVE_RUN_STATES:
        raise ConflictError(f"Run {source.id} is still {source.status}: retry its failed records once it has ended")
    block_run = session.scalar(select(BlockRun).where(BlockRun.run_id == source.id, BlockRun.number == spec["block"]))
    if block_run is None or not block_run.errors_blob_key:
        raise ConflictError(f"Run {source.id} set aside no failed records at block {spec['block']}",
                            field="retryFailedRecords.block")
    end_reading(session)  # the object store may be slow: no transaction idles meanwhile
    failed = dict(_failed_records(blob_store, block_run.errors_blob_key))
    for index, edit in enumerate(spec.get("records") or []):
        if edit["position"] not in failed:
            raise BadRequestError(f"retryFailedRecords.records.{index}.position: record {edit['position']} did not "
                                  f"fail at block {spec['block']} of run {source.id}",
                                  field=f"retryFailedRecords.records.{index}.position")
        failed[edit["position"]] = edit["record"]
    key = f"retries/{workflow.id}/{uuid.uuid4()}.jsonl"
    store_output(blob_store, key, Records(list(failed.values())))  # read back as a run's input records
    return RetryInput(spec["block"], key, source.id, list(failed))


def _failed_records(blob_store, key: str) -> Iterator[tuple[int, dict]]:  # noqa: ANN001
    with blob_store.open(key) as stream:
        for count, line in enumerate(stream, start=1):
            if count > MAX_FAILED_RECORDS:
                raise BadRequestError(f"retryFailedRecords: more than {MAX_FAILED_RECORDS} failed records; retry the "
                                      "whole block instead", field="retryFailedRecords")
            entry = json.loads(line)
            yield entry["position"], entry["record"]


def with_original_positions(lines: Iterator[bytes], positions: list[int]) -> Iterator[bytes]:
    """A retry run's error output, each line also naming the record's position in the run it retried."""
    for line in lines:
        entry = json.loads(line)
        position = entry["position"]
        entry["originalPosition"] = positions[position - 1] if 0 < position <= len(positions) else None
        yield json.dumps(entry, ensure_ascii=False).encode() + b"\n"
