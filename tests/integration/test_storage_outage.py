"""While the file storage (S3-compatible, behind a relay the test cuts) cannot be reached, every dialect answers what
needs it with a 503 in its own shape (the console with its page) and Retry-After, not a 500 with a reference; what
does not need it keeps working; nothing is half-written; and everything works again once it is back."""
from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.api.test_v2_support import basic_headers
from tests.conftest import Org
from tests.console.conftest import signed_in
from tests.integration.run_helpers import make_workflow, run, wait_for, work_off
from tests.integration.test_retention import count_outputs
from tests.process_tools import canvas_env, run_canvas
from tests.servers.tcp_proxy import TcpProxy

pytestmark = pytest.mark.usefixtures("clean_run_queue")
STORAGE_AWAY = "The service cannot use its file storage at the moment; try again shortly"


@pytest.fixture
def relay(s3_environment):
    endpoint = urlsplit(s3_environment.endpoint_url)
    with TcpProxy(endpoint.hostname, endpoint.port) as proxy:
        yield proxy


def storage_app(make_app, s3_environment, relay, outage_seconds: float):  # noqa: ANN001, ANN201
    bucket = s3_environment.create_bucket()
    return make_app(BLOB_URL=f"s3://{bucket}/canvas", S3_ENDPOINT_URL=f"http://127.0.0.1:{relay.port}",
                    BLOB_OUTAGE_SECONDS=outage_seconds)


@pytest.fixture
def app(make_app, s3_environment, relay):
    """Workers too do not wait for the store beyond botocore's quick retries (BLOB_OUTAGE_SECONDS 0)."""
    return storage_app(make_app, s3_environment, relay, 0.0)


def test_every_dialect_answers_503_while_the_file_storage_is_away(app, client, org, relay, caplog):
    workflow_id = make_workflow(client, org.admin_headers)
    location = run(client, org.admin_headers, workflow_id).headers["Location"]
    work_off(app)
    run_id = location.rsplit("/", 1)[1]
    browser = signed_in(app, org.admin_id)
    v2 = {**basic_headers(app, org.admin_id, org.admin_headers), "Content-Type": "application/vnd.api+json"}
    execution = {"data": {"type": "execution", "attributes": {"input": {"id": 7}}}}
    assert client.get(f"{location}/Block/2/Output", headers=org.admin_headers).status_code == 200

    relay.cut()
    caplog.set_level(logging.WARNING, logger="canvas.web")
    output = client.get(f"{location}/Block/2/Output", headers=org.admin_headers)
    assert (output.status_code, output.headers.get("Retry-After")) == (503, "5")
    assert output.json == {"State": 503, "Msg": STORAGE_AWAY}
    compared = client.post("/api/CompareBlockOutputs", headers=org.admin_headers,
                           json={"runId": run_id, "otherRunId": run_id, "block": 2, "key": "id"})
    assert (compared.status_code, compared.json["Msg"]) == (503, STORAGE_AWAY)
    download = browser.get(f"/console/runs/{run_id}/blocks/2/output")
    assert (download.status_code, download.mimetype, download.headers.get("Retry-After")) == (503, "text/html", "5")
    assert STORAGE_AWAY in download.get_data(as_text=True)
    page = browser.get(f"/console/runs/{run_id}")  # the run's page shows, its previews say why they are missing
    assert page.status_code == 200 and "The output cannot be previewed: CANVAS_BLOB_URL: cannot reach" in page.text
    started = client.post(f"/v2/flows/{workflow_id}/executions", headers=v2, json=execution)
    assert (started.status_code, started.mimetype) == (503, "application/vnd.api+json")
    assert started.json["errors"][0]["status"] == "503" and "file storage" in started.json["errors"][0]["detail"]
    assert len(client.get("/api/WorkflowRuns", headers=org.admin_headers, query_string={
        "workflowId": workflow_id}).json) == 1  # the execution whose input could not be kept never started

    warnings = [record.getMessage() for record in caplog.records if record.name == "canvas.web"]
    assert warnings and all(record.levelno == logging.WARNING for record in caplog.records
                            if record.name == "canvas.web")
    assert "the file storage cannot be used: CANVAS_BLOB_URL: cannot reach http://127.0.0.1:" in warnings[0]

    relay.restore()
    assert client.get(f"{location}/Block/2/Output", headers=org.admin_headers).status_code == 200
    assert browser.get(f"/console/runs/{run_id}/blocks/2/output").status_code == 200
    assert client.post(f"/v2/flows/{workflow_id}/executions", headers=v2, json=execution).status_code == 202


def test_a_run_while_the_store_stays_away_fails_in_words_and_the_next_one_succeeds(app, client, org, relay):
    """Away for longer than the worker waits (BLOB_OUTAGE_SECONDS, 0 here)."""
    workflow_id = make_workflow(client, org.admin_headers)
    relay.cut()
    failed_at = run(client, org.admin_headers, workflow_id).headers["Location"]
    work_off_as_a_worker(app)
    failed = client.get(failed_at, headers=org.admin_headers).json
    assert (failed["status"], failed["failedBlock"], failed["errorClass"]) == ("Failed", 1, "BlobStoreError")
    assert failed["error"].startswith("CANVAS_BLOB_URL: cannot reach http://127.0.0.1:")
    relay.restore()
    succeeded_at = run(client, org.admin_headers, workflow_id).headers["Location"]
    work_off(app)
    assert client.get(succeeded_at, headers=org.admin_headers).json["status"] == "Succeeded"


def test_pruning_with_the_file_storage_away_deletes_nothing_and_says_why(app, client, org, relay):
    """Each output's row goes before its blob: pruning on an unreachable store would have left a blob behind for
    good, so it checks the store first."""
    workflow_id = make_workflow(client, org.admin_headers)
    for _ in range(2):
        run(client, org.admin_headers, workflow_id, runTillBlock=1)
        work_off(app)
    settings = app.config["CANVAS_SETTINGS"]
    env = canvas_env(Path(settings["DATA_DIR"]), CANVAS_DATABASE_URL=settings["DATABASE_URL"],
                     CANVAS_BLOB_URL=settings["BLOB_URL"], CANVAS_S3_ENDPOINT_URL=settings["S3_ENDPOINT_URL"],
                     CANVAS_OUTPUT_RETENTION_RUNS="1", CANVAS_BLOB_OUTAGE_SECONDS="0")
    relay.cut()
    refused = run_canvas("outputs", "prune", env=env)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr, refused.stderr[-3000:]
    [error] = [line for line in refused.stderr.splitlines() if line.startswith("Error:")]
    assert error.startswith("Error: CANVAS_BLOB_URL: cannot reach http://127.0.0.1:")
    assert error.endswith("; nothing was deleted")
    assert count_outputs(app) == 2
    relay.restore()
    pruned = run_canvas("outputs", "prune", env=env)
    assert pruned.returncode == 0 and pruned.stdout.startswith("deleted 1 outputs"), pruned.stderr[-3000:]
    assert count_outputs(app) == 1


def test_a_workers_hourly_pruning_puts_itself_off_in_one_warning(app, client, org, relay, caplog):
    from workers.worker import _prune

    workflow_id = make_workflow(client, org.admin_headers)
    for _ in range(2):
        run(client, org.admin_headers, workflow_id, runTillBlock=1)
        work_off(app)
    services = app.extensions["canvas"]
    services.settings["OUTPUT_RETENTION_RUNS"] = 1
    relay.cut()
    caplog.set_level(logging.INFO, logger="canvas.worker")
    _prune(services)
    [warning] = [record for record in caplog.records if record.name == "canvas.worker"]
    assert warning.levelno == logging.WARNING and warning.exc_info is None
    assert warning.getMessage().startswith("pruning old outputs put off for an hour: CANVAS_BLOB_URL: cannot reach")
    assert count_outputs(app) == 2
    relay.restore()
    _prune(services)
    assert count_outputs(app) == 1


def test_a_worker_waits_for_a_store_back_within_blob_outage_seconds_and_the_api_does_not(make_app, s3_environment,
                                                                                         relay, caplog):
    """A restart of the store (no connection for 2 s) under a run: its worker's writes wait for it and the run
    succeeds, saying once per request that it waits. The API answers 503 at once whatever the setting: a thread
    held per request would leave none for the others."""
    app = storage_app(make_app, s3_environment, relay, 30.0)
    client, org = app.test_client(), Org(app, "Patient")
    workflow_id = make_workflow(client, org.admin_headers)
    caplog.set_level(logging.WARNING, logger="canvas.storage.s3")
    relay.cut()
    location = run(client, org.admin_headers, workflow_id).headers["Location"]
    restore_once_waited_on(relay, caplog, 2.0)
    started = time.monotonic()
    work_off_as_a_worker(app)
    finished = client.get(location, headers=org.admin_headers).json
    assert finished["status"] == "Succeeded", finished
    assert 2.0 <= time.monotonic() - started < 30.0
    waits = [record.getMessage() for record in caplog.records if record.name == "canvas.storage.s3"]
    assert waits and waits[0].startswith("put_object: cannot reach http://127.0.0.1:")
    assert waits[0].endswith("(EndpointConnectionError); waiting up to 30 s for it")

    relay.cut()
    asked = time.monotonic()
    assert client.get(f"{location}/Block/2/Output", headers=org.admin_headers).status_code == 503
    assert time.monotonic() - asked < 10.0  # botocore's quick retries only, not the worker's 30 s
    relay.restore()
    output = client.get(f"{location}/Block/2/Output", headers=org.admin_headers)
    assert output.status_code == 200 and [json.loads(line)["id"] for line in output.text.splitlines()] == [1, 3]


def restore_once_waited_on(relay, caplog, seconds: float) -> None:  # noqa: ANN001
    """The relay restored `seconds` after the worker first says it waits for the store, not after a fixed time: a
    worker's services take a while to build on a loaded machine, which a fixed outage would hide (the first write
    then came after the restore). After 30 s without such a line it is restored anyway, and the test fails."""
    def later() -> None:
        with contextlib.suppress(AssertionError):
            wait_for(lambda: any(record.name == "canvas.storage.s3" for record in caplog.records), timeout=30,
                     interval=0.05, what="the worker waiting for the store")
        time.sleep(seconds)
        relay.restore()

    threading.Thread(target=later, daemon=True).start()


def work_off_as_a_worker(app) -> None:  # noqa: ANN001
    """The queue's runs done by a worker's services (workers.process_app) on the app's settings."""
    from workers import process_app

    work_off(process_app(app.config["CANVAS_SETTINGS"]))


def test_the_api_answers_503_soon_when_the_stores_host_goes_dark(make_app, s3_environment):
    """The store's host dark (packets dropped, no reset: powered off, an address moved away) after the API read
    from it: a download answers 503 within the API's own timeouts (3 s to connect, 15 s for an answer, 2 tries),
    not after the workers' (six tries of 10 s to connect: a minute), holding one of its threads meanwhile."""
    from tests.servers.network_hole import NetworkHole

    endpoint = urlsplit(s3_environment.endpoint_url)
    with NetworkHole(endpoint.hostname, endpoint.port) as hole:
        app = make_app(BLOB_URL=f"s3://{s3_environment.create_bucket()}/canvas",
                       S3_ENDPOINT_URL=f"http://{hole.there_address}:{hole.port}")
        client, org = app.test_client(), Org(app, "Dark")
        location = run(client, org.admin_headers, make_workflow(client, org.admin_headers)).headers["Location"]
        work_off(app)
        assert client.get(f"{location}/Block/2/Output", headers=org.admin_headers).status_code == 200  # pooled
        hole.open()
        asked = time.monotonic()
        answer = client.get(f"{location}/Block/2/Output", headers=org.admin_headers)
        waited = time.monotonic() - asked
        hole.close()
    assert (answer.status_code, answer.json["Msg"]) == (503, STORAGE_AWAY)
    assert waited < 25, f"answered after {waited:.0f} s"


def test_a_file_store_that_cannot_be_written_answers_503_too(make_app, tmp_path):
    """The file store (CANVAS_BLOB_URL=file://...) whose folder cannot be made (a file stands in its way, as a full
    or read-only disk would refuse it): the v2 execution whose input must be kept answers 503, and starts nothing."""
    (tmp_path / "in-the-way").write_text("a file, not a folder")
    app = make_app(BLOB_URL=f"file://{tmp_path}/in-the-way/blobs")
    client, org = app.test_client(), Org(app, "Full")
    workflow_id = make_workflow(client, org.admin_headers)
    v2 = {**basic_headers(app, org.admin_id, org.admin_headers), "Content-Type": "application/vnd.api+json"}
    started = client.post(f"/v2/flows/{workflow_id}/executions", headers=v2,
                          json={"data": {"type": "execution", "attributes": {"input": {"id": 7}}}})
    assert (started.status_code, started.headers.get("Retry-After")) == (503, "5")
    assert started.json["errors"][0]["detail"] == STORAGE_AWAY
    assert client.get("/api/WorkflowRuns", headers=org.admin_headers,
                      query_string={"workflowId": workflow_id}).json == []


@pytest.mark.usefixtures("postgres_database_url")  # before the app: it outlives the app's clean-up
def test_outputs_read_from_a_slow_store_hold_no_transaction_open(postgres_database_url, make_app, s3_environment,
                                                                 relay, caplog):
    """Downloads and comparisons of block outputs read the store with no database transaction open: a store slower
    than PostgreSQL lets a transaction idle (canvas.db.silence_limit) does not end the request's session under it
    (its teardown warned, and the console's comparison page, which reads the database again after comparing,
    answered 503)."""
    from canvas.db import silence_limit

    grace = 4.0
    app = make_app(DATABASE_URL=postgres_database_url, LOST_RUN_GRACE_SECONDS=grace, LEASE_RENEW_SECONDS=1.0,
                   BLOB_URL=f"s3://{s3_environment.create_bucket()}/canvas",
                   S3_ENDPOINT_URL=f"http://127.0.0.1:{relay.port}", BLOB_OUTAGE_SECONDS=0.0)
    client, org = app.test_client(), Org(app, "Slowstore")
    workflow_id = make_workflow(client, org.admin_headers)
    run_ids = []
    for _ in range(2):
        run_ids.append(run(client, org.admin_headers, workflow_id).headers["Location"].rsplit("/", 1)[1])
        work_off(app)
    browser = signed_in(app, org.admin_id)
    caplog.set_level(logging.WARNING, logger="canvas.extensions")
    relay.answer_delay = silence_limit(grace) + 0.5

    output = client.get(f"/api/WorkflowRun/{run_ids[0]}/Block/2/Output", headers=org.admin_headers)
    assert output.status_code == 200 and [json.loads(line)["id"] for line in output.text.splitlines()] == [1, 3]
    compared = client.post("/api/CompareBlockOutputs", headers=org.admin_headers,
                           json={"runId": run_ids[0], "otherRunId": run_ids[1], "block": 2, "key": "id"})
    assert compared.status_code == 200 and compared.json["records"]["unchanged"] == 2, compared.json
    download = browser.get(f"/console/runs/{run_ids[0]}/blocks/2/output")
    assert download.status_code == 200 and download.get_data() == output.get_data()
    page = browser.get(f"/console/runs/{run_ids[0]}/blocks/2/compare", query_string={"otherRun": run_ids[1],
                                                                                      "key": "id"})
    assert page.status_code == 200, page.get_data(as_text=True)[:500]
    relay.answer_delay = 0.0
    ended = [record.getMessage() for record in caplog.records if "database session failed" in record.getMessage()]
    assert not ended, ended
