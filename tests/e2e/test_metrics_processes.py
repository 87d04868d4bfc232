"""Prometheus metrics scraped over HTTP from real processes after real runs and fired schedules, the counts checked
against the database: `canvas up` (one scrape of the API's /metrics sees the API, the worker and the scheduler), and
a fork worker and a scheduler alone on their --metrics-port."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, text

from tests.integration.run_helpers import (
    make_workflow,
    run,
    start_worker,
    stop_worker,
    wait_for,
    worker_env,
)
from tests.process_tools import (
    canvas_env,
    free_port,
    free_ports,
    run_canvas,
    start_canvas,
    wait_for_http,
)

pytestmark = pytest.mark.slow
EVERY_SECOND = json.dumps({"cronSchedule": "* * * ? * *"})
RECORDS_PER_RUN = 3  # THREE_BLOCKS: three records, two kept by the filter


def metric_values(body: str) -> dict[tuple, float]:
    found = {}
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            found[(sample.name, *sorted(sample.labels.items()))] = sample.value
    return found


def total(found: dict[tuple, float], name: str, **labels: str) -> float:
    """The sum over the samples of `name` whose labels include `labels`."""
    wanted = set(labels.items())
    return sum(value for (sample, *pairs), value in found.items() if sample == name and wanted <= set(pairs))


def scrape(url: str) -> dict[tuple, float]:
    answer = requests.get(url, timeout=10)
    assert answer.status_code == 200, answer.text[:500]
    assert answer.headers["Content-Type"].startswith("text/plain")
    return metric_values(answer.text)


class HttpClient:
    """The test client's interface (post/get; .status_code, .json, .headers) over real HTTP."""

    def __init__(self, base: str) -> None:
        self.base = base

    def post(self, path: str, json=None, headers=None):  # noqa: ANN001, A002
        return _Answer(requests.post(self.base + path, json=json, headers=headers, timeout=30))

    def get(self, path: str, headers=None):  # noqa: ANN001
        return _Answer(requests.get(self.base + path, headers=headers, timeout=30))


class _Answer:
    def __init__(self, response: requests.Response) -> None:
        self.status_code, self.headers = response.status_code, response.headers
        self.json = response.json() if response.content else None


def schedule_every_second(client, headers: dict, workflow_id: str, on: bool = True) -> None:  # noqa: ANN001
    answer = client.post("/api/WorkflowScheduler", json={"workflowId": workflow_id, "isScheduled": on,
                                                          "scheduleFrequency": EVERY_SECOND}, headers=headers)
    assert answer.status_code == 200, answer.json


class Ledger:
    """What the database says happened: runs by trigger and status, occurrences by outcome."""

    def __init__(self, database_url: str) -> None:
        self.engine = create_engine(database_url)

    def runs(self) -> Counter:
        with self.engine.connect() as connection:
            return Counter({(trigger, status): count for trigger, status, count in connection.execute(text(
                "SELECT trigger, status, count(*) FROM workflow_run GROUP BY trigger, status"))})

    def occurrences(self) -> Counter:
        with self.engine.connect() as connection:
            return Counter(dict(connection.execute(text(
                "SELECT outcome, count(*) FROM schedule_occurrence GROUP BY outcome")).all()))

    def active_runs(self) -> int:
        return sum(count for (_trigger, status), count in self.runs().items() if status in ("Queued", "Running"))


def settled_schedule(client, headers, workflow_id: str, ledger: Ledger, scheduled_runs: int) -> None:  # noqa: ANN001
    """Let the every-second schedule start `scheduled_runs` runs, turn it off, and wait until every run has ended."""
    schedule_every_second(client, headers, workflow_id)
    wait_for(lambda: sum(count for (trigger, _), count in ledger.runs().items() if trigger == "schedule")
             >= scheduled_runs, timeout=60, what=f"{scheduled_runs} scheduled runs")
    schedule_every_second(client, headers, workflow_id, on=False)
    wait_for(lambda: ledger.active_runs() == 0, timeout=60, what="every run ended")


def disagreements(found: dict[tuple, float], ledger: Ledger, *, scheduler: bool, worker: bool) -> list[str]:
    """The counts in `found` that differ from the database's, each as "metric {labels}: counted != expected"."""
    runs, occurrences = ledger.runs(), ledger.occurrences()
    expected: list[tuple[str, dict, float]] = []
    if worker:
        succeeded = sum(count for (_, status), count in runs.items() if status == "Succeeded")
        expected += [("canvas_runs_finished_total", {"trigger": trigger, "status": status}, count)
                     for (trigger, status), count in runs.items()]
        expected += [("canvas_block_duration_seconds_count", {"block": "records.from_variable",
                                                              "outcome": "succeeded"}, succeeded),
                     ("canvas_block_records_written_total", {"block": "records.from_variable"},
                      succeeded * RECORDS_PER_RUN),
                     ("canvas_block_records_read_total", {"block": "jsonata.filter"}, succeeded * RECORDS_PER_RUN),
                     ("canvas_run_duration_seconds_count", {}, sum(runs.values()))]
    if scheduler:
        expected += [("canvas_schedule_occurrences_total", {"outcome": outcome}, count)
                     for outcome, count in occurrences.items()]
        expected += [("canvas_schedule_lateness_seconds_count", {}, occurrences["fired"]),
                     ("canvas_runs_started_total", {"trigger": "schedule"},
                      sum(count for (trigger, _), count in runs.items() if trigger == "schedule"))]
    return [f"{name} {labels}: {total(found, name, **labels)} != {count}" for name, labels, count in expected
            if total(found, name, **labels) != count]


def scrape_until_it_agrees(url: str, ledger: Ledger, timeout: float = 30, **which: bool) -> dict[tuple, float]:
    deadline = time.monotonic() + timeout
    while True:
        found = scrape(url)
        differences = disagreements(found, ledger, **which)
        if not differences:
            return found
        assert time.monotonic() < deadline, differences
        time.sleep(0.3)


def test_one_scrape_of_canvas_up_sees_the_api_the_worker_and_the_scheduler(tmp_path):
    data_dir, port = tmp_path / "data", free_port()
    env = canvas_env(data_dir)
    process = start_canvas("up", "--port", str(port), env=env, log_path=tmp_path / "up.log")
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{base}/healthz", process)
        wait_for(lambda: (health := requests.get(f"{base}/healthz", timeout=10).json())["workers"] == 1
                 and health["schedulers"] == 1, timeout=60, what="worker and scheduler up")
        created = run_canvas("org", "create", "--name", "Acme", "--admin-email", "admin@acme.test", "--json", env=env)
        assert created.returncode == 0, created.stderr
        keys = json.loads(created.stdout)
        headers = {"Consumer": keys["consumer"], "SecretKey": keys["secretKey"]}
        client = HttpClient(base)
        ledger = Ledger(f"sqlite:///{data_dir / 'canvas.db'}")
        workflow_id = make_workflow(client, headers)
        answer = run(client, headers, workflow_id)
        assert answer.status_code == 202, answer.json
        wait_for(lambda: ledger.runs()[("manual", "Succeeded")] == 1, timeout=60, what="the manual run")
        settled_schedule(client, headers, workflow_id, ledger, scheduled_runs=2)

        found = scrape_until_it_agrees(f"{base}/metrics", ledger, scheduler=True, worker=True)
        assert total(found, "canvas_runs_started_total", trigger="manual") == 1
        assert total(found, "canvas_runs_finished_total", trigger="manual", status="Succeeded") == 1
        assert total(found, "canvas_http_requests_total", route="/api/RunWorkflow", method="POST", status="202") == 1
        assert total(found, "canvas_http_requests_total", route="/api/WorkflowScheduler", status="200") == 2
        assert total(found, "canvas_http_request_duration_seconds_count", route="/api/RunWorkflow") == 1
        assert total(found, "canvas_queued_runs") == 0
        assert ("canvas_oldest_queued_run_age_seconds",) in found and ("canvas_run_queue_jobs",) in found
        # every scrape sees the same totals, whichever of the two gunicorn workers answers it
        for _ in range(4):
            again = scrape(f"{base}/metrics")
            assert total(again, "canvas_runs_finished_total") == total(found, "canvas_runs_finished_total")
            assert (total(again, "canvas_schedule_occurrences_total")
                    == total(found, "canvas_schedule_occurrences_total"))
    finally:
        process.send_signal(signal.SIGTERM)
        exit_code = process.wait(60)
    assert exit_code == 0, (tmp_path / "up.log").read_text()[-3000:]
    assert (data_dir / "metrics").is_dir()  # where the processes of `canvas up` kept them


def start_scheduler(settings: dict, log_path: Path, *extra: str) -> subprocess.Popen:
    log = open(log_path, "ab")  # noqa: SIM115 - owned by the child
    return subprocess.Popen([sys.executable, "-m", "canvas", "scheduler", *extra], env=worker_env(settings),
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def process_report(processes: dict[str, tuple[subprocess.Popen, Path]]) -> str:
    """What a failure needs to be understood later: whether each process still ran, and the end of its log
    (pytest keeps a failed test's temporary directory only until three later sessions)."""
    return "\n".join(f"--- {name}: exit code {process.poll()}, last lines of its log:\n"
                      + "\n".join(log.read_text(errors="replace").splitlines()[-40:])
                      for name, (process, log) in processes.items())


def test_a_fork_worker_and_a_scheduler_serve_their_metrics_on_their_ports(client, app, org, tmp_path):
    settings = app.config["CANVAS_SETTINGS"]
    worker_port, scheduler_port = free_ports(2)
    worker = start_worker(settings, tmp_path / "worker.log", "--worker-class", "fork", "--metrics-port",
                          str(worker_port))
    scheduler = start_scheduler(settings, tmp_path / "scheduler.log", "--metrics-port", str(scheduler_port))
    try:
        ledger = Ledger(settings["DATABASE_URL"])
        workflow_id = make_workflow(client, org.admin_headers)
        for expected in (1, 2):  # each run in a child of its own, one after the other
            assert run(client, org.admin_headers, workflow_id).status_code == 202
            wait_for(lambda expected=expected: ledger.runs()[("manual", "Succeeded")] == expected, timeout=60,
                     what=f"manual run {expected}")
        settled_schedule(client, org.admin_headers, workflow_id, ledger, scheduled_runs=2)

        worker_found = scrape_until_it_agrees(f"http://127.0.0.1:{worker_port}/metrics", ledger, scheduler=False,
                                              worker=True)
        assert total(worker_found, "canvas_runs_finished_total", trigger="manual", status="Succeeded") == 2
        assert total(worker_found, "canvas_schedule_occurrences_total") == 0  # the scheduler's, not the worker's
        scheduler_found = scrape_until_it_agrees(f"http://127.0.0.1:{scheduler_port}/metrics", ledger,
                                                 scheduler=True, worker=False)
        assert total(scheduler_found, "canvas_schedule_occurrences_total", outcome="fired") >= 2
        assert total(scheduler_found, "canvas_runs_finished_total") == 0
    except AssertionError:
        print(process_report({"worker": (worker, tmp_path / "worker.log"),
                              "scheduler": (scheduler, tmp_path / "scheduler.log")}))
        raise
    finally:
        stop_worker(worker)
        stop_worker(scheduler)
    logs = (tmp_path / "worker.log").read_text(errors="replace")
    assert f"metrics served on port {worker_port}" in logs, logs[-2000:]
