"""The lean process structure (figures: benchmarks/footprint.py): RQ's scheduler runs in `canvas scheduler`, in one
place at a time; a plain `canvas worker` forks none, and delayed jobs (callback retries) are queued all the same."""
from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
import requests
from redis import Redis
from rq import Queue, Worker
from rq.scheduler import RQScheduler
from werkzeug.wrappers import Response

from canvas.queueing.keys import RUN_QUEUE
from canvas.queueing.worker import PatientScheduler
from tests.api.test_v2_support import V2
from tests.conftest import Org
from tests.integration.run_helpers import (
    rq_connection,
    start_worker,
    stop_worker,
    wait_for,
    worker_env,
)
from tests.integration.test_v2_callbacks import add_callback
from tests.process_tools import alive, arguments_of, canvas_env, descendants, free_port, start_canvas

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("clean_run_queue")]
LOCK = RQScheduler.get_locking_key(RUN_QUEUE)


def _canvas_children(pid: int, command: str) -> list[int]:
    """The processes below `pid` that run `canvas <command>`."""
    return [child for child in descendants(pid) if alive(child) and _subcommand(arguments_of(child)) == command]


def _subcommand(argv: list[str]) -> str | None:
    """`worker` of `python [-P] -m canvas worker ...`."""
    return argv[argv.index("canvas") + 1] if "canvas" in argv[:-1] else None


def _start_scheduler(settings: dict, log_path: Path, env: dict | None = None) -> subprocess.Popen:
    log = open(log_path, "ab")  # noqa: SIM115 - owned by the child
    return subprocess.Popen([sys.executable, "-m", "canvas", "scheduler"], env={**worker_env(settings), **(env or {})},
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def _rq_scheduler_name(pid: int) -> str:
    return f"rq:{socket.gethostname()}:{pid}"


def test_a_plain_worker_forks_no_rq_scheduler(app, tmp_path):
    connection = rq_connection(app)
    connection.delete(LOCK)  # free: a worker that still forked RQ's scheduler would take it
    worker = start_worker(app.config["CANVAS_SETTINGS"], tmp_path / "worker.log")
    try:
        # Its own registration, not a count: a worker killed by an earlier test stays counted for RQ's worker TTL
        wait_for(lambda: any(registered.pid == worker.pid for registered in Worker.all(connection=connection)),
                 timeout=60, what="the worker registered")
        time.sleep(2)  # RQ forks its scheduler right after the worker registers, when it does
        assert descendants(worker.pid) == set(), (tmp_path / "worker.log").read_text()[-3000:]
        assert connection.get(LOCK) is None
    finally:
        stop_worker(worker)


def test_canvas_scheduler_alone_queues_a_delayed_callback_retry(make_app, http_server, tmp_path):
    """A callback answered 500 is retried a second later (RQ's enqueue_in): with a plain worker and `canvas
    scheduler`, the retry is queued by the scheduler's RQ scheduler thread and delivered by the worker."""
    app = make_app()
    v2 = V2(app, app.test_client(), Org(app, "Delayed"))
    answers = iter([Response(status=500), Response(status=204)])
    http_server.route("/hook", lambda request: next(answers))
    flow = v2.create("Retried later")
    callback = add_callback(v2, flow["id"], http_server.url("/hook"))
    settings, delay = app.config["CANVAS_SETTINGS"], {"CANVAS_CALLBACK_RETRY_BASE_SECONDS": "1"}
    rq_connection(app).delete(LOCK)
    worker = start_worker(settings, tmp_path / "worker.log", env=delay)
    scheduler = _start_scheduler(settings, tmp_path / "scheduler.log", env=delay)
    try:
        wait_for(lambda: rq_connection(app).get(LOCK) == _rq_scheduler_name(scheduler.pid).encode(), timeout=60,
                 what="RQ's lock held by canvas scheduler")
        answer = v2.client.post("/api/RunWorkflow", json={"workflowId": flow["id"]}, headers=v2.org.admin_headers)
        assert answer.status_code == 202, answer.json
        wait_for(lambda: http_server.hits("/hook") == 2, timeout=60, what="the retried delivery")
        deliveries = wait_for(lambda: [d for d in v2.call(
            "GET", f"/v2/flows/{flow['id']}/callbacks/{callback['id']}/deliveries").json["data"]
            if d["attributes"]["status"] == "Delivered"], timeout=30, what="the delivery recorded")
        assert deliveries[0]["attributes"]["attempts"] == 2
        assert descendants(worker.pid) == set()
    finally:
        stop_worker(worker)
        stop_worker(scheduler)
    assert scheduler.returncode == 0, (tmp_path / "scheduler.log").read_text()[-3000:]
    assert rq_connection(app).get(LOCK) is None, "released as the scheduler stopped"


def test_the_rq_scheduler_thread_waits_for_a_lost_redis_and_a_standby_takes_over(own_redis):
    """PatientScheduler.serve, as `canvas scheduler` runs it: delayed jobs are queued before and after Redis goes
    away for a while; a second one stands by and takes over when the first stops."""
    connection = Redis.from_url(own_redis.url)
    queue = Queue(RUN_QUEUE, connection=connection)
    stops = [threading.Event(), threading.Event()]
    schedulers = [PatientScheduler([RUN_QUEUE], connection=connection, name=name, reconnect_max=1)
                  for name in ("first", "second")]
    threads = [threading.Thread(target=scheduler.serve, args=(stop, 0.5), daemon=True)
               for scheduler, stop in zip(schedulers, stops)]

    def queued_later() -> None:
        job = queue.enqueue_in(timedelta(seconds=1), "builtins.len", "delayed")
        wait_for(lambda: job.id in queue.get_job_ids(), timeout=30, what="the delayed job queued")

    try:
        threads[0].start()
        wait_for(lambda: connection.get(LOCK) == b"first", timeout=10, what="the first holding the lock")
        threads[1].start()
        queued_later()
        own_redis.stop()
        time.sleep(3)
        own_redis.start()
        queued_later()
        assert threads[0].is_alive() and connection.get(LOCK) == b"first"
        stops[0].set()
        threads[0].join(10)
        wait_for(lambda: connection.get(LOCK) == b"second", timeout=10, what="the standby taking over")
        queued_later()
    finally:
        for stop in stops:
            stop.set()
        for thread in threads:
            thread.join(10)
    assert connection.get(LOCK) is None


def test_canvas_up_runs_rq_scheduler_in_its_scheduler_only(tmp_path):
    data_dir, port = tmp_path / "data", free_port()
    process = start_canvas("up", "--port", str(port), env=canvas_env(data_dir), log_path=tmp_path / "up.log")
    try:
        health = {}

        def counted() -> bool:
            nonlocal health
            try:
                health = requests.get(f"http://127.0.0.1:{port}/healthz", timeout=10).json()
            except requests.RequestException:
                assert process.poll() is None, (tmp_path / "up.log").read_text()[-3000:]
                return False
            return (health.get("workers"), health.get("schedulers")) == (1, 1)

        wait_for(counted, timeout=120, what="the worker and the scheduler counted")
        [worker], [scheduler] = _canvas_children(process.pid, "worker"), _canvas_children(process.pid, "scheduler")
        redis = Redis(unix_socket_path=str(data_dir / "redis" / "redis.sock"))
        name = _rq_scheduler_name(scheduler)
        wait_for(lambda: redis.get(LOCK) == name.encode(), timeout=30, what="RQ's lock held by canvas scheduler")
        registered = [key.decode() for key in redis.scan_iter("rq:scheduler:*")]
        assert registered == [f"rq:scheduler:{name}"], registered
        assert int(redis.hget(registered[0], "pid")) == scheduler
        assert descendants(worker) == set(), "the worker forks no RQ scheduler"
        redis.close()
    finally:
        process.send_signal(signal.SIGTERM)
        exit_code = process.wait(60)
    assert exit_code == 0, (tmp_path / "up.log").read_text()[-3000:]


def test_canvas_worker_help_says_where_rq_scheduler_runs(tmp_path):
    shown = subprocess.run([sys.executable, "-m", "canvas", "worker", "--help"], capture_output=True, text=True,
                           env=canvas_env(tmp_path / "data"), timeout=60, check=False)
    assert shown.returncode == 0, shown.stderr
    text = " ".join(shown.stdout.split())
    assert "--with-rq-scheduler" in text and "canvas scheduler" in text, json.dumps(text)
