"""Real `canvas worker` processes: a full run, a worker killed mid-block, Redis restarting under a worker."""
from __future__ import annotations

import pytest

from tests.integration.run_helpers import (
    THREE_BLOCKS,
    make_workflow,
    run,
    kill_worker,
    start_worker,
    stop_worker,
    wait_for,
)
from tests.process_tools import alive, descendants

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("clean_run_queue")]


def _run_state(client, headers, location):
    return client.get(location, headers=headers).json


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


def test_a_worker_survives_redis_restarting(make_app, tmp_path):
    from canvas.queueing.embedded import EmbeddedRedis
    from tests.conftest import Org

    redis_server = EmbeddedRedis({"DATA_DIR": str(tmp_path / "own-redis"), "REDIS_URL": None})
    redis_server.start()
    app = make_app(REDIS_URL=redis_server.url)
    client, org = app.test_client(), Org(app, "Restart")
    workflow_id = make_workflow(client, org.admin_headers)
    worker = start_worker(app.config["CANVAS_SETTINGS"], tmp_path / "worker.log")
    try:
        first = run(client, org.admin_headers, workflow_id).headers["Location"]
        wait_for(lambda: _run_state(client, org.admin_headers, first)["status"] == "Succeeded", what="first run")
        redis_server.stop()
        import time

        time.sleep(3)  # the worker is waiting on the queue while Redis is gone
        redis_server.start()
        second = run(client, org.admin_headers, workflow_id)
        assert second.status_code == 202
        done = wait_for(lambda: _run_state(client, org.admin_headers, second.headers["Location"])["status"]
                        == "Succeeded", timeout=90, what="run after the Redis restart")
        assert done
    finally:
        stop_worker(worker)
        redis_server.stop()


def test_the_scheduler_a_worker_forked_goes_when_the_worker_is_killed_alone(app, tmp_path):
    """Only the worker process is killed (as `kill -9 <pid>` would), not its process group: its forked RQ scheduler
    must not run on for ever."""
    from rq.scheduler import RQScheduler

    from canvas.queueing.keys import RUN_QUEUE

    # A worker killed by an earlier test left the queue's scheduler lock for its TTL: this worker must win it.
    app.extensions["canvas"].redis.delete(RQScheduler.get_locking_key(RUN_QUEUE))
    worker = start_worker(app.config["CANVAS_SETTINGS"], tmp_path / "worker.log")
    try:
        forked = wait_for(lambda: descendants(worker.pid), timeout=60, what="the worker's scheduler process")
        worker.kill()
        worker.wait(10)
        wait_for(lambda: not any(alive(pid) for pid in forked), timeout=30, what="forked processes gone")
    finally:
        stop_worker(worker)
