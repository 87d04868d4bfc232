"""A forking `canvas worker` forks each run's child ahead of the run (canvas.queueing.waiting_child): real worker
processes on the suite's database and Redis. The child waits with its database connection open, runs the next run
and leaves; a child that died while it waited is replaced; it goes with its worker, stopped or killed; on PostgreSQL,
a connection the server cut while the child waited is replaced before the run uses it. With
CANVAS_WORKER_RUNS_PER_CHILD, one child serves that many runs, waiting between them with its connection open; killed
in a run, it takes that run alone."""
from __future__ import annotations

import os
import re
import signal
import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from canvas.db import PING_AFTER_IDLE_SECONDS
from tests.conftest import Org
from tests.integration.run_helpers import make_workflow, run, start_worker, stop_worker, wait_for
from tests.process_tools import alive, descendants
from tests.servers.postgres import with_application_name

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("clean_run_queue")]
FORK = ("--worker-class", "fork")
CHILD_READY_SECONDS = 30  # a worker's start (imports, the rehearsal), then its first fork
STAYING = {"CANVAS_WORKER_RUNS_PER_CHILD": "3"}
SHORT_LEASES = {"CANVAS_LOST_RUN_GRACE_SECONDS": "3", "CANVAS_LEASE_RENEW_SECONDS": "0.5",
                "CANVAS_REAPER_INTERVAL_SECONDS": "1"}


def _log(path: Path) -> str:
    return path.read_text(errors="replace")


def _finished(client, headers, location) -> dict:
    return wait_for(lambda: (state := client.get(location, headers=headers).json)["status"]
                    in ("Succeeded", "Failed") and state, timeout=60, what="run finished")


def _run_and_finish(client, headers, workflow_id) -> dict:
    return _finished(client, headers, run(client, headers, workflow_id).headers["Location"])


def _waiting_child(worker, log_path: Path, database_url: str, other_than: int | None = None) -> int:
    """The worker's one child, once it holds its database connection."""

    def ready() -> int | None:
        children = descendants(worker.pid) - {other_than}
        if len(children) != 1:
            return None
        child = next(iter(children))
        return child if _holds_database_connection(child, database_url) else None

    try:
        return wait_for(ready, timeout=CHILD_READY_SECONDS, what="a child waiting with its database connection")
    except AssertionError:
        raise AssertionError(f"children {descendants(worker.pid)}; log:\n{_log(log_path)[-3000:]}") from None


def _holds_database_connection(pid: int, database_url: str) -> bool:
    """An open SQLite file, or a TCP connection to the PostgreSQL server, among the process's descriptors. A
    process gone while it is looked at holds none."""
    try:
        links = [os.readlink(entry) for entry in Path(f"/proc/{pid}/fd").iterdir()]
        url = make_url(database_url)
        if url.get_backend_name() == "sqlite":
            return os.path.realpath(url.database) in links
        connections = Path(f"/proc/{pid}/net/tcp").read_text().splitlines()[1:]
    except OSError:
        return False
    sockets = {link[len("socket:["):-1] for link in links if link.startswith("socket:[")}
    port = url.port or 5432
    for line in connections:
        fields = line.split()
        if int(fields[2].split(":")[1], 16) == port and fields[9] in sockets:
            return True
    return False


def _status(pid: int) -> str:
    try:
        return " ".join(line for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                        if line.split(":")[0] in ("State", "PPid", "SigCgt", "SigIgn", "SigBlk"))
    except OSError as error:
        return f"no status ({error})"


def _lines_of(log: str, pid: int, run_id: str) -> list[str]:
    return [line for line in log.splitlines() if re.search(rf"\[{pid}\]", line) and run_id in line]


def test_a_child_waits_with_its_connection_open_runs_the_next_run_and_another_takes_its_place(
        client, app, org, tmp_path):
    settings = app.config["CANVAS_SETTINGS"]
    workflow_id = make_workflow(client, org.admin_headers)
    log_path = tmp_path / "worker.log"
    worker = start_worker(settings, log_path, *FORK)
    try:
        first = _waiting_child(worker, log_path, settings["DATABASE_URL"])  # before any run was asked for
        location = run(client, org.admin_headers, workflow_id).headers["Location"]
        finished = _finished(client, org.admin_headers, location)
        second = _waiting_child(worker, log_path, settings["DATABASE_URL"], other_than=first)
        wait_for(lambda: not alive(first), timeout=10, what="the first child gone after its run")
    finally:
        stop_worker(worker)
    log = _log(log_path)
    assert finished["status"] == "Succeeded", log[-3000:]
    assert second != first
    assert _lines_of(log, first, finished["id"]), log[-3000:]  # the run's lines: written by the child that waited
    assert "Traceback" not in log, log[-3000:]


def test_a_child_that_died_while_it_waited_is_replaced_and_the_run_runs(client, app, org, tmp_path):
    settings = app.config["CANVAS_SETTINGS"]
    workflow_id = make_workflow(client, org.admin_headers)
    log_path = tmp_path / "worker.log"
    worker = start_worker(settings, log_path, *FORK)
    try:
        dead = _waiting_child(worker, log_path, settings["DATABASE_URL"])
        os.kill(dead, signal.SIGKILL)
        location = run(client, org.admin_headers, workflow_id).headers["Location"]
        finished = _finished(client, org.admin_headers, location)
        assert worker.poll() is None, "the worker itself carries on"
    finally:
        stop_worker(worker)
    log = _log(log_path)
    assert finished["status"] == "Succeeded", log[-3000:]
    assert f"the child forked ahead (pid {dead}) had died while it waited; forking another" in log
    assert "Traceback" not in log, log[-3000:]


@pytest.mark.parametrize("staying", [False, True], ids=["forked ahead", "staying after a run"])
@pytest.mark.parametrize("ending", ["stopped", "killed alone"])
def test_the_waiting_child_goes_with_its_worker(client, app, org, tmp_path, ending, staying):
    settings = app.config["CANVAS_SETTINGS"]
    log_path = tmp_path / "worker.log"
    worker = start_worker(settings, log_path, *FORK, env=STAYING if staying else None)
    try:
        child = _waiting_child(worker, log_path, settings["DATABASE_URL"])
        if staying:  # the child that served this run waits for the next
            assert _run_and_finish(client, org.admin_headers, make_workflow(client, org.admin_headers))["status"] \
                == "Succeeded"
            assert _waiting_child(worker, log_path, settings["DATABASE_URL"]) == child
        if ending == "stopped":
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(15) == 0, _log(log_path)[-3000:]
            assert not alive(child), "a stopped worker has ended its child before it exits"
        else:  # as `kill -9 <pid>` would: the child is told by Linux (workers/worker.py)
            worker.kill()
            worker.wait(10)
            try:
                wait_for(lambda: not alive(child), timeout=30, what="the child gone with its worker")
            except AssertionError:
                raise AssertionError(f"child {child}: {_status(child)}; log:\n{_log(log_path)[-3000:]}") from None
    finally:
        stop_worker(worker)
        if alive(child):
            os.kill(child, signal.SIGKILL)


@pytest.mark.usefixtures("postgres_database_url")  # before the apps: it outlives their clean-up
def test_a_connection_the_server_cut_while_the_child_waited_is_replaced_before_the_run(
        postgres_database_url, make_app, tmp_path):
    """On PostgreSQL: every backend of the worker terminated while it idles (a server restart, a pooler's timeout);
    the waiting child's pool pings its connection before the run's first statement, and opens another."""
    name = f"fork-ahead-{uuid.uuid4().hex[:12]}"  # the worker's connections, and only its, carry it
    database_url = with_application_name(postgres_database_url, name)
    app = make_app(DATABASE_URL=postgres_database_url)
    client, headers = app.test_client(), Org(app, "ForkedAhead").admin_headers
    workflow_id = make_workflow(client, headers)
    log_path = tmp_path / "worker.log"
    worker = start_worker(app.config["CANVAS_SETTINGS"], log_path, *FORK, env={"CANVAS_DATABASE_URL": database_url})
    admin = create_engine(postgres_database_url, isolation_level="AUTOCOMMIT")
    try:
        child = _waiting_child(worker, log_path, database_url)
        time.sleep(PING_AFTER_IDLE_SECONDS + 0.2)  # a connection used within the last second is trusted as it is
        with admin.connect() as connection:
            cut = connection.execute(text("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                          "WHERE application_name = :name"), {"name": name}).scalar_one()
        location = run(client, headers, workflow_id).headers["Location"]
        finished = _finished(client, headers, location)
    finally:
        stop_worker(worker)
        admin.dispose()
    log = _log(log_path)
    assert cut >= 1
    assert finished["status"] == "Succeeded", log[-3000:]
    assert _lines_of(log, child, finished["id"]), log[-3000:]
    assert "database unavailable" not in log, log[-3000:]  # the run never met the cut connection
    assert "Traceback" not in log, log[-3000:]


def test_a_child_serves_runs_per_child_runs_holding_its_connection_then_another_takes_its_place(
        client, app, org, tmp_path):
    """CANVAS_WORKER_RUNS_PER_CHILD=3: one child runs three runs one after another, waiting between them with its
    database connection open, and leaves after the third; the fourth runs in the child forked meanwhile."""
    settings = app.config["CANVAS_SETTINGS"]
    workflow_id = make_workflow(client, org.admin_headers)
    log_path = tmp_path / "worker.log"
    worker = start_worker(settings, log_path, *FORK, env=STAYING)
    try:
        first = _waiting_child(worker, log_path, settings["DATABASE_URL"])
        served = []
        for _ in range(3):
            served.append(_run_and_finish(client, org.admin_headers, workflow_id))
            if len(served) < 3:  # between its runs: the same child, alone, its connection open
                assert _waiting_child(worker, log_path, settings["DATABASE_URL"]) == first
        wait_for(lambda: not alive(first), timeout=10, what="the child gone after its third run")
        second = _waiting_child(worker, log_path, settings["DATABASE_URL"], other_than=first)
        fourth = _run_and_finish(client, org.admin_headers, workflow_id)
    finally:
        stop_worker(worker)
    log = _log(log_path)
    assert [run_["status"] for run_ in [*served, fourth]] == ["Succeeded"] * 4, log[-3000:]
    assert all(_lines_of(log, first, run_["id"]) for run_ in served), log[-3000:]
    assert second != first and _lines_of(log, second, fourth["id"]), log[-3000:]
    assert "Traceback" not in log, log[-3000:]


def test_a_staying_child_killed_in_a_run_fails_that_run_and_the_next_run_gets_a_new_child(
        client, app, org, tmp_path):
    """A child that served a run and stayed, killed (SIGKILL) in the middle of its next: that run ends Failed
    ("worker lost", the lease not renewed), the worker carries on, and the next run runs in another child."""
    settings = app.config["CANVAS_SETTINGS"]
    quick = make_workflow(client, org.admin_headers)
    long_ = make_workflow(client, org.admin_headers, [("Wait", "delay", {"seconds": 600})])
    log_path = tmp_path / "worker.log"
    worker = start_worker(settings, log_path, *FORK, env={**STAYING, **SHORT_LEASES})
    try:
        child = _waiting_child(worker, log_path, settings["DATABASE_URL"])
        before = _run_and_finish(client, org.admin_headers, quick)
        location = run(client, org.admin_headers, long_).headers["Location"]
        wait_for(lambda: client.get(location, headers=org.admin_headers).json["blocks"][0]["status"] == "Running",
                 what="the long block running")
        assert descendants(worker.pid) == {child}, "the child that served the first run runs the second"
        os.kill(child, signal.SIGKILL)
        killed = _finished(client, org.admin_headers, location)
        after = _run_and_finish(client, org.admin_headers, quick)
        assert worker.poll() is None, "the worker itself carries on"
    finally:
        stop_worker(worker)
    log = _log(log_path)
    assert before["status"] == "Succeeded" and _lines_of(log, child, before["id"]), log[-3000:]
    assert killed["status"] == "Failed" and killed["error"].startswith("worker lost"), killed
    assert after["status"] == "Succeeded", log[-3000:]
    assert not _lines_of(log, child, after["id"]) and re.search(rf"\[(\d+)\].*{after['id']}", log), log[-3000:]


def test_a_staying_child_finishes_its_run_through_a_redis_restart_and_no_child_is_left_behind(
        make_app, own_redis, tmp_path):
    """Redis stopped for two seconds in the middle of a staying child's run, then started again (its data kept): the
    run succeeds, the next one too, and the worker is left with one waiting child (none left behind by the outage)."""
    app = make_app(REDIS_URL=own_redis.url)
    client, headers = app.test_client(), Org(app, "StayingThroughRedis").admin_headers
    long_ = make_workflow(client, headers, [("Wait", "delay", {"seconds": 4})])
    quick = make_workflow(client, headers)
    log_path = tmp_path / "worker.log"
    settings = app.config["CANVAS_SETTINGS"]
    worker = start_worker(settings, log_path, *FORK, env=STAYING)
    try:
        _waiting_child(worker, log_path, settings["DATABASE_URL"])
        location = run(client, headers, long_).headers["Location"]
        wait_for(lambda: client.get(location, headers=headers).json["blocks"][0]["status"] == "Running",
                 what="the long block running")
        own_redis.stop()
        time.sleep(2)
        own_redis.start()
        finished = _finished(client, headers, location)
        after = _run_and_finish(client, headers, quick)
        left = _waiting_child(worker, log_path, settings["DATABASE_URL"])
        assert descendants(worker.pid) == {left}, "one waiting child, no other"
        assert worker.poll() is None
    finally:
        stop_worker(worker)
    log = _log(log_path)
    assert (finished["status"], after["status"]) == ("Succeeded", "Succeeded"), log[-3000:]
