"""A forking worker compiles a run's statements before it forks (canvas.execution.warm_up): its rehearsal of a run
writes nothing, and afterwards real runs - one block, three blocks that log lines - find every statement of their
bookkeeping compiled already (SQLAlchemy's cache), where a process that did not rehearse compiles them with its first
run. On SQLite and on PostgreSQL, whichever the suite runs on."""
from __future__ import annotations

import logging
import warnings
import uuid

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.engine.interfaces import CacheStats

from canvas.db import Database
from canvas.execution.runner import Runner
from canvas.execution.warm_up import compile_run_statements
from canvas.models import Account, BlockOutput, BlockRun, LogLine, Organization, Workflow, WorkflowRun
from tests.integration.run_helpers import THREE_BLOCKS, make_workflow, run

pytestmark = pytest.mark.usefixtures("clean_run_queue")
TABLES = (Organization, Account, Workflow, WorkflowRun, BlockRun, BlockOutput, LogLine)
ONE_BLOCK = [("Nothing", "noop", {})]


def row_counts(services) -> dict:
    with services.db.sessions() as session:
        return {table.__tablename__: session.scalar(select(func.count()).select_from(table)) for table in TABLES}


def queued(client, org, blocks) -> uuid.UUID:
    answer = run(client, org.admin_headers, make_workflow(client, org.admin_headers, blocks))
    assert answer.status_code == 202, answer.json
    return uuid.UUID(answer.headers["Location"].rsplit("/", 1)[1])


def compiled_while_running(services, run_ids: list[uuid.UUID]) -> list[str]:
    """The statements the runs compiled (cache misses), each run's outcome checked."""
    compiled = []

    def seen(conn, cursor, statement, parameters, context, executemany) -> None:  # noqa: ANN001
        if context is not None and context.cache_hit is CacheStats.CACHE_MISS:
            compiled.append(" ".join(statement.split())[:120])

    engine = services.db.engine
    event.listen(engine, "after_cursor_execute", seen)
    try:
        for run_id in run_ids:
            assert Runner(services).run(run_id) == "Succeeded"
    finally:
        event.remove(engine, "after_cursor_execute", seen)
    return compiled


def test_the_rehearsal_writes_nothing_and_leaves_a_runs_statements_compiled(client, app, org):
    services = app.extensions["canvas"]
    runs = [queued(client, org, ONE_BLOCK), queued(client, org, THREE_BLOCKS)]
    before = row_counts(services)

    assert compile_run_statements(services) is True
    assert row_counts(services) == before  # rolled back: not one row of any table the rehearsal touched

    assert compiled_while_running(services, runs) == []
    with services.db.sessions() as session:
        lines = session.scalar(select(func.count()).select_from(LogLine).where(LogLine.run_id == runs[1]))
    assert lines > 0  # the three-block run logged lines: the shapes with lines were rehearsed too


def test_without_the_rehearsal_a_process_compiles_them_with_its_first_run(client, make_app, org):
    app = make_app()  # an engine of its own, whose cache nothing has filled
    services = app.extensions["canvas"]
    run_id = queued(client, org, ONE_BLOCK)
    assert len(compiled_while_running(services, [run_id])) >= 2  # at least the claim and the end


def test_a_rehearsal_without_a_database_is_a_line_and_nothing_more(app, caplog, monkeypatch):
    """The worker starts all the same (it waits for the database elsewhere); its children compile for themselves."""
    services = app.extensions["canvas"]
    monkeypatch.setattr(services, "db", Database("postgresql+psycopg://canvas@127.0.0.1:1/nowhere"))  # refused
    with caplog.at_level(logging.INFO, logger="canvas.execution.warm_up"):
        assert compile_run_statements(services) is False
    assert "were not compiled before forking (OperationalError)" in caplog.text


def test_a_rehearsal_on_a_database_without_the_schema_is_a_line_and_no_warning(app, caplog, monkeypatch, tmp_path):
    """A forking worker started before `canvas db upgrade`: the refused statement has rolled the transaction back,
    and the rehearsal ends without rolling it back a second time (SQLAlchemy's SAWarning in the worker's log)."""
    services = app.extensions["canvas"]
    empty = Database(f"sqlite:///{tmp_path / 'empty.db'}")
    monkeypatch.setattr(services, "db", empty)
    try:
        with caplog.at_level(logging.INFO, logger="canvas.execution.warm_up"), warnings.catch_warnings():
            warnings.simplefilter("error")
            assert compile_run_statements(services) is False
    finally:
        empty.dispose()
    assert "were not compiled before forking (OperationalError)" in caplog.text
