"""Redis's host goes dark (every packet dropped, nothing answers, not even with a reset: tests/servers/network_hole.py)
under a real `canvas worker` running a run. The command the worker sends next waits for an answer that never comes:
for RQ's socket timeout of ~7 minutes, or Linux's quarter of an hour of retransmissions, before this change. The
platform's clients end such a connection after ESTABLISHED_TIMEOUT_SECONDS (TCP_USER_TIMEOUT): the worker says Redis
is unreachable, waits for it, and takes jobs again once it answers. The run's own end is in the database: Succeeded,
dark Redis or not."""
from __future__ import annotations

import time

import pytest

from canvas.queueing.connections import ESTABLISHED_TIMEOUT_SECONDS, redis_client
from tests.conftest import Org
from tests.faults.harness import RedisServer
from tests.integration.run_helpers import make_workflow, run, start_worker, stop_worker, wait_for
from tests.process_tools import watched
from tests.servers.network_hole import NetworkHole

pytestmark = pytest.mark.slow
UNREACHABLE = "Redis is unreachable"


@pytest.fixture()
def dark_redis(tmp_path):
    """A redis-server of the test's own on loopback, and a route to it that can go dark."""
    server = RedisServer(tmp_path / "redis").start()
    try:
        with NetworkHole("127.0.0.1", server.port) as hole:
            yield server, hole
    finally:
        server.stop()


def test_a_command_sent_into_the_dark_ends_after_the_established_timeout(dark_redis):
    _server, hole = dark_redis
    client = redis_client(f"redis://{hole.there_address}:{hole.port}/0", socket_timeout=415)  # RQ's, on a worker
    assert client.ping()
    hole.open()
    error, seconds = watched(lambda: client.set("said-into-the-dark", "1"))
    assert error is not None and "timed out" in str(error), error
    assert ESTABLISHED_TIMEOUT_SECONDS - 1 <= seconds < ESTABLISHED_TIMEOUT_SECONDS + 5, seconds


def test_a_worker_whose_redis_goes_dark_takes_jobs_again_as_soon_as_it_answers(dark_redis, make_app, tmp_path):
    """Dark for twice the established timeout while the worker ends a run and a second run is queued (by the API,
    whose way to Redis stays open). Before this change the worker's command waited in the kernel's retransmissions,
    whose pauses double (the next one came ~50 s after the route went dark): the second run started ~20 s after Redis
    answered again. Now the worker has dropped that connection and waits for Redis with its own backoff (at most
    CANVAS_RECONNECT_MAX_SECONDS, 2 s here)."""
    server, hole = dark_redis
    app = make_app(REDIS_URL=server.url)  # the API queues runs directly; the worker's way leads through the route
    client, org = app.test_client(), Org(app, "DarkRedis")
    workflow_id = make_workflow(client, org.admin_headers, [("Wait", "delay", {"seconds": 2})])
    log_path = tmp_path / "worker.log"
    worker = start_worker(app.config["CANVAS_SETTINGS"], log_path,
                          env={"CANVAS_REDIS_URL": f"redis://{hole.there_address}:{hole.port}/0"})

    def status(answer) -> str:  # noqa: ANN001 - a RunWorkflow answer
        return client.get(answer.headers["Location"], headers=org.admin_headers).json["status"]

    try:
        first = run(client, org.admin_headers, workflow_id)
        assert first.status_code == 202, first.json
        wait_for(lambda: status(first) == "Running", 60, what="the first run running")
        hole.open()
        wait_for(lambda: status(first) == "Succeeded", 30, what="the first run's end")  # written to the database
        second = run(client, org.admin_headers, workflow_id)
        assert second.status_code == 202, second.json
        time.sleep(2 * ESTABLISHED_TIMEOUT_SECONDS)
        assert status(second) == "Queued"
        hole.close()
        answered = time.monotonic()
        wait_for(lambda: status(second) != "Queued", 60, what="the second run taken")
        taken_after = time.monotonic() - answered
        wait_for(lambda: status(second) == "Succeeded", 30, what="the second run succeeded")
    finally:
        stop_worker(worker)
    logged = log_path.read_text()
    assert taken_after < 8, f"the second run was taken {taken_after:.1f} s after Redis answered again"
    assert UNREACHABLE in logged and "Redis is back" in logged, logged
    assert "Traceback" not in logged, logged
