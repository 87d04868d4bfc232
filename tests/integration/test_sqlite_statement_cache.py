"""On SQLite, a run's bookkeeping statements are prepared once per connection and then reused (Python's sqlite3
keeps prepared statements per connection): a statement that SQLite prepares again at every execution costs several
times its execution. SQLite does that, silently, to a statement that compares a bound value with a column named in a
partial index's WHERE (workflow_run.status: uq_workflow_run_active, ix_workflow_run_failed), unless a unique key
already picks the row - measured: the workflow's read at a run's claim took 120-190 us with its statuses bound, 25 us
with them written into the SQL (canvas.execution.run_records.written_in). SQLite calls the authorizer only while it
prepares a statement, so the authorizer counts the preparations."""
from __future__ import annotations

import sqlite3

import pytest

from canvas import migrate
from canvas.db import Database
from canvas.execution.runner import Runner
from canvas.execution.warm_up import _scratch_run


@pytest.fixture()
def sqlite_services(make_app, tmp_path):
    url = f"sqlite:///{tmp_path / 'statements.db'}"
    database = Database(url)
    migrate.upgrade(database.engine)
    database.dispose()
    return make_app(DATABASE_URL=url).extensions["canvas"]


def test_a_runs_bookkeeping_is_prepared_once_then_reused(sqlite_services):
    preparations = []

    def authorize(action, *_names):  # noqa: ANN001, ANN202
        preparations.append(action)
        return sqlite3.SQLITE_OK

    with sqlite_services.db.engine.connect() as connection, connection.begin() as transaction:
        driver_connection = connection.connection.dbapi_connection
        driver_connection.set_authorizer(authorize)
        try:
            Runner(sqlite_services).rehearse(connection, _scratch_run(connection))
            first_run = len(preparations)
            Runner(sqlite_services).rehearse(connection, _scratch_run(connection))
        finally:
            driver_connection.set_authorizer(None)
            transaction.rollback()
    assert first_run > 0  # the control: the first run's statements were prepared, and the authorizer saw it
    assert len(preparations) == first_run, f"{len(preparations) - first_run} authorizations in the second run"
