"""Record-level errors: with onRecordError `continue` a block sets aside the records it cannot process (they go to
its error output, downloadable as JSON lines with their positions and errors) and goes on; the run succeeds with a
count of failed records, shown in both dialects. With `fail` (the default) the first such record fails the block."""
from __future__ import annotations

import json
from urllib.parse import urlsplit

import pytest

from canvas.applications.redaction import Redactor
from canvas.execution.blocks.base import _BLOCKS, Block
from canvas.execution.context import BlockContext, BlockError
from canvas.execution.data import Records
from canvas.execution.record_errors import RecordErrors
from canvas.storage.blob import FileSystemBlobStore
from tests.api.test_v2_support import V2
from tests.integration.run_helpers import B1, B2, make_workflow, run_and_work, work_off

pytestmark = pytest.mark.usefixtures("clean_run_queue")
RECORDS = [{"id": 1}, {"id": 2, "bad": "no price"}, {"id": 3}, {"id": 4, "bad": "unknown customer"}, {"id": 5}]


class PickyWrite(Block):
    """Refuses the records that carry `bad`, as a target answering 400 for them would."""

    key = "test.picky_write"
    title = "Picky write (tests)"
    side_effects = True
    input_kind = "records"
    output_kind = "records"

    def run(self, context: BlockContext, data):  # noqa: ANN001, ANN201
        return Records(self._accepted(context, data))

    def _accepted(self, context: BlockContext, data):  # noqa: ANN001, ANN202
        for position, record in enumerate(data, start=1):
            if record.get("bad"):
                context.fail_record(record, position, BlockError(f"record {position} refused: {record['bad']}"))
                continue
            yield {**record, "sent": True}


@pytest.fixture
def picky_write():
    _BLOCKS[PickyWrite.key] = PickyWrite
    yield PickyWrite
    del _BLOCKS[PickyWrite.key]


def picky_workflow(client, headers, on_record_error: str | None) -> str:
    workflow_id = make_workflow(client, headers, [("Records", "records.from_variable", {"records": RECORDS}),
                                                  ("Write", "test.picky_write", {})])
    if on_record_error:
        answer = client.post("/api/UpdateWorkflow", headers=headers, json={"id": workflow_id, "chain": [
            {"uniqueBlockId": B2, "variables": {}, "onRecordError": on_record_error}]})
        assert answer.status_code == 200, answer.json
    return workflow_id


def test_records_set_aside_go_to_the_error_output_and_the_run_succeeds(app, client, org, picky_write):
    workflow_id = picky_workflow(client, org.admin_headers, "continue")
    run = run_and_work(client, app, org.admin_headers, workflow_id)
    assert (run["status"], run["recordsFailed"]) == ("Succeeded", 2), run
    assert [(block["status"], block["recordsFailed"]) for block in run["blocks"]] == [("Succeeded", 0),
                                                                                    ("Succeeded", 2)]
    location = f"/api/WorkflowRun/{run['id']}"
    output = client.get(f"{location}/Block/2/Output", headers=org.admin_headers).get_data(as_text=True)
    assert [json.loads(line)["id"] for line in output.splitlines()] == [1, 3, 5]
    errors = client.get(f"{location}/Block/2/Errors", headers=org.admin_headers)
    assert errors.status_code == 200 and errors.mimetype == "application/x-ndjson"
    lines = [json.loads(line) for line in errors.get_data(as_text=True).splitlines()]
    assert [(line["position"], line["record"]["id"], line["error"], line["outcomeUnknown"]) for line in lines] == [
        (2, 2, "record 2 refused: no price", False), (4, 4, "record 4 refused: unknown customer", False)]
    assert client.get(f"{location}/Block/1/Errors", headers=org.admin_headers).status_code == 204
    assert client.get(f"{location}/Block/9/Errors", headers=org.admin_headers).status_code == 404
    execution = V2(app, client, org).call("GET", f"/v2/executions/{run['id']}").json["data"]["attributes"]
    assert execution["records_failed"] == 2 and execution["steps"][1]["records_failed"] == 2


def test_by_default_the_first_record_that_fails_fails_the_block(app, client, org, picky_write):
    workflow_id = picky_workflow(client, org.admin_headers, None)
    run = run_and_work(client, app, org.admin_headers, workflow_id)
    assert (run["status"], run["failedBlock"], run["error"]) == ("Failed", 2, "record 2 refused: no price")
    assert run["recordsFailed"] == 0


def test_on_record_error_must_be_fail_or_continue(app, client, org):
    workflow_id = make_workflow(client, org.admin_headers)
    answer = client.post("/api/UpdateWorkflow", headers=org.admin_headers, json={"id": workflow_id, "chain": [
        {"uniqueBlockId": B1, "onRecordError": "ignore"}]})
    assert answer.status_code == 400 and "chain.0.onRecordError" in answer.json["Msg"]


def test_an_error_output_never_shows_a_secret(tmp_path):
    store = FileSystemBlobStore(tmp_path / "blobs", fsync=False)
    (tmp_path / "work").mkdir()
    errors = RecordErrors(tmp_path / "work", Redactor(["s3cr3t-token"]))
    errors.add({"id": 7}, 7, BlockError("server said: bad token s3cr3t-token"))
    assert errors.store(store, "runs/x.errors") == "runs/x.errors"
    with store.open("runs/x.errors") as stored:
        text = stored.read().decode()
    assert "s3cr3t-token" not in text and json.loads(text)["position"] == 7
    assert list((tmp_path / "work").iterdir()) == []  # the temporary file is gone


def test_error_outputs_are_pruned_by_age_and_their_counts_stay(app, client, org, picky_write):
    from datetime import timedelta

    from sqlalchemy import update

    from canvas.execution.retention import prune_record_errors
    from canvas.models import BlockRun
    from canvas.models.base import utcnow

    workflow_id = picky_workflow(client, org.admin_headers, "continue")
    run = run_and_work(client, app, org.admin_headers, workflow_id)
    services = app.extensions["canvas"]
    assert prune_record_errors(services.db, services.blob_store, max_age_days=30) == 0  # young: kept
    with services.db.transaction() as session:
        session.execute(update(BlockRun).where(BlockRun.errors_blob_key.is_not(None))
                        .values(date_finished=utcnow() - timedelta(days=31)))
    key = f"runs/{workflow_id}/{run['id']}-block-2.errors"
    assert services.blob_store.exists(key)
    assert prune_record_errors(services.db, services.blob_store, max_age_days=30) == 1
    assert not services.blob_store.exists(key)
    again = client.get(f"/api/WorkflowRun/{run['id']}", headers=org.admin_headers).json
    assert again["recordsFailed"] == 2 and again["blocks"][1]["recordsFailed"] == 2
    assert client.get(f"/api/WorkflowRun/{run['id']}/Block/2/Errors", headers=org.admin_headers).status_code == 204


def test_retrying_failed_records_sends_only_those_edited_ones_as_edited_and_goes_on(app, client, org, picky_write):
    workflow_id = make_workflow(client, org.admin_headers, [
        ("Records", "records.from_variable", {"records": RECORDS}), ("Write", "test.picky_write", {}),
        ("To CSV", "csv.from_records", {"filename": "sent.csv"})])
    client.post("/api/UpdateWorkflow", headers=org.admin_headers, json={"id": workflow_id, "chain": [
        {"uniqueBlockId": B2, "variables": {}, "onRecordError": "continue"}]})
    first = run_and_work(client, app, org.admin_headers, workflow_id)
    assert first["recordsFailed"] == 2
    fixed = {"id": 2, "price": 10}
    retry = run_and_work(client, app, org.admin_headers, workflow_id, retryFailedRecords={
        "runId": first["id"], "block": 2, "records": [{"position": 2, "record": fixed}]})
    assert (retry["status"], retry["runFromBlock"], retry["runTillBlock"]) == ("Succeeded", 2, 3), retry
    assert retry["retryOf"] == {"runId": first["id"], "block": 2, "positions": [2, 4]}
    assert retry["blocks"][0]["recordsIn"] is None and retry["blocks"][0]["recordsRead"] == 2
    assert (retry["blocks"][0]["recordsOut"], retry["recordsFailed"]) == (1, 1)
    csv_text = client.get(f"/api/WorkflowRun/{retry['id']}/Block/3/Output", headers=org.admin_headers).get_data(
        as_text=True)
    assert csv_text.splitlines() == ["id,price,sent", "2,10,true"]  # the edited record went on, only it
    errors = client.get(f"/api/WorkflowRun/{retry['id']}/Block/2/Errors", headers=org.admin_headers)
    [line] = [json.loads(text) for text in errors.get_data(as_text=True).splitlines()]
    assert (line["position"], line["originalPosition"], line["record"]["id"]) == (2, 4, 4)


@pytest.mark.parametrize("spec, status, expected", [
    ({"block": 1}, 409, "set aside no failed records at block 1"),
    ({"block": 2, "records": [{"position": 3, "record": {"id": 3}}]}, 400, "retryFailedRecords.records.0.position"),
    ({"block": 2, "runId": "00000000-0000-0000-0000-000000000000"}, 404, "Unknown run"),
    ({"block": 2, "runFromBlock": 1}, 400, "runFromBlock"),
])
def test_a_retry_that_makes_no_sense_is_refused_in_words(app, client, org, picky_write, spec, status, expected):
    workflow_id = picky_workflow(client, org.admin_headers, "continue")
    first = run_and_work(client, app, org.admin_headers, workflow_id)
    spec = {"runId": first["id"], **spec}
    extra = {"runFromBlock": spec.pop("runFromBlock")} if "runFromBlock" in spec else {}
    answer = client.post("/api/RunWorkflow", headers=org.admin_headers,
                         json={"workflowId": workflow_id, "retryFailedRecords": spec, **extra})
    assert answer.status_code == status and expected in answer.json["Msg"], answer.json


def test_v2_retries_failed_records_of_an_execution(app, client, org, picky_write):
    v2 = V2(app, client, org)
    workflow_id = picky_workflow(client, org.admin_headers, "continue")
    first = run_and_work(client, app, org.admin_headers, workflow_id)
    bad = v2.call("POST", f"/v2/flows/{workflow_id}/executions", {"data": {"type": "execution", "attributes": {
        "retry_failed_records": {"execution_id": first["id"], "step": "two"}}}})
    assert bad.status_code == 400 and bad.json["errors"][0]["source"]["pointer"] == \
        "/data/attributes/retry_failed_records/step"
    answer = v2.call("POST", f"/v2/flows/{workflow_id}/executions", {"data": {"type": "execution", "attributes": {
        "retry_failed_records": {"execution_id": first["id"], "step": 2,
                                 "records": [{"position": 4, "record": {"id": 4, "fixed": True}}]}}}})
    assert answer.status_code == 202, answer.json
    work_off(app)
    execution = v2.call("GET", answer.headers["Location"]).json["data"]["attributes"]
    assert execution["status"] == "succeeded" and execution["records_failed"] == 1  # record 2 fails again
    assert execution["retry_of"] == {"execution_id": first["id"], "step": 2, "positions": [2, 4]}


@pytest.mark.usefixtures("postgres_database_url")  # before the apps: it outlives their clean-up
def test_failed_records_are_retried_through_a_slow_object_store(postgres_database_url, make_app, s3_environment,
                                                                picky_write):
    """Preparing a retry reads the failed records from the object store and stores them as the new run's input
    outside the request's transaction: a store answering slower than PostgreSQL lets a transaction idle
    (canvas.db.silence_limit) does not cost the retry (inside the transaction, it was ended meanwhile: 503)."""
    from canvas.db import silence_limit
    from tests.conftest import Org
    from tests.servers.tcp_proxy import TcpProxy

    grace = 4.0
    endpoint = urlsplit(s3_environment.endpoint_url)
    with TcpProxy(endpoint.hostname, endpoint.port) as relay:
        app = make_app(DATABASE_URL=postgres_database_url, LOST_RUN_GRACE_SECONDS=grace, LEASE_RENEW_SECONDS=1.0,
                       BLOB_URL=f"s3://{s3_environment.create_bucket()}/canvas",
                       S3_ENDPOINT_URL=f"http://127.0.0.1:{relay.port}", BLOB_OUTAGE_SECONDS=0.0)
        client, org = app.test_client(), Org(app, "Slowretry")
        workflow_id = picky_workflow(client, org.admin_headers, "continue")
        first = run_and_work(client, app, org.admin_headers, workflow_id)
        relay.answer_delay = silence_limit(grace) + 0.5
        answer = client.post("/api/RunWorkflow", headers=org.admin_headers, json={
            "workflowId": workflow_id, "retryFailedRecords": {"runId": first["id"], "block": 2}})
        relay.answer_delay = 0.0
        assert answer.status_code == 202, answer.json
        work_off(app)
        retry = client.get(answer.headers["Location"], headers=org.admin_headers).json
        assert (retry["status"], retry["retryOf"]["positions"]) == ("Succeeded", [2, 4]), retry
