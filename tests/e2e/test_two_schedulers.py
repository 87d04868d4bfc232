"""Two `canvas scheduler` processes on one database and Redis, every-second schedules, about 40 s: every
occurrence is recorded exactly once and each fired one has exactly one run; killing one scheduler loses none."""
from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import select, update
from sqlalchemy.exc import OperationalError

from canvas.models import ScheduleOccurrence, Workflow, WorkflowRun
from canvas.settings import redis_url
from tests.integration.test_scheduler_claims import empty_run_queue, make_scheduled  # noqa: F401 - fixtures

pytestmark = pytest.mark.slow
WORKFLOWS = 4
BOTH_RUNNING_SECONDS = 20
SURVIVOR_ALONE_SECONDS = 15


def scheduler_env(settings: dict) -> dict:
    import os

    env = {name: value for name, value in os.environ.items() if not name.startswith("CANVAS_")}
    env.update({"CANVAS_DATA_DIR": settings["DATA_DIR"], "CANVAS_DATABASE_URL": settings["DATABASE_URL"],
                "CANVAS_REDIS_URL": redis_url(settings), "CANVAS_REDIS_PREFIX": settings["REDIS_PREFIX"],
                "CANVAS_SECRET_KEYS": settings["SECRET_KEYS"], "CANVAS_LOG_LEVEL": "INFO"})
    return env


def start_scheduler(settings: dict, log_path: Path) -> subprocess.Popen:
    log = open(log_path, "wb")  # noqa: SIM115 - owned by the child
    return subprocess.Popen([sys.executable, "-m", "canvas", "scheduler"], env=scheduler_env(settings), stdout=log,
                            stderr=subprocess.STDOUT)


def wait_until_started(process: subprocess.Popen, log_path: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, log_path.read_text()[-3000:]
        if re.search(r"scheduler \S+ started", log_path.read_text()):
            return
        time.sleep(0.2)
    raise AssertionError(f"scheduler not started within {timeout} s: {log_path.read_text()[-3000:]}")


def stop(process: subprocess.Popen, how: int = signal.SIGTERM) -> None:
    if process.poll() is None:
        process.send_signal(how)
        process.wait(30)


class RunFinisher:
    """Plays the worker: scheduled runs end shortly after they are queued, so most occurrences start a run."""

    def __init__(self, database) -> None:  # noqa: ANN001
        self.database, self.stopping = database, threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self.stopping.wait(0.3):
            try:
                self._finish_queued()
            except OperationalError:  # a deadlock with a scheduler's claim (runs, then workflows): the next round
                continue

    def _finish_queued(self) -> None:
        with self.database.transaction() as session:
            finished = list(session.scalars(select(WorkflowRun.workflow_id).where(WorkflowRun.status == "Queued")))
            session.execute(update(WorkflowRun).where(WorkflowRun.status == "Queued").values(status="Succeeded"))
            session.execute(update(Workflow).where(Workflow.id.in_(finished)).values(status="Ready"))

    def __enter__(self) -> RunFinisher:
        self.thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self.stopping.set()
        self.thread.join(10)


def test_two_schedulers_fire_every_occurrence_exactly_once_and_survive_losing_one(app, services, make_scheduled,
                                                                                  tmp_path):
    settings = app.config["CANVAS_SETTINGS"]
    workflows = make_scheduled(WORKFLOWS)
    logs = [tmp_path / "scheduler-a.log", tmp_path / "scheduler-b.log"]
    schedulers = [start_scheduler(settings, log) for log in logs]
    try:
        with RunFinisher(services.db):
            for process, log in zip(schedulers, logs):
                wait_until_started(process, log)
            time.sleep(BOTH_RUNNING_SECONDS)
            stop(schedulers[0], signal.SIGKILL)
            killed_at = datetime.now(timezone.utc)
            time.sleep(SURVIVOR_ALONE_SECONDS)
            stop(schedulers[1])
    finally:
        for process in schedulers:
            stop(process, signal.SIGKILL)
    survivor = f":{schedulers[1].pid}"
    with services.db.sessions() as session:
        for workflow_id in workflows:
            check_workflow(session, workflow_id, killed_at, survivor)


def check_workflow(session, workflow_id: uuid.UUID, killed_at: datetime, survivor: str) -> None:  # noqa: ANN001
    rows = list(session.scalars(select(ScheduleOccurrence).where(ScheduleOccurrence.workflow_id == workflow_id)
                                .order_by(ScheduleOccurrence.scheduled_time)))
    times = [row.scheduled_time for row in rows]
    assert len(times) >= BOTH_RUNNING_SECONDS + SURVIVOR_ALONE_SECONDS - 5
    assert times == [times[0] + timedelta(seconds=index) for index in range(len(times))], "every second, once"
    assert {row.outcome for row in rows} <= {"fired", "skipped"}
    fired = [row for row in rows if row.outcome == "fired"]
    assert len(fired) >= len(rows) // 3, "most occurrences started a run"
    runs = {run.id: run for run in session.scalars(select(WorkflowRun).where(WorkflowRun.workflow_id == workflow_id))}
    assert sorted(runs) == sorted(row.run_id for row in fired), "one run per fired occurrence, no other"
    assert all(runs[row.run_id].scheduled_times == [row.scheduled_time.isoformat()] for row in fired)
    after_the_kill = [row for row in rows if row.scheduled_time > killed_at + timedelta(seconds=2)]
    assert len(after_the_kill) >= SURVIVOR_ALONE_SECONDS - 5
    assert all(row.scheduler.endswith(survivor) for row in after_the_kill)
