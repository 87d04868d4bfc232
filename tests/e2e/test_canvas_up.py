"""`canvas up` as a user runs it: embedded defaults, a free port, real HTTP, SIGTERM, nothing left behind."""
from __future__ import annotations

import json
import signal
import time

import pytest
import requests

from tests.process_tools import alive, canvas_env, descendants, free_port, run_canvas, start_canvas, wait_for_http

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
