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
from sqlalchemy.engine import make_url

from canvas.db import Database
from canvas.outages import DATABASE, OutageLog
from canvas.queueing.worker import TAKES_NO_RUN, CanvasSimpleWorker, RunQueue
from tests.integration.run_helpers import wait_for
from tests.servers.tcp_proxy import TcpProxy


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


def a_worker_that_lost_the_database(redis_url: str, relayed_database, caplog):  # noqa: ANN001, ANN201
    """A worker with a job waiting in its queue, whose database went away, as its reaper found it: (the worker, its
    queue, the job, its outage log, the relay cut)."""
    relay, database = relayed_database
    connection = Redis.from_url(redis_url)
    queue = RunQueue(f"no-database-{uuid.uuid4().hex[:8]}", connection=connection)
    outages = OutageLog(logging.getLogger("canvas.worker"), "test worker")
    worker = CanvasSimpleWorker([queue], connection=connection, name=f"no-db-{uuid.uuid4().hex[:8]}",
                                outages=outages, reconnect_max=0.5, database_check=database.check_reachable)
    job = queue.enqueue("operator.add", 2, 3, result_ttl=60)
    relay.cut()
    with pytest.raises(Exception) as raised:
        database.check_reachable()
    outages.failed(raised.value, "reaping lost runs")
    assert outages.is_down(DATABASE)
    caplog.set_level(logging.INFO, logger="canvas.worker")
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
        relay.restore()

    watcher = meanwhile(watch_then_restore)
    assert worker.work(burst=True) is True
    watcher.join(5)
    assert seen == {"queued": 1, "status": "queued"}, "the worker took a run while the database was away"
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
