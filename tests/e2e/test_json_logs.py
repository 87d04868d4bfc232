"""CANVAS_LOG_FORMAT=json in real processes: a `canvas api` (gunicorn) and a forking `canvas worker` write nothing but
JSON lines; the run's lines, RQ's among them, carry its ids and block; the API's access line and its other lines of
the request carry the request id it answered with; the key of the application the run uses appears nowhere."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests.integration.run_helpers import make_workflow, run, start_worker, stop_worker, wait_for, worker_env
from tests.process_tools import free_port, wait_for_http
from tests.unit.test_logging_runs import API_KEY, keyed_workflow

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("clean_run_queue")]
JSON_LOGS = {"CANVAS_LOG_FORMAT": "json", "CANVAS_LOG_LEVEL": "INFO"}


def start_api(settings: dict, port: int, log_path: Path) -> subprocess.Popen:
    log = open(log_path, "wb")  # noqa: SIM115 - owned by the child
    env = {**worker_env(settings), **JSON_LOGS, "CANVAS_API_WORKERS": "1"}
    return subprocess.Popen([sys.executable, "-m", "canvas", "api", "--port", str(port)], env=env, stdout=log,
                            stderr=subprocess.STDOUT)


def json_lines(path: Path) -> list[dict]:
    """Every line of the log, each of which must be one JSON object."""
    text = path.read_text(errors="replace")
    assert API_KEY not in text
    lines = []
    for number, line in enumerate(text.splitlines(), 1):
        try:
            lines.append(json.loads(line))
        except json.JSONDecodeError:
            raise AssertionError(f"{path.name} line {number} is not JSON: {line!r}") from None
    return lines


def test_json_logs_of_a_run_through_real_processes(app, client, org, http_server, tmp_path):
    settings = app.config["CANVAS_SETTINGS"]
    workflow_id = keyed_workflow(client, org.admin_headers, http_server)
    port = free_port()
    api = start_api(settings, port, tmp_path / "api.log")
    worker = start_worker(settings, tmp_path / "worker.log", "--worker-class", "fork", env=JSON_LOGS)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for_http(f"{base}/healthz", api)
        started = requests.post(f"{base}/api/RunWorkflow", json={"workflowId": workflow_id}, timeout=10,
                                headers={**org.admin_headers, "X-Request-ID": "e2e-trace-1"})
        assert started.status_code == 202, started.text
        assert started.headers["X-Request-ID"] == "e2e-trace-1"
        run_id = started.headers["Location"].rsplit("/", 1)[-1]
        location = f"{base}/api/WorkflowRun/{run_id}"
        wait_for(lambda: requests.get(location, headers=org.admin_headers, timeout=10).json()["status"] == "Failed",
                 timeout=60, what="the run failed on record 2")
    finally:
        stop_worker(worker)
        api.terminate()
        api.wait(30)

    api_lines = json_lines(tmp_path / "api.log")
    [access] = [line for line in api_lines if line.get("request_id") == "e2e-trace-1"
                and line["logger"] == "canvas.access"]
    assert (access["method"], access["route"], access["status"]) == ("POST", "/api/RunWorkflow", 202)
    assert access["duration_ms"] > 0 and access["remote_addr"] == "127.0.0.1" and access["time"].endswith("Z")
    queued = [line for line in api_lines if f"run {run_id}" in line["message"] and "queued" in line["message"]]
    assert queued and queued[0]["request_id"] == "e2e-trace-1"
    assert any(line["logger"].startswith("gunicorn") for line in api_lines)  # gunicorn's own lines: JSON too

    worker_lines = json_lines(tmp_path / "worker.log")
    of_the_run = [line for line in worker_lines if line.get("run_id") == run_id]
    assert any(line["logger"].startswith("rq.") and run_id in line["message"]  # RQ's: a worker took the job
               for line in worker_lines)
    in_block_2 = [line for line in of_the_run if line.get("block") == 2]
    assert in_block_2 and {(line["workflow_id"], line["account_id"]) for line in in_block_2} == {
        (workflow_id, org.admin_id)}
    failed = [line for line in of_the_run if "failed at block 2" in line["message"]]
    assert failed and "key *** may not write order 2" in failed[0]["message"]


@pytest.mark.parametrize("worker_class", ["simple", "fork"])
def test_a_run_that_succeeds_has_a_line_when_it_starts_and_one_when_it_ends(app, client, org, tmp_path,
                                                                             worker_class):
    """RQ's own "Successfully completed" and "Job OK" lines say again what the runner's line says: DEBUG lines, so
    at INFO a run that goes well costs the log two lines besides its blocks' own, and at DEBUG they are all
    there."""
    settings = app.config["CANVAS_SETTINGS"]
    workflow_id = make_workflow(client, org.admin_headers)
    lines_by_level = {}
    for level in ("INFO", "DEBUG"):
        started = run(client, org.admin_headers, workflow_id)
        assert started.status_code == 202, started.json
        run_id = started.headers["Location"].rsplit("/", 1)[-1]
        log_path = tmp_path / f"worker-{level}.log"
        worker = start_worker(settings, log_path, "--burst", "--worker-class", worker_class,
                              env={**JSON_LOGS, "CANVAS_LOG_LEVEL": level})
        try:
            assert worker.wait(60) == 0, log_path.read_text()
        finally:
            stop_worker(worker)
        assert client.get(started.headers["Location"], headers=org.admin_headers).json["status"] == "Succeeded"
        lines_by_level[level] = [line for line in json_lines(log_path)  # the blocks' own lines aside
                                 if (line.get("run_id") == run_id or run_id in line["message"])
                                 and not line["logger"].startswith("canvas.block.")]

    at_info = lines_by_level["INFO"]
    assert len(at_info) == 2, at_info
    assert at_info[0]["logger"] == "rq.worker" and "canvas-runs" in at_info[0]["message"]  # RQ took the job
    assert at_info[1]["logger"] == "canvas.execution.runner" and "succeeded in" in at_info[1]["message"]
    assert at_info[1]["workflow_id"] == workflow_id and at_info[1]["account_id"] == org.admin_id
    repeats = [line for line in lines_by_level["DEBUG"]
               if line["message"].startswith("Successfully completed") or "Job OK" in line["message"]]
    assert len(repeats) == 2 and {line["level"] for line in repeats} == {"DEBUG"}, repeats
