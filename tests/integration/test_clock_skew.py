"""Machines whose clocks disagree, on the database several machines share (PostgreSQL): each process measures how
far its clock is off the server's (canvas.clock) and goes by the server's. The processes are real, their clocks set
off by libfaketime; tests/faults/test_faults.py runs workers whose clocks are off under load."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import psycopg
import pytest
from werkzeug.wrappers import Response

from canvas import clock
from tests.integration.run_helpers import start_worker, stop_worker, wait_for, worker_env
from tests.process_tools import clock_offset_in_log, skewed_clock

pytestmark = pytest.mark.slow
SKEW_SECONDS = -40.0  # twice the window in which /healthz counts a scheduler (SCHEDULER_PRESENCE_SECONDS)


def plain_url(database_url: str) -> str:
    return database_url.replace("postgresql+psycopg://", "postgresql://")


def test_a_process_whose_clock_agrees_with_the_server_keeps_it(postgres_database_url):
    clock.adopt(0.0)
    with psycopg.connect(plain_url(postgres_database_url)) as connection:
        clock.measure(connection)
        assert connection.autocommit is False  # as the pool handed it out
    assert clock.offset_seconds() == 0.0
    assert not clock.check_due()


def test_a_process_whose_clock_is_behind_measures_by_how_much(postgres_database_url):
    program = ("import sys, psycopg\nfrom canvas import clock\n"
               "with psycopg.connect(sys.argv[1]) as connection:\n    clock.measure(connection)\n"
               "print(clock.offset_seconds())")
    result = subprocess.run([sys.executable, "-c", program, plain_url(postgres_database_url)], capture_output=True,
                            text=True, timeout=60, env={**os.environ, **skewed_clock(SKEW_SECONDS)})
    assert result.returncode == 0, result.stderr[-2000:]
    assert abs(float(result.stdout) + SKEW_SECONDS) < 0.5, result.stdout
    assert "this machine's clock is 40.0 s behind the database server's" in result.stderr


STEPPED = """
import json, sys, psycopg
from pathlib import Path
from canvas import clock

with psycopg.connect(sys.argv[1]) as connection:
    clock.measure(connection)
    before = [clock.offset_seconds(), clock.check_due()]
    Path(sys.argv[2]).write_text("-20s")  # the machine's clock is stepped back 20 s (by NTP, say)
    due = clock.check_due()
    clock.measure(connection)
print(json.dumps([before, due, clock.offset_seconds()]))
"""


def test_a_clock_stepped_is_measured_again_at_once(postgres_database_url, tmp_path):
    control = tmp_path / "faketime"
    result = subprocess.run([sys.executable, "-c", STEPPED, plain_url(postgres_database_url), str(control)],
                            capture_output=True, text=True, timeout=60,
                            env={**os.environ, **skewed_clock(0, control)})
    assert result.returncode == 0, result.stderr[-2000:]
    (offset_before, due_before), due_after_step, offset_after = json.loads(result.stdout)
    assert (offset_before, due_before, due_after_step) == (0.0, False, True)
    assert abs(offset_after - 20) < 0.5, offset_after

def test_healthz_counts_a_scheduler_whose_clock_is_behind(postgres_database_url, make_app, tmp_path):
    # postgres_database_url first: its temporary database must outlive the app's tables being emptied
    app = make_app(DATABASE_URL=postgres_database_url)
    log_path = tmp_path / "scheduler.log"
    with open(log_path, "ab") as log:
        scheduler = subprocess.Popen([sys.executable, "-m", "canvas", "scheduler"], stdout=log,
                                     stderr=subprocess.STDOUT, start_new_session=True,
                                     env={**worker_env(app.config["CANVAS_SETTINGS"]), **skewed_clock(SKEW_SECONDS)})
    client = app.test_client()
    try:
        wait_for(lambda: "started" in log_path.read_text(), timeout=60, what="the scheduler started")
        assert abs(clock_offset_in_log(log_path) - SKEW_SECONDS) < 2, log_path.read_text()
        wait_for(lambda: client.get("/healthz").json["schedulers"] == 1, timeout=15,
                 what=f"/healthz counting the scheduler; its log:\n{log_path.read_text()}")
    finally:
        stop_worker(scheduler)


def test_a_measurement_on_a_connection_the_server_ended_takes_a_new_connection(postgres_database_url, monkeypatch):
    """The measurement stands in for the ping when it is due: a dead pooled connection is replaced, not handed out."""
    from sqlalchemy import text

    from canvas.db import build_engine

    engine = build_engine(postgres_database_url)
    try:
        with engine.connect() as connection:
            doomed = connection.execute(text("SELECT pg_backend_pid()")).scalar()
        with psycopg.connect(plain_url(postgres_database_url), autocommit=True) as admin:
            assert admin.execute("SELECT pg_terminate_backend(%s)", (doomed,)).fetchone()[0]
        monkeypatch.setattr(clock, "_next_check", 0.0)
        with engine.connect() as connection:
            assert connection.execute(text("SELECT pg_backend_pid()")).scalar() != doomed
        assert not clock.check_due()
    finally:
        engine.dispose()


def test_a_worker_whose_clock_is_behind_signs_callbacks_with_the_servers_time(postgres_database_url, make_app,
                                                                              http_server, tmp_path):
    """A receiver checks the signature's time stamp against its own clock (five minutes at most, as a rule): the
    one of a worker 40 s behind is the database server's time."""
    from tests.api.test_v2_support import V2
    from tests.conftest import Org
    from tests.integration.test_v2_callbacks import add_callback

    app = make_app(DATABASE_URL=postgres_database_url)
    v2 = V2(app, app.test_client(), Org(app, "Skewed"))
    arrivals: list[float] = []
    http_server.route("/hook", lambda request: arrivals.append(time.time()) or Response(status=204))
    flow = v2.create("Called back")
    add_callback(v2, flow["id"], http_server.url("/hook"))
    answer = v2.client.post("/api/RunWorkflow", json={"workflowId": flow["id"]}, headers=v2.org.admin_headers)
    assert answer.status_code == 202, answer.json
    log_path = tmp_path / "worker.log"
    worker = start_worker(app.config["CANVAS_SETTINGS"], log_path, "--burst", env=skewed_clock(SKEW_SECONDS))
    assert worker.wait(120) == 0, log_path.read_text()
    [received] = [request for request in http_server.requests if request.path == "/hook"]
    signed_at = int(dict(part.split("=", 1) for part in received.headers["X-Canvas-Signature"].split(","))["t"])
    assert abs(signed_at - arrivals[0]) < 2, (signed_at, arrivals, log_path.read_text())
