"""Where a run stopped by a database outage fails (runner._where_stopped): never at a block that finished, so that a
re-run from the failed block does not repeat its side effects. The outage itself is replayed on PostgreSQL in
tests/integration/test_runs_through_database_outages.py; these cases need no database."""
from __future__ import annotations

import uuid
from zoneinfo import ZoneInfo

from canvas.execution.graph import block_graph
from canvas.execution.lease import DISK_FULL, LOST_CONNECTION, DatabaseUnreachableError
from canvas.execution.runner import RunState, _stopped_after_failures, _where_stopped

OUTAGE = DatabaseUnreachableError(LOST_CONNECTION, "while recording block 1")


def state_of(parents: dict[int, list[int]], size: int, policy: str = "failFast") -> RunState:
    chain = [{"uniqueBlockId": f"b{n}", "blockName": f"Block {n}",
              "inputs": [{"from": f"b{parent}"} for parent in parents.get(n, [])]} for n in range(1, size + 1)]
    return RunState(run_id=uuid.uuid4(), workflow_id=uuid.uuid4(), account_id=uuid.uuid4(), workflow_name="w",
                    chain=chain, bindings={}, graph=block_graph(chain), plan=list(range(1, size + 1)), policy=policy,
                    dry_run=False, time_zone=ZoneInfo("UTC"), input_blob_key=None, lease=None, writer=None)


def test_a_block_in_hand_that_had_not_finished_is_where_the_run_fails_with_the_error_as_it_came():
    state = state_of({2: [1], 3: [2]}, 3)
    state.settle(1, "Succeeded")
    state.number = 2
    assert _where_stopped(state, OUTAGE) == (2, OUTAGE)
    state.settle(2, "Failed")  # stopped by the lease's check: it did not finish either
    assert _where_stopped(state, OUTAGE) == (2, OUTAGE)


def test_after_a_block_that_finished_the_run_fails_at_the_next_which_never_started():
    state = state_of({2: [1], 3: [2]}, 3)
    state.number = 1
    state.settle(1, "Succeeded")
    number, error = _where_stopped(state, OUTAGE)
    assert (number, str(error)) == (2, "database connection lost before block 2 started; the run was stopped")
    full = DatabaseUnreachableError(DISK_FULL, "while recording block 1")
    assert str(_where_stopped(state, full)[1]) == "database disk full before block 2 started; the run was stopped"
    state.settle(1, "Skipped")  # a skipped block finished as well
    assert _where_stopped(state, OUTAGE)[0] == 2


def test_waiting_for_a_block_left_to_another_worker_the_run_fails_at_that_block():
    state = state_of({2: [1], 3: [1], 4: [2, 3]}, 4)  # a diamond: 2 here, 3 on another worker
    state.settle(1, "Succeeded")
    state.number = 2
    state.settle(2, "Succeeded")
    state.begun.update({2: uuid.uuid4(), 3: uuid.uuid4()})
    state.elsewhere.add(3)
    number, error = _where_stopped(state, OUTAGE)
    assert (number, str(error)) == (3, "database connection lost while waiting for block 3 on another worker; the "
                                       "run was stopped")


def test_blocks_a_failure_blocked_are_passed_over():
    state = state_of({2: [1], 3: [2], 4: [1]}, 4, policy="continue")  # 2 fails, so 3 never runs; 4 is next
    state.settle(1, "Succeeded")
    state.settle(2, "Failed")
    state.number = 1
    assert _where_stopped(state, OUTAGE)[0] == 4


def test_with_every_block_ended_the_block_in_hand_is_named():
    state = state_of({2: [1]}, 2)
    state.settle(1, "Succeeded")
    state.number = 2
    state.settle(2, "Succeeded")
    assert _where_stopped(state, OUTAGE) == (2, OUTAGE)


def test_after_blocks_that_failed_the_run_fails_at_the_first_naming_them_then_the_stop():
    state = state_of({2: [1], 3: [1], 4: [1]}, 4, policy="continue")
    state.settle(1, "Succeeded")
    assert _stopped_after_failures(state, 4, str(OUTAGE)) == 4 and state.error_text is None  # none failed
    state.failures.append((2, "the partner API said no"))
    assert _stopped_after_failures(state, 4, str(OUTAGE)) == 2
    assert state.error_text == f"block 2 (Block 2) failed: the partner API said no; then {OUTAGE}"
    state.failures.append((3, "timed out"))
    assert _stopped_after_failures(state, 4, "the worker is shutting down") == 2
    assert state.error_text == ("2 blocks failed: block 2 (Block 2): the partner API said no; block 3 (Block 3): "
                                "timed out; then the worker is shutting down")


def sqlite_refusal(pages_limited: bool):  # noqa: ANN201 - sqlalchemy.exc.OperationalError
    """A real error of SQLite through SQLAlchemy: SQLITE_FULL from the database's own page limit, or a file that
    cannot be opened (a connection refused, as the runner sees it)."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import OperationalError

    engine = create_engine("sqlite://" if pages_limited else "sqlite:////nonexistent/folder/x.db")
    try:
        with engine.begin() as connection:
            connection.execute(text("CREATE TABLE filler (body TEXT)"))
            pages = connection.exec_driver_sql("PRAGMA page_count").scalar()
            connection.exec_driver_sql(f"PRAGMA max_page_count = {pages}")
            for _ in range(100):
                connection.execute(text("INSERT INTO filler VALUES (:body)"), {"body": "x" * 4000})
    except OperationalError as error:
        return error
    finally:
        engine.dispose()
    raise AssertionError("SQLite took every write")


def test_a_block_stopped_by_a_full_database_says_so_and_a_lost_connection_as_before():
    from canvas.execution.runner import _readable

    state = state_of({2: [1]}, 2)
    state.number = 2
    full, unreachable = sqlite_refusal(pages_limited=True), sqlite_refusal(pages_limited=False)
    assert "database or disk is full" in str(full.orig) and "unable to open" in str(unreachable.orig)
    assert str(_readable(state, full)) == "database disk full while running block 2; the run was stopped"
    assert str(_readable(state, unreachable)) == "database connection lost while running block 2; the run was stopped"
