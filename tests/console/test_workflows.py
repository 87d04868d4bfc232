"""Console workflows: the list (paged, with template, last run and next run), a workflow's page (its chain or graph,
bound applications, schedule, recent runs, links to the other areas), and its variables form, which changes them as
POST /api/UpdateWorkflow does: the same checks, errors beside the field, the audit entry; never another account's."""
from __future__ import annotations

import html
import json
import re
import uuid

import pytest
from sqlalchemy import select

from canvas.console.pages.workflows import WORKFLOWS_PAGE_SIZE
from canvas.models import AuditEntry
from tests.api.test_v2_graphs import FORK_EDGES, FORK_NODES, flow_body
from tests.api.test_v2_support import V2
from tests.api.test_workflow_graphs import graph_workflow
from tests.api.test_workflow_upgrade import publish_new_version
from tests.api.workflow_helpers import file_hub_app, published_template
from tests.console.conftest import email_of, signed_in
from tests.integration.run_helpers import (
    B1,
    B2,
    THREE_BLOCKS,
    chain_template,
    make_workflow,
    run_and_work,
)

pytestmark = pytest.mark.usefixtures("clean_run_queue")

RECORDS_FIELD = f"variable.{B1}.records"
CONDITION_FIELD = f"variable.{B2}.condition"


def _new_workflow(client, headers, template_id: str, name: str = "People") -> str:
    answer = client.post("/api/Workflow", json={"workflowTemplateId": template_id, "applications": {}, "name": name},
                         headers=headers)
    assert answer.status_code == 200, answer.json
    return answer.json


def _template(client, org) -> str:
    """A three-block template (records, an Oslo filter, CSV) the organization's Admin published, version 1.0.0."""
    return published_template(client, org.admin_headers, chain_template(THREE_BLOCKS), version="1.0.0")


def _workflow(client, headers, workflow_id: str) -> dict:
    answer = client.get(f"/api/Workflow/{workflow_id}", headers=headers)
    assert answer.status_code == 200, answer.json
    return answer.json


def _variables(client, headers, workflow_id: str) -> list[dict]:
    return [block["variables"] for block in _workflow(client, headers, workflow_id)["chain"]]


def _text(answer) -> str:
    return html.unescape(answer.get_data(as_text=True))


def _form(page_text: str, **changed) -> dict:
    """The variables form as the page shows it: every field with its value, then the changes."""
    return {**_shown_fields(page_text), **changed}


def _shown_fields(page_text: str) -> dict:
    fields = {}
    fields.update(re.findall(r'<input id="var-[^"]*" name="([^"]+)" value="([^"]*)"', page_text))
    fields.update(re.findall(r'<textarea id="var-[^"]*" name="([^"]+)"[^>]*>(.*?)</textarea>', page_text, re.DOTALL))
    for name, body in re.findall(r'<select id="var-[^"]*" name="([^"]+)"[^>]*>(.*?)</select>', page_text, re.DOTALL):
        chosen = re.search(r'<option value="([^"]*)" selected>', body)
        fields[name] = chosen.group(1) if chosen else ""
    return fields


# --- the list --------------------------------------------------------------------------------------------------------

def test_the_list_shows_the_accounts_workflows_with_template_last_run_and_next_run(app, org, client):
    user_id, user_headers = org.add_account()
    _other_id, other_headers = org.add_account()
    template_id = _template(client, org)
    mine = _new_workflow(client, user_headers, template_id, "Mine")
    scheduled = _new_workflow(client, user_headers, template_id, "Nightly")
    theirs = _new_workflow(client, other_headers, template_id, "Theirs")
    finished = run_and_work(client, app, user_headers, mine)
    assert client.post("/api/WorkflowScheduler", headers=user_headers, json={
        "workflowId": scheduled, "isScheduled": True,
        "scheduleFrequency": json.dumps({"cronSchedule": "0 0 3 * * ?"})}).status_code == 200
    next_run = _workflow(client, user_headers, scheduled)["dateNextSchedule"]

    page = signed_in(app, user_id).get("/console/workflows")
    text = _text(page)
    assert page.status_code == 200 and "2 workflows" in text
    assert "Mine" in text and "Nightly" in text and "Theirs" not in text and theirs not in text
    assert f"/console/workflows/{mine}" in text and "Run test" in text, "a link to it, and its template's name"
    assert f"/console/runs/{finished['id']}" in text and "Succeeded" in text, "its last run, linked"
    assert next_run[:16].replace("T", " ") in text, "the next fire time of its schedule"
    assert f"/console/runs?workflow={mine}" in text


def test_the_list_pages_fifty_at_a_time(app, org, client):
    template_id = _template(client, org)
    for number in range(WORKFLOWS_PAGE_SIZE + 1):
        _new_workflow(client, org.admin_headers, template_id, f"Workflow {number:03}")
    browser = signed_in(app, org.admin_id)
    first = _text(browser.get("/console/workflows"))
    assert "page 1 of 2" in first and "Workflow 000" in first and "Workflow 050" not in first
    assert "/console/workflows?page=2" in first
    second = _text(browser.get("/console/workflows?page=2"))
    assert "Workflow 050" in second and "Workflow 000" not in second
    refused = browser.get("/console/workflows?page=none")
    assert refused.status_code == 400 and "page must be a whole number" in _text(refused)


def test_an_admin_acting_as_a_user_sees_that_users_workflows(app, org, client):
    user_id, user_headers = org.add_account()
    template_id = _template(client, org)
    _new_workflow(client, user_headers, template_id, "The user's")
    _new_workflow(client, org.admin_headers, template_id, "The admin's")
    browser = signed_in(app, org.admin_id)
    assert browser.submit("/console/act-as", {"email": email_of(app, user_id)},
                          form_page="/console/workflows").status_code == 302
    text = _text(browser.get("/console/workflows"))
    assert "The user's" in text and "The admin's" not in text

# --- one workflow ----------------------------------------------------------------------------------------------------

def test_the_detail_shows_blocks_variables_applications_runs_and_links(app, org, client):
    workflow_id = _new_workflow(client, org.admin_headers, _template(client, org))
    finished = run_and_work(client, app, org.admin_headers, workflow_id)
    page = signed_in(app, org.admin_id).get(f"/console/workflows/{workflow_id}")
    text = _text(page)
    assert page.status_code == 200
    for number, (name, key, _values) in enumerate(THREE_BLOCKS, start=1):
        assert f"Block {number}: {name}" in text and f"({key})" in text
    fields = _shown_fields(text)
    assert json.loads(fields[RECORDS_FIELD])[0]["name"] == "Ann"
    assert fields[CONDITION_FIELD] == "city = 'Oslo'"
    assert fields[f"variable.{uuid.UUID(int=0x103)}.header"] == "true", "a boolean's select shows its value"
    assert text.count('<label for="var-') == len(fields), "every variable field has its label"
    assert "It uses no applications." in text
    assert f"/console/runs/{finished['id']}" in text and "Succeeded" in text
    for link in (f"/console/workflows/{workflow_id}/run", f"/console/workflows/{workflow_id}/schedule",
                 f"/console/workflows/{workflow_id}/occurrences", f"/console/runs?workflow={workflow_id}"):
        assert link in text, link
    assert f"/console/workflows/{workflow_id}/upgrade" not in text, "no newer template version: no Upgrade"


def test_the_detail_shows_the_bound_registered_application(app, org, client):
    workflow_id = make_workflow(client, org.admin_headers, applications=["CMAF"])
    [registered_id] = _workflow(client, org.admin_headers, workflow_id)["regApplicationIds"]
    text = _text(signed_in(app, org.admin_id).get(f"/console/workflows/{workflow_id}"))
    assert "(CMAF):" in text and f"/console/applications/{registered_id}/credentials" in text

def test_upgrade_is_offered_once_the_template_has_a_newer_version(app, org, client):
    template_id = _template(client, org)
    workflow_id = _new_workflow(client, org.admin_headers, template_id)
    body = chain_template(THREE_BLOCKS)
    publish_new_version(client, org.admin_headers, template_id,
                        {"applications": body["applications"], "chain": body["chain"]}, "1.1.0")
    text = _text(signed_in(app, org.admin_id).get(f"/console/workflows/{workflow_id}"))
    assert f"/console/workflows/{workflow_id}/upgrade" in text and "Upgrade to version 1.1.0" in text


def test_a_graph_shows_which_blocks_feed_each_block(app, org, client):
    _template_id, workflow_id = graph_workflow(client, org.admin_headers)
    text = _text(signed_in(app, org.admin_id).get(f"/console/workflows/{workflow_id}"))
    assert "a graph" in text and "nothing: it starts the graph" in text
    join = text[text.index("Block 4: Join"):]
    assert '<a href="#block-2">block 2</a>, <a href="#block-3">block 3</a>' in join
    assert "only records where <code>name != 'skip'</code>" in join
    assert "mapped by <code>{'id': id, 'name': $lowercase(name)}</code>" in text


def test_a_v2_flow_shows_its_variables_but_they_are_changed_through_v2(app, org, client):
    flow = V2(app, client, org).call("POST", "/v2/flows", flow_body(V2(app, client, org), FORK_NODES, FORK_EDGES))
    assert flow.status_code == 201, flow.json
    flow_id = flow.json["data"]["id"]
    browser = signed_in(app, org.admin_id)
    page = browser.get(f"/console/workflows/{flow_id}")
    text = _text(page)
    assert page.status_code == 200 and "from no template" in text and "Save the variables" not in text
    assert '<dt>expression</dt><dd><code>$</code></dd>' in text, "its variables, to read"
    refused = browser.submit(f"/console/workflows/{flow_id}/variables", {}, form_page=f"/console/workflows/{flow_id}")
    assert refused.status_code == 400 and "PATCH /v2/flows" in _text(refused)
    page = f"/console/workflows/{flow_id}"
    refused = browser.submit(f"{page}/applications", {}, form_page=page)
    assert refused.status_code == 400 and "PATCH /v2/flows" in _text(refused)

def test_a_user_never_sees_or_changes_another_accounts_workflow(app, org, client):
    user_id, _user_headers = org.add_account()
    _other_id, other_headers = org.add_account()
    theirs = _new_workflow(client, other_headers, _template(client, org), "Theirs")
    browser = signed_in(app, user_id)
    refused = browser.get(f"/console/workflows/{theirs}")
    assert refused.status_code == 404 and "Theirs" not in _text(refused)
    token = browser.csrf_token("/console/workflows")
    changed = browser.client.post(f"/console/workflows/{theirs}/variables",
                                  data={"csrf_token": token, CONDITION_FIELD: "true"})
    assert changed.status_code == 404
    assert _variables(client, other_headers, theirs)[1] == {"condition": "city = 'Oslo'"}
    rebound = browser.client.post(f"/console/workflows/{theirs}/applications", data={"csrf_token": token})
    assert rebound.status_code == 404
    renamed = browser.client.post(f"/console/workflows/{theirs}/settings", data={"csrf_token": token,
                                                                                 "name": "Mine now"})
    assert renamed.status_code == 404 and _workflow(client, other_headers, theirs)["name"] == "Theirs"


# --- the variables form ----------------------------------------------------------------------------------------------

def test_saving_variables_changes_them_as_update_workflow_does_and_is_audited(app, org, client):
    headers = org.admin_headers
    workflow_id = _new_workflow(client, headers, _template(client, org))
    # a block's run settings are no variable: saving the variables keeps them
    assert client.post("/api/UpdateWorkflow", headers=headers, json={
        "id": workflow_id, "chain": [{"uniqueBlockId": B1, "retries": 2}]}).status_code == 200
    browser = signed_in(app, org.admin_id)
    page = f"/console/workflows/{workflow_id}"
    saved = browser.submit(f"{page}/variables", _form(_text(browser.get(page)), **{CONDITION_FIELD: "city = 'Bergen'"}),
                           form_page=page)
    assert saved.status_code == 302 and saved.headers["Location"].endswith(f"{page}?saved=1")
    shown = _workflow(client, headers, workflow_id)
    assert shown["chain"][1]["variables"] == {"condition": "city = 'Bergen'"}
    assert shown["chain"][0]["retries"] == 2 and shown["isCustomizedStructure"] is True
    assert shown["chain"][0]["variables"]["records"][0]["name"] == "Ann", "unchanged blocks keep their values"
    assert "The changes were saved." in _text(browser.get(saved.headers["Location"]))
    with app.extensions["canvas"].db.transaction() as session:
        entries = session.scalars(select(AuditEntry).where(AuditEntry.action == "workflow.update",
                                                           AuditEntry.object_id == workflow_id)).all()
        assert [str(entry.actor_id) for entry in entries] == [org.admin_id, org.admin_id]
        assert "chain" in entries[-1].changes
    # back to the template's value: no override is left
    browser.submit(f"{page}/variables", _form(_text(browser.get(page)), **{CONDITION_FIELD: "city = 'Oslo'"}),
                   form_page=page)
    assert _workflow(client, headers, workflow_id)["isCustomizedStructure"] is False


def test_a_value_of_the_wrong_type_is_shown_beside_its_field_and_nothing_changes(app, org, client):
    workflow_id = _new_workflow(client, org.admin_headers, _template(client, org))
    before = _variables(client, org.admin_headers, workflow_id)
    browser = signed_in(app, org.admin_id)
    page = f"/console/workflows/{workflow_id}"
    answer = browser.submit(f"{page}/variables", _form(_text(browser.get(page)), **{RECORDS_FIELD: '{"id": 1}'}),
                            form_page=page)
    text = _text(answer)
    assert answer.status_code == 400
    assert f'<p class="error" id="{RECORDS_FIELD}-error" role="alert">' in text
    assert "variable 'records' must be an array, got object" in text
    assert _shown_fields(text)[RECORDS_FIELD] == '{"id": 1}', "the form keeps what was typed"
    assert _variables(client, org.admin_headers, workflow_id) == before


def test_text_that_is_no_json_is_refused_beside_its_field(app, org, client):
    workflow_id = _new_workflow(client, org.admin_headers, _template(client, org))
    before = _variables(client, org.admin_headers, workflow_id)
    browser = signed_in(app, org.admin_id)
    page = f"/console/workflows/{workflow_id}"
    answer = browser.submit(f"{page}/variables", _form(_text(browser.get(page)), **{RECORDS_FIELD: "[1,"}),
                            form_page=page)
    assert answer.status_code == 400 and f'id="{RECORDS_FIELD}-error"' in _text(answer)
    assert "is not a valid array" in _text(answer)
    assert _variables(client, org.admin_headers, workflow_id) == before


def test_a_post_without_its_csrf_token_is_refused(app, org, client):
    workflow_id = _new_workflow(client, org.admin_headers, _template(client, org))
    before = _variables(client, org.admin_headers, workflow_id)
    browser = signed_in(app, org.admin_id)
    refused = browser.client.post(f"/console/workflows/{workflow_id}/variables", data={CONDITION_FIELD: "true"})
    assert refused.status_code == 400 and "security token" in _text(refused)
    assert _variables(client, org.admin_headers, workflow_id) == before


# --- the settings form -----------------------------------------------------------------------------------------------

def _settings(page_text: str, **changed) -> dict:
    """The settings form as the page shows it (a ticked box sends "on", an unticked one nothing), then the changes."""
    form = dict(re.findall(r'<input id="settings-name" name="(name)" value="([^"]*)"', page_text))
    form.update(re.findall(r'<textarea id="settings-[a-z]+" name="([^"]+)"[^>]*>(.*?)</textarea>', page_text,
                           re.DOTALL))
    form["failurePolicy"] = re.search(r'<select id="settings-policy"[^>]*>.*?<option value="([^"]+)" selected>',
                                      page_text, re.DOTALL).group(1)
    form["notificationSettings"] = re.search(r'name="notificationSettings" value="([a-z]+)" checked',
                                             page_text).group(1)
    form.update((name, "on") for name in re.findall(r'<input type="checkbox" name="([^"]+)" checked>', page_text))
    return {**form, **changed}


def test_the_settings_form_renames_sets_the_policy_and_the_notifications_as_update_workflow_does(app, org, client):
    headers = org.admin_headers
    workflow_id = _new_workflow(client, headers, _template(client, org))
    browser = signed_in(app, org.admin_id)
    page = f"/console/workflows/{workflow_id}"
    shown = _settings(_text(browser.get(page)))
    assert shown == {"name": "People", "description": "", "failurePolicy": "failFast",
                     "notificationSettings": "account", "notificationSettings.emails": "",
                     "notificationSettings.onFailure": "on", "notificationSettings.onRecovery": "on",
                     "notificationSettings.onMissedSchedule": "on"}
    form = {**shown, "name": "People of Oslo", "description": "nightly", "failurePolicy": "continue",
            "notificationSettings": "own", "notificationSettings.emails": "ops@example.com\nOn-Call@example.com"}
    del form["notificationSettings.onRecovery"]  # unticked
    saved = browser.submit(f"{page}/settings", form, form_page=page)
    assert saved.status_code == 302 and saved.headers["Location"].endswith(f"{page}?saved=1")
    workflow = _workflow(client, headers, workflow_id)
    assert (workflow["name"], workflow["description"], workflow["failurePolicy"]) == ("People of Oslo", "nightly",
                                                                                      "continue")
    assert workflow["notificationSettings"] == {"onFailure": True, "onRecovery": False, "onMissedSchedule": True,
                                                "emails": ["ops@example.com", "on-call@example.com"]}
    text = _text(browser.get(page))
    assert "failures, missed or skipped schedules to ops@example.com, on-call@example.com" in text
    assert _settings(text)["notificationSettings.emails"] == "ops@example.com\non-call@example.com"
    assert "notificationSettings.onRecovery" not in _settings(text)
    with app.extensions["canvas"].db.transaction() as session:
        [entry] = session.scalars(select(AuditEntry).where(AuditEntry.action == "workflow.update",
                                                           AuditEntry.object_id == workflow_id)).all()
        assert {"name", "failure_policy", "notification_settings"} <= set(entry.changes)
    # back to the account's settings
    browser.submit(f"{page}/settings", _settings(text, notificationSettings="account"), form_page=page)
    assert _workflow(client, headers, workflow_id)["notificationSettings"] is None


@pytest.mark.parametrize(("change", "field", "words"), [
    ({"notificationSettings": "own", "notificationSettings.emails": "ops@example.com\nnot an address"},
     "notificationSettings.emails", "Not a valid email address."),
    ({"name": ""}, "name", "Length must be between 1 and 200."),
    ({"failurePolicy": "sometimes"}, "failurePolicy", "Must be one of: failFast, continue."),
])
def test_a_bad_setting_is_shown_beside_its_field_and_nothing_changes(app, org, client, change, field, words):
    workflow_id = _new_workflow(client, org.admin_headers, _template(client, org))
    before = _workflow(client, org.admin_headers, workflow_id)
    browser = signed_in(app, org.admin_id)
    page = f"/console/workflows/{workflow_id}"
    answer = browser.submit(f"{page}/settings", _settings(_text(browser.get(page)), **change), form_page=page)
    text = _text(answer)
    assert answer.status_code == 400
    error = re.search(rf'<p class="error" id="{re.escape(field)}-error" role="alert">(.*?)</p>', text)
    assert error and words in error.group(1), text[:3000]
    assert '<details id="settings" open>' in text
    assert _workflow(client, org.admin_headers, workflow_id) == before


# --- the bindings form -----------------------------------------------------------------------------------------------

def test_binding_another_registered_application_changes_the_workflow(app, org, client):
    workflow_id = make_workflow(client, org.admin_headers, applications=["CMAF"])
    [first] = _workflow(client, org.admin_headers, workflow_id)["regApplicationIds"]
    second = file_hub_app(client, org.admin_headers)
    browser = signed_in(app, org.admin_id)
    page = f"/console/workflows/{workflow_id}"
    shown = _text(browser.get(page))
    assert f'<option value="{first}" selected>' in shown and f'<option value="{second}">' in shown
    saved = browser.submit(f"{page}/applications", {"applications.CMAF": second}, form_page=page)
    assert saved.status_code == 302
    assert _workflow(client, org.admin_headers, workflow_id)["regApplicationIds"] == [second]
    with app.extensions["canvas"].db.transaction() as session:
        [entry] = session.scalars(select(AuditEntry).where(AuditEntry.action == "workflow.update",
                                                           AuditEntry.object_id == workflow_id)).all()
        assert "applications" in entry.changes


def test_another_accounts_registered_application_is_refused_beside_its_select(app, org, client):
    _other_id, other_headers = org.add_account()
    theirs = file_hub_app(client, other_headers)
    workflow_id = make_workflow(client, org.admin_headers, applications=["CMAF"])
    before = _workflow(client, org.admin_headers, workflow_id)["regApplicationIds"]
    browser = signed_in(app, org.admin_id)
    page = f"/console/workflows/{workflow_id}"
    refused = browser.submit(f"{page}/applications", {"applications.CMAF": theirs}, form_page=page)
    text = _text(refused)
    assert refused.status_code == 400 and 'id="applications.CMAF-error"' in text
    assert f"unknown registered application {theirs}" in text
    assert _workflow(client, org.admin_headers, workflow_id)["regApplicationIds"] == before
    without_token = browser.client.post(f"{page}/applications", data={"applications.CMAF": before[0]})
    assert without_token.status_code == 400
