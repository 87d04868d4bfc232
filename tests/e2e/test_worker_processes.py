"""Real `canvas worker` processes: a full run, a worker killed mid-block, Redis restarting under a worker, Redis
going away while a run ends, Redis losing its data."""
from __future__ import annotations

import shutil
import signal
import time

import pytest
from rq import Queue, Worker

from canvas.queueing.keys import RUN_QUEUE
from tests.conftest import Org
from tests.integration.run_helpers import (
    THREE_BLOCKS,
    make_workflow,
    rq_connection,
    run,
    kill_worker,
    start_worker,
    stop_worker,
    wait_for,
)
from tests.process_tools import alive, descendants
from canvas.queueing.worker import REGISTRATION_CHECK_SECONDS

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("clean_run_queue")]
FAST_RECONNECT = {"CANVAS_RECONNECT_MAX_SECONDS": "2"}


def _run_state(client, headers, location):
    return client.get(location, headers=headers).json


def _log_of(path) -> str:
    return path.read_text(errors="replace")


def _workers_counted(client) -> int | None:
    return client.get("/healthz").json.get("workers")


@pytest.mark.parametrize("worker_class", ["simple", "fork"])
def test_a_worker_process_runs_a_workflow(client, app, org, tmp_path, worker_class):
    workflow_id = make_workflow(client, org.admin_headers)
    worker = start_worker(app.config["CANVAS_SETTINGS"], tmp_path / "worker.log", "--worker-class", worker_class)
    try:
        location = run(client, org.admin_headers, workflow_id).headers["Location"]
        finished = wait_for(lambda: (state := _run_state(client, org.admin_headers, location))["status"]
                            in ("Succeeded", "Failed") and state, timeout=60, what="run finished")
    finally:
        stop_worker(worker)
    assert finished["status"] == "Succeeded", (tmp_path / "worker.log").read_text()[-2000:]
    assert [block["recordsOut"] for block in finished["blocks"]] == [3, 2, None]


def test_a_killed_worker_fails_the_run_with_worker_lost(client, app, org, tmp_path):
    blocks = [THREE_BLOCKS[0], ("Wait", "delay", {"seconds": 120}), THREE_BLOCKS[2]]
    workflow_id = make_workflow(client, org.admin_headers, blocks)
    settings = app.config["CANVAS_SETTINGS"]
    victim = start_worker(settings, tmp_path / "victim.log")
    location = run(client, org.admin_headers, workflow_id).headers["Location"]
    wait_for(lambda: _run_state(client, org.admin_headers, location)["blocks"][1]["status"] == "Running",
             what="block 2 running")
    kill_worker(victim)
    survivor = start_worker(settings, tmp_path / "survivor.log")  # its reaper notices the lost run
    try:
        failed = wait_for(lambda: (state := _run_state(client, org.admin_headers, location))["status"] == "Failed"
                          and state, timeout=60, what="run failed as worker lost")
        assert failed["error"].startswith("worker lost")
        assert [block["status"] for block in failed["blocks"]] == ["Succeeded", "Failed", "Pending"]
        workflow = client.get(f"/api/Workflow/{workflow_id}", headers=org.admin_headers).json
        assert workflow["status"] == "Failed"
        # Nothing half-written: block 2 has no stored output, block 1's is intact and usable.
        assert client.get(f"{location}/Block/2/Output", headers=org.admin_headers).status_code == 404
        assert client.get(f"{location}/Block/1/Output", headers=org.admin_headers).status_code == 200
        client.post("/api/UpdateWorkflow", headers=org.admin_headers, json={
            "id": workflow_id, "chain": [{"uniqueBlockId": failed["blocks"][1]["uniqueBlockId"],
                                          "variables": {"seconds": 0}}]})
        again = run(client, org.admin_headers, workflow_id, runFromBlock=2)
        assert again.status_code == 202
        done = wait_for(lambda: (state := _run_state(client, org.admin_headers, again.headers["Location"]))["status"]
                        == "Succeeded" and state, timeout=60, what="repair run")
        assert done["blocks"][0]["recordsIn"] == 3
    finally:
        stop_worker(survivor)


def test_a_worker_survives_redis_restarting(make_app, own_redis, tmp_path):
    app = make_app(REDIS_URL=own_redis.url)
    client, org = app.test_client(), Org(app, "Restart")
    workflow_id = make_workflow(client, org.admin_headers)
    worker = start_worker(app.config["CANVAS_SETTINGS"], tmp_path / "worker.log")
    try:
        first = run(client, org.admin_headers, workflow_id).headers["Location"]
        wait_for(lambda: _run_state(client, org.admin_headers, first)["status"] == "Succeeded", what="first run")
        own_redis.stop()
        time.sleep(3)  # the worker is waiting on the queue while Redis is gone
        own_redis.start()
        second = run(client, org.admin_headers, workflow_id)
        assert second.status_code == 202
        done = wait_for(lambda: _run_state(client, org.admin_headers, second.headers["Location"])["status"]
                        == "Succeeded", timeout=90, what="run after the Redis restart")
        assert done
    finally:
        stop_worker(worker)


@pytest.mark.parametrize("worker_class", ["simple", "fork"])
def test_a_worker_whose_run_ends_while_redis_is_down_waits_and_works_on(make_app, own_redis, tmp_path, worker_class):
    """The run ends (in the database) while Redis is stopped: RQ cannot record the job's end. The worker must not
    exit; it logs the outage once, without a traceback, and takes the next run once Redis is back."""
    app = make_app(REDIS_URL=own_redis.url)
    client, org = app.test_client(), Org(app, "Outage")
    workflow_id = make_workflow(client, org.admin_headers, [THREE_BLOCKS[0], ("Wait", "delay", {"seconds": 3}),
                                                            THREE_BLOCKS[2]])
    log_path = tmp_path / "worker.log"
    worker = start_worker(app.config["CANVAS_SETTINGS"], log_path, "--worker-class", worker_class,
                          env=FAST_RECONNECT)
    try:
        first = run(client, org.admin_headers, workflow_id).headers["Location"]
        wait_for(lambda: _run_state(client, org.admin_headers, first)["blocks"][1]["status"] == "Running",
                 what="block 2 running")
        own_redis.stop()
        wait_for(lambda: _run_state(client, org.admin_headers, first)["status"] == "Succeeded", timeout=30,
                 what="the run ended without Redis")
        wait_for(lambda: "Redis is unreachable" in _log_of(log_path), timeout=30, what="the outage logged")
        time.sleep(3)  # several reconnect attempts (RECONNECT_MAX_SECONDS is 2)
        assert worker.poll() is None, _log_of(log_path)[-3000:]
        own_redis.start()
        wait_for(lambda: "Redis is back" in _log_of(log_path), timeout=30, what="Redis noticed back")
        second = run(client, org.admin_headers, workflow_id)
        assert second.status_code == 202
        wait_for(lambda: _run_state(client, org.admin_headers, second.headers["Location"])["status"] == "Succeeded",
                 timeout=60, what="a run after the outage")
    finally:
        stop_worker(worker)
    text = _log_of(log_path)
    assert worker.returncode == 0, text[-3000:]
    assert "Traceback" not in text and "unhandled exception" not in text, text[-3000:]
    outage_lines = [line for line in text.splitlines() if "Redis is unreachable" in line]
    assert len([line for line in outage_lines if "canvas.worker" in line]) == 1, "one line per outage"
    assert len(outage_lines) == 1, "a plain worker forks no RQ scheduler, which would log its own"


@pytest.mark.parametrize("data_loss", ["flushall", "restart without persistence"])
def test_a_worker_registers_again_after_redis_lost_its_data(make_app, own_redis, tmp_path, data_loss):
    app = make_app(REDIS_URL=own_redis.url)
    client, connection = app.test_client(), rq_connection(app)
    log_path = tmp_path / "worker.log"
    worker = start_worker(app.config["CANVAS_SETTINGS"], log_path, env=FAST_RECONNECT)
    try:
        wait_for(lambda: _workers_counted(client) == 1, timeout=60, what="the worker counted")
        if data_loss == "flushall":
            connection.flushall()
        else:
            own_redis.stop()
            shutil.rmtree(own_redis.directory)
            own_redis.start()
        assert Worker.count(connection=connection) == 0, "the registration went with the data"
        # The worker notices within a check interval and a reconnect; the rest of the bound is for a loaded CI
        # machine (seen once at +10 s in a full run): it only keeps a worker that never comes back from hanging here.
        wait_for(lambda: _workers_counted(client) == 1, timeout=REGISTRATION_CHECK_SECONDS + 30,
                 what="the worker counted again")
        assert Worker.count(queue=Queue(RUN_QUEUE, connection=connection)) == 1
        assert Worker.count(connection=connection) == 1
        org = Org(app, "Forgotten")  # and it still takes runs
        location = run(client, org.admin_headers, make_workflow(client, org.admin_headers)).headers["Location"]
        wait_for(lambda: _run_state(client, org.admin_headers, location)["status"] == "Succeeded", timeout=60,
                 what="a run after the data loss")
    finally:
        stop_worker(worker)
    assert worker.returncode == 0, _log_of(log_path)[-3000:]
    assert _workers_counted(client) == 0, "its end is registered too"


def test_a_worker_waiting_for_redis_stops_on_sigterm(make_app, own_redis, tmp_path):
    app = make_app(REDIS_URL=own_redis.url)
    log_path = tmp_path / "worker.log"
    worker = start_worker(app.config["CANVAS_SETTINGS"], log_path, env=FAST_RECONNECT)
    try:
        wait_for(lambda: _workers_counted(app.test_client()) == 1, timeout=60, what="the worker counted")
        own_redis.stop()
        wait_for(lambda: "Redis is unreachable" in _log_of(log_path), timeout=30, what="the outage logged")
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(10) == 0, _log_of(log_path)[-3000:]
    finally:
        stop_worker(worker)


def test_the_scheduler_a_worker_forked_goes_when_the_worker_is_killed_alone(app, tmp_path):
    """Only the worker process is killed (as `kill -9 <pid>` would), not its process group: the RQ scheduler it forked
    (asked to with --with-rq-scheduler) must not run on for ever."""
    from rq.scheduler import RQScheduler

    from canvas.queueing.keys import RUN_QUEUE

    # A worker killed by an earlier test left the queue's scheduler lock for its TTL: this worker must win it.
    app.extensions["canvas"].redis.delete(RQScheduler.get_locking_key(RUN_QUEUE))
    worker = start_worker(app.config["CANVAS_SETTINGS"], tmp_path / "worker.log", "--with-rq-scheduler")
    try:
        forked = wait_for(lambda: descendants(worker.pid), timeout=60, what="the worker's scheduler process")
        worker.kill()
        worker.wait(10)
        wait_for(lambda: not any(alive(pid) for pid in forked), timeout=30, what="forked processes gone")
    finally:
        stop_worker(worker)


@pytest.mark.parametrize(("options", "runs_done"), [(("--burst",), 2), (("--max-jobs", "1"), 1)])
def test_a_burst_or_max_jobs_worker_ends_by_itself(make_app, own_redis, tmp_path, options, runs_done):
    app = make_app(REDIS_URL=own_redis.url)
    client, org = app.test_client(), Org(app, "Bounded")
    locations = [run(client, org.admin_headers, make_workflow(client, org.admin_headers)).headers["Location"]
                 for _ in range(2)]
    log_path = tmp_path / "worker.log"
    worker = start_worker(app.config["CANVAS_SETTINGS"], log_path, *options)
    try:
        assert worker.wait(60) == 0, _log_of(log_path)[-3000:]
    finally:
        stop_worker(worker)
    statuses = [_run_state(client, org.admin_headers, location)["status"] for location in locations]
    assert statuses.count("Succeeded") == runs_done, statuses
