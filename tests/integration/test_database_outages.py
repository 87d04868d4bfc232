"""`canvas scheduler` and `canvas worker` processes whose database goes away for a few seconds (PostgreSQL reached
through a proxy the test cuts): each logs the outage once, not a traceback per round, keeps running, and works
again once the database is back."""
from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url

from canvas.models import ScheduleOccurrence, WorkflowRun
from tests.e2e.test_two_schedulers import RunFinisher, stop, wait_until_started
from tests.integration.run_helpers import make_workflow, run, start_worker, stop_worker, wait_for
from tests.servers.tcp_proxy import TcpProxy
from tests.integration.test_scheduler_claims import empty_run_queue, make_scheduled  # noqa: F401 - fixtures
from tests.integration.test_scheduler_outages import start_scheduler

pytestmark = pytest.mark.slow
OUTAGE_SECONDS = 6
OUTAGE_LINE_LIMIT = 6


@pytest.fixture()
def app(postgres_database_url, make_app):  # the database goes last: its tables are emptied first
    """On PostgreSQL whatever the suite runs on: only a database server can go away."""
    return make_app(DATABASE_URL=postgres_database_url)


@pytest.fixture()
def database_proxy(app):
    url = make_url(app.config["CANVAS_SETTINGS"]["DATABASE_URL"])
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432).start()
    yield proxy
    proxy.stop()


def proxied(settings: dict, proxy: TcpProxy) -> dict:
    url = make_url(settings["DATABASE_URL"]).set(host="127.0.0.1", port=proxy.port)
    return {**settings, "DATABASE_URL": url.render_as_string(hide_password=False)}


def log_lines(path: Path) -> list[str]:
    return path.read_text(errors="replace").splitlines()


def outage(proxy: TcpProxy, log_path: Path) -> list[str]:
    """Cut the database for a while, give it back, and return what the process logged meanwhile."""
    before = len(log_lines(log_path))
    proxy.cut()
    time.sleep(OUTAGE_SECONDS)
    proxy.restore()
    wait_for(lambda: any("the database is back" in line for line in log_lines(log_path)), timeout=30,
             what="the database noticed back")
    return log_lines(log_path)[before:]


def assert_logged_once(during: list[str]) -> None:
    text = "\n".join(during)
    assert "Traceback" not in text, text
    assert len(during) <= OUTAGE_LINE_LIMIT, text
    assert sum("the database is unreachable" in line for line in during) == 1, text


def test_the_scheduler_rides_out_the_database_going_away(app, services, make_scheduled, database_proxy, tmp_path):
    workflows = make_scheduled(2)
    log_path = tmp_path / "scheduler.log"
    scheduler = start_scheduler(proxied(app.config["CANVAS_SETTINGS"], database_proxy), log_path)
    try:
        with RunFinisher(services.db):
            wait_until_started(scheduler, log_path)
            time.sleep(2)
            during = outage(database_proxy, log_path)
            back_at = datetime.now(timezone.utc)
            wait_for(lambda: ran_since(services, back_at), timeout=15, what="a run fired after the outage")
            assert scheduler.poll() is None
    finally:
        stop(scheduler)
    assert_logged_once(during)
    with services.db.sessions() as session:
        outcomes = set(session.scalars(select(ScheduleOccurrence.outcome)
                                       .where(ScheduleOccurrence.workflow_id.in_(workflows))))
    assert "fired" in outcomes and "failed" not in outcomes


def ran_since(services, since: datetime) -> bool:
    with services.db.sessions() as session:
        return session.scalar(select(WorkflowRun.id).where(WorkflowRun.date_queued > since).limit(1)) is not None


def test_a_worker_rides_out_the_database_going_away(app, client, org, database_proxy, tmp_path):
    workflow_id = make_workflow(client, org.admin_headers)
    log_path = tmp_path / "worker.log"
    # The reaper is what touches the database while the worker waits for runs: every second here.
    worker = start_worker(proxied(app.config["CANVAS_SETTINGS"], database_proxy), log_path,
                          env={"CANVAS_REAPER_INTERVAL_SECONDS": "1", "CANVAS_RECONNECT_MAX_SECONDS": "2"})
    try:
        wait_for(lambda: "Listening on" in "\n".join(log_lines(log_path)), timeout=60, what="the worker started")
        during = outage(database_proxy, log_path)
        assert worker.poll() is None
        location = run(client, org.admin_headers, workflow_id).headers["Location"]
        wait_for(lambda: client.get(location, headers=org.admin_headers).json["status"] == "Succeeded", timeout=60,
                 what="a run after the outage")
    finally:
        stop_worker(worker)
    assert_logged_once(during)
