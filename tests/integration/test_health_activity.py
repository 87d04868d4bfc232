"""/healthz counts what a database and Redis ping cannot show: workers, schedulers, runs waiting for a worker."""
from __future__ import annotations

import pytest
from rq import Queue, worker_registration

from canvas.queueing.keys import RUN_QUEUE, schedulers_key
from canvas.scheduling.scheduler import SchedulerConfig, SchedulerEngine
from tests.integration.run_helpers import make_workflow, run, start_worker, stop_worker, wait_for

pytestmark = pytest.mark.usefixtures("clean_run_queue")


def health(client) -> dict:
    answer = client.get("/healthz")
    assert answer.status_code == 200, answer.json
    return answer.json


def test_runs_waiting_for_a_worker_are_counted(client, org):
    before = health(client)["queuedRuns"]
    workflow_id = make_workflow(client, org.admin_headers)
    assert run(client, org.admin_headers, workflow_id).status_code == 202
    assert health(client)["queuedRuns"] == before + 1


def test_a_running_scheduler_is_counted_until_it_stops(client, app):
    services = app.extensions["canvas"]
    settings = app.config["CANVAS_SETTINGS"]
    engine = SchedulerEngine(services.db, services.redis, SchedulerConfig.from_settings(settings), name="health:1")
    key = schedulers_key(settings["REDIS_PREFIX"])
    engine.start()
    try:
        wait_for(lambda: services.redis.zscore(key, "health:1") is not None, what="the scheduler's presence")
        assert health(client)["schedulers"] >= 1
    finally:
        engine.shutdown()
    assert services.redis.zscore(key, "health:1") is None  # gone at once, not after the presence window


def forget_killed_workers(app) -> None:
    """No worker of this suite runs outside its own test, but one killed by an earlier test (kill -9) keeps its key
    until RQ's worker TTL (minutes) runs out: expiring in the middle of this test, it would move the count."""
    queue = Queue(RUN_QUEUE, connection=app.extensions["canvas"].redis)
    for key in worker_registration.get_keys(queue=queue):
        queue.connection.delete(key)
    worker_registration.clean_worker_registry(queue)


@pytest.mark.slow
def test_a_worker_process_is_counted_until_it_stops(client, app, tmp_path):
    forget_killed_workers(app)
    before = health(client)["workers"]
    worker = start_worker(app.config["CANVAS_SETTINGS"], tmp_path / "worker.log")
    try:
        wait_for(lambda: health(client)["workers"] == before + 1, timeout=60, what="the worker counted")
    finally:
        stop_worker(worker)
    wait_for(lambda: health(client)["workers"] == before, timeout=30, what="the stopped worker no longer counted")
