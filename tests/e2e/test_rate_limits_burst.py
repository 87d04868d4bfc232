"""429s in both dialects under a burst from a second process, against a real `canvas api` (two gunicorn workers
counting in one Redis): exactly the limit answered 200 in each dialect, the rest 429 in the dialect's error shape with
a Retry-After that is honest (the window's end, and a request sent after it succeeds); then a burst of bad keys is
answered 401 up to the auth-failure limit and 429 after it.

Run as `python -m tests.e2e.test_rate_limits_burst '<json>'`, this module is the burst: the second process."""
from __future__ import annotations

import base64
import json
import math
import os
import signal
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

pytestmark = pytest.mark.slow

LIMIT, WINDOW, BURST = 20, 6, 30  # per key per window; a burst of 30 takes well under a second
FAILURE_LIMIT, FAILURE_WINDOW, BAD_BURST = 5, 6, 12
REPOSITORY = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def canvas_api(tmp_path_factory, request):
    """A real `canvas api` with small limits, shared by this module's tests (each with organizations of its own);
    on the suite's PostgreSQL and Redis server when it has them."""
    from tests.process_tools import canvas_env, free_port, start_canvas, wait_for_http

    extra = {"CANVAS_API_WORKERS": "2", "CANVAS_RATE_LIMIT_PER_KEY": str(LIMIT),
             "CANVAS_RATE_LIMIT_WINDOW_SECONDS": str(WINDOW), "CANVAS_AUTH_FAILURE_LIMIT": str(FAILURE_LIMIT),
             "CANVAS_AUTH_FAILURE_WINDOW_SECONDS": str(FAILURE_WINDOW)}
    if os.environ.get("CANVAS_TEST_DATABASE_URL"):
        extra["CANVAS_DATABASE_URL"] = request.getfixturevalue("migrated_database")
    if os.environ.get("CANVAS_TEST_REDIS_URL"):
        extra.update(CANVAS_REDIS_URL=os.environ["CANVAS_TEST_REDIS_URL"], CANVAS_REDIS_PREFIX=f"rl-{uuid.uuid4().hex}:")
    tmp_path = tmp_path_factory.mktemp("rate-limits")
    env = canvas_env(tmp_path / "data", **extra)
    port = free_port()
    process = start_canvas("api", "--port", str(port), env=env, log_path=tmp_path / "api.log")
    try:
        wait_for_http(f"http://127.0.0.1:{port}/healthz", process)
        yield f"http://127.0.0.1:{port}", env
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(60)


def new_org(env: dict, name: str) -> dict:
    from tests.process_tools import run_canvas

    email = f"admin-{uuid.uuid4().hex[:8]}@{name.lower()}.test"
    created = run_canvas("org", "create", "--name", name, "--admin-email", email, "--json", env=env)
    assert created.returncode == 0, created.stderr
    keys = json.loads(created.stdout)
    basic = base64.b64encode(f"{email}:{keys['secretKey']}".encode()).decode()
    return {"canvas": {"Consumer": keys["consumer"], "SecretKey": keys["secretKey"]},
            "v2": {"Authorization": f"Basic {basic}", "Accept": "application/vnd.api+json"}}


def burst_from_another_process(plan: dict) -> dict:
    done = subprocess.run([sys.executable, "-m", "tests.e2e.test_rate_limits_burst", json.dumps(plan)],
                          cwd=REPOSITORY, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


def test_a_burst_from_another_process_gets_the_limit_in_200s_and_honest_429s_in_both_dialects(canvas_api):
    base, env = canvas_api
    canvas_org, v2_org = new_org(env, "Bursty"), new_org(env, "Jsonapi")
    plan = {"window": WINDOW, "bursts": {
        "canvas": {"url": base + "/api/Authenticate", "headers": canvas_org["canvas"], "count": BURST},
        "v2": {"url": base + "/v2/users/me", "headers": v2_org["v2"], "count": BURST}}}
    answers = burst_from_another_process(plan)
    window_end = answers["window_end"]
    for dialect, answered in answers["bursts"].items():
        assert max(answer["at"] for answer in answered) < window_end, "the burst outlasted its window"
        statuses = [answer["status"] for answer in answered]
        assert (statuses.count(200), statuses.count(429)) == (LIMIT, BURST - LIMIT), (dialect, statuses)
        for answer in (answer for answer in answered if answer["status"] == 429):
            assert_shaped_429(dialect, answer)
            left = window_end - answer["at"]
            assert left <= answer["retry_after"] <= left + 1.5, (answer, window_end)  # the window's end, rounded up
    last = max((answer for answered in answers["bursts"].values() for answer in answered if answer["status"] == 429),
               key=lambda answer: answer["at"])
    time.sleep(max(0.0, last["at"] + last["retry_after"] - time.time()))
    assert requests.get(base + "/api/Authenticate", headers=canvas_org["canvas"], timeout=10).status_code == 200
    assert requests.get(base + "/v2/users/me", headers=v2_org["v2"], timeout=10).status_code == 200


def test_a_burst_of_bad_keys_from_another_process_is_slowed_down_past_the_failure_limit(canvas_api):
    base, env = canvas_api
    org = new_org(env, "Guessed")
    bad = {**org["canvas"], "SecretKey": "guess"}
    plan = {"window": FAILURE_WINDOW, "bursts": {
        "canvas": {"url": base + "/api/Authenticate", "headers": bad, "count": BAD_BURST, "threads": 1}}}
    answered = burst_from_another_process(plan)["bursts"]["canvas"]
    assert [answer["status"] for answer in answered] == [401] * FAILURE_LIMIT + [429] * (BAD_BURST - FAILURE_LIMIT)
    for answer in answered[FAILURE_LIMIT:]:
        assert_shaped_429("canvas", answer)
        assert 1 <= answer["retry_after"] <= FAILURE_WINDOW
    assert requests.get(base + "/api/Authenticate", headers=org["canvas"], timeout=10).status_code == 429
    last = answered[-1]  # the address is let in again once the last Retry-After has passed (and for later tests)
    time.sleep(max(0.0, last["at"] + last["retry_after"] - time.time()))
    assert requests.get(base + "/api/Authenticate", headers=org["canvas"], timeout=10).status_code == 200


def assert_shaped_429(dialect: str, answer: dict) -> None:
    body = answer["body"]
    if dialect == "v2":
        assert answer["content_type"].startswith("application/vnd.api+json"), answer
        assert body["errors"][0]["status"] == "429", body
    else:
        assert body["State"] == 429 and body["Msg"], body


# --- the second process ------------------------------------------------------------------------------------------

def send_bursts(plan: dict) -> dict:
    """Waits for the start of a fresh window (the server's windows are aligned on the clock both share), then sends
    every burst at once, each on its own threads; each answer: status, Retry-After, body, when it came."""
    window = plan["window"]
    start = (math.floor(time.time() / window) + 1) * window
    time.sleep(start - time.time() + 0.05)
    with ThreadPoolExecutor(max_workers=len(plan["bursts"])) as pool:
        futures = {name: pool.submit(send_burst, burst) for name, burst in plan["bursts"].items()}
        return {"window_end": start + window, "bursts": {name: future.result() for name, future in futures.items()}}


def send_burst(burst: dict) -> list[dict]:
    session = requests.Session()
    with ThreadPoolExecutor(max_workers=burst.get("threads", 6)) as pool:
        return list(pool.map(lambda _: send_one(session, burst), range(burst["count"])))


def send_one(session: requests.Session, burst: dict) -> dict:
    response = session.get(burst["url"], headers=burst["headers"], timeout=30)
    retry_after = response.headers.get("Retry-After")
    return {"status": response.status_code, "at": time.time(), "body": response.json(),
            "content_type": response.headers.get("Content-Type", ""),
            "retry_after": int(retry_after) if retry_after is not None else None}


if __name__ == "__main__":
    print(json.dumps(send_bursts(json.loads(sys.argv[1]))))
