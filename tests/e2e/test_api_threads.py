"""`canvas api` with its default workers and threads (config/gunicorn.py): slow requests hold threads, not the API.

A request that waits on a remote system (registering an application verifies its credentials: here against a server
that accepts and never answers, until CANVAS_VERIFY_TIMEOUT_SECONDS) occupies one thread of one worker. With slow
requests on every thread of the API but one, other requests are still answered while the slow ones wait. And with
one thread per worker (gunicorn's sync workers), the server's own answers are JSON as with threads
(tests/e2e/test_server_answers_json.py speaks to the default)."""
from __future__ import annotations

import json
import socket
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from config.default import API_THREADS
from config.gunicorn import machine_default_workers
from tests.integration.run_helpers import wait_for
from tests.process_tools import canvas_env, free_port, run_canvas, start_canvas, wait_for_http

pytestmark = pytest.mark.slow
FTP_APPLICATION = "5f814909-01ea-4395-96ee-5ba7614128fc"
SLOW_SECONDS = 15  # how long a verification waits for the silent server: far longer than the rest of the test


def default_api_environment(data_dir, **extra: str) -> dict[str, str]:
    env = canvas_env(data_dir, **extra)
    env.pop("CANVAS_API_WORKERS")  # sized for the machine, as a user gets it
    return env


@pytest.fixture
def default_api(tmp_path):
    """A `canvas api` on the defaults, loopback allowed, and an organization's keys."""
    env = default_api_environment(tmp_path / "data", CANVAS_ALLOW_PRIVATE_NETWORKS="true",
                                  CANVAS_VERIFY_TIMEOUT_SECONDS=str(SLOW_SECONDS))
    created = run_canvas("org", "create", "--name", "Threads", "--admin-email", "admin@threads.test", "--json", env=env)
    assert created.returncode == 0, created.stderr
    keys = json.loads(created.stdout)
    port = free_port()
    process = start_canvas("api", "--port", str(port), env=env, log_path=tmp_path / "api.log")
    try:
        wait_for_http(f"http://127.0.0.1:{port}/healthz", process)
        yield f"http://127.0.0.1:{port}", {"Consumer": keys["consumer"], "SecretKey": keys["secretKey"]}
    finally:
        process.terminate()
        process.wait(60)


def test_slow_requests_on_all_threads_but_one_leave_the_api_answering(default_api, silent_server):
    base, headers = default_api
    slow_count = machine_default_workers(API_THREADS) * API_THREADS - 1
    credentials = {"username": "u", "password": "p", "port": silent_server.port, "address": "127.0.0.1",
                   "secure": False}
    body = {"applicationId": FTP_APPLICATION, "tagText": "Silent", "credentialsJson": json.dumps(credentials)}

    def register() -> requests.Response:
        return requests.post(f"{base}/api/RegApplication", json=body, headers=headers, timeout=SLOW_SECONDS * 3)

    with ThreadPoolExecutor(slow_count) as pool:
        slow = [pool.submit(register) for _ in range(slow_count)]
        wait_for(lambda: silent_server.accepted == slow_count, timeout=60, what="every slow request verifying")
        for _ in range(2 * API_THREADS):  # each on a new connection, as the slow ones are
            answer = requests.get(f"{base}/api/Authenticate", headers={**headers, "Connection": "close"},
                                  timeout=SLOW_SECONDS / 2)
            assert answer.status_code == 200 and answer.json() is True
        assert not any(request.done() for request in slow), "answered while every slow request was still waiting"
        answers = [request.result() for request in slow]
    assert [answer.status_code for answer in answers] == [400] * slow_count
    assert all("timed out" in answer.json()["Msg"] for answer in answers), answers[0].text


def test_sync_workers_answer_json_too(tmp_path):
    env = default_api_environment(tmp_path / "data", CANVAS_API_THREADS="1")
    port = free_port()
    process = start_canvas("api", "--port", str(port), env=env, log_path=tmp_path / "api.log")
    try:
        wait_for_http(f"http://127.0.0.1:{port}/healthz", process)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
            connection.sendall(f"GET /api/Workflows?{'a' * 9000} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            answer = b""
            while chunk := connection.recv(65536):
                answer += chunk
    finally:
        process.terminate()
        process.wait(60)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 414 ") and b"Content-Type: application/json" in head, head
    assert json.loads(body)["State"] == 414
    assert "Using worker: canvas.wsgi_server.JsonErrorSyncWorker" in (tmp_path / "api.log").read_text()
