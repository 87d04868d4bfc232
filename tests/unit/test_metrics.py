"""Prometheus metrics in one process: `/metrics` through the test client, request counting by route template, the
queue gauges read at scrape time, the recording functions, METRICS_ENABLED, and the multi-process storage (files
in a directory, children of a fork worker sharing one set) in fresh interpreters."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from canvas.observability import metrics

ROOT = Path(__file__).resolve().parents[2]


def samples(text: str) -> dict[tuple, float]:
    """{(sample name, sorted labels...): value} of an exposition."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, *sorted(sample.labels.items()))] = sample.value
    return found


def value(text: str, name: str, **labels: str) -> float:
    return samples(text).get((name, *sorted(labels.items())), 0.0)


def scrape(client) -> str:
    answer = client.get("/metrics")
    assert answer.status_code == 200
    assert answer.content_type.startswith("text/plain")
    return answer.get_data(as_text=True)


def test_requests_are_counted_by_route_template_method_and_status(client, org):
    route = "/api/Authenticate"
    before = scrape(client)
    for _ in range(3):
        assert client.get(route, headers=org.admin_headers).status_code == 200
    assert client.get(route, headers={**org.admin_headers, "SecretKey": "wrong"}).status_code == 401
    made_up = uuid.uuid4()
    assert client.get(f"/no/such/path/{made_up}").status_code == 404
    after = scrape(client)

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("canvas_http_requests_total", route=route, method="GET", status="200") == 3
    assert grew("canvas_http_requests_total", route=route, method="GET", status="401") == 1
    assert grew("canvas_http_requests_total", route="unmatched", method="GET", status="404") == 1
    assert grew("canvas_http_request_duration_seconds_count", route=route, method="GET") == 4
    assert str(made_up) not in after and "no/such" not in after  # paths are never labels


def test_routes_with_ids_are_labelled_by_their_template(client, org):
    run_id, labels = uuid.uuid4(), {"route": "/api/WorkflowRun/<id:run_id>", "method": "GET", "status": "404"}
    before = value(scrape(client), "canvas_http_requests_total", **labels)  # the registry is the test process's
    assert client.get(f"/api/WorkflowRun/{run_id}", headers=org.admin_headers).status_code == 404
    text = scrape(client)
    assert value(text, "canvas_http_requests_total", **labels) == before + 1
    assert str(run_id) not in text


def test_queued_runs_and_the_age_of_the_oldest_are_read_at_scrape_time(client, services, org):
    from canvas.models import WorkflowRun
    from canvas.models.base import utcnow

    assert value(scrape(client), "canvas_queued_runs") == 0
    assert value(scrape(client), "canvas_oldest_queued_run_age_seconds") == 0
    workflow_id = _any_workflow(client, org)
    with services.db.transaction() as session:
        session.add(WorkflowRun(workflow_id=workflow_id, account_id=uuid.UUID(org.admin_id), status="Queued",
                                trigger="manual", run_from_block=1, run_till_block=1,
                                date_queued=utcnow() - timedelta(seconds=90)))
    text = scrape(client)
    assert value(text, "canvas_queued_runs") == 1
    assert 89 <= value(text, "canvas_oldest_queued_run_age_seconds") < 150
    assert "canvas_run_queue_jobs" in text


def _any_workflow(client, org) -> uuid.UUID:
    from tests.api.workflow_helpers import (
        file_hub_app,
        new_workflow,
        published_template,
    )

    template_id = published_template(client, org.admin_headers)
    return uuid.UUID(new_workflow(client, org.admin_headers, template_id, file_hub_app(client, org.admin_headers)))


def test_a_store_that_does_not_answer_leaves_its_gauges_out_but_the_scrape_answers(make_app):
    app = make_app(REDIS_URL="redis://127.0.0.1:1/0")  # nothing listens on port 1
    text = scrape(app.test_client())
    assert "canvas_run_queue_jobs" not in text and "canvas_workers" not in text
    assert "canvas_queued_runs" in text  # the database still answers


def test_metrics_can_be_turned_off(make_app):
    client = make_app(METRICS_ENABLED=False).test_client()
    assert client.get("/metrics").status_code == 404


def test_the_recording_functions_count_with_bounded_labels():
    before = _registry_text()
    metrics.runs_started("schedule", 3)
    metrics.run_finished("Failed", "schedule", seconds=2.5)
    metrics.run_finished("Failed", None)
    metrics.block_finished("test.block", "succeeded", 0.2, records_read=5, records_written=4)
    metrics.callback_delivered("delivered")
    metrics.notification_sent("email", "sent")
    metrics.lease_failed("revoked")
    metrics.run_requeued("job_missing")
    from canvas.models.base import utcnow

    scheduled = utcnow()
    metrics.occurrences_claimed([{"outcome": "fired", "scheduled_time": scheduled,
                                  "dispatch_time": scheduled + timedelta(seconds=1.5)},
                                 {"outcome": "skipped", "scheduled_time": scheduled, "dispatch_time": None}])
    after = _registry_text()

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("canvas_runs_started_total", trigger="schedule") == 3
    assert grew("canvas_runs_finished_total", status="Failed", trigger="schedule") == 1
    assert grew("canvas_runs_finished_total", status="Failed", trigger="unknown") == 1
    assert grew("canvas_run_duration_seconds_count", status="Failed") == 1  # only the run with a duration
    assert grew("canvas_block_duration_seconds_count", block="test.block", outcome="succeeded") == 1
    assert grew("canvas_block_records_read_total", block="test.block") == 5
    assert grew("canvas_block_records_written_total", block="test.block") == 4
    assert grew("canvas_callback_deliveries_total", outcome="delivered") == 1
    assert grew("canvas_notification_deliveries_total", channel="email", outcome="sent") == 1
    assert grew("canvas_run_lease_failures_total", reason="revoked") == 1
    assert grew("canvas_runs_requeued_total", reason="job_missing") == 1
    assert grew("canvas_schedule_occurrences_total", outcome="fired") == 1
    assert grew("canvas_schedule_occurrences_total", outcome="skipped") == 1
    assert grew("canvas_schedule_lateness_seconds_count") == 1
    # A difference of two cumulative float sums: exact only when nothing was recorded before (run alone).
    assert grew("canvas_schedule_lateness_seconds_sum") == pytest.approx(1.5, abs=1e-9)


def _registry_text() -> str:
    from canvas.observability.metrics_web import exposition

    return exposition().decode()


MULTIPROCESS = """
    import os, sys
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = sys.argv[1]
    from canvas.observability import metrics_setup
    metrics_setup.forked_children_share_files = sys.argv[2] == "share"
    from canvas.observability import metrics
    from canvas.observability.metrics_web import exposition

    metrics.runs_started("manual")
    for _ in range(4):  # like RQ's fork worker: one child per job, one at a time
        pid = os.fork()
        if pid == 0:
            metrics.run_finished("Succeeded", "manual", seconds=0.1)
            os._exit(0)
        os.waitpid(pid, 0)
    print(exposition().decode())
"""


def run_multiprocess(directory: Path, share: bool) -> str:
    directory.mkdir()
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(MULTIPROCESS), str(directory),
                           "share" if share else "own"], check=False, capture_output=True, text=True, timeout=60, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_counts_of_forked_children_survive_them_in_the_multiprocess_directory(tmp_path):
    text = run_multiprocess(tmp_path / "shared", share=True)
    assert value(text, "canvas_runs_started_total", trigger="manual") == 1
    assert value(text, "canvas_runs_finished_total", status="Succeeded", trigger="manual") == 4
    assert value(text, "canvas_run_duration_seconds_count", status="Succeeded") == 4
    files = sorted(path.name for path in (tmp_path / "shared").iterdir())
    assert len([name for name in files if name.endswith("-child.db")]) == 2, files  # a counter and a histogram file


def test_without_sharing_each_child_leaves_files_of_its_own(tmp_path):
    text = run_multiprocess(tmp_path / "own", share=False)
    assert value(text, "canvas_runs_finished_total", status="Succeeded", trigger="manual") == 4
    assert len(list((tmp_path / "own").iterdir())) >= 4 * 2


def test_use_shared_dir_empties_it_and_use_own_dir_keeps_a_given_one(tmp_path, monkeypatch):
    from canvas.observability import metrics_setup

    monkeypatch.setenv(metrics_setup.MULTIPROC_ENV, "")  # so that what the functions set is undone after the test
    monkeypatch.delenv(metrics_setup.MULTIPROC_ENV)
    settings = {"DATA_DIR": str(tmp_path), "METRICS_ENABLED": True}
    stale = tmp_path / "metrics" / "counter_1.db"
    stale.parent.mkdir()
    stale.write_bytes(b"old")
    shared = metrics_setup.use_shared_dir(settings)
    assert shared == tmp_path / "metrics" and list(shared.iterdir()) == []
    assert os.environ[metrics_setup.MULTIPROC_ENV] == str(shared)
    assert metrics_setup.use_own_dir(settings, "worker") == shared  # a child of `canvas up` uses the shared one
    monkeypatch.delenv(metrics_setup.MULTIPROC_ENV)
    assert metrics_setup.use_own_dir({**settings, "METRICS_ENABLED": False}, "api") is None
    assert metrics_setup.MULTIPROC_ENV not in os.environ


def test_the_grafana_dashboard_uses_only_metrics_that_exist():
    dashboard = json.loads((ROOT / "docs" / "grafana-dashboard.json").read_text())
    expressions = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    assert expressions
    known = {"canvas_http_requests_total", "canvas_http_request_duration_seconds_bucket", "canvas_runs_started_total",
             "canvas_runs_finished_total", "canvas_run_duration_seconds_bucket", "canvas_block_duration_seconds_bucket",
             "canvas_block_records_read_total", "canvas_block_records_written_total", "canvas_queued_runs",
             "canvas_oldest_queued_run_age_seconds", "canvas_run_queue_jobs", "canvas_workers",
             "canvas_workers_waiting_for_database", "canvas_schedule_occurrences_total",
             "canvas_schedule_lateness_seconds_bucket", "canvas_callback_deliveries_total",
             "canvas_notification_deliveries_total", "canvas_run_lease_failures_total",
             "canvas_runs_requeued_total"}
    import re

    used = {name for expr in expressions for name in re.findall(r"canvas_[a-z_]+", expr)}
    assert used <= known, used - known
    assert known - used == set(), known - used  # every metric has a panel


def test_private_directories_of_killed_processes_are_removed_at_the_next_start(tmp_path, monkeypatch):
    from canvas.observability import metrics_setup

    monkeypatch.setattr(metrics_setup.tempfile, "gettempdir", lambda: str(tmp_path))
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], check=True,
                              capture_output=True, text=True)
    dead, living = int(finished.stdout), os.getpid()
    for pid in (dead, living):
        (tmp_path / f"{metrics_setup.TEMP_PREFIX}api-{pid}-abc_12").mkdir()
    metrics_setup._remove_dirs_of_dead_processes()
    assert [path.name for path in tmp_path.iterdir()] == [f"{metrics_setup.TEMP_PREFIX}api-{living}-abc_12"]
