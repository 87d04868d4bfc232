"""What a run costs PostgreSQL, on a real server. Pooled connections: one given back a moment ago is used without a
ping, one idle longer is pinged and replaced when its backend died, and a dead one used within that window fails as
a lost connection (which the runner waits out). Statements: a one-block run costs two, each sent without
BEGIN/COMMIT (its claim, which begins its first block, and its end); each step from a block to the next is one
more, which writes nothing when it finds the run cancelled or its lease lost."""
from __future__ import annotations

import uuid

import pytest
from sqlalchemy import create_engine, event, text
from sqlalchemy.exc import DBAPIError

from canvas import db as database
from canvas.execution.lease import is_connection_error
from canvas.execution.runner import Runner
from canvas.models import BlockOutput, BlockRun, WorkflowRun
from tests.integration.run_helpers import B1, B2, THREE_BLOCKS, make_workflow, run

pytestmark = pytest.mark.usefixtures("clean_run_queue")


@pytest.fixture()
def engine(postgres_database_url):
    built = database.build_engine(postgres_database_url)
    yield built
    built.dispose()


@pytest.fixture()
def pings(engine, monkeypatch) -> list:
    """Every ping the pool's checkout sends."""
    sent = []
    ping = engine.dialect.do_ping

    def counted(dbapi_connection) -> bool:  # noqa: ANN001
        sent.append(dbapi_connection)
        return ping(dbapi_connection)

    monkeypatch.setattr(engine.dialect, "do_ping", counted)
    return sent


def backend_of(engine) -> int:  # noqa: ANN001
    with engine.connect() as connection:
        return connection.execute(text("SELECT pg_backend_pid()")).scalar_one()


def terminate(url: str, pid: int) -> None:
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            assert connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar_one()
    finally:
        admin.dispose()


def test_a_connection_given_back_a_moment_ago_is_used_without_a_ping(engine, pings):
    first = backend_of(engine)
    assert [backend_of(engine) for _ in range(5)] == [first] * 5  # the same pooled connection each time
    assert pings == []


def test_an_idle_connection_whose_backend_died_is_pinged_and_replaced(engine, pings, monkeypatch,
                                                                      postgres_database_url):
    monkeypatch.setattr(database, "PING_AFTER_IDLE_SECONDS", 0.0)  # every connection given back counts as idle
    dead = backend_of(engine)
    terminate(postgres_database_url, dead)
    replacement = backend_of(engine)  # no error: the ping found it dead and the pool connected again
    assert replacement != dead
    assert len(pings) == 1


def test_a_dead_connection_used_within_the_window_fails_as_a_lost_connection(engine, pings, postgres_database_url):
    terminate(postgres_database_url, backend_of(engine))
    with pytest.raises(DBAPIError) as failed:
        backend_of(engine)
    assert failed.value.connection_invalidated and is_connection_error(failed.value)
    assert backend_of(engine) > 0  # the pool dropped it: the next checkout connects afresh
    assert pings == []


@pytest.fixture()
def app(postgres_database_url, make_app):
    return make_app(DATABASE_URL=postgres_database_url)


def test_a_runs_claim_with_its_first_block_and_its_end_are_two_statements_without_transactions(app, client, org):
    workflow_id = make_workflow(client, org.admin_headers, THREE_BLOCKS[:1])
    answer = run(client, org.admin_headers, workflow_id)
    assert answer.status_code == 202, answer.json
    run_id = uuid.UUID(answer.headers["Location"].rsplit("/", 1)[1])
    services = app.extensions["canvas"]
    sent = []  # (statement, whether the driver was in autocommit)

    @event.listens_for(services.db.engine, "before_cursor_execute")
    def record(connection, _cursor, statement, *_args) -> None:  # noqa: ANN001
        sent.append((statement, connection.connection.dbapi_connection.autocommit))

    with app.app_context():
        assert Runner(services).run(run_id) == "Succeeded"
    event.remove(services.db.engine, "before_cursor_execute", record)
    claim = [autocommit for statement, autocommit in sent if statement.startswith("WITH claimed")]
    end = [autocommit for statement, autocommit in sent if statement.startswith("WITH ended")]
    inserted = [autocommit for statement, autocommit in sent if statement.startswith("INSERT INTO block_run")]
    assert (claim, inserted, end) == ([True], [], [True])  # the claim begins the first block: one statement
    assert len([statement for statement, _ in sent if not statement.startswith("SET ")]) == 2  # nothing else
    with services.db.sessions() as session:
        finished = session.get(WorkflowRun, run_id)
        assert finished.status == "Succeeded" and finished.date_finished is not None
        block = session.query(BlockRun).filter_by(run_id=run_id).one()
        entry = THREE_BLOCKS[0]
        assert (block.number, block.block_name, block.block_key, block.status, block.attempts) == (
            1, entry[0], entry[1], "Succeeded", 1)
        assert block.unique_block_id == B1 and block.date_started == finished.date_started
        assert block.records_in is None and block.input_output_id is None


def test_a_run_from_the_middle_begins_its_first_block_with_its_stored_input(app, client, org):
    """The claim begins block 2 from the chain; its input, the stored output of block 1, is written right after."""
    workflow_id = make_workflow(client, org.admin_headers, THREE_BLOCKS)
    services = app.extensions["canvas"]
    first = run(client, org.admin_headers, workflow_id)
    with app.app_context():
        assert Runner(services).run(uuid.UUID(first.headers["Location"].rsplit("/", 1)[1])) == "Succeeded"
    answer = run(client, org.admin_headers, workflow_id, runFromBlock=2, runTillBlock=2)
    assert answer.status_code == 202, answer.json
    run_id = uuid.UUID(answer.headers["Location"].rsplit("/", 1)[1])
    with app.app_context():
        assert Runner(services).run(run_id) == "Succeeded"
    with services.db.sessions() as session:
        block = session.query(BlockRun).filter_by(run_id=run_id).one()
        stored = session.query(BlockOutput).filter_by(workflow_id=uuid.UUID(workflow_id), unique_block_id=B1).one()
        assert (block.number, block.unique_block_id, block.block_name) == (2, B2, THREE_BLOCKS[1][0])
        assert (block.input_output_id, block.records_in) == (stored.id, stored.record_count) == (stored.id, 3)
        assert block.records_out == 2  # the two Oslo records of block 1's three


def statements_of(engine, work) -> list[tuple[str, bool]]:  # noqa: ANN001
    """(statement, whether the driver was in autocommit) for each statement `work()` sent, but session settings."""
    sent = []

    def record(connection, _cursor, statement, *_args) -> None:  # noqa: ANN001
        if not statement.startswith("SET "):
            sent.append((statement, connection.connection.dbapi_connection.autocommit))

    event.listen(engine, "before_cursor_execute", record)
    try:
        work()
    finally:
        event.remove(engine, "before_cursor_execute", record)
    return sent


def queued_run(client, org, blocks) -> uuid.UUID:  # noqa: ANN001
    answer = run(client, org.admin_headers, make_workflow(client, org.admin_headers, blocks))
    assert answer.status_code == 202, answer.json
    return uuid.UUID(answer.headers["Location"].rsplit("/", 1)[1])


def run_here(app, run_id: uuid.UUID) -> str:  # noqa: ANN001
    with app.app_context():
        return Runner(app.extensions["canvas"]).run(run_id)


def test_each_step_from_block_to_block_is_one_statement(app, client, org):
    run_id = queued_run(client, org, THREE_BLOCKS)
    services = app.extensions["canvas"]
    sent = statements_of(services.db.engine, lambda: run_here(app, run_id))
    assert [statement.split(" ", 2)[:2] for statement, _ in sent] == [["WITH", "claimed"], ["WITH", "renewed"],
                                                                     ["WITH", "renewed"], ["WITH", "ended"]]
    assert all(autocommit for _, autocommit in sent)
    with services.db.sessions() as session:
        assert session.get(WorkflowRun, run_id).status == "Succeeded"
        blocks = session.query(BlockRun).filter_by(run_id=run_id).order_by(BlockRun.number).all()
        assert [(block.number, block.status, block.records_out) for block in blocks] == [
            (1, "Succeeded", 3), (2, "Succeeded", 2), (3, "Succeeded", None)]  # block 3 writes a file
        assert [block.records_in for block in blocks] == [None, 3, 2]
        workflow_id = session.get(WorkflowRun, run_id).workflow_id
        outputs = {output.id for output in session.query(BlockOutput).filter_by(workflow_id=workflow_id)}
        assert {block.output_id for block in blocks} == outputs and len(outputs) == 3
        assert blocks[1].input_output_id == blocks[0].output_id


def run_changed_before_the_step(app, url: str, run_id: uuid.UUID, change: str) -> str:  # noqa: ANN001
    """Run it here, with `change` (SQL on the run row, :id) committed by another connection just before the run's
    first step from a block to the next."""
    other = create_engine(url)
    done = []

    def intercept(_connection, _cursor, statement, *_args) -> None:  # noqa: ANN001
        if statement.startswith("WITH renewed") and not done:
            with other.begin() as connection:
                done.append(connection.execute(text(change), {"id": run_id}).rowcount)

    engine = app.extensions["canvas"].db.engine
    event.listen(engine, "before_cursor_execute", intercept)
    try:
        return run_here(app, run_id)
    finally:
        event.remove(engine, "before_cursor_execute", intercept)
        other.dispose()
        assert done == [1]


def test_a_cancel_found_by_the_step_writes_nothing_of_the_next_block(app, client, org, postgres_database_url):
    run_id = queued_run(client, org, THREE_BLOCKS)
    assert run_changed_before_the_step(app, postgres_database_url, run_id,
                                       "UPDATE workflow_run SET cancel_requested = true WHERE id = :id") == "Cancelled"
    with app.extensions["canvas"].db.sessions() as session:
        blocks = session.query(BlockRun).filter_by(run_id=run_id).all()
        assert [(block.number, block.status) for block in blocks] == [(1, "Succeeded")]  # recorded with the end
        assert session.get(WorkflowRun, run_id).status == "Cancelled"


def test_a_lease_lost_before_the_step_writes_nothing_more(app, client, org, postgres_database_url):
    run_id = queued_run(client, org, THREE_BLOCKS)
    declared_lost = ("UPDATE workflow_run SET status = 'Failed', lease_token = lease_token + 1, "
                     "error = 'declared lost' WHERE id = :id")
    assert run_changed_before_the_step(app, postgres_database_url, run_id, declared_lost) == "lease lost"
    with app.extensions["canvas"].db.sessions() as session:
        blocks = session.query(BlockRun).filter_by(run_id=run_id).all()
        assert [(block.number, block.status) for block in blocks] == [(1, "Running")]  # its record was not written
        assert session.query(BlockOutput).count() == 0
        finished = session.get(WorkflowRun, run_id)
        assert (finished.status, finished.error) == ("Failed", "declared lost")
