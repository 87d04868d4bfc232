"""The audit log: an entry for each kind of change, in both dialects, with who (and for whom), when, what and the
before/after of the changed fields, never a secret; read by Admins and SuperPartners only, paged and filtered."""
from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from tests.api.test_applications import FTP_APP, register
from tests.api.test_v2_support import V2, basic_headers
from tests.api.test_workflow_upgrade import publish_new_version, version_two
from tests.api.workflow_helpers import file_hub_app, new_workflow, published_template

pytest_plugins = ["tests.servers.fixtures"]
SECRET_MARKER = "(changed)"


def audit_log(client, headers, **params) -> list[dict]:
    answer = client.get("/api/AuditLog", headers=headers, query_string={"pageSize": 500, **params})
    assert answer.status_code == 200, answer.json
    return answer.json


def entry(entries: list[dict], action: str, object_id: str | None = None) -> dict:
    found = [each for each in entries if each["action"] == action and object_id in (None, each["objectId"])]
    assert len(found) == 1, (action, [each["action"] for each in entries])
    return found[0]


# --- each kind of change -----------------------------------------------------------------------------------------

def test_account_keys_and_ip_allowlist_changes_are_recorded(client, org):
    created = client.post("/api/Account", headers=org.admin_headers, json={"email": "new.user@acme.test",
                                                                            "firstName": "Ann", "activated": True})
    assert created.status_code == 200, created.json
    assert client.post("/api/AccountKeys", headers=org.admin_headers,
                       json={"accountId": created.json}).status_code == 200
    assert client.post("/api/IpAllowlist", headers=org.admin_headers,
                       json={"cidrs": ["127.0.0.0/8"]}).status_code == 200

    entries = audit_log(client, org.admin_headers)
    account = entry(entries, "account.create", created.json)
    assert account["objectType"] == "account" and account["organizationId"] == org.id
    assert (account["actorId"], account["actorKind"], account["actingAsId"]) == (org.admin_id, "api_key", None)
    assert account["changes"]["email"] == {"before": None, "after": "new.user@acme.test"}
    assert account["changes"]["first_name"] == {"before": None, "after": "Ann"}
    keys = entry(entries, "account.keys.rotate", created.json)
    assert keys["changes"] == {"apiKeys": {"before": SECRET_MARKER, "after": SECRET_MARKER}}
    allowlist = entry(entries, "organization.ip_allowlist.update", org.id)
    assert allowlist["changes"] == {"ip_allowlist": {"before": [], "after": ["127.0.0.0/8"]}}
    assert datetime.fromisoformat(allowlist["time"]) > datetime.now(timezone.utc) - timedelta(minutes=1)


def test_application_changes_are_recorded_without_their_credentials(client, org, ftp_server):
    registered = register(client, org.admin_headers, FTP_APP, ftp_server.credentials(), tag_text="Depot")
    assert registered.status_code == 200, registered.json
    updated = client.post("/api/UpdateRegApplication", headers=org.admin_headers, json={
        "id": registered.json, "tagText": "Depot 2", "credentialsJson": json.dumps({"port": ftp_server.port})})
    assert updated.status_code == 200, updated.json
    assert client.get(f"/api/DeleteRegApplication/{registered.json}", headers=org.admin_headers).status_code == 200

    answer = client.get("/api/AuditLog", headers=org.admin_headers)
    entries = answer.json
    made = entry(entries, "application.register", registered.json)
    assert made["changes"]["tag_text"] == {"before": None, "after": "Depot"}
    assert made["changes"]["credentials_ciphertext"] == {"before": None, "after": SECRET_MARKER}
    changed = entry(entries, "application.update", registered.json)
    assert changed["changes"]["tag_text"] == {"before": "Depot", "after": "Depot 2"}
    assert changed["changes"]["credentials_ciphertext"] == {"before": SECRET_MARKER, "after": SECRET_MARKER}
    removed = entry(entries, "application.delete", registered.json)
    assert removed["changes"]["credentials_ciphertext"] == {"before": SECRET_MARKER, "after": None}
    assert ftp_server.password not in answer.get_data(as_text=True)


def test_template_workflow_and_schedule_changes_are_recorded(client, org):
    template_id = published_template(client, org.admin_headers)
    registered_id = file_hub_app(client, org.admin_headers)
    workflow_id = new_workflow(client, org.admin_headers, template_id, registered_id, name="Nightly")
    assert client.post("/api/UpdateWorkflow", headers=org.admin_headers,
                       json={"id": workflow_id, "name": "Nightly export"}).status_code == 200
    assert client.post("/api/WorkflowScheduler", headers=org.admin_headers, json={
        "workflowId": workflow_id, "isScheduled": True,
        "scheduleFrequency": json.dumps({"cronSchedule": "0 0 3 * * ?"})}).status_code == 200
    assert client.post("/api/WorkflowSchedulePolicy", headers=org.admin_headers,
                       json={"workflowId": workflow_id, "overlapPolicy": "queue"}).status_code == 200
    assert client.get(f"/api/DeleteWorkflow/{workflow_id}", headers=org.admin_headers).status_code == 200

    entries = audit_log(client, org.admin_headers)
    assert entry(entries, "template.create", template_id)["changes"]["state"] == {"before": None, "after": "Draft"}
    published = entry(entries, "template.publish", template_id)["changes"]
    assert published["state"] == {"before": "Draft", "after": "Published"}
    created = entry(entries, "workflow.create", workflow_id)["changes"]
    assert created["name"] == {"before": None, "after": "Nightly"}
    assert created["applications"] == {"before": None, "after": {"CMAF": registered_id}}
    renamed = entry(entries, "workflow.update", workflow_id)
    assert renamed["changes"] == {"name": {"before": "Nightly", "after": "Nightly export"}}
    scheduled = entry(entries, "schedule.update", workflow_id)["changes"]
    assert scheduled["isScheduled"] == {"before": False, "after": True}
    assert scheduled["cronSchedule"] == {"before": None, "after": "0 0 3 * * ?"}
    policy = entry(entries, "schedule.policy.update", workflow_id)["changes"]
    assert policy == {"overlapPolicy": {"before": "skip", "after": "queue"}}
    deleted = entry(entries, "workflow.delete", workflow_id)["changes"]
    assert deleted["is_scheduled"] == {"before": True, "after": False}
    assert deleted["date_deleted"]["before"] is None and deleted["date_deleted"]["after"]


def test_v2_flow_webhook_callback_and_key_changes_are_recorded_without_secrets(app, client, org):
    v2 = V2(app, client, org)
    flow_id = v2.create("Orders")["id"]
    renamed = v2.call("PATCH", f"/v2/flows/{flow_id}",
                      {"data": {"type": "flow", "id": flow_id, "attributes": {"name": "Orders in"}}})
    assert renamed.status_code == 200, renamed.json
    draft = v2.call("PUT", f"/v2/flows/{flow_id}/draft", {"data": {"type": "flow-draft",
                                                                   "attributes": {"name": "Orders next"}}})
    assert draft.status_code in (200, 201), draft.json
    hmac_secret = "hmac-" + uuid.uuid4().hex
    hook = v2.call("POST", f"/v2/flows/{flow_id}/webhooks",
                   {"data": {"type": "webhook", "attributes": {"hmac": {"secret": hmac_secret}}}})
    assert hook.status_code == 201, hook.json
    callback = v2.call("POST", f"/v2/flows/{flow_id}/callbacks",
                       {"data": {"type": "callback", "attributes": {"url": "https://example.test/hook"}}})
    assert callback.status_code == 201, callback.json
    key = v2.call("POST", "/v2/api-keys")
    assert key.status_code == 201, key.json
    assert v2.call("DELETE", f"/v2/flows/{flow_id}/webhooks/{hook.json['data']['id']}").status_code == 204
    assert v2.call("DELETE", f"/v2/flows/{flow_id}").status_code == 204

    answer = v2.call("GET", "/v2/audit-events", **{"page[size]": 500})
    assert answer.status_code == 200, answer.json
    events = [{"action": event["attributes"]["action"], "objectId": event["attributes"]["object_id"],
               **event["attributes"]} for event in answer.json["data"]]
    assert entry(events, "flow.create", flow_id)["changes"]["name"] == {"before": None, "after": "Orders"}
    assert entry(events, "flow.update", flow_id)["changes"]["name"] == {"before": "Orders", "after": "Orders in"}
    assert entry(events, "flow.draft.save", flow_id)["changes"]["name"] == {"before": None, "after": "Orders next"}
    made_hook = entry(events, "webhook.create", hook.json["data"]["id"])["changes"]
    assert made_hook["hmac_secret"] == {"before": None, "after": SECRET_MARKER}
    assert made_hook["token_hash"] == {"before": None, "after": SECRET_MARKER}
    assert made_hook["workflow_id"] == {"before": None, "after": flow_id}
    assert entry(events, "webhook.delete", hook.json["data"]["id"])["changes"]["hmac_secret"]["after"] is None
    made_callback = entry(events, "callback.create", callback.json["data"]["id"])["changes"]
    assert made_callback["secret"] == {"before": None, "after": SECRET_MARKER}
    assert made_callback["url"] == {"before": None, "after": "https://example.test/hook"}
    assert entry(events, "account.keys.add", org.admin_id)["changes"] == {
        "apiKeys": {"before": SECRET_MARKER, "after": SECRET_MARKER}}
    assert entry(events, "flow.delete", flow_id)["object_type"] == "flow"
    shown = answer.get_data(as_text=True)
    for secret in (hmac_secret, callback.json["data"]["attributes"]["secret"],
                   key.json["data"]["attributes"]["secret_key"], hook.json["data"]["attributes"]["url"].rsplit("/")[-1]):
        assert secret not in shown


def test_the_remaining_kinds_of_change_are_recorded(app, client, org):
    template_id = published_template(client, org.admin_headers)
    registered_id = file_hub_app(client, org.admin_headers)
    workflow_id = new_workflow(client, org.admin_headers, template_id, registered_id)
    publish_new_version(client, org.admin_headers, template_id, {**version_two("v2.jsonl"), "name": "Renamed"},
                        "1.1.0")
    assert client.post("/api/UpgradeWorkflow", headers=org.admin_headers,
                       json={"id": workflow_id}).status_code == 200
    assert client.post("/api/RegApplicationGrants", headers=org.admin_headers, json={
        "id": registered_id, "restricted": True, "workflowIds": [workflow_id]}).status_code == 200
    assert client.post("/api/VerifyRegApplication", headers=org.admin_headers,
                       json={"id": registered_id}).status_code == 200
    assert client.post("/api/AccountTimeZone", headers=org.admin_headers,
                       json={"timeZone": "Europe/Oslo"}).status_code == 200
    v2 = V2(app, client, org)
    flow_id = v2.create("Timer", cron="0 5 * * *")["id"]
    assert v2.call("POST", f"/v2/flows/{flow_id}/start").status_code == 202
    assert v2.call("POST", f"/v2/flows/{flow_id}/stop").status_code == 202
    draft = {"data": {"type": "flow-draft", "attributes": {"description": "next"}}}
    assert v2.call("PUT", f"/v2/flows/{flow_id}/draft", draft).status_code in (200, 201)
    assert v2.call("POST", f"/v2/flows/{flow_id}/draft/publish").status_code == 200
    assert v2.call("PUT", f"/v2/flows/{flow_id}/draft", draft).status_code in (200, 201)
    assert v2.call("DELETE", f"/v2/flows/{flow_id}/draft").status_code == 204
    callback = v2.call("POST", f"/v2/flows/{flow_id}/callbacks",
                       {"data": {"type": "callback", "attributes": {"url": "https://example.test/hook"}}}).json
    assert v2.call("DELETE", f"/v2/flows/{flow_id}/callbacks/{callback['data']['id']}").status_code == 204

    entries = audit_log(client, org.admin_headers)
    assert entry(entries, "template.update", template_id)["changes"]["name"]["after"] == "Renamed"
    upgraded = entry(entries, "workflow.upgrade", workflow_id)["changes"]
    assert upgraded["template_version"] == {"before": "1.0.0", "after": "1.1.0"}
    assert len(upgraded["chain"]["after"]) == len(upgraded["chain"]["before"]) + 1
    grants = entry(entries, "application.grants.update", registered_id)["changes"]
    assert grants["restricted_to_grants"] == {"before": False, "after": True}
    assert grants["grants"] == {"before": [], "after": [workflow_id]}
    assert entry(entries, "application.reverify", registered_id)["objectType"] == "application"
    zone = entry(entries, "account.time_zone.update", org.admin_id)["changes"]
    assert zone == {"time_zone": {"before": None, "after": "Europe/Oslo"}}
    assert entry(entries, "flow.start", flow_id)["changes"]["is_scheduled"] == {"before": False, "after": True}
    assert entry(entries, "flow.stop", flow_id)["changes"]["is_scheduled"] == {"before": True, "after": False}
    assert [each["changes"]["isScheduled"] for each in entries if each["action"] == "schedule.update"
            and each["objectId"] == flow_id and "isScheduled" in each["changes"]] == [
        {"before": True, "after": False}, {"before": False, "after": True}]
    assert entry(entries, "flow.draft.publish", flow_id)["objectType"] == "flow"
    assert entry(entries, "flow.update", flow_id)["changes"]["description"]["after"] == "next"
    assert entry(entries, "flow.draft.delete", flow_id)["changes"]["description"]["before"] == "next"
    assert entry(entries, "callback.delete", callback["data"]["id"])["changes"]["secret"] == {
        "before": SECRET_MARKER, "after": None}


def test_a_change_made_for_a_managed_account_names_both(client, org):
    user_id, _ = org.add_account("User")
    as_user = {**org.admin_headers, "ManagedAccountId": user_id, "X-Request-ID": "req-audit-1"}
    registered_id = file_hub_app(client, as_user)
    made = entry(audit_log(client, org.admin_headers), "application.register", registered_id)
    assert (made["actorId"], made["actingAsId"]) == (org.admin_id, user_id)
    assert made["requestId"] == "req-audit-1"
    assert made["changes"]["account_id"] == {"before": None, "after": user_id}


def test_a_refused_change_leaves_no_entry(client, org):
    before = audit_log(client, org.admin_headers)
    duplicate = client.post("/api/Account", headers=org.admin_headers, json={"email": "x@acme.test"})
    again = client.post("/api/Account", headers=org.admin_headers, json={"email": "X@acme.test"})
    assert (duplicate.status_code, again.status_code) == (200, 409)
    bad = client.post("/api/IpAllowlist", headers=org.admin_headers, json={"cidrs": ["not-a-network"]})
    assert bad.status_code == 400
    after = audit_log(client, org.admin_headers)
    assert [each["action"] for each in after[:len(after) - len(before)]] == ["account.create"]


# --- who may read it -------------------------------------------------------------------------------------------

def test_only_admins_and_super_partners_read_it_and_only_their_organization(app, client, org, make_org):
    user_id, user_headers = org.add_account("User")
    _, partner_headers = org.add_account("SuperPartner")
    other = make_org("Other")
    file_hub_app(client, other.admin_headers)

    refused = client.get("/api/AuditLog", headers=user_headers)
    assert refused.status_code == 403 and refused.json["State"] == 403 and "audit log" in refused.json["Msg"]
    assert client.get("/api/AuditLog", headers=partner_headers).status_code == 200
    own = audit_log(client, org.admin_headers)
    assert own and {each["organizationId"] for each in own} == {org.id}
    assert not [each for each in own if each["action"] == "application.register"]

    v2_refused = client.get("/v2/audit-events", headers=basic_headers(app, user_id, user_headers))
    assert v2_refused.status_code == 403 and v2_refused.json["errors"][0]["status"] == "403"


# --- paging and filters ----------------------------------------------------------------------------------------

@pytest.fixture()
def five_allowlist_changes(client, org) -> list[str]:
    cidrs = [f"127.0.0.{n}/32" for n in range(1, 6)]
    for cidr in cidrs:
        assert client.post("/api/IpAllowlist", headers=org.admin_headers,
                           json={"cidrs": ["127.0.0.0/8", cidr]}).status_code == 200
    return cidrs


def test_canvas_paging_is_newest_first_with_the_total_in_x_total_count(client, org, five_allowlist_changes):
    action = {"action": "organization.ip_allowlist.update"}
    first = client.get("/api/AuditLog", headers=org.admin_headers, query_string={**action, "page": 1, "pageSize": 2})
    third = client.get("/api/AuditLog", headers=org.admin_headers, query_string={**action, "page": 3, "pageSize": 2})
    assert first.headers["X-Total-Count"] == third.headers["X-Total-Count"] == "5"
    shown = [each["changes"]["ip_allowlist"]["after"][1] for each in first.json + third.json]
    assert shown == list(reversed(five_allowlist_changes))[:2] + five_allowlist_changes[:1]
    times = [each["time"] for each in audit_log(client, org.admin_headers)]
    assert times == sorted(times, reverse=True)


def test_canvas_filters(client, org, five_allowlist_changes):
    every = audit_log(client, org.admin_headers)
    assert {each["action"] for each in audit_log(client, org.admin_headers, objectType="organization")} == {
        "organization.create", "organization.ip_allowlist.update"}
    assert {each["objectId"] for each in audit_log(client, org.admin_headers, objectId=org.admin_id)} == {
        org.admin_id}
    assert audit_log(client, org.admin_headers, actorId=org.admin_id) == [
        each for each in every if each["actorId"] == org.admin_id]
    assert len([each for each in every if each["actorId"] == org.admin_id]) == 5
    middle = every[2]["time"]
    since = audit_log(client, org.admin_headers, **{"from": middle})
    until = audit_log(client, org.admin_headers, to=middle)
    assert since == every[:3] and until == every[3:]


def test_v2_paging_and_filters(app, client, org, five_allowlist_changes):
    v2 = V2(app, client, org)
    answer = v2.call("GET", "/v2/audit-events", **{"filter[action]": "organization.ip_allowlist.update",
                                                   "page[number]": 2, "page[size]": 2})
    assert answer.status_code == 200
    assert answer.json["meta"] == {"page": 2, "per_page": 2, "total": 5, "total_pages": 3}
    assert "next" in answer.json["links"] and "prev" in answer.json["links"]
    event = answer.json["data"][0]
    assert event["type"] == "audit-event" and event["attributes"]["workspace_id"] == org.id
    assert event["attributes"]["changes"]["ip_allowlist"]["after"][1] == five_allowlist_changes[2]
    one = v2.call("GET", event["links"]["self"])
    assert one.status_code == 200 and one.json["data"] == event
    actor = v2.call("GET", "/v2/audit-events", **{"filter[actor]": org.admin_id,
                                                  "filter[object_type]": "application"})
    assert [each["attributes"]["action"] for each in actor.json["data"]] == ["application.register"]
    assert actor.json["data"][0]["attributes"]["object_id"] == v2.credential
    later = v2.call("GET", "/v2/audit-events", **{"filter[from]": "2999-01-01T00:00:00Z"})
    assert later.json["data"] == [] and later.json["meta"]["total"] == 0


CANVAS_BAD_QUERIES = [("from", "yesterday"), ("to", "2026-13-01"), ("actorId", "me"), ("pageSize", "0"),
                      ("action", "x" * 65)]
V2_BAD_QUERIES = [("filter[from]", "yesterday"), ("filter[actor]", "me"), ("page[size]", "0"),
                  ("filter[object_id]", "x" * 65), ("filter[colour]", "red")]


def test_a_bad_query_is_a_400_naming_the_parameter_in_either_dialect(app, client, org):
    for parameter, value in CANVAS_BAD_QUERIES:  # one app for every case: these tests are about the answer only
        answer = client.get("/api/AuditLog", headers=org.admin_headers, query_string={parameter: value})
        assert answer.status_code == 400 and parameter in answer.json["Msg"], (parameter, answer.json)
    v2 = V2(app, client, org)
    for parameter, value in V2_BAD_QUERIES:
        answer = v2.call("GET", "/v2/audit-events", **{parameter: value})
        assert answer.status_code == 400, (parameter, answer.json)
        assert answer.json["errors"][0]["source"]["parameter"] == parameter


def test_v2_unknown_or_foreign_event_is_a_404(app, client, org, make_org):
    other = make_org("Other")
    foreign = audit_log(client, other.admin_headers)[0]["id"]
    v2 = V2(app, client, org)
    assert v2.call("GET", f"/v2/audit-events/{foreign}").status_code == 404
    assert v2.call("GET", "/v2/audit-events/not-an-id").status_code == 404


def test_secrets_inside_json_values_are_masked_but_their_change_still_shows():
    from canvas.audit.service import SECRET_MARKER, changes_between

    before = {"chain_overrides": [{"variables": {"apiKeys": ["k-old-123"], "badgeNo": None}}]}
    after = {"chain_overrides": [{"variables": {"apiKeys": ["k-new-456"], "badgeNo": None}}]}
    changes = changes_between(before, after)
    assert "k-old-123" not in str(changes) and "k-new-456" not in str(changes)
    assert changes["chain_overrides"]["after"][0]["variables"] == {"apiKeys": SECRET_MARKER, "badgeNo": None}
    assert changes_between(after, after) == {}
