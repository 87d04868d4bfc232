"""A block with side effects that failed part-way goes on where it stopped: a later run from that block, on the same
input, starts after the records its last run confirmed (http.request each_record), so no record reaches the target
twice; a run on a newer input, or after the block finished, starts from the first record."""
from __future__ import annotations

import json

import pytest

from tests.integration.blocks.test_net_http_once import Target
from tests.integration.run_helpers import B1, B2, run_and_work
from tests.servers.http import json_response

pytestmark = pytest.mark.usefixtures("clean_run_queue")
REST_APPLICATION_ID = "db9b3fee-fcb0-4033-a4ed-6c73d4657402"  # "REST API" of the shipped catalog
ORDERS = [{"id": n, "total": 10 * n} for n in range(1, 6)]


def orders_workflow(client, headers, http_server, target: Target) -> str:
    http_server.route("/api/health", lambda request: json_response({"ok": True}))
    http_server.route("/api/orders", lambda request: _answer(target, request))
    registered = client.post("/api/RegApplication", headers=headers, json={
        "applicationId": REST_APPLICATION_ID, "credentialsJson": json.dumps(
            {"baseUrl": http_server.url("/api"), "authType": "none", "verifyPath": "/health"})})
    assert registered.status_code == 200, registered.json
    template = client.post("/api/WorkflowTemplate", headers=headers, json={
        "name": "Post orders", "description": "", "applications": ["REST"], "chain": [
            {"uniqueBlockId": B1, "blockName": "Orders", "block": "records.from_variable",
             "variables": {"records": ORDERS}},
            {"uniqueBlockId": B2, "blockName": "Post", "block": "http.request", "application": "REST",
             "variables": {"method": "POST", "path": "/orders", "bodyMode": "each_record", "retries": 0}}]})
    assert template.status_code == 200, template.json
    client.post("/api/PublishWorkflowTemplate", headers=headers, json={"id": template.json})
    workflow = client.post("/api/Workflow", headers=headers, json={"workflowTemplateId": template.json,
                                                                   "applications": {"REST": registered.json}})
    assert workflow.status_code == 200, workflow.json
    return workflow.json


def _answer(target: Target, request):  # noqa: ANN001, ANN202
    answer = target.deliver(request.get_json(), request.headers)
    return json_response(answer.data, answer.status, answer.headers)


def test_a_run_from_the_failed_block_starts_after_the_confirmed_records(app, client, org, http_server):
    target = Target({3: ["400"]})  # order 3 is refused once; fixed on the target's side afterwards
    workflow_id = orders_workflow(client, org.admin_headers, http_server, target)
    failed = run_and_work(client, app, org.admin_headers, workflow_id)
    assert (failed["status"], failed["failedBlock"]) == ("Failed", 2)
    assert target.processed == {1: 1, 2: 1}
    again = run_and_work(client, app, org.admin_headers, workflow_id, runFromBlock=2)
    assert again["status"] == "Succeeded", again
    assert target.processed == {1: 1, 2: 1, 3: 1, 4: 1, 5: 1}  # 1 and 2 were not sent again
    assert [record_id for record_id, _ in target.deliveries] == [1, 2, 3, 3, 4, 5]
    assert any("resuming after record 2" in line["message"] for line in again["blocks"][0]["log"])
    # The block finished: the next run from it starts from the first record again.
    run_and_work(client, app, org.admin_headers, workflow_id, runFromBlock=2)
    assert target.processed == {1: 2, 2: 2, 3: 2, 4: 2, 5: 2}


def test_a_run_on_a_newer_input_starts_from_the_first_record(app, client, org, http_server):
    target = Target({3: ["400"]})
    workflow_id = orders_workflow(client, org.admin_headers, http_server, target)
    run_and_work(client, app, org.admin_headers, workflow_id)
    assert target.processed == {1: 1, 2: 1}
    whole = run_and_work(client, app, org.admin_headers, workflow_id)  # block 1 ran again: a new input
    assert whole["status"] == "Succeeded"
    assert target.processed == {1: 2, 2: 2, 3: 1, 4: 1, 5: 1}


def test_failed_records_set_aside_are_retried_alone_with_the_edited_one_as_edited(app, client, org, http_server):
    """Against the target: orders 2 and 4 are refused and set aside; the retry sends exactly those two again, order 4
    as edited, and the target then has every order once."""
    target = Target({2: ["400"], 4: ["400"]})
    workflow_id = orders_workflow(client, org.admin_headers, http_server, target)
    client.post("/api/UpdateWorkflow", headers=org.admin_headers, json={"id": workflow_id, "chain": [
        {"uniqueBlockId": B2, "variables": {"method": "POST", "path": "/orders", "bodyMode": "each_record",
                                            "retries": 0}, "onRecordError": "continue"}]})
    first = run_and_work(client, app, org.admin_headers, workflow_id)
    assert (first["status"], first["recordsFailed"]) == ("Succeeded", 2)
    assert target.processed == {1: 1, 3: 1, 5: 1}
    edited = {"id": 4, "total": 40, "customer": "C-17"}
    retry = run_and_work(client, app, org.admin_headers, workflow_id, retryFailedRecords={
        "runId": first["id"], "block": 2, "records": [{"position": 4, "record": edited}]})
    assert (retry["status"], retry["recordsFailed"]) == ("Succeeded", 0), retry
    assert target.processed == {1: 1, 2: 1, 3: 1, 4: 1, 5: 1}
    assert [record_id for record_id, _ in target.deliveries] == [1, 2, 3, 4, 5, 2, 4]
    assert target.bodies[-1] == edited
