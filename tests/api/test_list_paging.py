"""Optional paging of the Canvas lists (Workflows, Accounts, RegApplications, WorkflowTemplates), as WorkflowRuns
pages: `page` from 1 and `pageSize` (default 50, at most 500), the total in X-Total-Count. Without either, the
answer is the whole list, exactly as before."""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import insert, update

from tests.api.workflow_helpers import file_hub_app, new_workflow, published_template

LISTS = ["Workflows", "Accounts", "RegApplications", "WorkflowTemplates"]
SCHEMAS = {"Workflows": "canvas.workflows.schemas:WorkflowSchema", "Accounts": "canvas.accounts.schemas:AccountSchema",
           "RegApplications": "canvas.applications.schemas:RegApplicationSchema",
           "WorkflowTemplates": "canvas.catalog.schemas:WorkflowTemplateSchema"}
# What the Canvas document lists for each (canvas-api.md)
DOCUMENT_FIELDS = {
    "Workflows": "id name description status isScheduled schedulerFrequency workflowTemplateId isCustomizedStructure "
                 "accountId organizationId dateCreated dateModified dateLastRun dateNextSchedule regApplicationIds "
                 "currentBlock",
    "Accounts": "id firstName lastName email organizationId organizationName roleId role dateCreated",
    "RegApplications": "id shortName accountId applicationId name tagText description isAuthenticated isOAuthApp "
                       "dateModified dateTimeUtcAuthenticated dateTimeForReAuth sessionTimeMins sessionSlidingExpiry "
                       "faulted",
    "WorkflowTemplates": "id name description dateCreated dateModified state version draftIsCommitted dateCommitted "
                         "organizationId applications chain",
}


@pytest.fixture()
def filled(app, client, org, make_org):
    """Acme: its admin with five workflows and registered applications, a User with two of each, two more
    accounts and an organization template; Other: the same kind of rows, never to be seen by Acme."""
    template_id = published_template(client, org.admin_headers)
    user_id, user_headers = org.add_account("User")
    org.add_account("SuperPartner")
    org.add_account("User")
    owned = {}
    for account_id, headers, count in ((org.admin_id, org.admin_headers, 5), (user_id, user_headers, 2)):
        registered = [file_hub_app(client, headers) for _ in range(count)]
        owned[account_id] = [new_workflow(client, headers, template_id, registered_id, name=f"W{n}")
                             for n, registered_id in enumerate(registered)]
    other = make_org("Other")
    other_template = published_template(client, other.admin_headers)
    new_workflow(client, other.admin_headers, other_template, file_hub_app(client, other.admin_headers))
    other.add_account("User")
    return {"admin": org.admin_headers, "admin_id": org.admin_id, "org_id": org.id, "user": user_headers,
            "user_id": user_id, "owned": owned}


def get(client, headers, name: str, **query):
    return client.get(f"/api/{name}", query_string=query, headers=headers)


@pytest.mark.parametrize("name", LISTS)
def test_pages_of_a_list_make_up_the_whole_list_and_say_its_total(client, filled, name):
    whole = get(client, filled["admin"], name)
    assert whole.status_code == 200 and isinstance(whole.json, list) and len(whole.json) >= 3
    assert whole.headers["X-Total-Count"] == str(len(whole.json))
    pages = []
    for number in range(1, len(whole.json) // 2 + 2):
        page = get(client, filled["admin"], name, page=number, pageSize=2)
        assert page.status_code == 200
        assert page.headers["X-Total-Count"] == str(len(whole.json))
        assert len(page.json) == min(2, len(whole.json) - 2 * (number - 1))
        pages += page.json
    assert pages == whole.json
    past_the_end = get(client, filled["admin"], name, page=len(whole.json) + 1, pageSize=1)
    assert (past_the_end.json, past_the_end.headers["X-Total-Count"]) == ([], str(len(whole.json)))


@pytest.mark.parametrize("name", LISTS)
def test_either_parameter_alone_pages_with_the_others_default(client, filled, name):
    whole = get(client, filled["admin"], name).json
    assert get(client, filled["admin"], name, pageSize=1).json == whole[:1]  # page 1
    assert get(client, filled["admin"], name, page=1).json == whole[:50]  # 50 a page
    assert get(client, filled["admin"], name, page=2).json == whole[50:100]
    assert get(client, filled["admin"], name, PAGESIZE=2).json == whole[:2]  # names bind ignoring case


@pytest.mark.parametrize("name", LISTS)
def test_without_paging_the_answer_is_the_documents_plain_array(client, filled, name):
    module, schema = SCHEMAS[name].split(":")
    fields = set(getattr(__import__(module, fromlist=[schema]), schema)().fields)
    answer = get(client, filled["admin"], name)
    assert answer.status_code == 200 and answer.mimetype == "application/json"
    assert answer.json and all(isinstance(item, dict) for item in answer.json)
    assert all(set(DOCUMENT_FIELDS[name].split()) <= set(item) <= fields for item in answer.json)


def test_workflows_answer_what_the_schema_dumps_of_each_workflow_byte_for_byte(app, client, filled):
    """GET Workflows builds its answer without WorkflowSchema's dump: it must be the dump's JSON, with every kind
    of value (scheduled or not, a last run, no template, bindings in the template's order, not by name)."""
    from flask import jsonify
    from sqlalchemy import select

    from canvas.models import Workflow, WorkflowApplication
    from canvas.workflows.schemas import WorkflowSchema
    from canvas.workflows.service import workflow_to_api

    admin_workflows = [uuid.UUID(workflow_id) for workflow_id in filled["owned"][filled["admin_id"]]]
    moment = datetime(2026, 3, 29, 1, 30, 0, 123456, tzinfo=timezone.utc)
    with app.extensions["canvas"].db.transaction() as session:
        session.execute(update(Workflow).where(Workflow.id == admin_workflows[0]).values(
            is_scheduled=True, schedule_frequency='{"cronSchedule": "0 0 12 * * ?"}', date_next_schedule=moment,
            date_last_run=moment - timedelta(days=1), status="Failed", current_block=2, description="ünïcode ✓"))
        session.execute(update(Workflow).where(Workflow.id == admin_workflows[1]).values(template_id=None))
        registered = session.scalar(select(WorkflowApplication.registered_application_id)
                                    .where(WorkflowApplication.workflow_id == admin_workflows[3]))
        session.execute(insert(WorkflowApplication).values(workflow_id=admin_workflows[2], short_name="AAA",
                                                           position=1, registered_application_id=registered))
    answer = client.get("/api/Workflows", headers=filled["admin"])
    with app.extensions["canvas"].db.transaction() as session, app.app_context():
        rows = session.scalars(select(Workflow).where(Workflow.id.in_(admin_workflows))
                               .order_by(Workflow.date_created, Workflow.id)).all()
        dumped = jsonify(WorkflowSchema(many=True).dump([workflow_to_api(row) for row in rows])).get_data()
    assert answer.get_data() == dumped
    assert len(answer.json[2]["regApplicationIds"]) == 2 and answer.json[1]["workflowTemplateId"] is None


@pytest.mark.parametrize("name", LISTS)
@pytest.mark.parametrize(("parameter", "value"), [("page", "0"), ("page", "x"), ("page", "1.5"), ("pageSize", "0"),
                                                  ("pageSize", "501"), ("pageSize", "")])
def test_a_bad_page_or_page_size_is_a_400_naming_it(client, filled, name, parameter, value):
    answer = get(client, filled["admin"], name, **{parameter: value})
    assert answer.status_code == 400
    assert answer.json["State"] == 400 and answer.json["Msg"].startswith(f"{parameter}: ")


@pytest.mark.parametrize("name", ["Workflows", "RegApplications"])
def test_a_user_pages_only_through_its_own_rows(client, filled, name):
    own = get(client, filled["user"], name).json
    assert len(own) == 2 and all(item["accountId"] == filled["user_id"] for item in own)
    for number in (1, 2, 3):
        page = get(client, filled["user"], name, page=number, pageSize=1)
        assert page.headers["X-Total-Count"] == "2"
        assert page.json == own[number - 1:number]


@pytest.mark.parametrize("name", ["Accounts", "WorkflowTemplates"])
def test_another_organizations_rows_are_in_no_page(client, filled, name):
    for who in ("admin", "user"):
        whole = get(client, filled[who], name).json
        paged = [item for number in range(1, len(whole) + 2)
                 for item in get(client, filled[who], name, page=number, pageSize=1).json]
        assert paged == whole
        assert {item["organizationId"] for item in whole} <= {None, filled["org_id"]}


def test_workflows_created_at_the_same_instant_keep_one_order_across_pages(app, client, filled):
    """Ties of the order (the same dateCreated) are broken by id, so no workflow is on two pages or on none."""
    from canvas.models import Workflow

    same = datetime(2026, 1, 1, tzinfo=timezone.utc)
    with app.extensions["canvas"].db.transaction() as session:
        session.execute(update(Workflow).values(date_created=same))
    whole = get(client, filled["admin"], "Workflows").json
    assert [item["id"] for item in whole] == sorted(item["id"] for item in whole)
    pages = [item for number in range(1, 7) for item in get(client, filled["admin"], "Workflows", page=number,
                                                            pageSize=1).json]
    assert pages == whole


def test_registered_applications_registered_at_the_same_instant_keep_one_order_across_pages(app, client, filled):
    from canvas.models import RegisteredApplication

    with app.extensions["canvas"].db.transaction() as session:
        session.execute(update(RegisteredApplication).values(date_created=datetime(2026, 1, 1, tzinfo=timezone.utc)))
    whole = get(client, filled["admin"], "RegApplications").json
    assert [item["id"] for item in whole] == sorted(item["id"] for item in whole)
    pages = [item for number in range(1, 7) for item in get(client, filled["admin"], "RegApplications",
                                                            page=number, pageSize=1).json]
    assert pages == whole


@pytest.mark.parametrize("name", LISTS)
def test_the_openapi_document_describes_the_paging(client, name):
    operation = client.get("/openapi.json").json["paths"][f"/api/{name}"]["get"]
    parameters = {parameter["name"]: parameter for parameter in operation["parameters"]
                  if parameter["in"] == "query"}
    assert {"page", "pageSize"} <= set(parameters)
    assert "whole list" in parameters["page"]["description"]
    assert parameters["pageSize"]["schema"]["maximum"] == 500
    assert "X-Total-Count" in operation["responses"]["200"]["headers"]


def test_a_page_of_v2_flows_shows_each_flow_as_its_own_get_does(app, client, org):
    """/v2/flows reads the settings, schedules, drafts and time zones of a page at once: each flow must read as GET
    /v2/flows/<id> (one at a time) shows it: a v2 flow with a draft, settings and a cron in a zone of its own, one
    with a cron following the account's zone, a Canvas workflow (no settings) scheduled in Quartz, one never
    scheduled."""
    from tests.api.test_v2_support import V2, linear_body

    v2 = V2(app, client, org)
    client.post("/api/AccountTimeZone", json={"timeZone": "America/New_York"}, headers=org.admin_headers)
    first = v2.call("POST", "/v2/flows", linear_body(v2.credential, org.id, "Drafted")).json["data"]["id"]
    patched = v2.call("PATCH", f"/v2/flows/{first}", {"data": {"type": "flow", "id": first, "attributes": {
        "type": "long_running", "cron": "0 9 * * 1-5", "time_zone": "Asia/Tokyo", "stats_enabled": False}}})
    assert patched.status_code == 200, patched.json
    draft = v2.call("PUT", f"/v2/flows/{first}/draft", {"data": {"type": "flow-draft", "attributes": {"name": "Next"}}})
    assert draft.status_code in (200, 201), draft.json
    second = v2.call("POST", "/v2/flows", linear_body(v2.credential, org.id, "Following")).json["data"]["id"]
    patched = v2.call("PATCH", f"/v2/flows/{second}", {"data": {"type": "flow", "id": second,
                                                                "attributes": {"cron": "*/5 * * * *"}}})
    assert patched.status_code == 200, patched.json
    template_id = published_template(client, org.admin_headers)
    scheduled = new_workflow(client, org.admin_headers, template_id, file_hub_app(client, org.admin_headers))
    assert client.post("/api/WorkflowScheduler", headers=org.admin_headers, json={
        "workflowId": scheduled, "isScheduled": True,
        "scheduleFrequency": '{"cronSchedule": "0 0 12 * * ?"}'}).status_code == 200
    new_workflow(client, org.admin_headers, template_id, file_hub_app(client, org.admin_headers))
    listed = v2.call("GET", "/v2/flows", **{"page[size]": "2"}).json["data"]
    listed += v2.call("GET", "/v2/flows", **{"page[size]": "2", "page[number]": "2"}).json["data"]
    assert len(listed) == 4
    for flow in listed:
        assert flow == v2.call("GET", f"/v2/flows/{flow['id']}").json["data"]
    by_id = {flow["id"]: flow for flow in listed}
    assert by_id[first]["attributes"]["time_zone"] == "Asia/Tokyo" and "draft" in by_id[first]["relationships"]
    assert (by_id[first]["attributes"]["type"], by_id[first]["attributes"]["stats_enabled"]) == ("long_running", False)
    assert by_id[second]["attributes"]["time_zone"] == "America/New_York"
    assert by_id[scheduled]["attributes"]["cron"] == "0 0 12 * * ?"


# Lists newest first, page by page: a page past the middle of a list reads its ids from the other end, in the
# reverse order (canvas.workflows.service.slice_of); the pages must still make up the list that one page shows.
# (path, its filter, its paging parameters' names)
NEWEST_FIRST = [("/api/WorkflowRuns", {"workflowId": "{workflow}"}, "page", "pageSize"),
                ("/api/AuditLog", {}, "page", "pageSize"),
                ("/v2/executions", {}, "page[number]", "page[size]"),
                ("/v2/audit-events", {}, "page[number]", "page[size]"),
                ("/v2/flows", {"sort": "-name"}, "page[number]", "page[size]")]  # the names tie: W0 and W1 twice


@pytest.mark.parametrize(("path", "query", "number", "size"), NEWEST_FIRST, ids=[case[0] for case in NEWEST_FIRST])
def test_pages_of_a_list_newest_first_make_up_the_whole_list(app, client, filled, path, query, number, size):
    from canvas.models import WorkflowRun
    from tests.api.test_v2_support import basic_headers

    workflow_id = filled["owned"][filled["admin_id"]][0]
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    # seven runs, four queued at the same instant (the id breaks the tie)
    runs = [{"id": uuid.uuid4(), "workflow_id": uuid.UUID(workflow_id), "account_id": uuid.UUID(filled["admin_id"]),
             "status": "Succeeded", "trigger": "manual", "run_from_block": 1, "run_till_block": 1, "dry_run": False,
             "cancel_requested": False, "lease_token": 0, "dispatch_count": 1,
             "date_queued": start + timedelta(minutes=min(n, 3)), "date_finished": start + timedelta(minutes=n)}
            for n in range(7)]
    with app.extensions["canvas"].db.engine.begin() as connection:
        connection.execute(insert(WorkflowRun), runs)
    headers = basic_headers(app, filled["admin_id"], filled["admin"]) if path.startswith("/v2/") else filled["admin"]
    query = {name: value.format(workflow=workflow_id) for name, value in query.items()}

    def items(**paging) -> list:
        answer = client.get(path, query_string={**query, **paging}, headers=headers)
        assert answer.status_code == 200, answer.get_data(as_text=True)
        return answer.json["data"] if path.startswith("/v2/") else answer.json

    whole = items(**{size: 500})
    assert len(whole) >= 7
    for page_size in (1, 2, 3):
        pages = [item for page in range(1, len(whole) // page_size + 2)
                 for item in items(**{number: page, size: page_size})]
        assert pages == whole, page_size
