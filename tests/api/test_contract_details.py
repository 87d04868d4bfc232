"""Details where the Canvas document is the contract: GetMetaData's texts, WorkflowRun?runId=, and the
schedulerFrequency of a workflow that was never scheduled."""
from __future__ import annotations

import uuid

import pytest

from tests.api.workflow_helpers import file_hub_app, new_workflow, published_template

NEVER_SCHEDULED_FREQUENCY = '{ "cronSchedule": "0 0 * ? * *"}'  # as the document's example shows it


@pytest.fixture()
def catalog_entries(client) -> dict:
    return {(entry["name"], entry["verb"]): entry for entry in client.get("/api/GetMetaData").json}


@pytest.mark.parametrize(("name", "verb", "description", "returns"), [
    ("Describe", "GET", "Describes object properties", ""),
    ("WorkflowScheduler", "POST", "Updates the workflow scheduler", ""),
    ("Account", "POST", "Account registration", ""),
], ids=["describe", "workflow-scheduler", "account"])
def test_getmetadata_texts_are_the_documents(catalog_entries, name, verb, description, returns):
    entry = catalog_entries[(name, verb)]
    assert (entry["description"], entry["returns"]) == (description, returns)


@pytest.fixture()
def workflow_id(client, org) -> str:
    headers = org.admin_headers
    return new_workflow(client, headers, published_template(client, headers), file_hub_app(client, headers))


def test_a_never_scheduled_workflow_shows_the_documents_frequency_string(client, org, workflow_id):
    for answer in (client.get(f"/api/Workflow/{workflow_id}", headers=org.admin_headers).json,
                   client.get("/api/Workflows", headers=org.admin_headers).json[0]):
        assert answer["isScheduled"] is False
        assert answer["schedulerFrequency"] == NEVER_SCHEDULED_FREQUENCY


def test_workflow_run_takes_its_run_id_as_a_query_parameter_too(client, org, workflow_id, clean_run_queue):
    started = client.post("/api/RunWorkflow", json={"workflowId": workflow_id}, headers=org.admin_headers)
    assert started.status_code == 202, started.json
    run_id = started.headers["Location"].rsplit("/", 1)[1]
    by_query = client.get(f"/api/WorkflowRun?runId={run_id}", headers=org.admin_headers)
    by_path = client.get(f"/api/WorkflowRun/{run_id}", headers=org.admin_headers)
    assert by_query.status_code == 200 and by_query.json["id"] == run_id
    assert by_query.json == by_path.json


def test_workflow_run_without_a_run_id_is_a_400_naming_it(client, org):
    answer = client.get("/api/WorkflowRun", headers=org.admin_headers)
    assert answer.status_code == 400 and "runId" in answer.json["Msg"]


def test_workflow_run_with_an_unknown_run_id_is_a_404(client, org):
    answer = client.get(f"/api/WorkflowRun?runId={uuid.uuid4()}", headers=org.admin_headers)
    assert (answer.status_code, answer.json["State"]) == (404, 404)
