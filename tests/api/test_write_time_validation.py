"""What the API used to accept and get wrong, now refused (or answered truthfully) when it is written: schedules
that never fire, Quartz's horizon, JSONata and file names in block variables, ids in path and body, template
versions, unverified applications, SQLite and other database URLs, line breaks in credentials, AccountKeys on an
unknown account, and the Quinyx template's draftIsCommitted."""
from __future__ import annotations

import json
import uuid

import pytest

from tests.api.test_v2_support import V2, linear_body
from tests.api.workflow_helpers import (
    BLOCK_MAP,
    BLOCK_STORE,
    FILE_HUB_APP,
    file_hub_app,
    new_workflow,
    published_template,
    template_body,
)

FEBRUARY_30 = "0 0 0 30 2 ?"
FIFTH_TUESDAY_OF_FEBRUARY = "0 30 6 ? FEB 3#5"  # a leap year whose February begins on a Tuesday: 2084, then 2124
QUINYX_TEMPLATE, QUINYX_FTP_UPLOAD = "bbe52876-aca2-4ece-ba31-11e0d98ddc19", "25782580-aabe-4a03-be1c-bc45dacd7e60"
QUINYX_APP, TALENTSOFT_APP, TALENT_MANAGER_APP = ("97cbc3b3-32c7-4e4a-b788-a332ea82aeff",
                                                  "07ffd13d-ba57-4d1b-9c46-03c5c919eed0",
                                                  "b5a4a9ed-a686-4b1e-af30-ffd84b7fb2e0")
FTP_APP, SQL_APP = "5f814909-01ea-4395-96ee-5ba7614128fc", "ebc4ddb0-d0e5-4244-985d-5d505bfbfab9"
BLOCK_CSV = str(uuid.UUID(int=0xD4))
SQLITE_OFF = ("url: SQLite applications are turned off on this platform (the operator allows them with "
              "CANVAS_ALLOW_SQLITE_APPLICATIONS=true)")


def register(client, headers, application_id: str, credentials: dict, **extra):
    body = {"applicationId": application_id, "credentialsJson": json.dumps(credentials), **extra}
    return client.post("/api/RegApplication", json=body, headers=headers)


def registered_list(client, headers) -> dict[str, dict]:
    return {entry["id"]: entry for entry in client.get("/api/RegApplications", headers=headers).json}


@pytest.fixture()
def workflow_id(client, org) -> str:
    headers = org.admin_headers
    return new_workflow(client, headers, published_template(client, headers), file_hub_app(client, headers))


# --- 1. a schedule that never fires ------------------------------------------------------------------------------

def test_a_cron_that_never_fires_is_refused_and_the_workflow_stays_unscheduled(client, org, workflow_id):
    answer = client.post("/api/WorkflowScheduler", headers=org.admin_headers, json={
        "workflowId": workflow_id, "isScheduled": True, "scheduleFrequency": json.dumps({"cronSchedule": FEBRUARY_30})})
    assert answer.status_code == 400
    assert answer.json["Msg"].startswith(f"scheduleFrequency.cronSchedule: '{FEBRUARY_30}' never fires")
    workflow = client.get(f"/api/Workflow/{workflow_id}", headers=org.admin_headers).json
    assert (workflow["isScheduled"], workflow["dateNextSchedule"]) == (False, None)


def test_a_v2_flow_cron_that_never_fires_is_refused_naming_cron(app, client, org):
    v2 = V2(app, client, org)
    flow_id = v2.create()["id"]
    answer = v2.call("PATCH", f"/v2/flows/{flow_id}", {"data": {"type": "flow", "id": flow_id,
                                                               "attributes": {"cron": FEBRUARY_30}}})
    assert answer.status_code == 400
    [error] = answer.json["errors"]
    assert error["source"]["pointer"] == "/data/attributes/cron" and "never fires" in error["detail"]


# --- 2. Quartz's horizon: the current year + 100 -----------------------------------------------------------------

def test_preview_finds_a_rare_fire_time_past_2100_as_quartz_does(client, org):
    answer = client.post("/api/SchedulePreview", headers=org.admin_headers, json={
        "scheduleFrequency": json.dumps({"cronSchedule": FIFTH_TUESDAY_OF_FEBRUARY}),
        "after": "2084-03-01T00:00:00+00:00", "count": 1})
    assert answer.status_code == 200 and answer.json == ["2124-02-29T06:30:00+00:00"]


# --- 3. JSONata and file names in block variables ---------------------------------------------------------------

def csv_template_body() -> dict:
    """Records -> CSV file (a file name inside the run) -> File Hub."""
    body = template_body()
    body["chain"][1] = {"uniqueBlockId": BLOCK_CSV, "blockName": "To CSV", "block": "csv.from_records",
                        "variables": {"filename": "people.csv"}}
    return body


@pytest.mark.parametrize(("block_id", "variables", "problem"), [
    pytest.param(BLOCK_MAP, {"expression": "$.("}, "variable 'expression' is not a valid JSONata expression",
                 id="jsonata-syntax-error"),
    pytest.param(BLOCK_STORE, {"filename": "../../etc/passwd"}, "variable 'filename' must name a file inside the "
                 "File Hub: '../../etc/passwd'", id="file-hub-name-leaving-the-account-folder"),
])
def test_workflow_post_refuses_bad_variables_naming_block_and_variable(client, org, block_id, variables, problem):
    headers = org.admin_headers
    body = {"workflowTemplateId": published_template(client, headers),
            "applications": {"CMAF": file_hub_app(client, headers)},
            "chain": [{"uniqueBlockId": block_id, "variables": variables}]}
    answer = client.post("/api/Workflow", json=body, headers=headers)
    assert answer.status_code == 400
    assert answer.json["Msg"].startswith(f"chain[0].variables (block {block_id} '")
    assert problem in answer.json["Msg"]
    assert client.get("/api/Workflows", headers=headers).json == []


def test_a_name_leaving_its_folder_is_refused_in_templates_and_workflows(client, org):
    headers = org.admin_headers
    bad_template = csv_template_body()
    bad_template["chain"][1]["variables"]["filename"] = "../../etc/passwd"
    refused = client.post("/api/WorkflowTemplate", json=bad_template, headers=headers)
    assert refused.status_code == 400
    assert "variable 'filename' must be a file name or a relative path: '../../etc/passwd'" in refused.json["Msg"]
    template_id = published_template(client, headers, csv_template_body())
    answer = client.post("/api/Workflow", headers=headers, json={
        "workflowTemplateId": template_id, "applications": {"CMAF": file_hub_app(client, headers)},
        "chain": [{"uniqueBlockId": BLOCK_CSV, "variables": {"filename": "..\\secret.csv"}}]})
    assert answer.status_code == 400
    assert answer.json["Msg"].startswith(f"chain[0].variables (block {BLOCK_CSV} 'To CSV'): variable 'filename' must "
                                         "be a file name or a relative path: '..\\\\secret.csv'")


def test_an_ftp_upload_file_name_that_is_a_path_is_refused(client, org, ftp_server):
    headers = org.admin_headers
    quinyx = register(client, headers, QUINYX_APP, {"apikey": "k", "environment": "test"}).json
    ftp = register(client, headers, FTP_APP, ftp_server.credentials()).json
    answer = client.post("/api/Workflow", headers=headers, json={
        "workflowTemplateId": QUINYX_TEMPLATE, "applications": {"QUIN": quinyx, "FTP": ftp},
        "chain": [{"uniqueBlockId": QUINYX_FTP_UPLOAD, "variables": {"filename": "../../etc/passwd"}}]})
    assert (answer.status_code, answer.json["Msg"]) == (400, (
        f"chain[0].variables (block {QUINYX_FTP_UPLOAD} 'FTP Upload'): variable 'filename' must be a file name, "
        "not a path: '../../etc/passwd'"))


def test_update_workflow_refuses_invalid_jsonata(client, org, workflow_id):
    answer = client.post("/api/UpdateWorkflow", headers=org.admin_headers, json={
        "id": workflow_id, "chain": [{"uniqueBlockId": BLOCK_MAP, "variables": {"expression": "foo["}}]})
    assert answer.status_code == 400 and "variable 'expression' is not a valid JSONata" in answer.json["Msg"]


@pytest.mark.parametrize(("node", "fields", "variable"), [
    pytest.param(1, {"expression": "$sum("}, "expression", id="jsonata"),
    pytest.param(2, {"filename": "../../etc/passwd"}, "filename", id="file-hub-name"),
])
def test_v2_flow_create_and_patch_refuse_bad_node_fields_naming_the_node(app, client, org, node, fields, variable):
    v2 = V2(app, client, org)
    body = linear_body(v2.credential, org.id)
    body["data"]["attributes"]["graph"]["nodes"][node]["fields"] = fields
    created = v2.call("POST", "/v2/flows", body)
    assert created.status_code in (400, 422), created.json
    [error] = created.json["errors"]
    assert error["source"]["pointer"] == f"/data/attributes/graph/nodes/{node}/fields"
    assert f"step_{node + 1}" in error["detail"] and f"variable '{variable}'" in error["detail"]
    flow_id = v2.create()["id"]
    patch = {"data": {"type": "flow", "id": flow_id, "attributes": {"graph": body["data"]["attributes"]["graph"]}}}
    patched = v2.call("PATCH", f"/v2/flows/{flow_id}", patch)
    assert patched.status_code in (400, 422) and f"variable '{variable}'" in patched.json["errors"][0]["detail"]


# --- 4. ids in the path and in the body --------------------------------------------------------------------------

def test_reg_application_post_with_a_path_id_acts_on_that_id(client, org):
    headers = org.admin_headers
    registered_id = file_hub_app(client, headers)
    path = f"/api/RegApplication/{registered_id}"
    answer = client.post(path, json={"applicationId": FILE_HUB_APP, "credentialsJson": "{}", "tagText": "Renamed"},
                         headers=headers)
    assert answer.status_code == 200 and answer.json == registered_id
    listed = registered_list(client, headers)
    assert list(listed) == [registered_id] and listed[registered_id]["tagText"] == "Renamed"
    other_application = client.post(path, json={"applicationId": SQL_APP, "credentialsJson": "{}"}, headers=headers)
    assert other_application.status_code == 400 and other_application.json["Msg"].startswith("applicationId: ")
    unknown = client.post(f"/api/RegApplication/{uuid.uuid4()}", json={"applicationId": FILE_HUB_APP,
                                                                        "credentialsJson": "{}"}, headers=headers)
    assert unknown.status_code == 404
    assert list(registered_list(client, headers)) == [registered_id]


def test_reg_application_grants_refuses_a_body_id_other_than_the_path_id(client, org, workflow_id):
    headers = org.admin_headers
    in_path, in_body = file_hub_app(client, headers), file_hub_app(client, headers)
    answer = client.post(f"/api/RegApplicationGrants/{in_path}", headers=headers,
                         json={"id": in_body, "restricted": True, "workflowIds": [workflow_id]})
    assert answer.status_code == 400
    assert answer.json == {"State": 400, "Msg": f"id: the body's id {in_body} differs from the path's id {in_path}"}
    for registered_id in (in_path, in_body):
        grants = client.get(f"/api/RegApplicationGrants/{registered_id}", headers=headers).json
        assert grants["restricted"] is False
    same = client.post(f"/api/RegApplicationGrants/{in_path}", headers=headers,
                       json={"id": in_path, "restricted": True, "workflowIds": [workflow_id]})
    assert same.status_code == 200 and same.json["id"] == in_path and same.json["restricted"] is True


# --- 5. an unknown template version ------------------------------------------------------------------------------

def test_an_unknown_template_version_is_404(client, org, workflow_id):
    for endpoint in ("/api/WorkflowUpgradePreview", "/api/UpgradeWorkflow"):
        answer = client.post(endpoint, json={"id": workflow_id, "version": "9.9.9"}, headers=org.admin_headers)
        assert answer.status_code == 404 and answer.json["Msg"].endswith("has no version 9.9.9"), endpoint


# --- 6. applications nobody verified -----------------------------------------------------------------------------

@pytest.mark.parametrize(("application_id", "credentials"), [
    pytest.param(QUINYX_APP, {"apikey": "k", "environment": "test"}, id="quinyx"),
    pytest.param(TALENTSOFT_APP, {"baseUrl": "https://example.test", "client_id": "c", "client_secret": "s"},
                 id="talentsoft"),
    pytest.param(TALENT_MANAGER_APP, {"customeralias": "acme", "apikey": "k"}, id="talent-manager"),
])
def test_an_application_without_verification_is_not_authenticated(client, org, application_id, credentials):
    answer = register(client, org.admin_headers, application_id, credentials)
    assert answer.status_code == 200, answer.json
    entry = registered_list(client, org.admin_headers)[answer.json]
    assert (entry["isAuthenticated"], entry["dateTimeUtcAuthenticated"]) == (False, None)


def test_file_hub_has_nothing_to_verify_and_stays_authenticated_as_documented(client, org):
    registered_id = file_hub_app(client, org.admin_headers)
    entry = registered_list(client, org.admin_headers)[registered_id]
    assert (entry["isAuthenticated"], entry["dateTimeUtcAuthenticated"]) == (True, None)


# --- 7. SQLite applications while they are off -------------------------------------------------------------------

def test_sqlite_urls_are_refused_alike_without_touching_the_file_system(client, org, tmp_path, monkeypatch):
    monkeypatch.delenv("CANVAS_ALLOW_SQLITE_APPLICATIONS", raising=False)
    created = tmp_path / "created.db"
    urls = ["sqlite:////etc/shadow", f"sqlite:///{tmp_path / 'missing.db'}",
            f"sqlite:///file:{created}?mode=rwc&uri=true", "sqlite://"]
    answers = [register(client, org.admin_headers, SQL_APP, {"url": url}) for url in urls]
    assert [(answer.status_code, answer.json["Msg"]) for answer in answers] == [(400, SQLITE_OFF)] * len(urls)
    assert not created.exists()
    assert registered_list(client, org.admin_headers) == {}


# --- 8. no internal texts in answers -----------------------------------------------------------------------------

def test_a_url_of_no_database_lists_the_supported_schemes(client, org):
    answer = register(client, org.admin_headers, SQL_APP, {"url": "http://x"})
    assert answer.status_code == 400
    message = answer.json["Msg"]
    assert message.startswith("url: 'http' is not a supported database URL scheme; use one of postgresql://")
    assert "NoSuchModuleError" not in message and "plugin" not in message


def test_a_credential_with_a_line_break_is_refused_naming_the_field(client, org):
    credentials = {"username": "ann", "password": "secret\nQUIT", "port": 21, "address": "ftp.example.test"}
    answer = register(client, org.admin_headers, FTP_APP, credentials)
    assert answer.status_code == 400
    assert answer.json["Msg"] == "Authentication Error: Password must be a single line (it holds a line break)"
    assert "secret" not in answer.json["Msg"]


def test_account_keys_for_an_unknown_account_is_404_about_that_account(client, org):
    unknown = str(uuid.uuid4())
    answer = client.post("/api/AccountKeys", json={"accountId": unknown}, headers=org.admin_headers)
    assert (answer.status_code, answer.json) == (404, {"State": 404, "Msg": f"Unknown account {unknown}"})


# --- 9. the Quinyx template as the Canvas document shows it ------------------------------------------------------

def test_the_quinyx_template_draft_is_not_committed_as_in_the_document(client, org):
    templates = {template["id"]: template for template in client.get("/api/WorkflowTemplates",
                                                                      headers=org.admin_headers).json}
    quinyx = templates[QUINYX_TEMPLATE]
    assert (quinyx["state"], quinyx["version"], quinyx["draftIsCommitted"]) == ("Published", "0.1.7", False)
