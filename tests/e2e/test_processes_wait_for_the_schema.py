"""`canvas worker` and `canvas scheduler` started before anything migrated their database (a new deployment whose
processes start together, or a release whose migration the API has yet to apply) say once what they wait for, and
start when `canvas db upgrade` (or an API) has migrated it: no traceback from a query of a table not there yet (the
scheduler wrote ~one a second). Stopped while they wait, they exit at once."""
from __future__ import annotations

import signal
import subprocess

import pytest

from canvas.schema_version import SCHEMA_HEAD
from tests.integration.run_helpers import wait_for
from tests.process_tools import canvas_env, run_canvas, start_canvas

pytestmark = pytest.mark.slow

STARTED = {"worker": "listening on queue", "scheduler": "schedules loaded"}


@pytest.fixture
def new_database(tmp_path) -> dict:
    """A data dir of its own, its SQLite database not created yet; the reaper's rounds a second apart."""
    return canvas_env(tmp_path / "data", CANVAS_REAPER_INTERVAL_SECONDS="1",
                      CANVAS_DATABASE_URL=f"sqlite:///{tmp_path / 'data' / 'canvas.db'}")


def started(command: str, env: dict, log_path) -> subprocess.Popen:  # noqa: ANN001
    process = start_canvas(command, env=env, log_path=log_path)
    try:
        wait_for(lambda: "Waiting for `canvas api`" in log_path.read_text(), 60, what=f"{command} saying it waits")
    except BaseException:
        process.kill()  # the test fails: its process must not outlive it
        process.wait(30)
        raise
    return process


def test_a_worker_and_a_scheduler_wait_for_the_migration_then_start(new_database, tmp_path):
    logs = {command: tmp_path / f"{command}.log" for command in STARTED}
    processes = {}
    try:
        for command in STARTED:
            processes[command] = started(command, new_database, logs[command])
        for log_path in logs.values():
            text = log_path.read_text()
            assert "the database schema is at no revision (a new database); this release needs revision " \
                   f"{SCHEMA_HEAD}" in text
            assert not any(phrase in text for phrase in STARTED.values())
        migrated = run_canvas("db", "upgrade", env=new_database)
        assert migrated.returncode == 0, migrated.stderr
        for command, log_path in logs.items():
            wait_for(lambda log_path=log_path, command=command: STARTED[command] in log_path.read_text(), 60,
                     what=f"{command} starting")
            assert f"the database schema is at revision {SCHEMA_HEAD} now: starting" in log_path.read_text()
    finally:
        for process in processes.values():
            process.send_signal(signal.SIGTERM)
        codes = [process.wait(60) for process in processes.values()]
    assert codes == [0] * len(STARTED)
    for log_path in logs.values():
        text = log_path.read_text()
        assert "Traceback" not in text and text.count("Waiting for `canvas api`") == 1, text[-3000:]


@pytest.mark.parametrize("command", list(STARTED))
def test_stopped_while_it_waits_it_exits_at_once(new_database, tmp_path, command):
    process = started(command, new_database, tmp_path / f"{command}.log")
    process.send_signal(signal.SIGTERM)
    try:
        assert process.wait(15) == 0
    finally:
        process.kill()  # a no-op once it has exited
    assert "Traceback" not in (tmp_path / f"{command}.log").read_text()


def test_a_schema_a_newer_release_migrated_is_left_as_it_is_with_a_warning(new_database, tmp_path):
    """Rolled back, or one machine not yet upgraded: every command that migrates died with alembic's traceback
    ("Can't locate revision identified by ..."). Now they say so and go on, as workers and schedulers do."""
    import sqlite3

    assert run_canvas("db", "upgrade", env=new_database).returncode == 0
    newer = f"{int(SCHEMA_HEAD) + 1:04d}"
    with sqlite3.connect(tmp_path / "data" / "canvas.db") as connection:
        connection.execute("UPDATE alembic_version SET version_num = ?", (newer,))
    upgraded = run_canvas("db", "upgrade", env=new_database)
    assert (upgraded.returncode, upgraded.stdout.strip()) == (0, f"database at revision {newer}"), upgraded.stderr
    assert "Traceback" not in upgraded.stderr
    assert (f"migrations: the database schema is at revision {newer}, newer than this release's {SCHEMA_HEAD} (a "
            "newer release migrated it): nothing to migrate; upgrade this machine") in upgraded.stderr
    created = run_canvas("org", "create", "--name", "Later", "--admin-email", "later@example.com", env=new_database)
    assert created.returncode == 0 and "Traceback" not in created.stderr, created.stderr
