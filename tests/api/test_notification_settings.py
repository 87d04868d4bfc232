"""Per-workflow notification settings through both dialects: stored under engine names, shown back, validated with
a 4xx naming the field."""
from __future__ import annotations

import pytest

from tests.api.test_v2_support import V2
from tests.api.workflow_helpers import file_hub_app, new_workflow, published_template


@pytest.fixture()
def workflow_id(client, org) -> str:
    template_id = published_template(client, org.admin_headers)
    return new_workflow(client, org.admin_headers, template_id, file_hub_app(client, org.admin_headers))


@pytest.fixture()
def v2(app, client, org):
    return V2(app, client, org)


def update(client, org, workflow_id: str, **fields):
    return client.post("/api/UpdateWorkflow", headers=org.admin_headers, json={"id": workflow_id, **fields})


def test_canvas_workflow_settings_are_stored_shown_and_reset(client, org, workflow_id):
    assert client.get(f"/api/Workflow/{workflow_id}", headers=org.admin_headers).json["notificationSettings"] is None
    answer = update(client, org, workflow_id, notificationSettings={"onRecovery": False,
                                                                    "emails": ["Ops@Example.com", "ops@example.com"]})
    assert answer.status_code == 200, answer.json
    expected = {"onFailure": True, "onRecovery": False, "onMissedSchedule": True, "emails": ["ops@example.com"]}
    assert answer.json["notificationSettings"] == expected
    assert client.get(f"/api/Workflow/{workflow_id}", headers=org.admin_headers).json["notificationSettings"] == expected
    renamed = update(client, org, workflow_id, name="Renamed")  # absent: unchanged
    assert renamed.json["notificationSettings"] == expected
    reset = update(client, org, workflow_id, notificationSettings=None)
    assert reset.status_code == 200 and reset.json["notificationSettings"] is None


@pytest.mark.parametrize("settings, field", [
    ({"emails": ["not an address"]}, "emails"),
    ({"emails": ["a@b.example"] * 21}, "emails"),
    ({"onFailure": "yes"}, "onFailure"),
    ({"onFailur": True}, "onFailur"),
    ("every time", "notificationSettings"),
], ids=["bad-address", "too-many-addresses", "flag-not-boolean", "unknown-key", "not-an-object"])
def test_canvas_bad_settings_are_refused_naming_the_field(client, org, workflow_id, settings, field):
    answer = update(client, org, workflow_id, notificationSettings=settings)
    assert answer.status_code == 400 and field in answer.json["Msg"], answer.json
    shown = client.get(f"/api/Workflow/{workflow_id}", headers=org.admin_headers).json
    assert shown["notificationSettings"] is None


def test_v2_flow_attribute_is_created_patched_and_shown(v2):
    flow = v2.create("Told", notification_settings={"on_missed_schedule": False, "emails": ["team@example.com"]})
    expected = {"on_failure": True, "on_recovery": True, "on_missed_schedule": False, "emails": ["team@example.com"]}
    assert flow["attributes"]["notification_settings"] == expected
    patched = v2.call("PATCH", f"/v2/flows/{flow['id']}", {"data": {"type": "flow", "id": flow["id"], "attributes": {
        "notification_settings": {"on_failure": False}}}})
    assert patched.status_code == 200, patched.json
    assert patched.json["data"]["attributes"]["notification_settings"]["on_failure"] is False
    assert patched.json["data"]["attributes"]["notification_settings"]["emails"] == []
    shown = v2.call("GET", f"/v2/flows/{flow['id']}").json["data"]["attributes"]["notification_settings"]
    assert shown == {"on_failure": False, "on_recovery": True, "on_missed_schedule": True, "emails": []}
    cleared = v2.call("PATCH", f"/v2/flows/{flow['id']}", {"data": {"type": "flow", "id": flow["id"], "attributes": {
        "notification_settings": None}}})
    assert cleared.json["data"]["attributes"]["notification_settings"] is None


@pytest.mark.parametrize("settings, pointer", [
    ({"emails": ["nobody"]}, "/data/attributes/notification_settings/emails"),
    ({"emails": "ops@example.com"}, "/data/attributes/notification_settings/emails"),
    ({"on_recovery": 1}, "/data/attributes/notification_settings/on_recovery"),
    ({"onFailure": True}, "/data/attributes/notification_settings/onFailure"),
    ([], "/data/attributes/notification_settings"),
], ids=["bad-address", "emails-not-a-list", "flag-not-boolean", "unknown-key", "not-an-object"])
def test_v2_bad_settings_are_refused_naming_the_attribute(v2, settings, pointer):
    flow = v2.create("Strict")
    answer = v2.call("PATCH", f"/v2/flows/{flow['id']}", {"data": {"type": "flow", "id": flow["id"], "attributes": {
        "notification_settings": settings}}})
    assert answer.status_code == 400, answer.json
    assert answer.json["errors"][0]["source"]["pointer"] == pointer
    assert v2.call("GET", f"/v2/flows/{flow['id']}").json["data"]["attributes"]["notification_settings"] is None
