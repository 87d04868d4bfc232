"""Pruning stored block outputs by age and by count per block, never the latest successful output of a block
(partial runs start from it), error outputs (records set aside) by age, plus temporary files that a killed worker
left behind."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select, update

from canvas.db import Database
from canvas.execution.data import TEMP_FILE_PREFIX
from canvas.models import BlockOutput, BlockRun
from canvas.models.base import utcnow
from canvas.storage.blob import TEMP_PREFIX as BLOB_TEMP_PREFIX

log = logging.getLogger(__name__)
STALE_TEMP_FILE_SECONDS = 24 * 3600


@dataclass
class PruneReport:
    outputs_deleted: int = 0
    bytes_freed: int = 0
    temp_files_deleted: int = 0
    error_outputs_deleted: int = 0


def prune_outputs(database: Database, blob_store, max_age_days: float, keep_per_block: int) -> PruneReport:  # noqa: ANN001
    report = PruneReport()
    cutoff = utcnow() - timedelta(days=max_age_days)
    with database.sessions() as session:
        rows = list(session.execute(select(BlockOutput.id, BlockOutput.workflow_id, BlockOutput.unique_block_id,
                                           BlockOutput.dry_run, BlockOutput.date_created, BlockOutput.size,
                                           BlockOutput.blob_key)
                                    .order_by(BlockOutput.workflow_id, BlockOutput.unique_block_id,
                                              BlockOutput.date_created.desc())))
    for row in _prunable(rows, cutoff, keep_per_block):
        _delete_output(database, blob_store, row)
        report.outputs_deleted += 1
        report.bytes_freed += row.size
    return report


def _prunable(rows: list, cutoff, keep_per_block: int) -> list:  # noqa: ANN001
    """Rows come newest first per (workflow, block). The newest real (not dry-run) output is always kept."""
    doomed, seen, latest_kept = [], {}, set()
    for row in rows:
        group = (row.workflow_id, row.unique_block_id)
        position = seen.get(group, 0)
        seen[group] = position + 1
        if not row.dry_run and group not in latest_kept:
            latest_kept.add(group)
            continue
        if position >= keep_per_block or row.date_created < cutoff:
            doomed.append(row)
    return doomed


def _delete_output(database: Database, blob_store, row) -> None:  # noqa: ANN001
    with database.transaction() as session:
        session.execute(update(BlockRun).where(BlockRun.output_id == row.id).values(output_id=None))
        session.execute(BlockOutput.__table__.delete().where(BlockOutput.id == row.id))
    if row.blob_key:  # a block that gave no output has no blob
        blob_store.delete(row.blob_key)  # after the row: a crash in between leaves a stray file, never a dangling row


def prune_temp_files(places: list[tuple[Path, str]], older_than_seconds: float = STALE_TEMP_FILE_SECONDS) -> int:
    """Deletes stale files whose names start with the prefix that marks temporary files in that directory tree,
    and only there: a File Hub file may well be called "canvas-block-…" and is nobody's temporary file."""
    deleted, limit = 0, time.time() - older_than_seconds
    for directory, prefix in places:
        if not directory.is_dir():
            continue
        for path in directory.rglob(f"{prefix}*"):
            try:
                if path.is_file() and path.stat().st_mtime < limit:
                    path.unlink()
                    deleted += 1
            except OSError:
                continue
    return deleted


def prune_record_errors(database: Database, blob_store, max_age_days: float) -> int:  # noqa: ANN001
    """Error outputs of block runs that ended longer ago than the retention age; their counts stay in run history."""
    cutoff = utcnow() - timedelta(days=max_age_days)
    with database.sessions() as session:
        rows = list(session.execute(select(BlockRun.id, BlockRun.errors_blob_key)
                                    .where(BlockRun.errors_blob_key.is_not(None), BlockRun.date_finished < cutoff)))
    for block_run_id, key in rows:
        with database.transaction() as session:
            session.execute(update(BlockRun).where(BlockRun.id == block_run_id).values(errors_blob_key=None))
        blob_store.delete(key)  # after the row, as for outputs
    return len(rows)


def prune_everything(services) -> PruneReport:  # noqa: ANN001 - canvas.extensions.Services
    """Raises the store's BlobStoreError, having deleted nothing, when the store cannot be used: each output's row
    goes before its blob, so pruning on an unreachable store would leave its first blob behind for good."""
    settings = services.settings
    blob_store = services.blob_store
    blob_store.check()
    report = prune_outputs(services.db, blob_store, settings["OUTPUT_RETENTION_DAYS"],
                           settings["OUTPUT_RETENTION_RUNS"])
    report.error_outputs_deleted = prune_record_errors(services.db, blob_store, settings["OUTPUT_RETENTION_DAYS"])
    # The file store's unfinished writes lie under its root (CANVAS_BLOB_URL=file:///… may put it anywhere); an
    # object store has no such files (an aborted upload leaves nothing), so only the data dir's tmp is swept then.
    blob_root = getattr(blob_store, "root", None)
    places = [(blob_root, BLOB_TEMP_PREFIX)] if blob_root is not None else []
    report.temp_files_deleted = prune_temp_files([*places, (services.data_dir / "tmp", TEMP_FILE_PREFIX)])
    log.info("retention: %d outputs deleted (%d bytes), %d error outputs deleted, %d stale temporary files deleted",
             report.outputs_deleted, report.bytes_freed, report.error_outputs_deleted, report.temp_files_deleted)
    return report
