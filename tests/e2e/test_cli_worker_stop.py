"""Ctrl-C (SIGINT) or SIGTERM to a real `canvas worker` during a long block: the run finishes within the stop timeout,
or is ended at once "Failed" with the reason; never left "Running"."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid

import pytest

from tests.integration.run_helpers import (
    THREE_BLOCKS, kill_worker, make_workflow, run, start_worker, stop_worker, wait_for, worker_env,
)
from tests.process_tools import alive, descendants, free_port, hangups, start_canvas, wait_for_http

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("clean_run_queue")]
GRACE = {"CANVAS_SHUTDOWN_GRACE_SECONDS": "4"}  # the worker gives its run max(4 - 3, 4 / 2) = 2 s


def _state(client, headers, location) -> dict:
    return client.get(location, headers=headers).json


def _start_long_run(client, app, org, tmp_path, seconds: float, *worker_args: str, env: dict | None = None):
    blocks = [THREE_BLOCKS[0], ("Wait", "delay", {"seconds": seconds}), THREE_BLOCKS[2]]
    workflow_id = make_workflow(client, org.admin_headers, blocks)
    worker = start_worker(app.config["CANVAS_SETTINGS"], tmp_path / "worker.log", *worker_args,
                          env={**GRACE, **(env or {})}, preexec_fn=hangups(signal.SIG_DFL))
    try:
        location = run(client, org.admin_headers, workflow_id).headers["Location"]
        wait_for(lambda: _state(client, org.admin_headers, location)["blocks"][1]["status"] == "Running",
                 what="block 2 running")
    except BaseException:  # the test's own try begins with the worker handed over: stop it here, or it lives on
        stop_worker(worker)
        raise
    return worker, location


@pytest.mark.parametrize(("worker_class", "signum", "runs_per_child"),
                         [("simple", signal.SIGINT, 1), ("simple", signal.SIGHUP, 1), ("fork", signal.SIGTERM, 1),
                          ("fork", signal.SIGTERM, 3)],
                         ids=["simple-worker-ctrl-c", "simple-worker-hangup", "fork-worker-sigterm",
                              "fork-worker-staying-child-sigterm"])
def test_a_run_longer_than_the_stop_timeout_is_ended_failed_with_the_reason(client, app, org, tmp_path,
                                                                            worker_class, signum, runs_per_child):
    worker, location = _start_long_run(client, app, org, tmp_path, 600, "--worker-class", worker_class,
                                       env={"CANVAS_WORKER_RUNS_PER_CHILD": str(runs_per_child)})
    try:
        children = descendants(worker.pid)
        asked = time.monotonic()
        worker.send_signal(signum)
        assert worker.wait(15) == 0, (tmp_path / "worker.log").read_text()[-3000:]
        took = time.monotonic() - asked
        assert not any(alive(child) for child in children), "the worker's children end with it"
    finally:
        stop_worker(worker)
    ended = _state(client, org.admin_headers, location)
    assert ended["status"] == "Failed", ended
    assert ended["error"].startswith("stopped: the worker was shut down"), ended["error"]
    assert "before the run finished (stop timeout 2 s)" in ended["error"]
    if worker_class == "simple":  # the forked child does not know which signal stopped its parent
        assert f"({signal.Signals(signum).name})" in ended["error"]
    assert [block["status"] for block in ended["blocks"]] == ["Succeeded", "Failed", "Pending"]
    assert 1.5 <= took < 10  # it waited for the stop timeout, not for the block's 600 s
    log = (tmp_path / "worker.log").read_text()
    assert "Traceback" not in log, log[-3000:]


def test_a_run_that_ends_within_the_stop_timeout_finishes(client, app, org, tmp_path):
    worker, location = _start_long_run(client, app, org, tmp_path, 1)
    try:
        worker.send_signal(signal.SIGINT)
        assert worker.wait(15) == 0, (tmp_path / "worker.log").read_text()[-3000:]
    finally:
        stop_worker(worker)
    ended = _state(client, org.admin_headers, location)
    assert ended["status"] == "Succeeded", ended
    assert [block["status"] for block in ended["blocks"]] == ["Succeeded"] * 3


@pytest.mark.parametrize("worker_class", ["simple", "fork"])
def test_a_terminal_hangup_stops_the_worker_in_order(client, app, org, tmp_path, worker_class):
    """SIGHUP to the worker's process group, as the kernel sends it when the terminal the worker runs in goes away
    (an SSH session dropped): the worker stops as on SIGTERM, its run finishing within the stop timeout, and exits 0
    with nothing left behind. It used to die at once, its run failed "worker lost" a grace period later."""
    worker, location = _start_long_run(client, app, org, tmp_path, 1, "--worker-class", worker_class)
    try:
        children = descendants(worker.pid)
        os.killpg(worker.pid, signal.SIGHUP)
        assert worker.wait(15) == 0, (tmp_path / "worker.log").read_text()[-3000:]
        assert not any(alive(child) for child in children), "the worker's children end with it"
    finally:
        stop_worker(worker)
    ended = _state(client, org.admin_headers, location)
    assert ended["status"] == "Succeeded", ended
    log = (tmp_path / "worker.log").read_text()
    assert "Traceback" not in log, log[-3000:]


def test_a_worker_started_ignoring_hangups_goes_on_ignoring_them(client, app, org, tmp_path):
    """Started under nohup (SIGHUP ignored), a hangup changes nothing: the worker runs the next run."""
    workflow_id = make_workflow(client, org.admin_headers, THREE_BLOCKS)
    worker = start_worker(app.config["CANVAS_SETTINGS"], tmp_path / "worker.log",
                          preexec_fn=hangups(signal.SIG_IGN))
    try:
        first = run(client, org.admin_headers, workflow_id).headers["Location"]
        wait_for(lambda: _state(client, org.admin_headers, first)["status"] == "Succeeded", what="a first run")
        os.killpg(worker.pid, signal.SIGHUP)
        second = run(client, org.admin_headers, workflow_id).headers["Location"]
        wait_for(lambda: _state(client, org.admin_headers, second)["status"] == "Succeeded", what="a run after it")
        assert worker.poll() is None
    finally:
        stop_worker(worker)


@pytest.mark.parametrize("ignored", [False, True], ids=["hangup", "hangup-under-nohup"])
def test_the_scheduler_stops_on_a_terminal_hangup_unless_started_ignoring_it(app, tmp_path, ignored):
    log_path = tmp_path / "scheduler.log"
    with open(log_path, "ab") as log:
        scheduler = subprocess.Popen(
            [sys.executable, "-m", "canvas", "scheduler"], env=worker_env(app.config["CANVAS_SETTINGS"]),
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            preexec_fn=hangups(signal.SIG_IGN if ignored else signal.SIG_DFL))
    try:
        wait_for(lambda: "started" in log_path.read_text(), 60, what="the scheduler started")
        os.killpg(scheduler.pid, signal.SIGHUP)
        if ignored:
            time.sleep(2)
            assert scheduler.poll() is None, log_path.read_text()[-3000:]
        else:
            assert scheduler.wait(30) == 0, log_path.read_text()[-3000:]
            assert "received SIGHUP; scheduler stopping" in log_path.read_text()
    finally:
        stop_worker(scheduler)


def test_ctrl_c_on_canvas_up_during_a_long_block_ends_the_run_and_every_process(client, app, org, tmp_path):
    """`canvas up` on the test's database and Redis: Ctrl-C reaches the supervisor, which stops its worker; the
    run in its long block is recorded Failed with the reason within the grace, and nothing is left running."""
    workflow_id = make_workflow(client, org.admin_headers, [THREE_BLOCKS[0], ("Wait", "delay", {"seconds": 600})])
    env = {**worker_env(app.config["CANVAS_SETTINGS"]), "CANVAS_SHUTDOWN_GRACE_SECONDS": "6",  # stop timeout 3 s
           "CANVAS_DATA_DIR": str(tmp_path / "data"), "CANVAS_API_WORKERS": "1"}
    port = free_port()
    up = start_canvas("up", "--port", str(port), env=env, log_path=tmp_path / "up.log")
    children: set[int] = set()
    try:
        wait_for_http(f"http://127.0.0.1:{port}/healthz", up)
        location = run(client, org.admin_headers, workflow_id).headers["Location"]
        wait_for(lambda: _state(client, org.admin_headers, location)["blocks"][1]["status"] == "Running",
                 what="block 2 running")
        children = descendants(up.pid)
        up.send_signal(signal.SIGINT)
        assert up.wait(20) == 0, (tmp_path / "up.log").read_text()[-3000:]
    finally:
        if up.poll() is None:
            up.kill()
    ended = _state(client, org.admin_headers, location)
    assert ended["status"] == "Failed", ended
    assert ended["error"] == "stopped: the worker was shut down (SIGTERM) before the run finished (stop timeout 3 s)"
    assert [pid for pid in children if alive(pid)] == []
    assert "did not stop within" not in (tmp_path / "up.log").read_text()  # nothing killed for overrunning the grace


def test_a_named_worker_killed_starts_again_under_its_name_and_a_live_namesake_is_refused(client, app, org, tmp_path):
    """kill -9 leaves RQ's registration of the worker for some eight minutes, and RQ refused a new worker of that
    name until then ("There exists an active worker named ... already", a traceback, exit 1): a supervisor
    restarting a worker started with --name crash-looped."""
    settings, name = app.config["CANVAS_SETTINGS"], f"named-{uuid.uuid4().hex[:8]}"
    logs = [tmp_path / "first.log", tmp_path / "second.log"]

    def listening(log_path) -> bool:  # noqa: ANN001
        return log_path.exists() and "Listening on" in log_path.read_text()

    first = start_worker(settings, logs[0], "--name", name)
    try:
        wait_for(lambda: listening(logs[0]), what="the first worker listening")
    finally:
        kill_worker(first)
    second = start_worker(settings, logs[1], "--name", name)
    try:
        wait_for(lambda: listening(logs[1]) or second.poll() is not None, what="the second worker listening")
        assert second.poll() is None, logs[1].read_text()[-3000:]
        assert f"a previous worker of this name (pid {first.pid}) ended without saying so" in logs[1].read_text()
        location = run(client, org.admin_headers, make_workflow(client, org.admin_headers, [THREE_BLOCKS[0]]))
        wait_for(lambda: _state(client, org.admin_headers, location.headers["Location"])["status"] == "Succeeded",
                 what="a run on the second worker")
        third = subprocess.run([sys.executable, "-m", "canvas", "worker", "--name", name], env=worker_env(settings),
                               capture_output=True, text=True, timeout=60)
        assert third.returncode == 2 and "Traceback" not in third.stderr, third.stderr[-3000:]
        assert third.stderr.strip().splitlines()[-1] == (
            f"Error: a worker named {name!r} is already running (pid {second.pid} on {socket.gethostname()}); stop "
            "it, or start this one with another --name")
    finally:
        stop_worker(second)
