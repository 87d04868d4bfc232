"""A `canvas scheduler` process whose Redis goes away for a few seconds: it logs the outage once (not a traceback per
round), records no occurrence failed, and dispatches runs again once Redis is back."""
from __future__ import annotations

import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from redis import Redis
from rq.job import Job
from sqlalchemy import select

from canvas.models import ScheduleOccurrence, WorkflowRun
from tests.e2e.test_two_schedulers import RunFinisher, scheduler_env, stop, wait_until_started
from tests.integration.run_helpers import wait_for
from tests.integration.test_scheduler_claims import empty_run_queue, make_scheduled  # noqa: F401 - fixtures

pytestmark = pytest.mark.slow
OUTAGE_SECONDS = 6
OUTAGE_LINE_LIMIT = 6  # gone, back, the runs left Queued, RQ's scheduler: a handful, whatever the outage's length


def start_scheduler(settings: dict, log_path: Path) -> subprocess.Popen:
    log = open(log_path, "wb")  # noqa: SIM115 - owned by the child
    return subprocess.Popen([sys.executable, "-m", "canvas", "scheduler"], stdout=log, stderr=subprocess.STDOUT,
                            env={**scheduler_env(settings), "CANVAS_RECONNECT_MAX_SECONDS": "2"})


def log_lines(path: Path) -> list[str]:
    return path.read_text(errors="replace").splitlines()


def runs_queued_since(services, since: datetime) -> list[str]:
    with services.db.sessions() as session:
        return [str(run_id) for run_id in session.scalars(select(WorkflowRun.id)
                                                          .where(WorkflowRun.date_queued > since))]


def test_the_scheduler_rides_out_redis_going_away(make_app, services, make_scheduled, own_redis, tmp_path):
    workflows = make_scheduled(2)
    settings = make_app(REDIS_URL=own_redis.url).config["CANVAS_SETTINGS"]
    jobs = Redis.from_url(own_redis.url)
    log_path = tmp_path / "scheduler.log"
    scheduler = start_scheduler(settings, log_path)
    try:
        with RunFinisher(services.db):  # every occurrence can start a run
            wait_until_started(scheduler, log_path)
            time.sleep(2)
            before = len(log_lines(log_path))
            own_redis.stop()
            time.sleep(OUTAGE_SECONDS)
            own_redis.start()
            back_at = datetime.now(timezone.utc)
            wait_for(lambda: any("Redis is back" in line for line in log_lines(log_path)), timeout=30,
                     what="the scheduler noticing Redis is back")
            during = log_lines(log_path)[before:]
            wait_for(lambda: any(Job.exists(run_id, connection=jobs)
                                 for run_id in runs_queued_since(services, back_at)),
                     timeout=15, what="a run queued in Redis after the outage")
            assert scheduler.poll() is None
    finally:
        stop(scheduler)
    text = "\n".join(during)
    assert "Traceback" not in text, text
    assert len(during) <= OUTAGE_LINE_LIMIT, text
    assert sum("Redis is unreachable" in line for line in during) == 1, text
    with services.db.sessions() as session:
        rows = list(session.scalars(select(ScheduleOccurrence).where(ScheduleOccurrence.workflow_id.in_(workflows))))
    assert rows and {row.outcome for row in rows} <= {"fired", "skipped"}, "no occurrence recorded failed"
    for workflow_id in workflows:
        times = sorted(row.scheduled_time for row in rows if row.workflow_id == workflow_id)
        assert times == [times[0] + timedelta(seconds=index) for index in range(len(times))], "every second, once"
