"""Console schedules: a workflow's schedule page (on / off, the cron with its next fire times, the time zone, the
overlap and misfire policies; errors beside their fields), the preview fragment the page's script asks for, and the
occurrence ledger; each only for the workflow's own account, each change through the API's services and audited."""
from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from tests.api.workflow_helpers import published_template, record_occurrences
from tests.console.conftest import Browser, email_of, signed_in
from tests.integration.run_helpers import THREE_BLOCKS, chain_template, make_workflow

RUN_ID = uuid.uuid4()
NIGHTLY = "0 0 2 * * ?"
FIRE_TIME = re.compile(r'<li><time datetime="([^"]+)">')


@pytest.fixture()
def workflow_id(client, org) -> str:
    return make_workflow(client, org.admin_headers)


@pytest.fixture()
def admin(app, org) -> Browser:
    return signed_in(app, org.admin_id)


def _schedule_path(workflow_id: str) -> str:
    return f"/console/workflows/{workflow_id}/schedule"


def _api_schedule(client, headers, workflow_id: str) -> dict:
    answer = client.get(f"/api/WorkflowSchedule?workflowId={workflow_id}", headers=headers)
    assert answer.status_code == 200, answer.json
    return answer.json


def _set_by_api(client, headers, workflow_id: str, cron: str = NIGHTLY, zone: str = "Europe/Oslo") -> None:
    frequency = json.dumps({"cronSchedule": cron, "timeZone": zone})
    answer = client.post("/api/WorkflowScheduler", headers=headers,
                         json={"workflowId": workflow_id, "isScheduled": True, "scheduleFrequency": frequency})
    assert answer.status_code == 200, answer.json


def _form(**changes) -> dict:
    """The schedule form as a browser sends it (an unchecked checkbox is not sent at all)."""
    values = {"isScheduled": "true", "cronSchedule": NIGHTLY, "cronDialect": "quartz", "timeZone": "Europe/Oslo",
              "overlapPolicy": "skip", "misfirePolicy": "coalesce", "intent": "save"}
    values.update(changes)
    return {key: value for key, value in values.items() if value is not None}


def _error_beside(page: str, field: str) -> str:
    match = re.search(rf'<p class="error" id="{field}-error" role="alert">([^<]*)</p>', page)
    assert match, f"no error beside {field}"
    return match.group(1)


def _audit(client, headers, action: str, workflow_id: str) -> list[dict]:
    answer = client.get("/api/AuditLog", headers=headers, query_string={"action": action, "pageSize": 500})
    assert answer.status_code == 200, answer.json
    return [entry for entry in answer.json if entry["objectId"] == workflow_id]


# --- the schedule page -----------------------------------------------------------------------------------------------

def test_the_page_shows_the_schedule_and_its_next_ten_fire_times_in_its_zone(client, org, admin, workflow_id):
    _set_by_api(client, org.admin_headers, workflow_id)
    page = admin.get(_schedule_path(workflow_id))
    text = page.get_data(as_text=True)
    assert page.status_code == 200
    assert f'value="{NIGHTLY}"' in text and 'value="Europe/Oslo"' in text
    assert 'id="isScheduled" name="isScheduled" type="checkbox" value="true" checked' in text
    times = [datetime.fromisoformat(each) for each in FIRE_TIME.findall(text)]
    assert len(times) == 10 and "The next 10 fire times in Europe/Oslo" in text
    assert all((moment.hour, moment.minute) == (2, 0) for moment in times), "02:00 local, whatever the offset"
    assert f"/console/workflows/{workflow_id}/occurrences" in text
    assert '<label for="cronSchedule">' in text and '<label for="timeZone">' in text
    assert '<label for="overlapPolicy">' in text and '<label for="misfirePolicy">' in text


def test_saving_sets_the_schedule_and_policies_through_the_api_services_and_audits_them(client, org, admin,
                                                                                       workflow_id):
    path = _schedule_path(workflow_id)
    saved = admin.submit(path, _form(cronSchedule="0 30 6 ? * MON-FRI", timeZone="America/New_York",
                                     overlapPolicy="queue", misfirePolicy="run_each"))
    assert saved.status_code == 302 and saved.headers["Location"].endswith(f"{path}?saved=1")
    schedule = _api_schedule(client, org.admin_headers, workflow_id)
    assert schedule["isScheduled"] is True and schedule["cronSchedule"] == "0 30 6 ? * MON-FRI"
    assert (schedule["timeZone"], schedule["overlapPolicy"], schedule["misfirePolicy"]) == \
        ("America/New_York", "queue", "run_each")
    assert schedule["dateNextSchedule"] is not None
    assert _audit(client, org.admin_headers, "schedule.update", workflow_id)
    assert _audit(client, org.admin_headers, "schedule.policy.update", workflow_id)
    assert "The schedule was saved." in admin.get(saved.headers["Location"]).get_data(as_text=True)

    turned_off = admin.submit(path, _form(isScheduled=None, cronSchedule="0 30 6 ? * MON-FRI",
                                          timeZone="America/New_York", overlapPolicy="queue",
                                          misfirePolicy="run_each"))
    assert turned_off.status_code == 302
    off = _api_schedule(client, org.admin_headers, workflow_id)
    assert off["isScheduled"] is False and off["dateNextSchedule"] is None
    assert off["cronSchedule"] == "0 30 6 ? * MON-FRI", "turning off keeps the expression"
    assert len(_audit(client, org.admin_headers, "schedule.policy.update", workflow_id)) == 1, \
        "unchanged policies are not set again"


def test_an_empty_time_zone_follows_the_accounts_default(client, org, admin, workflow_id):
    answer = client.post("/api/AccountTimeZone", headers=org.admin_headers, json={"timeZone": "Asia/Tokyo"})
    assert answer.status_code == 200, answer.json
    page = admin.get(_schedule_path(workflow_id)).get_data(as_text=True)
    assert "the account's default (Asia/Tokyo)" in page
    assert admin.submit(_schedule_path(workflow_id), _form(timeZone="")).status_code == 302
    schedule = _api_schedule(client, org.admin_headers, workflow_id)
    assert schedule["timeZone"] == "Asia/Tokyo" and "timeZone" not in json.loads(schedule["scheduleFrequency"])


@pytest.mark.parametrize(("changes", "field", "message"), [
    ({"cronSchedule": "0 0 25 * * ?"}, "cronSchedule",
     "&#39;0 0 25 * * ?&#39; is not a valid Quartz cron expression: hours: &#39;25&#39; is out of range 0-23"),
    ({"cronSchedule": "0 0 2 * * MON"}, "cronSchedule", "one of them must be &#39;?&#39;"),
    ({"cronSchedule": "0 0 0 30 2 ?"}, "cronSchedule", "never fires"),
    ({"cronSchedule": ""}, "cronSchedule", "Enter a cron expression to turn the schedule on"),
    ({"timeZone": "Mars/Olympus"}, "timeZone", "timeZone: &#39;Mars/Olympus&#39; is not a known IANA time zone"),
    ({"cronDialect": "vixie"}, "cronDialect", "cronDialect: &#39;vixie&#39; is not one of quartz, unix"),
    ({"overlapPolicy": "sometimes"}, "overlapPolicy", "overlapPolicy: &#39;sometimes&#39; is not one of skip, queue"),
    ({"misfirePolicy": ""}, "misfirePolicy", "misfirePolicy: choose one of coalesce, skip, run_each"),
])
def test_a_bad_value_is_explained_beside_its_field_and_nothing_changes(client, org, admin, workflow_id, changes,
                                                                      field, message):
    before = _api_schedule(client, org.admin_headers, workflow_id)
    refused = admin.submit(_schedule_path(workflow_id), _form(**changes))
    text = refused.get_data(as_text=True)
    assert refused.status_code == 400
    assert message in _error_beside(text, field)
    assert 'aria-invalid="true"' in text
    typed = next(iter(changes.values()))
    if field in ("cronSchedule", "timeZone"):
        assert f'id="{field}" name="{field}" value="{typed}"' in text, "the form keeps what was typed"
    assert _api_schedule(client, org.admin_headers, workflow_id) == before
    assert not _audit(client, org.admin_headers, "schedule.update", workflow_id)


def test_the_preview_button_shows_the_fire_times_without_saving(client, org, admin, workflow_id):
    page = admin.submit(_schedule_path(workflow_id), _form(cronSchedule="0 15 10 L * ?", timeZone="UTC",
                                                           intent="preview"))
    text = page.get_data(as_text=True)
    assert page.status_code == 200
    times = [datetime.fromisoformat(each) for each in FIRE_TIME.findall(text)]
    assert len(times) == 10 and all((moment + timedelta(days=1)).day == 1 for moment in times), "last days"
    assert 'value="0 15 10 L * ?"' in text
    assert _api_schedule(client, org.admin_headers, workflow_id)["isScheduled"] is False
    bad = admin.submit(_schedule_path(workflow_id), _form(cronSchedule="0 61 * * * ?", intent="preview"))
    assert bad.status_code == 400
    assert "minutes: &#39;61&#39; is out of range 0-59" in _error_beside(bad.get_data(as_text=True), "cronSchedule")


def test_a_post_without_its_csrf_token_is_refused(client, org, admin, workflow_id):
    refused = admin.client.post(_schedule_path(workflow_id), data=_form())
    assert refused.status_code == 400
    assert _api_schedule(client, org.admin_headers, workflow_id)["isScheduled"] is False


# --- the preview fragment --------------------------------------------------------------------------------------------

def test_the_preview_fragment_lists_fire_times_in_the_zone_or_explains_the_error(admin, workflow_id):
    path = f"{_schedule_path(workflow_id)}/preview"
    answer = admin.get(path, query_string={"cron": "0 0 2 * * ?", "timeZone": "Europe/Oslo"})
    text = answer.get_data(as_text=True)
    assert answer.status_code == 200 and "<html" not in text
    times = [datetime.fromisoformat(each) for each in FIRE_TIME.findall(text)]
    assert len(times) == 10 and all(moment.hour == 2 for moment in times) and "in Europe/Oslo" in text
    unix = admin.get(path, query_string={"cron": "*/5 * * * *", "cronDialect": "unix", "timeZone": "UTC"})
    unix_times = [datetime.fromisoformat(each) for each in FIRE_TIME.findall(unix.get_data(as_text=True))]
    assert unix.status_code == 200 and len(unix_times) == 10 and all(t.minute % 5 == 0 for t in unix_times)
    bad = admin.get(path, query_string={"cron": "every day"})
    assert bad.status_code == 400
    assert "expected 6 or 7 fields" in bad.get_data(as_text=True)
    zone = admin.get(path, query_string={"cron": NIGHTLY, "timeZone": "Nowhere"})
    assert zone.status_code == 400 and "is not a known IANA time zone" in zone.get_data(as_text=True)
    never = admin.get(path, query_string={"cron": "0 0 0 30 2 ?"})
    assert never.status_code == 200 and "never fires" in never.get_data(as_text=True)


# --- another account's workflow --------------------------------------------------------------------------------------

def test_a_user_never_sees_or_changes_another_accounts_schedule(app, client, org, services, workflow_id):
    _set_by_api(client, org.admin_headers, workflow_id)
    _record(services, workflow_id, 1)
    user_id, _headers = org.add_account("User")
    user = signed_in(app, user_id)
    own_page = "/console/runs"  # a page of the user's own, for a valid form token
    assert user.get(_schedule_path(workflow_id)).status_code == 404
    assert user.get(f"{_schedule_path(workflow_id)}/preview?cron=0+0+2+*+*+%3F").status_code == 404
    ledger = user.get(f"/console/workflows/{workflow_id}/occurrences")
    assert ledger.status_code == 404 and str(RUN_ID) not in ledger.get_data(as_text=True)
    token = user.csrf_token(own_page)
    changed = user.client.post(_schedule_path(workflow_id), data={"csrf_token": token, **_form(isScheduled=None)})
    assert changed.status_code == 404
    assert _api_schedule(client, org.admin_headers, workflow_id)["isScheduled"] is True
    assert user.get("/console/workflows/not-an-id/occurrences").status_code == 404


# --- the occurrence ledger -------------------------------------------------------------------------------------------

def _record(services, workflow_id: str, count: int) -> list[datetime]:  # noqa: ANN001
    return record_occurrences(services, workflow_id, count, RUN_ID, datetime(2026, 5, 1, 0, 0, tzinfo=UTC))


def test_the_ledger_pages_newest_first_in_the_schedules_zone_with_reasons_and_runs(client, org, admin, services,
                                                                                  workflow_id):
    _set_by_api(client, org.admin_headers, workflow_id)  # Europe/Oslo: 00:00 UTC in May is 02:00 CEST
    _record(services, workflow_id, 60)
    path = f"/console/workflows/{workflow_id}/occurrences"
    first = admin.get(path)
    text = first.get_data(as_text=True)
    assert first.status_code == 200 and "60 occurrences, page 1 of 2." in text and "Times in Europe/Oslo" in text
    assert text.count("<tr class=\"outcome-") == 50
    assert text.index("2026-06-29 02:00:00 CEST") < text.index("2026-06-28 02:00:00 CEST"), "newest first"
    assert f"previous run {RUN_ID} still Running" in text
    assert f"{path}?page=2" in text
    last = admin.get(f"{path}?page=2").get_data(as_text=True)
    assert last.count("<tr class=\"outcome-") == 10 and "2026-05-01 02:00:00 CEST" in last
    assert f'href="/console/runs/{RUN_ID}"' in last, "a fired occurrence links to its run"
    fired = admin.get(f"{path}?outcome=fired").get_data(as_text=True)
    assert "1 occurrence." in fired and f'href="/console/runs/{RUN_ID}"' in fired
    assert "<option selected>fired</option>" in fired


def test_a_bad_ledger_filter_is_explained_beside_it(admin, workflow_id):
    path = f"/console/workflows/{workflow_id}/occurrences"
    refused = admin.get(f"{path}?outcome=exploded")
    assert refused.status_code == 400
    assert "outcome: &#39;exploded&#39; is not one of" in _error_beside(refused.get_data(as_text=True), "outcome")
    page = admin.get(f"{path}?page=0")
    assert page.status_code == 400 and "page must be a whole number" in _error_beside(page.get_data(as_text=True),
                                                                                       "page")


def test_a_deleted_workflows_ledger_stays_readable(client, org, admin, services, workflow_id):
    _record(services, workflow_id, 2)
    assert client.get(f"/api/DeleteWorkflow/{workflow_id}", headers=org.admin_headers).status_code == 200
    ledger = admin.get(f"/console/workflows/{workflow_id}/occurrences")
    assert ledger.status_code == 200 and "2 occurrences." in ledger.get_data(as_text=True)
    assert admin.get(_schedule_path(workflow_id)).status_code == 404


def test_an_admin_acting_as_a_user_sets_the_users_schedule_recorded_as_acting(app, client, org):
    user_id, user_headers = org.add_account("User")
    template_id = published_template(client, org.admin_headers, chain_template(THREE_BLOCKS))
    created = client.post("/api/Workflow", json={"workflowTemplateId": template_id, "applications": {}},
                          headers=user_headers)
    assert created.status_code == 200, created.json
    users_workflow = created.json
    admin = signed_in(app, org.admin_id)
    assert admin.get(_schedule_path(users_workflow)).status_code == 404, "not the admin's own workflow"
    acting = admin.submit("/console/act-as", {"email": email_of(app, user_id)}, form_page="/console/runs")
    assert acting.status_code == 302
    assert admin.submit(_schedule_path(users_workflow), _form()).status_code == 302
    assert _api_schedule(client, user_headers, users_workflow)["isScheduled"] is True
    entry, = _audit(client, org.admin_headers, "schedule.update", users_workflow)
    assert (entry["actorId"], entry["actingAsId"]) == (org.admin_id, user_id)
