"""A process that forks children which use a SQLite file (RQ's forking worker) while a thread of its own uses the same
file (the worker's reaper): the thread's uses are kept apart from the forks (Database.keep_apart_from_forks,
apart_from_forks), and leave no connection open for a child to inherit. Real files, real forks, counted children.

The control shows what the gate is for: with a thread writing outside it, children forked meanwhile hang at their
first use of the file (in trials, a quarter of them)."""
from __future__ import annotations

import os
import threading
import time

import pytest
from sqlalchemy import create_engine, text

from canvas import migrate
from canvas.db import Database
from tests.integration.run_helpers import start_worker, stop_worker, wait_for
from tests.process_tools import open_handles

pytestmark = pytest.mark.slow
FORKS = 40
CHILD_SECONDS = 10.0  # a child that writes one row takes milliseconds; one that has not ended by then hangs
CONTROL_CHILD_SECONDS = 3.0


@pytest.fixture()
def database(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'forks.db'}")
    with db.engine.begin() as connection:
        connection.execute(text("CREATE TABLE marks (id INTEGER PRIMARY KEY, writer TEXT NOT NULL)"))
    yield db
    db.dispose()


def mark(db: Database, writer: str) -> None:
    with db.transaction() as session:
        session.execute(text("INSERT INTO marks (writer) VALUES (:writer)"), {"writer": writer})


def count_marks(db: Database, writer: str) -> int:
    with db.engine.connect() as connection:
        return connection.execute(text("SELECT count(*) FROM marks WHERE writer = :writer"),
                                  {"writer": writer}).scalar_one()


def fork_writer(db: Database) -> int:
    """A child that does what a forked run does first: drop what it inherited, then write."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            db.after_fork()
            mark(db, "child")
            code = 0
        finally:
            os._exit(code)
    return pid


def ended_within(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            assert os.waitstatus_to_exitcode(status) == 0
            return True
        time.sleep(0.005)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    return False


def busy_thread(db: Database, stop: threading.Event, apart: bool) -> threading.Thread:
    def write_in_a_loop() -> None:
        while not stop.is_set():
            if apart:
                with db.apart_from_forks():
                    mark(db, "thread")
            else:
                mark(db, "thread")

    thread = threading.Thread(target=write_in_a_loop, daemon=True)
    thread.start()
    return thread


def test_children_forked_while_a_thread_writes_apart_from_forks_all_finish(database):
    database.keep_apart_from_forks()
    stop = threading.Event()
    thread = busy_thread(database, stop, apart=True)
    try:
        hung = sum(not ended_within(fork_writer(database), CHILD_SECONDS) for _ in range(FORKS))
    finally:
        stop.set()
        thread.join(10)
    assert hung == 0
    assert count_marks(database, "child") == FORKS
    assert count_marks(database, "thread") >= FORKS  # the thread was busy all along, not waiting its turn once


def test_control_children_forked_while_a_thread_writes_outside_the_gate_hang(database):
    stop = threading.Event()
    thread = busy_thread(database, stop, apart=False)
    forked = 0
    try:
        while forked < 4 * FORKS:  # stops at the first child that hangs
            forked += 1
            if not ended_within(fork_writer(database), CONTROL_CHILD_SECONDS):
                break
        else:
            pytest.fail(f"no child of {forked} hung: the control no longer shows what the gate prevents")
    finally:
        stop.set()
        thread.join(10)


def test_a_use_apart_from_forks_leaves_no_connection_open(database, tmp_path):
    path = tmp_path / "forks.db"
    mark(database, "before")
    assert open_handles(os.getpid(), path)  # the pool keeps its connection: what a forking process must not
    database.keep_apart_from_forks()
    assert not open_handles(os.getpid(), path)
    with database.apart_from_forks():
        mark(database, "apart")
        assert open_handles(os.getpid(), path)
    assert not open_handles(os.getpid(), path)
    assert count_marks(database, "apart") == 1


def test_elsewhere_apart_from_forks_changes_nothing(database, tmp_path):
    with database.apart_from_forks():  # keep_apart_from_forks was never called: no gate, the pool as it is
        mark(database, "plain")
    assert open_handles(os.getpid(), tmp_path / "forks.db")


def test_a_forking_workers_parent_keeps_no_sqlite_connection_between_reaper_rounds(app, tmp_path):
    """A real `canvas worker --worker-class fork` on its own SQLite file, its reaper going round every 0.5 s (each
    round reads the runs table): sampled for 4 s, its parent holds the file open only while a round is under way.
    Kept open from one round to the next (the pool's way), it would be open in nearly every sample after the first
    round."""
    path = tmp_path / "worker.db"
    engine = create_engine(f"sqlite:///{path}")
    migrate.upgrade(engine)
    engine.dispose()
    log_path = tmp_path / "worker.log"
    worker = start_worker(app.config["CANVAS_SETTINGS"], log_path, "--worker-class", "fork",
                          env={"CANVAS_DATABASE_URL": f"sqlite:///{path}", "CANVAS_REAPER_INTERVAL_SECONDS": "0.5"})
    try:
        wait_for(lambda: "listening on queue" in log_path.read_text(errors="replace"), timeout=60,
                 what="the worker listening")
        samples = []
        for _ in range(40):
            samples.append(bool(open_handles(worker.pid, path)))
            time.sleep(0.1)
    finally:
        stop_worker(worker)
    assert worker.returncode is not None
    held = sum(samples)
    assert held <= len(samples) // 2, f"open in {held} of {len(samples)} samples"
