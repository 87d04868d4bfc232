"""A worker that lost the database takes no run until the database answers again (canvas.queueing.worker): a real
RQ worker, a real Redis, and PostgreSQL behind a relay the test cuts, as a firewall or a broken route would for one
machine. (tests/faults has the whole story with real processes: `a worker cut off from the database`.)"""
from __future__ import annotations

import logging
import threading
import time
import uuid

import pytest
from redis import Redis
from rq.job import Job
from sqlalchemy import text
from sqlalchemy.engine import make_url

from canvas.db import Database
from canvas.outages import DATABASE, OutageLog
from canvas.queueing.keys import RUN_QUEUE, WORKER_WAITING_FOR_DATABASE
from canvas.queueing.worker import TAKES_NO_RUN, CanvasSimpleWorker, RunQueue
from tests.console.conftest import signed_in
from tests.integration.run_helpers import wait_for
from tests.servers.postgres import temporary_role
from tests.servers.tcp_proxy import TcpProxy
from tests.unit.test_metrics import scrape, value


@pytest.fixture()
def relayed_database(postgres_database_url):
    """(the relay, a Database whose connections go through it)."""
    url = make_url(postgres_database_url)
    with TcpProxy(url.host or "127.0.0.1", url.port or 5432) as relay:
        database = Database(url.set(host="127.0.0.1", port=relay.port).render_as_string(hide_password=False),
                            lost_run_grace_seconds=4)
        try:
            yield relay, database
        finally:
            database.engine.dispose()


@pytest.fixture()
def limited_role(postgres_database_url):
    """(the server's URL as a new role that may open no connection, an engine of the server's superuser to change
    that with, the role's name)."""
    with temporary_role(postgres_database_url, "canvas_limited", "LOGIN CONNECTION LIMIT 0") as (role, admin):
        yield make_url(postgres_database_url).set(username=role).render_as_string(hide_password=False), admin, role


def a_worker(redis_url: str, database: Database) -> tuple[CanvasSimpleWorker, RunQueue, OutageLog, Job]:
    """A worker with a job waiting in its queue: (the worker, its queue, its outage log, the job)."""
    connection = Redis.from_url(redis_url)
    queue = RunQueue(f"no-database-{uuid.uuid4().hex[:8]}", connection=connection)
    outages = OutageLog(logging.getLogger("canvas.worker"), "test worker")
    worker = CanvasSimpleWorker([queue], connection=connection, name=f"no-db-{uuid.uuid4().hex[:8]}",
                                outages=outages, reconnect_max=0.5, database_check=database.check_reachable)
    return worker, queue, outages, queue.enqueue("operator.add", 2, 3, result_ttl=60)


def database_lost(database: Database, outages: OutageLog, caplog) -> None:  # noqa: ANN001
    """As the worker's reaper finds it: a statement that cannot reach the database, filed in the outage log."""
    with pytest.raises(Exception) as raised:
        database.check_reachable()
    outages.failed(raised.value, "reaping lost runs")
    assert outages.is_down(DATABASE)
    caplog.set_level(logging.INFO, logger="canvas.worker")


def a_worker_that_lost_the_database(redis_url: str, relayed_database, caplog):  # noqa: ANN001, ANN201
    """A worker with a job waiting in its queue, whose database went away: (the worker, its queue, the job, its
    outage log, the relay cut)."""
    relay, database = relayed_database
    worker, queue, outages, job = a_worker(redis_url, database)
    relay.cut()
    database_lost(database, outages, caplog)
    return worker, queue, job, outages, relay


def meanwhile(action) -> threading.Thread:  # noqa: ANN001
    """`action` on a thread of its own while the worker works on the main one (RQ installs signal handlers)."""
    thread = threading.Thread(target=action, daemon=True)
    thread.start()
    return thread


def test_a_worker_takes_no_run_while_the_database_is_away_and_takes_it_when_it_answers(redis_url, relayed_database,
                                                                                        caplog):
    worker, queue, job, outages, relay = a_worker_that_lost_the_database(redis_url, relayed_database, caplog)
    seen: dict = {}

    def watch_then_restore() -> None:
        wait_for(lambda: TAKES_NO_RUN in caplog.text, 10, what="the worker saying it takes no run")
        time.sleep(2)  # several probes with the backoff, each refused
        seen["queued"], seen["status"] = queue.count, job.get_status(refresh=True)
        seen["state"] = worker.connection.hget(worker.key, "state")
        relay.restore()

    watcher = meanwhile(watch_then_restore)
    assert worker.work(burst=True) is True
    watcher.join(5)
    assert seen == {"queued": 1, "status": "queued", "state": WORKER_WAITING_FOR_DATABASE.encode()}, seen
    assert job.get_status(refresh=True) == "finished" and job.return_value() == 5
    assert "the database answers; taking runs again" in caplog.text
    assert not outages.is_down(DATABASE)


def test_a_worker_waiting_for_the_database_stops_when_asked_without_taking_a_run(redis_url, relayed_database,
                                                                                 caplog):
    worker, queue, job, outages, relay = a_worker_that_lost_the_database(redis_url, relayed_database, caplog)
    asked: list[float] = []

    def ask_to_stop() -> None:
        wait_for(lambda: TAKES_NO_RUN in caplog.text, 10, what="the worker saying it takes no run")
        asked.append(time.monotonic())
        worker.stop.set()

    meanwhile(ask_to_stop)
    worker.work(burst=True)
    assert asked and time.monotonic() - asked[0] < 3, "the worker went on waiting for the database after the stop"
    assert job.get_status(refresh=True) == "queued" and queue.count == 1


def test_a_worker_whose_database_answers_takes_runs_as_before(redis_url, relayed_database, caplog):
    """The control: the database marked away by a blip that is over; the check passes at once, nothing is said."""
    worker, queue, job, outages, relay = a_worker_that_lost_the_database(redis_url, relayed_database, caplog)
    relay.restore()
    assert worker.work(burst=True) is True
    assert job.get_status(refresh=True) == "finished"
    assert TAKES_NO_RUN not in caplog.text and not outages.is_down(DATABASE)


def test_a_worker_whose_role_has_no_connection_left_says_so_and_takes_no_run(redis_url, limited_role, caplog):
    """A connection limit reached (a role's here; the server's max_connections alike, SQLSTATE 53300) is named for
    what it is, not as an unreachable database: the operator is sent to the limit, not to the network."""
    url, admin, role = limited_role
    database = Database(url, lost_run_grace_seconds=4)
    try:
        worker, queue, outages, job = a_worker(redis_url, database)
        database_lost(database, outages, caplog)
        said = "the database refuses new connections: its connection limit is reached (OperationalError)"
        assert said in caplog.text  # the reaper's line
        seen: dict = {}

        def watch_then_allow() -> None:
            wait_for(lambda: f"{said}; the worker {TAKES_NO_RUN}" in caplog.text, 10, what="the worker's line")
            seen["status"] = job.get_status(refresh=True)
            with admin.connect() as connection:
                connection.execute(text(f"ALTER ROLE {role} CONNECTION LIMIT 2"))

        meanwhile(watch_then_allow)
        assert worker.work(burst=True) is True
        assert seen == {"status": "queued"} and job.get_status(refresh=True) == "finished"
    finally:
        database.engine.dispose()


def test_healthz_metrics_and_the_console_count_the_workers_waiting_for_the_database(app, org, client):
    """A worker of the run queue in that state (as a waiting worker writes it, above) is counted among the workers,
    and apart, by /healthz and /metrics; the console's health page says so."""
    connection = Redis.from_url(app.config["CANVAS_SETTINGS"]["REDIS_URL"])
    waiting = CanvasSimpleWorker([RunQueue(RUN_QUEUE, connection=connection)], connection=connection,
                                 name=f"waiting-{uuid.uuid4().hex[:8]}")
    before = client.get("/healthz").json
    waiting.register_birth()
    try:
        waiting.set_state(WORKER_WAITING_FOR_DATABASE)
        health = client.get("/healthz").json
        assert (health["workers"], health["workersWaitingForDatabase"]) == (before["workers"] + 1,
                                                                            before["workersWaitingForDatabase"] + 1)
        gauges = scrape(client)
        assert (value(gauges, "canvas_workers"), value(gauges, "canvas_workers_waiting_for_database")) == (
            health["workers"], health["workersWaitingForDatabase"])
        page = signed_in(app, org.admin_id).get("/console/health").get_data(as_text=True)
        assert f"({health['workersWaitingForDatabase']} taking no run: waiting for the database)" in page
        waiting.set_state("idle")
        assert client.get("/healthz").json["workersWaitingForDatabase"] == before["workersWaitingForDatabase"]
    finally:
        waiting.register_death()
