"""A running block's progress reaches its block run row as it goes: records read, records stored."""
from __future__ import annotations

import uuid

from sqlalchemy import select

from canvas.execution import run_records
from canvas.execution.data import FileData, Records
from canvas.execution.progress import COUNT_CHUNK, BlockProgress
from canvas.models import BlockRun
from tests.integration.run_helpers import make_workflow, run_and_work

pytestmark = __import__("pytest").mark.usefixtures("clean_run_queue")


def running_block_run(client, app, org) -> uuid.UUID:
    """A real block run row in state Running (the first block of a finished run, set back to Running)."""
    workflow_id = make_workflow(client, org.admin_headers)
    finished = run_and_work(client, app, org.admin_headers, workflow_id)
    services = app.extensions["canvas"]
    with services.db.transaction() as session:
        row = session.scalars(select(BlockRun).where(BlockRun.run_id == uuid.UUID(finished["id"]),
                                                     BlockRun.number == 1)).one()
        row.status, row.records_read, row.records_out = "Running", None, None
        return row.id


def recorder(app, block_run_id: uuid.UUID):
    """Writes progress as the runner's recorder does, without the run's lease (the run here has ended)."""
    def record(read, written) -> None:
        with run_records.bookkeeping(app.extensions["canvas"].db.engine) as connection:
            run_records.record_progress(connection, block_run_id, read, written)

    return record


def counts(app, block_run_id: uuid.UUID) -> tuple[int | None, int | None]:
    with app.extensions["canvas"].db.sessions() as session:
        row = session.get(BlockRun, block_run_id)
        return row.records_read, row.records_out


def test_records_read_and_stored_reach_the_row_while_the_block_runs(client, app, org):
    block_run_id = running_block_run(client, app, org)
    progress = BlockProgress(recorder(app, block_run_id), interval=0)
    records = iter(progress.counted(Records([{"n": n} for n in range(2 * COUNT_CHUNK + 500)])))
    for _ in range(COUNT_CHUNK + 1):  # into the second chunk: the first is counted
        next(records)
    assert counts(app, block_run_id) == (COUNT_CHUNK, None)
    assert sum(1 for _ in records) == COUNT_CHUNK + 499
    assert counts(app, block_run_id) == (2 * COUNT_CHUNK + 500, None)
    progress.stored(1500)
    assert counts(app, block_run_id) == (2 * COUNT_CHUNK + 500, 1500)


def test_progress_is_written_at_most_once_an_interval(client, app, org):
    block_run_id = running_block_run(client, app, org)
    now = [0.0]
    progress = BlockProgress(recorder(app, block_run_id), interval=2.0, clock=lambda: now[0])
    progress.stored(500)
    assert counts(app, block_run_id) == (None, None)  # too soon
    now[0] = 2.5
    progress.stored(1000)
    assert counts(app, block_run_id) == (None, 1000)
    progress.stored(1500)
    assert counts(app, block_run_id) == (None, 1000)


def test_a_finished_block_run_is_never_overwritten_by_late_progress(client, app, org):
    block_run_id = running_block_run(client, app, org)
    with app.extensions["canvas"].db.transaction() as session:
        session.get(BlockRun, block_run_id).status = "Succeeded"
    BlockProgress(recorder(app, block_run_id), interval=0).stored(99)
    assert counts(app, block_run_id) == (None, None)


def test_records_read_is_exact_at_any_moment_without_counting_each_record():
    progress = BlockProgress(None)
    records = iter(progress.counted(Records([{"n": n} for n in range(COUNT_CHUNK + 10)])))
    assert progress.read == 0
    for taken in range(1, COUNT_CHUNK + 11):
        next(records)
        if taken in (1, 2, COUNT_CHUNK - 1, COUNT_CHUNK, COUNT_CHUNK + 1, COUNT_CHUNK + 10):
            assert progress.read == taken
    assert next(records, None) is None and progress.read == COUNT_CHUNK + 10
    progress.restart()
    assert progress.read is None


def test_input_that_is_not_records_is_handed_on_untouched():
    progress = BlockProgress(None)
    file = FileData.from_bytes("a.csv", "text/csv", b"a\n1\n")
    assert progress.counted(file) is file and progress.counted(None) is None
    assert progress.read is None


def test_run_history_shows_how_many_records_each_block_read(client, app, org):
    workflow_id = make_workflow(client, org.admin_headers)  # 3 records -> only Oslo (2) -> CSV
    finished = run_and_work(client, app, org.admin_headers, workflow_id)
    assert finished["status"] == "Succeeded"
    assert [(block["recordsIn"], block["recordsRead"], block["recordsOut"]) for block in finished["blocks"]] == [
        (None, None, 3), (3, 3, 2), (2, 2, None)]
