"""`canvas up` as a user runs it: embedded defaults, a free port, real HTTP, SIGTERM, nothing left behind."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import requests

from canvas.settings import UNIX_SOCKET_PATH_LIMIT
from tests.api.workflow_helpers import FILE_HUB_APP
from tests.e2e.http_api import Api
from tests.integration.run_helpers import RECORDS
from tests.process_tools import (
    alive, canvas_env, descendants, free_port, hangups, run_canvas, start_canvas, wait_for_http,
)

pytestmark = pytest.mark.slow


def test_canvas_up_serves_authenticate_and_stops_cleanly_on_sigterm(tmp_path):
    data_dir, port = tmp_path / "data", free_port()
    env = canvas_env(data_dir)
    process = start_canvas("up", "--port", str(port), env=env, log_path=tmp_path / "up.log")
    try:
        base = f"http://127.0.0.1:{port}"
        health = wait_for_http(f"{base}/healthz", process).json()
        assert {key: health[key] for key in ("status", "database", "redis")} == {
            "status": "ok", "database": "ok", "redis": "ok"}
        deadline = time.monotonic() + 60  # the worker and the scheduler say they are there once they have started
        while (health["workers"], health["schedulers"]) != (1, 1) and time.monotonic() < deadline:
            time.sleep(0.5)
            health = requests.get(f"{base}/healthz", timeout=10).json()
        assert (health["workers"], health["schedulers"], health["queuedRuns"]) == (1, 1, 0), health
        created = run_canvas("org", "create", "--name", "Acme", "--admin-email", "admin@acme.test", "--json", env=env)
        assert created.returncode == 0, created.stderr
        keys = json.loads(created.stdout)
        assert set(keys) == {"organizationId", "accountId", "consumer", "secretKey", "consoleLink"}
        # The link leads to this `canvas up`, on its port (CANVAS_PUBLIC_URL is not set), and works.
        assert keys["consoleLink"].startswith(f"{base}/console/activate?token=")
        assert requests.get(keys["consoleLink"], timeout=10).status_code == 200
        headers = {"Consumer": keys["consumer"], "SecretKey": keys["secretKey"]}
        answer = requests.get(f"{base}/api/Authenticate", headers=headers, timeout=10)
        assert (answer.status_code, answer.json()) == (200, True)
        refused = requests.get(f"{base}/api/Authenticate", headers={**headers, "SecretKey": "x"}, timeout=10)
        assert refused.json() == {"State": 401, "Msg": "Consumer or SecretKey are incorrect or missing"}
        children = descendants(process.pid)
        assert len(children) >= 4  # Redis, API master (+ its workers), worker, scheduler
    finally:
        process.send_signal(signal.SIGTERM)
        exit_code = process.wait(60)
    time.sleep(0.2)
    assert exit_code == 0, (tmp_path / "up.log").read_text()[-3000:]
    assert [pid for pid in children if alive(pid)] == []
    assert (data_dir / "secret.key").stat().st_mode & 0o777 == 0o600


def start_up_with_hangups(disposition, port: int, data_dir, log_path) -> subprocess.Popen:  # noqa: ANN001
    """`canvas up` with SIGHUP handled as `disposition` when it starts: SIG_DFL as a terminal session leaves it,
    SIG_IGN as `nohup` does, whatever this test process itself was started with."""
    with open(log_path, "wb") as log:
        return subprocess.Popen([sys.executable, "-m", "canvas", "up", "--port", str(port)], env=canvas_env(data_dir),
                                stdout=log, stderr=subprocess.STDOUT,
                                preexec_fn=hangups(disposition))


def stopped(process: subprocess.Popen) -> int:
    """Its exit status once it stopped by itself; killed (its children die with it) if it did not within 60 s."""
    try:
        return process.wait(60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)
        raise AssertionError("canvas up did not stop within 60 s") from None

def test_a_hangup_stops_canvas_up_in_order_and_leaves_nothing(tmp_path):
    """The terminal of `canvas up` went away (SIGHUP, an SSH session dropped): it stops as on Ctrl-C, the processes
    before the Redis they use, its instance file removed, nothing left running."""
    data_dir, port = tmp_path / "data", free_port()
    log_path = tmp_path / "up.log"
    process = start_up_with_hangups(signal.SIG_DFL, port, data_dir, log_path)  # as a terminal session leaves them
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for_http(f"{base}/healthz", process)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            health = requests.get(f"{base}/healthz", timeout=10).json()
            if (health.get("workers"), health.get("schedulers")) == (1, 1):
                break
            time.sleep(0.5)
        children = descendants(process.pid)
    finally:
        process.send_signal(signal.SIGHUP)
        exit_code = stopped(process)
    logged = log_path.read_text()
    assert exit_code == 0, logged[-3000:]
    assert "received SIGHUP; stopping" in logged
    assert "Redis is unreachable" not in logged, logged[-3000:]
    time.sleep(0.2)
    assert [pid for pid in children if alive(pid)] == []
    assert not (data_dir / "canvas-up.pid").exists()

def test_canvas_up_started_under_nohup_goes_on_after_a_hangup(tmp_path):
    data_dir, port = tmp_path / "data", free_port()
    log_path = tmp_path / "up.log"
    process = start_up_with_hangups(signal.SIG_IGN, port, data_dir, log_path)  # as `nohup canvas up` starts it
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for_http(f"{base}/healthz", process)
        process.send_signal(signal.SIGHUP)
        time.sleep(2)
        assert process.poll() is None, log_path.read_text()[-3000:]
        assert requests.get(f"{base}/healthz", timeout=10).status_code == 200
        assert "received SIGHUP" not in log_path.read_text()
    finally:
        process.send_signal(signal.SIGTERM)
        assert stopped(process) == 0, log_path.read_text()[-3000:]

def test_org_create_json_prints_exactly_one_object_and_keys_rotate_invalidates(tmp_path):
    env = canvas_env(tmp_path / "data")
    created = run_canvas("org", "create", "--name", "Solo", "--admin-email", "solo@solo.test", "--json", env=env)
    keys = json.loads(created.stdout)
    rotated = run_canvas("keys", "rotate", "--account", keys["accountId"], "--json", env=env)
    new_keys = json.loads(rotated.stdout)
    assert new_keys["secretKey"] != keys["secretKey"] and new_keys["consumer"] != keys["consumer"]
    duplicate = run_canvas("org", "create", "--name", "Again", "--admin-email", "SOLO@solo.test", env=env)
    assert duplicate.returncode == 1 and "Account has already been created" in duplicate.stderr
    unknown = run_canvas("keys", "rotate", "--account", "00000000-0000-0000-0000-000000000000", env=env)
    assert unknown.returncode == 1 and "Unknown account" in unknown.stderr


def test_canvas_up_runs_a_workflow_with_its_data_in_a_directory_of_any_name(tmp_path_factory):
    """`#`, `?` and `%` in the data dir's name ended the SQLite and the embedded Redis URLs early (Redis was then
    unreachable, and SQLite's file went elsewhere); non-ASCII letters and blanks are in users' home folders."""
    data_dir = tmp_path_factory.mktemp("up") / "dä ta #1 ?x=%41"
    socket_path = data_dir / "redis" / "redis.sock"
    assert len(str(socket_path).encode()) <= UNIX_SOCKET_PATH_LIMIT, "the socket must be in the data dir for this test"
    env, port, log_path = canvas_env(data_dir), free_port(), data_dir.parent / "up.log"
    process = start_canvas("up", "--port", str(port), env=env, log_path=log_path)
    try:
        base = f"http://127.0.0.1:{port}"
        health = wait_for_http(f"{base}/healthz", process).json()
        assert (health["status"], health["redis"]) == ("ok", "ok"), health
        created = run_canvas("org", "create", "--name", "Acme", "--admin-email", "admin@acme.test", "--json", env=env)
        assert created.returncode == 0, created.stderr
        api = Api(base, json.loads(created.stdout), "admin@acme.test")
        registered = api.post("/api/RegApplication", {"applicationId": FILE_HUB_APP, "credentialsJson": "{}"}).json()
        workflow = api.workflow([("Records", "records.from_variable", {"records": RECORDS}),
                                 ("Store", "filehub.write", {"filename": "people.jsonl"})], registered)
        run = api.run(workflow)
        assert run["status"] == "Succeeded", (run, log_path.read_text()[-3000:])
        output = api.get(f"/api/WorkflowRun/{run['id']}/Block/2/Output")
        assert [json.loads(line)["name"] for line in output.text.splitlines()] == ["Ann", "Bo", "Cy"]
        assert (data_dir / "canvas.db").is_file() and socket_path.is_socket()
        assert sorted(path.name for path in data_dir.parent.iterdir()) == sorted(["up.log", data_dir.name])
    finally:
        process.send_signal(signal.SIGTERM)
        exit_code = process.wait(60)
    assert exit_code == 0, log_path.read_text()[-3000:]


def test_canvas_up_restarts_its_embedded_redis_when_it_dies_and_runs_go_on(tmp_path):
    """The embedded Redis killed (a crash, the OOM killer): `canvas up` restarted every other child, never it, and
    every process waited for it for good (/healthz 503)."""
    data_dir, port = tmp_path / "data", free_port()
    env = canvas_env(data_dir)
    process = start_canvas("up", "--port", str(port), env=env, log_path=tmp_path / "up.log")
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for_http(f"{base}/healthz", process)
        created = run_canvas("org", "create", "--name", "Acme", "--admin-email", "admin@acme.test", "--json", env=env)
        api = Api(base, json.loads(created.stdout), "admin@acme.test")
        registered = api.post("/api/RegApplication", {"applicationId": FILE_HUB_APP, "credentialsJson": "{}"}).json()
        workflow = api.workflow([("Records", "records.from_variable", {"records": RECORDS}),
                                 ("Store", "filehub.write", {"filename": "people.jsonl"})], registered)
        assert api.run(workflow)["status"] == "Succeeded"

        def redis_pid() -> int:
            return json.loads((data_dir / "canvas-up.pid").read_text())["redis"][0]

        killed = redis_pid()
        os.kill(killed, signal.SIGKILL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            health = requests.get(f"{base}/healthz", timeout=10).json()
            if redis_pid() != killed and (health["redis"], health["workers"], health["schedulers"]) == ("ok", 1, 1):
                break
            time.sleep(0.5)
        assert redis_pid() != killed and alive(redis_pid()), (tmp_path / "up.log").read_text()[-3000:]
        assert (health["redis"], health["workers"], health["schedulers"]) == ("ok", 1, 1), health
        after = api.run(workflow)
        assert after["status"] == "Succeeded", (after, (tmp_path / "up.log").read_text()[-3000:])
        children = descendants(process.pid)
    finally:
        process.send_signal(signal.SIGTERM)
        exit_code = process.wait(60)
    assert exit_code == 0, (tmp_path / "up.log").read_text()[-3000:]
    time.sleep(0.2)
    assert [pid for pid in children if alive(pid)] == []
