"""A forked child (RQ's forking worker runs each job in one) starts opening its first PostgreSQL connection as soon
as it is told it was forked (Database.after_fork), in a thread, so that the connection is under way while RQ prepares
the job; its pool then uses that connection. On a real server: the child's first statement runs on a backend that
started before the statement was asked for, and not on its parent's; an opened connection the child never used is
closed with the pool; a server that refuses connections fails the child's first use as a lost database, as it would
without the early start; in the process that built the engine, after_fork opens nothing."""
from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from canvas.db import Database
from canvas.execution.lease import is_connection_error
from tests.process_tools import free_port
from tests.servers.postgres import sessions_of, with_application_name

AHEAD_SECONDS = 0.5  # how long a child waits between after_fork and its first statement


@pytest.fixture()
def named(postgres_database_url):
    """A Database whose connections carry a name of their own (to count them in pg_stat_activity), and a counter."""
    name = f"fork-test-{uuid.uuid4().hex[:12]}"
    database = Database(with_application_name(postgres_database_url, name))
    yield database, lambda: sessions_of(postgres_database_url, name)
    database.dispose()


def backend_pid(database: Database) -> int:
    with database.engine.connect() as connection:
        return connection.execute(text("SELECT pg_backend_pid()")).scalar_one()


class ChildProcess:
    def __init__(self, pid: int, lines, commands) -> None:  # noqa: ANN001 - text files
        self.pid, self.lines, self.commands = pid, lines, commands

    def hear(self) -> str:
        return self.lines.readline().strip()

    def say(self, line: str) -> None:
        self.commands.write(line + "\n")

    def result(self) -> dict:
        last = self.hear()
        _, status = os.waitpid(self.pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0 and last, f"the child failed ({status}): {last!r}"
        return json.loads(last)


def in_child(body: Callable[[Callable[[str], None], Callable[[], str]], dict]) -> ChildProcess:
    """Fork; the child runs `body(say, hear)`, talking to the test over two pipes, and sends back what it returns
    (as JSON, its last line)."""
    to_child_read, to_child_write = os.pipe()
    from_child_read, from_child_write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 1
        try:
            os.close(to_child_write)
            os.close(from_child_read)
            to_parent = os.fdopen(from_child_write, "w", buffering=1)
            from_parent = os.fdopen(to_child_read)
            result = body(lambda line: to_parent.write(line + "\n"), lambda: from_parent.readline().strip())
            to_parent.write(json.dumps(result) + "\n")
            code = 0
        finally:
            os._exit(code)
    os.close(to_child_read)
    os.close(from_child_write)
    return ChildProcess(pid, os.fdopen(from_child_read), os.fdopen(to_child_write, "w", buffering=1))


def test_the_childs_first_statement_runs_on_a_connection_opened_before_it_asked(named):
    database, _ = named
    parents_backend = backend_pid(database)

    def child(say, hear) -> dict:  # noqa: ANN001
        database.after_fork()
        time.sleep(AHEAD_SECONDS)
        with database.engine.connect() as connection:
            backend, age = connection.execute(text(
                "SELECT pid, extract(epoch FROM clock_timestamp() - backend_start) FROM pg_stat_activity "
                "WHERE pid = pg_backend_pid()")).one()
        return {"backend": backend, "age": float(age)}

    found = in_child(child).result()
    assert found["backend"] != parents_backend  # never the parent's connection
    assert found["age"] >= AHEAD_SECONDS * 0.8, found  # it was there before the statement was asked for


def test_a_connection_opened_ahead_and_never_used_is_closed_with_the_pool(named):
    database, backends = named
    backend_pid(database)  # the parent's one pooled connection
    assert backends() == 1

    def child(say, hear) -> dict:  # noqa: ANN001
        database.after_fork()
        time.sleep(AHEAD_SECONDS)
        say("opened")
        hear()
        database.dispose()
        say("disposed")
        hear()
        return {}

    process = in_child(child)
    assert process.hear() == "opened"
    opened = backends()
    process.say("count taken")
    assert process.hear() == "disposed"
    deadline = time.monotonic() + 10
    while backends() != 1 and time.monotonic() < deadline:  # the server ends the backend after the client left
        time.sleep(0.05)
    disposed = backends()
    process.say("bye")
    process.result()
    assert (opened, disposed) == (2, 1)


def test_in_the_process_that_built_it_after_fork_opens_nothing(named):
    database, backends = named
    backend_pid(database)
    database.after_fork()
    time.sleep(AHEAD_SECONDS)
    assert backends() == 1


def test_a_refused_connection_fails_the_childs_first_use_as_a_lost_database():
    database = Database(f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/canvas")  # nothing listens there
    try:
        with pytest.raises(OperationalError), database.engine.connect():  # the parent tried once, as a worker does
            pass

        def child(say, hear) -> dict:  # noqa: ANN001
            database.after_fork()
            try:
                with database.engine.connect():
                    return {"connected": True}
            except OperationalError as error:
                return {"connected": False, "lost database": is_connection_error(error)}

        assert in_child(child).result() == {"connected": False, "lost database": True}
    finally:
        database.dispose()
