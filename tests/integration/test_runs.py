"""RunWorkflow and the runner with real RQ workers on a real Redis: ranges, stored outputs, failures, history."""
from __future__ import annotations

import csv
import io
import json
import threading
import uuid

import pytest
from rq.job import Job, JobStatus

from tests.integration.run_helpers import (
    B1,
    B2,
    THREE_BLOCKS,
    make_workflow,
    run,
    run_and_work,
    rq_connection,
    wait_for,
    work_off,
)

pytestmark = pytest.mark.usefixtures("clean_run_queue")

RUN_FIELDS = {"id", "workflowId", "status", "trigger", "runFromBlock", "runTillBlock", "dateQueued", "dateStarted",
              "dateFinished", "error", "blocks"}
BLOCK_FIELDS = {"number", "uniqueBlockId", "blockName", "status", "dateStarted", "dateFinished", "recordsIn",
                "recordsOut", "error", "log"}


def workflow_of(client, headers, workflow_id):
    return client.get(f"/api/Workflow/{workflow_id}", headers=headers).json


def test_full_run_stores_every_block_and_reports_history(client, app, org):
    workflow_id = make_workflow(client, org.admin_headers)
    answer = run(client, org.admin_headers, workflow_id)
    assert (answer.status_code, answer.json) == (202, "Workflow will now run")
    assert answer.headers["Location"].startswith("/api/WorkflowRun/")
    assert workflow_of(client, org.admin_headers, workflow_id)["status"] == "Queued"
    work_off(app)
    history = client.get(answer.headers["Location"], headers=org.admin_headers).json
    assert RUN_FIELDS <= set(history) and history["status"] == "Succeeded" and history["trigger"] == "manual"
    assert (history["runFromBlock"], history["runTillBlock"]) == (1, 3)
    assert [block["status"] for block in history["blocks"]] == ["Succeeded"] * 3
    assert all(BLOCK_FIELDS <= set(block) for block in history["blocks"])
    assert [block["recordsOut"] for block in history["blocks"]] == [3, 2, None]
    assert [block["recordsIn"] for block in history["blocks"]] == [None, 3, 2]
    workflow = workflow_of(client, org.admin_headers, workflow_id)
    assert workflow["status"] == "Ready" and workflow["currentBlock"] == 3 and workflow["dateLastRun"]
    csv_output = client.get(f"{answer.headers['Location']}/Block/3/Output", headers=org.admin_headers)
    assert csv_output.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(csv_output.get_data(as_text=True))))
    assert [row["name"] for row in rows] == ["Ann", "Cy"]
    records = client.get(f"{answer.headers['Location']}/Block/2/Output", headers=org.admin_headers)
    assert [json.loads(line)["id"] for line in records.get_data(as_text=True).splitlines()] == [1, 3]


def test_run_till_then_run_from_uses_the_stored_output(client, app, org):
    workflow_id = make_workflow(client, org.admin_headers)
    first = run_and_work(client, app, org.admin_headers, workflow_id, runTillBlock=2)
    assert [block["number"] for block in first["blocks"]] == [1, 2] and first["status"] == "Succeeded"
    assert workflow_of(client, org.admin_headers, workflow_id)["currentBlock"] == 2
    second = run_and_work(client, app, org.admin_headers, workflow_id, runFromBlock=3, runTillBlock=3)
    assert second["status"] == "Succeeded"
    [block] = second["blocks"]
    assert (block["number"], block["recordsIn"]) == (3, 2)


@pytest.mark.parametrize(
    ("bounds", "field"),
    [({"runFromBlock": 0}, "runFromBlock"), ({"runFromBlock": 4}, "runFromBlock"),
     ({"runTillBlock": 9}, "runTillBlock"), ({"runFromBlock": 3, "runTillBlock": 2}, "runTillBlock"),
     ({"runFromBlock": "2"}, "runFromBlock")],
    ids=["from-zero", "from-past-end", "till-past-end", "till-before-from", "from-not-integer"],
)
def test_bad_ranges_are_400_naming_the_bound(client, org, bounds, field):
    workflow_id = make_workflow(client, org.admin_headers)
    answer = run(client, org.admin_headers, workflow_id, **bounds)
    assert answer.status_code == 400 and field in answer.json["Msg"]


def test_run_from_without_stored_output_is_409_naming_the_block(client, org):
    workflow_id = make_workflow(client, org.admin_headers)
    answer = run(client, org.admin_headers, workflow_id, runFromBlock=3)
    assert answer.status_code == 409
    assert "Block 2 (Only Oslo) has no stored output" in answer.json["Msg"]


def test_unknown_workflow_is_404(client, org):
    answer = run(client, org.admin_headers, str(uuid.uuid4()))
    assert answer.status_code == 404


def test_second_run_while_one_is_queued_is_409_naming_it(client, org):
    workflow_id = make_workflow(client, org.admin_headers)
    first = run(client, org.admin_headers, workflow_id)
    run_id = first.headers["Location"].rsplit("/", 1)[1]
    second = run(client, org.admin_headers, workflow_id)
    assert second.status_code == 409 and run_id in second.json["Msg"]


def test_failing_middle_block_fails_the_run_and_keeps_earlier_outputs(client, app, org, caplog):
    blocks = [THREE_BLOCKS[0], ("Explode", "jsonata.transform", {"expression": "$error('boom at ' & name)"}),
              THREE_BLOCKS[2]]
    workflow_id = make_workflow(client, org.admin_headers, blocks)
    with caplog.at_level("INFO", logger="canvas.execution.runner"):
        failed = run_and_work(client, app, org.admin_headers, workflow_id)
    assert failed["status"] == "Failed" and failed["failedBlock"] == 2
    [line] = [record.getMessage() for record in caplog.records if record.name == "canvas.execution.runner"]
    assert line.startswith(f"run {failed['id']} of workflow ") and " (blocks 1-3) failed at block 2 (Explode)" in line
    assert "boom at Ann" in line
    assert "boom at Ann" in failed["error"]
    assert [block["status"] for block in failed["blocks"]] == ["Succeeded", "Failed", "Pending"]
    assert "boom" in failed["blocks"][1]["error"]
    # It failed on its first record: that is how far it got, and it stored nothing.
    assert (failed["blocks"][1]["recordsRead"], failed["blocks"][1]["recordsOut"]) == (1, None)
    workflow = workflow_of(client, org.admin_headers, workflow_id)
    assert workflow["status"] == "Failed" and workflow["currentBlock"] == 2
    fixed = client.post("/api/UpdateWorkflow", headers=org.admin_headers, json={
        "id": workflow_id, "chain": [{"uniqueBlockId": B2, "variables": {"expression": "$"}}]})
    assert fixed.status_code == 200
    repaired = run_and_work(client, app, org.admin_headers, workflow_id, runFromBlock=2)
    assert repaired["status"] == "Succeeded" and repaired["blocks"][0]["recordsIn"] == 3
    assert workflow_of(client, org.admin_headers, workflow_id)["status"] == "Ready"


def test_run_history_lists_newest_first_with_filters_and_total(client, app, org):
    workflow_id = make_workflow(client, org.admin_headers)
    for _ in range(3):
        run_and_work(client, app, org.admin_headers, workflow_id, runTillBlock=1)
    listed = client.get(f"/api/WorkflowRuns?workflowId={workflow_id}&pageSize=2", headers=org.admin_headers)
    assert listed.headers["X-Total-Count"] == "3" and len(listed.json) == 2
    dates = [entry["dateQueued"] for entry in listed.json]
    assert dates == sorted(dates, reverse=True)
    page_two = client.get(f"/api/WorkflowRuns?workflowId={workflow_id}&pageSize=2&page=2", headers=org.admin_headers)
    assert len(page_two.json) == 1
    none_failed = client.get(f"/api/WorkflowRuns?workflowId={workflow_id}&status=Failed", headers=org.admin_headers)
    assert none_failed.json == [] and none_failed.headers["X-Total-Count"] == "0"
    bad = client.get(f"/api/WorkflowRuns?workflowId={workflow_id}&pageSize=501", headers=org.admin_headers)
    assert bad.status_code == 400 and "pageSize" in bad.json["Msg"]


def test_runs_of_other_accounts_are_invisible(client, app, org):
    workflow_id = make_workflow(client, org.admin_headers)
    location = run(client, org.admin_headers, workflow_id).headers["Location"]
    _id, user_headers = org.add_account("User")
    assert client.get(location, headers=user_headers).status_code == 404
    assert client.get(f"/api/WorkflowRuns?workflowId={workflow_id}", headers=user_headers).status_code == 404


def test_deleted_workflow_keeps_its_history_and_active_runs_block_deletion(client, app, org):
    workflow_id = make_workflow(client, org.admin_headers)
    location = run(client, org.admin_headers, workflow_id).headers["Location"]
    refused = client.get(f"/api/DeleteWorkflow/{workflow_id}", headers=org.admin_headers)
    assert refused.status_code == 409
    work_off(app)
    assert client.get(f"/api/DeleteWorkflow/{workflow_id}", headers=org.admin_headers).json is True
    assert client.get(location, headers=org.admin_headers).json["status"] == "Succeeded"


def test_cancel_a_queued_run(client, app, org):
    workflow_id = make_workflow(client, org.admin_headers)
    run_id = run(client, org.admin_headers, workflow_id).headers["Location"].rsplit("/", 1)[1]
    cancelled = client.post("/api/CancelRun", json={"runId": run_id}, headers=org.admin_headers)
    assert cancelled.status_code == 200 and cancelled.json["status"] == "Cancelled"
    work_off(app)  # the job left the queue: nothing runs
    assert client.get(f"/api/WorkflowRun/{run_id}", headers=org.admin_headers).json["blocks"][0]["status"] == "Pending"
    assert workflow_of(client, org.admin_headers, workflow_id)["status"] == "Ready"
    again = client.post("/api/CancelRun", json={"runId": run_id}, headers=org.admin_headers)
    assert again.status_code == 409


def test_cancel_a_running_run_stops_after_the_block_in_flight(client, app, org):
    blocks = [THREE_BLOCKS[0], ("Wait", "delay", {"seconds": 30}), THREE_BLOCKS[2]]
    workflow_id = make_workflow(client, org.admin_headers, blocks)
    run_id = run(client, org.admin_headers, workflow_id).headers["Location"].rsplit("/", 1)[1]

    def cancel_when_waiting():
        wait_for(lambda: client.get(f"/api/WorkflowRun/{run_id}", headers=org.admin_headers)
                 .json["blocks"][1]["status"] == "Running", what="block 2 running")
        client.post("/api/CancelRun", json={"runId": run_id}, headers=org.admin_headers)

    canceller = threading.Thread(target=cancel_when_waiting)
    canceller.start()
    work_off(app)
    canceller.join()
    history = client.get(f"/api/WorkflowRun/{run_id}", headers=org.admin_headers).json
    assert history["status"] == "Cancelled"
    assert [block["status"] for block in history["blocks"]] == ["Succeeded", "Cancelled", "Pending"]
    assert workflow_of(client, org.admin_headers, workflow_id)["status"] == "Ready"


def test_dry_run_records_instead_of_writing(client, app, org):
    blocks = [THREE_BLOCKS[0], ("Store", "filehub.write", {"filename": "people.jsonl"})]
    workflow_id = make_workflow(client, org.admin_headers, blocks, applications=["CMAF"])
    dry = run_and_work(client, app, org.admin_headers, workflow_id, dryRun=True)
    assert dry["status"] == "Succeeded" and dry["dryRun"] is True
    assert any("dry run" in line["message"] for line in dry["blocks"][1]["log"])
    recorded = client.get(f"/api/WorkflowRun/{dry['id']}/Block/2/Output", headers=org.admin_headers)
    assert [json.loads(line)["name"] for line in recorded.get_data(as_text=True).splitlines()] == ["Ann", "Bo", "Cy"]
    hub_file = app.extensions["canvas"].data_dir / "blobs" / "filehub" / org.admin_id / "people.jsonl"
    assert not hub_file.exists()
    real = run_and_work(client, app, org.admin_headers, workflow_id)
    assert real["status"] == "Succeeded" and hub_file.exists()


def test_dry_run_outputs_do_not_feed_partial_runs(client, app, org):
    workflow_id = make_workflow(client, org.admin_headers)
    run_and_work(client, app, org.admin_headers, workflow_id, dryRun=True, runTillBlock=2)
    assert run(client, org.admin_headers, workflow_id, runFromBlock=3).status_code == 409


def test_compare_block_outputs_across_runs(client, app, org):
    workflow_id = make_workflow(client, org.admin_headers)
    first = run_and_work(client, app, org.admin_headers, workflow_id, runTillBlock=2)
    client.post("/api/UpdateWorkflow", headers=org.admin_headers, json={
        "id": workflow_id, "chain": [{"uniqueBlockId": B1, "variables": {"records": [
            {"id": 1, "name": "Ann", "city": "Oslo"}, {"id": 3, "name": "Cyrus", "city": "Oslo"},
            {"id": 4, "name": "Di", "city": "Oslo"}]}}]})
    second = run_and_work(client, app, org.admin_headers, workflow_id, runTillBlock=2)
    compared = client.post("/api/CompareBlockOutputs", headers=org.admin_headers, json={
        "runId": first["id"], "otherRunId": second["id"], "block": 2, "key": "id"}).json
    assert compared["records"]["added"] == 1 and compared["records"]["changed"] == 1
    assert compared["records"]["removed"] == 0 and compared["records"]["unchanged"] == 1
    assert compared["records"]["addedSample"] == ["4"] and compared["identical"] is False


def test_redis_down_at_dispatch_is_503_and_leaves_no_stuck_run(make_app, tmp_path, app, org, client):
    workflow_id = make_workflow(client, org.admin_headers)
    broken = make_app(REDIS_URL=f"unix://{tmp_path}/no-redis.sock").test_client()
    answer = run(broken, org.admin_headers, workflow_id)
    assert answer.status_code == 503 and "Redis" in answer.json["Msg"]
    assert answer.headers["Retry-After"] == "5"  # as for every outage: trying again is the cure
    history = client.get(f"/api/WorkflowRuns?workflowId={workflow_id}", headers=org.admin_headers).json
    assert [entry["status"] for entry in history] == ["Failed"]
    assert run(client, org.admin_headers, workflow_id).status_code == 202


def _ending_the_active_run_at_the_look(app, monkeypatch, times: int) -> None:
    """The dispatcher's look for the run its insert was refused for comes after that run ended (a worker finished
    it in between), `times` times in a row."""
    from sqlalchemy import update

    from canvas.models import WorkflowRun
    from canvas.queueing import dispatch

    real, looks = dispatch.active_run, iter(range(times))

    def after_the_end(session, workflow_id):  # noqa: ANN001, ANN202
        if next(looks, None) is not None:
            with app.extensions["canvas"].db.transaction() as other:
                other.execute(update(WorkflowRun).where(WorkflowRun.workflow_id == workflow_id,
                                                        WorkflowRun.status == "Queued").values(status="Succeeded"))
        return real(session, workflow_id)

    monkeypatch.setattr(dispatch, "active_run", after_the_end)


def test_a_run_refused_for_one_that_ended_meanwhile_is_queued(client, app, org, monkeypatch):
    workflow_id = make_workflow(client, org.admin_headers)
    first = run(client, org.admin_headers, workflow_id)
    assert first.status_code == 202
    _ending_the_active_run_at_the_look(app, monkeypatch, times=1)
    second = run(client, org.admin_headers, workflow_id)
    assert second.status_code == 202, second.json
    listed = client.get("/api/WorkflowRuns", headers=org.admin_headers, query_string={"workflowId": workflow_id}).json
    assert sorted(entry["status"] for entry in listed) == ["Queued", "Succeeded"]


def test_a_run_refused_again_and_again_for_runs_that_ended_is_a_409(client, app, org, monkeypatch):
    """Each attempt refused for a run that had ended by the look: a conflict after a few, never a 500."""
    from canvas.clock import utcnow
    from canvas.models import WorkflowRun
    from canvas.queueing import dispatch

    workflow_id = make_workflow(client, org.admin_headers)
    assert run(client, org.admin_headers, workflow_id).status_code == 202
    real_insert, attempts = dispatch._insert_queued, []

    def insert_beside_another(session, new_run):  # noqa: ANN001, ANN202 - a rival dispatch wins each time
        attempts.append(new_run)
        if len(attempts) > 1:
            with app.extensions["canvas"].db.transaction() as other:
                real_insert(other, WorkflowRun(workflow_id=uuid.UUID(workflow_id), account_id=uuid.UUID(org.admin_id),
                                               status="Queued", trigger="manual", run_from_block=1, run_till_block=3,
                                               date_queued=utcnow(), heartbeat_at=utcnow()))
        return real_insert(session, new_run)

    monkeypatch.setattr(dispatch, "_insert_queued", insert_beside_another)
    _ending_the_active_run_at_the_look(app, monkeypatch, times=dispatch.INSERT_ATTEMPTS)
    refused = run(client, org.admin_headers, workflow_id)
    assert refused.status_code == 409 and refused.json["Msg"].startswith(f"Workflow {workflow_id} is already")
    assert len(attempts) == dispatch.INSERT_ATTEMPTS and len({id(attempt) for attempt in attempts}) == 1
    listed = client.get("/api/WorkflowRuns", headers=org.admin_headers, query_string={"workflowId": workflow_id}).json
    assert [entry["status"] for entry in listed] == ["Succeeded"] * dispatch.INSERT_ATTEMPTS, "each rival ended"


def test_a_hundred_concurrent_run_requests_start_exactly_one_run(app, org):
    workflow_id = make_workflow(app.test_client(), org.admin_headers)
    statuses, barrier = [], threading.Barrier(20)

    def fire(count: int) -> None:
        client = app.test_client()
        barrier.wait()
        for _ in range(count):
            statuses.append(run(client, org.admin_headers, workflow_id).status_code)

    threads = [threading.Thread(target=fire, args=(5,)) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [202] + [409] * 99


def test_a_block_that_gives_nothing_stores_no_blob(client, app, org):
    workflow_id = make_workflow(client, org.admin_headers, [("Nothing", "noop", {}), THREE_BLOCKS[0]])
    history = run_and_work(client, app, org.admin_headers, workflow_id)
    assert history["status"] == "Succeeded" and history["blocks"][0]["output"]["size"] == 0
    assert client.get(f"/api/WorkflowRun/{history['id']}/Block/1/Output", headers=org.admin_headers).status_code == 204
    again = run_and_work(client, app, org.admin_headers, workflow_id, runFromBlock=2)
    assert again["status"] == "Succeeded" and again["blocks"][0]["recordsOut"] == 3


def test_rq_keeps_a_finished_run_job_for_a_minute_at_most(client, app, org):
    """The run's outcome is in the database; RQ's record of its job is kept a little, for people reading RQ's
    registries, and expires by itself (RQ deleting it at once cost round trips per run: canvas.queueing.dispatch)."""
    workflow_id = make_workflow(client, org.admin_headers)
    history = run_and_work(client, app, org.admin_headers, workflow_id)
    assert history["status"] == "Succeeded"
    connection = rq_connection(app)
    job = Job.fetch(history["id"], connection=connection)
    assert job.get_status() == JobStatus.FINISHED
    assert 0 < connection.ttl(job.key) <= 60
