"""WorkflowTemplates, Workflow (POST/GET), Workflows, DeleteWorkflow, UpdateWorkflow."""
from __future__ import annotations

import uuid

import pytest

from tests.api.workflow_helpers import (
    BLOCK_MAP,
    BLOCK_RECORDS,
    BLOCK_STORE,
    file_hub_app,
    new_workflow,
    published_template,
    template_body,
)

TEMPLATE_FIELDS = ["id", "name", "description", "dateCreated", "dateModified", "state", "version",
                   "draftIsCommitted", "dateCommitted", "organizationId", "applications", "chain"]
WORKFLOW_FIELDS = ["id", "name", "description", "status", "isScheduled", "schedulerFrequency", "workflowTemplateId",
                   "isCustomizedStructure", "accountId", "organizationId", "dateCreated", "dateModified",
                   "dateLastRun", "dateNextSchedule", "regApplicationIds", "currentBlock"]
SAMPLE_TEMPLATE = "Sample: records to CSV"


def test_workflow_templates_have_the_documented_shape(client, org):
    templates = client.get("/api/WorkflowTemplates", headers=org.admin_headers).json
    assert templates, "the global catalog is loaded"
    assert all(list(template) == TEMPLATE_FIELDS for template in templates)
    sample = next(template for template in templates if template["name"] == SAMPLE_TEMPLATE)
    assert sample["state"] == "Published" and sample["organizationId"] is None
    assert [list(entry) for entry in sample["chain"]] == [["uniqueBlockId", "blockName", "variables"]] * 3


def test_organization_templates_are_seen_only_by_their_organization(client, org, make_org):
    other = make_org("Other")
    draft_id = client.post("/api/WorkflowTemplate", json=template_body(), headers=org.admin_headers).json
    mine = {template["id"]: template for template in client.get("/api/WorkflowTemplates",
                                                                 headers=org.admin_headers).json}
    theirs = {template["id"] for template in client.get("/api/WorkflowTemplates", headers=other.admin_headers).json}
    assert mine[draft_id]["state"] == "Draft" and mine[draft_id]["version"] is None
    assert mine[draft_id]["organizationId"] == org.id
    assert draft_id not in theirs
    answer = client.post("/api/Workflow", json={"workflowTemplateId": draft_id, "applications": {}},
                         headers=other.admin_headers)
    assert answer.json == {"State": 400, "Msg": f"Unknown workflow template {draft_id}"}


def test_a_draft_cannot_be_instantiated(client, org):
    draft_id = client.post("/api/WorkflowTemplate", json=template_body(), headers=org.admin_headers).json
    registered = file_hub_app(client, org.admin_headers)
    answer = client.post("/api/Workflow", json={"workflowTemplateId": draft_id,
                                                "applications": {"CMAF": registered}}, headers=org.admin_headers)
    assert answer.status_code == 400 and "is a Draft" in answer.json["Msg"]


def test_publishing_sets_version_and_commit_fields(client, org):
    template_id = published_template(client, org.admin_headers)
    [template] = [t for t in client.get("/api/WorkflowTemplates", headers=org.admin_headers).json
                  if t["id"] == template_id]
    assert template["state"] == "Published" and template["version"] == "1.0.0"
    assert template["draftIsCommitted"] is True and template["dateCommitted"]
    again = client.post("/api/PublishWorkflowTemplate", json={"id": template_id}, headers=org.admin_headers)
    assert again.status_code == 409


def test_users_cannot_author_templates(client, org):
    _id, user_headers = org.add_account("User")
    assert client.post("/api/WorkflowTemplate", json=template_body(), headers=user_headers).status_code == 403


def test_unknown_template_gives_the_canvas_text(client, org):
    template_id = str(uuid.uuid4())
    answer = client.post("/api/Workflow", json={"workflowTemplateId": template_id, "applications": {}},
                         headers=org.admin_headers)
    assert answer.json == {"State": 400, "Msg": f"Unknown workflow template {template_id}"}


def test_instantiate_and_read_back(client, org):
    template_id = published_template(client, org.admin_headers)
    registered = file_hub_app(client, org.admin_headers)
    workflow_id = new_workflow(client, org.admin_headers, template_id, registered)
    [listed] = client.get("/api/Workflows", headers=org.admin_headers).json
    assert list(listed) == WORKFLOW_FIELDS
    assert listed["id"] == workflow_id and listed["name"] == "Records to File Hub"
    assert listed["status"] == "Ready" and listed["currentBlock"] == 0 and listed["isScheduled"] is False
    assert listed["regApplicationIds"] == [registered] and listed["isCustomizedStructure"] is False
    assert listed["workflowTemplateId"] == template_id and listed["organizationId"] == org.id
    by_path = client.get(f"/api/Workflow/{workflow_id}", headers=org.admin_headers).json
    by_query = client.get(f"/api/Workflow?id={workflow_id}", headers=org.admin_headers).json
    assert by_path == by_query
    assert [entry["uniqueBlockId"] for entry in by_path["chain"]] == [BLOCK_RECORDS, BLOCK_MAP, BLOCK_STORE]
    assert by_path["templateVersion"] == "1.0.0"


def test_overrides_merge_over_template_defaults(client, org):
    template_id = published_template(client, org.admin_headers)
    registered = file_hub_app(client, org.admin_headers)
    workflow_id = new_workflow(client, org.admin_headers, template_id, registered, name="Mine",
                               chain=[{"uniqueBlockId": BLOCK_STORE, "variables": {"filename": "x_{runId}.jsonl"}}])
    workflow = client.get(f"/api/Workflow/{workflow_id}", headers=org.admin_headers).json
    assert workflow["name"] == "Mine" and workflow["isCustomizedStructure"] is True
    store = workflow["chain"][2]
    assert store["variables"]["filename"] == "x_{runId}.jsonl"
    assert workflow["chain"][0]["variables"]["records"] == [{"id": 1, "name": "Ann"}]


@pytest.mark.parametrize(
    ("change", "expected_text"),
    [
        pytest.param({"applications": {}}, "applications.CMAF: the template needs a registered CMAF application",
                     id="application-not-mapped"),
        pytest.param({"applications": {"CMAF": str(uuid.uuid4())}}, "applications.CMAF: unknown registered",
                     id="application-unknown"),
        pytest.param({"applications": {"FTP": str(uuid.uuid4())}}, "applications.FTP: the template does not use FTP",
                     id="application-not-in-template"),
        pytest.param({"chain": [{"uniqueBlockId": str(uuid.uuid4()), "variables": {}}]}, "is not in the template",
                     id="override-unknown-block"),
        pytest.param({"chain": [{"uniqueBlockId": BLOCK_STORE, "variables": {"colour": "red"}}]}, "colour",
                     id="override-unknown-variable"),
        pytest.param({"chain": [{"uniqueBlockId": BLOCK_STORE, "variables": {"filename": 42}}]}, "filename",
                     id="override-wrong-type"),
        pytest.param({"chain": [{"uniqueBlockId": BLOCK_STORE, "variables": {"filename": "f_{nope}.csv"}}]},
                     "nope", id="override-unknown-placeholder"),
        pytest.param({"chain": [{"uniqueBlockId": BLOCK_STORE, "variables": {"filename": "f_{date:yyyy.csv"}}]},
                     "filename", id="override-broken-placeholder"),
    ],
)
def test_instantiation_validation_names_the_field(client, org, change, expected_text):
    template_id = published_template(client, org.admin_headers)
    registered = file_hub_app(client, org.admin_headers)
    body = {"workflowTemplateId": template_id, "applications": {"CMAF": registered}, **change}
    answer = client.post("/api/Workflow", json=body, headers=org.admin_headers)
    assert answer.status_code == 400, answer.json
    assert expected_text in answer.json["Msg"]
    assert client.get("/api/Workflows", headers=org.admin_headers).json == []


def test_another_accounts_registered_application_counts_as_unknown(client, org):
    template_id = published_template(client, org.admin_headers)
    _user_id, user_headers = org.add_account("User")
    foreign = file_hub_app(client, user_headers)
    answer = client.post("/api/Workflow", json={"workflowTemplateId": template_id,
                                                "applications": {"CMAF": foreign}}, headers=org.admin_headers)
    assert answer.status_code == 400 and f"unknown registered application {foreign}" in answer.json["Msg"]


def test_restricted_application_is_refused_without_a_grant(client, org):
    template_id = published_template(client, org.admin_headers)
    registered = file_hub_app(client, org.admin_headers)
    workflow_id = new_workflow(client, org.admin_headers, template_id, registered)
    client.post("/api/RegApplicationGrants", json={"id": registered, "restricted": True, "workflowIds": []},
                headers=org.admin_headers)
    refused = client.post("/api/Workflow", json={"workflowTemplateId": template_id,
                                                 "applications": {"CMAF": registered}}, headers=org.admin_headers)
    assert refused.status_code == 403 and "is not granted" in refused.json["Msg"]
    granted = client.post("/api/RegApplicationGrants", headers=org.admin_headers,
                          json={"id": registered, "restricted": True, "workflowIds": [workflow_id]}).json
    assert granted == {"id": registered, "restricted": True, "workflowIds": [workflow_id]}
    rebound = client.post("/api/UpdateWorkflow", json={"id": workflow_id, "applications": {"CMAF": registered}},
                          headers=org.admin_headers)
    assert rebound.status_code == 200


def test_delete_workflow_hides_it_and_frees_its_application(client, org):
    template_id = published_template(client, org.admin_headers)
    registered = file_hub_app(client, org.admin_headers)
    workflow_id = new_workflow(client, org.admin_headers, template_id, registered)
    in_use = client.get(f"/api/DeleteRegApplication/{registered}", headers=org.admin_headers)
    assert in_use.status_code == 409 and workflow_id in in_use.json["Msg"]
    assert client.get(f"/api/DeleteWorkflow?id={workflow_id}", headers=org.admin_headers).json is True
    assert client.get(f"/api/Workflow/{workflow_id}", headers=org.admin_headers).status_code == 404
    assert client.get("/api/Workflows", headers=org.admin_headers).json == []
    assert client.get(f"/api/DeleteWorkflow/{workflow_id}", headers=org.admin_headers).status_code == 404
    assert client.get(f"/api/DeleteRegApplication/{registered}", headers=org.admin_headers).json is True


def test_workflows_are_private_to_their_account(client, org):
    template_id = published_template(client, org.admin_headers)
    registered = file_hub_app(client, org.admin_headers)
    workflow_id = new_workflow(client, org.admin_headers, template_id, registered)
    _user_id, user_headers = org.add_account("User")
    assert client.get("/api/Workflows", headers=user_headers).json == []
    assert client.get(f"/api/Workflow/{workflow_id}", headers=user_headers).status_code == 404


def test_update_workflow_renames_and_changes_overrides(client, org):
    template_id = published_template(client, org.admin_headers)
    registered = file_hub_app(client, org.admin_headers)
    workflow_id = new_workflow(client, org.admin_headers, template_id, registered)
    updated = client.post("/api/UpdateWorkflow", headers=org.admin_headers, json={
        "id": workflow_id, "name": "Renamed",
        "chain": [{"uniqueBlockId": BLOCK_MAP, "variables": {"expression": "{'n': name}"}}]}).json
    assert updated["name"] == "Renamed" and updated["isCustomizedStructure"] is True
    assert updated["chain"][1]["variables"]["expression"] == "{'n': name}"
    bad = client.post("/api/UpdateWorkflow", headers=org.admin_headers,
                      json={"id": workflow_id, "chain": [{"uniqueBlockId": BLOCK_MAP, "variables": {"x": 1}}]})
    assert bad.status_code == 400 and "'x'" in bad.json["Msg"]


def test_update_workflow_changes_the_listed_blocks_and_keeps_the_others_overrides(client, org):
    template_id = published_template(client, org.admin_headers)
    registered = file_hub_app(client, org.admin_headers)
    created = client.post("/api/Workflow", headers=org.admin_headers, json={
        "workflowTemplateId": template_id, "applications": {"CMAF": registered},
        "chain": [{"uniqueBlockId": BLOCK_MAP, "variables": {"expression": "{'n': name}"}}]})
    assert created.status_code == 200, created.json
    workflow_id = created.json

    def variables(number: int) -> dict:
        return client.get(f"/api/Workflow/{workflow_id}", headers=org.admin_headers).json["chain"][number]["variables"]

    changed = client.post("/api/UpdateWorkflow", headers=org.admin_headers, json={
        "id": workflow_id, "chain": [{"uniqueBlockId": BLOCK_STORE, "variables": {"filename": "other.jsonl"}}]})
    assert changed.status_code == 200, changed.json
    assert variables(2) == {"filename": "other.jsonl"}
    assert variables(1) == {"expression": "{'n': name}"}  # not listed: its override is kept
    reset = client.post("/api/UpdateWorkflow", headers=org.admin_headers, json={
        "id": workflow_id, "chain": [{"uniqueBlockId": BLOCK_MAP, "variables": {}}]})
    assert reset.status_code == 200 and reset.json["isCustomizedStructure"] is True  # block 3 is still changed
    assert variables(1) == {"expression": "$"} and variables(2) == {"filename": "other.jsonl"}


def test_describe_add_workflow_matches_the_canvas_document(client):
    described = client.get("/api/Describe?name=AddWorkflowApiDto").json
    assert described == [
        {"typeName": "guid", "propertyName": "workflowTemplateId", "genericParameters": "", "isRequired": True},
        {"typeName": "string", "propertyName": "name", "genericParameters": "", "isRequired": False},
        {"typeName": "string", "propertyName": "description", "genericParameters": "", "isRequired": False},
        {"typeName": "dictionary", "propertyName": "applications", "genericParameters": "string,guid",
         "isRequired": True},
        {"typeName": "iEnumerable", "propertyName": "chain", "genericParameters": "chainApiDto",
         "isRequired": False},
    ]


@pytest.mark.parametrize(("application", "accepted"), [("SMTP", True), ("CMAF", True), ("FTP", False)],
                         ids=["its own kind", "the platform's relay", "another kind"])
def test_send_email_binds_an_smtp_application_or_the_platform_and_nothing_else(client, org, application, accepted):
    body = {"name": "Mail", "description": "", "applications": [application], "chain": [
        {"uniqueBlockId": str(uuid.uuid4()), "blockName": "Send", "block": "email.send", "application": application,
         "variables": {"subject": "hi"}}]}
    answer = client.post("/api/WorkflowTemplate", json=body, headers=org.admin_headers)
    if accepted:
        assert answer.status_code == 200, answer.json
    else:
        assert answer.status_code == 400
        assert "block 'email.send' needs a smtp application, 'FTP' is ftp" in answer.json["Msg"]
