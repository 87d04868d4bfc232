"""SQLite's write-ahead log copied back by a thread of a long-lived process (canvas.db.WalCheckpointer) instead of by
whichever commit filled it: measured on real database files."""
from __future__ import annotations

import os
import sqlite3
import time

import pytest
from sqlalchemy import text

from canvas.db import _FORK_GATE, WAL_AUTOCHECKPOINT_PAGES, Database, WalCheckpointer
from tests.process_tools import open_handles

ROW = "x" * 4000  # about a page per row
ROWS = 150  # ~150 pages: far below the autocheckpoint backstop, so no commit copies the log back by itself


@pytest.fixture()
def database(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'wal.db'}")
    with db.engine.begin() as connection:
        connection.execute(text("CREATE TABLE filler (id INTEGER PRIMARY KEY, body TEXT)"))
    with db.engine.connect() as connection:  # the table itself copied back: the file's size is the baseline
        connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    yield db, tmp_path / "wal.db"
    db.dispose()


def fill(db: Database) -> None:
    for number in range(ROWS):
        with db.engine.begin() as connection:
            connection.execute(text("INSERT INTO filler (id, body) VALUES (:id, :body)"), {"id": number, "body": ROW})


def grown_by(path, baseline: int, wait: float) -> int:
    deadline = time.monotonic() + wait
    while True:
        grown = os.path.getsize(path) - baseline
        if grown >= ROWS * len(ROW) or time.monotonic() > deadline:
            return grown
        time.sleep(0.02)


def test_the_backstop_is_far_above_what_the_test_writes():
    assert ROWS * 2 < WAL_AUTOCHECKPOINT_PAGES


def test_without_the_thread_the_log_stays_in_the_wal_file(database):
    """The control: below the backstop, nothing reaches the database file."""
    db, path = database
    baseline = os.path.getsize(path)
    fill(db)
    assert grown_by(path, baseline, wait=1.0) == 0
    assert os.path.getsize(f"{path}-wal") >= ROWS * len(ROW)


def test_the_thread_copies_the_log_back_into_the_database_file(database):
    db, path = database
    baseline = os.path.getsize(path)
    db.checkpoint_in_background(interval=0.05)
    fill(db)
    assert grown_by(path, baseline, wait=10.0) >= ROWS * len(ROW)
    with db.engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM filler")).scalar() == ROWS


def test_apart_from_forks_the_thread_copies_the_log_back_only_between_forks(database):
    """A forking worker's thread: while a fork is under way (the gate held, here by the test) it copies nothing back;
    once the fork is done, it does."""
    db, path = database
    db.keep_apart_from_forks()
    baseline = os.path.getsize(path)
    with _FORK_GATE:
        db.checkpoint_in_background(interval=0.05)
        fill(db)
        assert grown_by(path, baseline, wait=0.5) == 0
    assert grown_by(path, baseline, wait=10.0) >= ROWS * len(ROW)


@pytest.mark.parametrize("order", ["kept apart, then the thread", "the thread, then kept apart", "not kept apart"])
def test_apart_from_forks_the_thread_keeps_no_connection_between_rounds(database, order):
    """Sampled every 20 ms for a second, rounds every 50 ms: a thread that opens its connection for each round and
    closes it is seldom caught with the file open, whichever of the two calls came first; the control, a thread whose
    connection lives as long as it does (no forks to keep apart from), always is."""
    db, path = database
    apart = order != "not kept apart"
    if order == "kept apart, then the thread":
        db.keep_apart_from_forks()
    fill(db)
    db.checkpoint_in_background(interval=0.05)
    started = db._checkpointer
    if order == "the thread, then kept apart":
        time.sleep(0.1)
        db.keep_apart_from_forks()
        assert not started.thread.is_alive()  # the lasting connection's thread gave way
        assert db._checkpointer.thread.is_alive() and db._checkpointer.interval == 0.05
    time.sleep(0.2)
    db.engine.dispose()  # what the test wrote through the pool: not the thread's
    samples = []
    for _ in range(50):
        samples.append(bool(open_handles(os.getpid(), path)))
        time.sleep(0.02)
    if apart:
        assert sum(samples) <= len(samples) // 2, f"open in {sum(samples)} of {len(samples)} samples"
    else:
        assert all(samples)


def test_apart_from_forks_a_file_that_cannot_be_opened_leaves_the_thread_trying(tmp_path):
    """A round whose connection cannot be opened (here: the directory is gone) is skipped; the thread goes on, and
    copies the log back once the file can be opened again."""
    folder = tmp_path / "gone"
    checkpointer = WalCheckpointer(str(folder / "wal.db"), 0.02, apart_from_forks=True)
    checkpointer.start()
    try:
        time.sleep(0.2)  # ~10 rounds, none able to open the file
        assert checkpointer.thread.is_alive()
        folder.mkdir()
        writer = sqlite3.connect(folder / "wal.db")
        writer.execute("PRAGMA journal_mode=WAL")
        writer.execute("PRAGMA wal_autocheckpoint=0")
        writer.execute("CREATE TABLE filler (id INTEGER PRIMARY KEY, body TEXT)")
        writer.executemany("INSERT INTO filler (body) VALUES (?)", [(ROW,)] * 20)
        writer.commit()
        deadline = time.monotonic() + 10
        while os.path.getsize(folder / "wal.db") < 20 * len(ROW) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert os.path.getsize(folder / "wal.db") >= 20 * len(ROW)
        writer.close()
    finally:
        checkpointer.stop()
    assert not checkpointer.thread.is_alive()


def test_disposing_the_database_stops_the_thread(database):
    db, _path = database
    db.checkpoint_in_background(interval=0.05)
    checkpointer = db._checkpointer
    assert checkpointer is not None and checkpointer.thread.is_alive()
    db.dispose()
    assert not checkpointer.thread.is_alive()


def test_nothing_to_do_for_an_in_memory_database():
    db = Database("sqlite://")
    db.checkpoint_in_background()
    assert db._checkpointer is None
    db.dispose()
