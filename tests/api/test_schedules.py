"""WorkflowScheduler, WorkflowSchedule, WorkflowSchedulePolicy and AccountTimeZone through the API."""
from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest

from canvas.defaults import DEFAULT_SCHEDULER_FREQUENCY
from canvas.queueing.keys import schedule_changes_channel
from canvas.scheduling.quartz import parse
from tests.api.workflow_helpers import file_hub_app, new_workflow, published_template

DAILY = "0 0 2 ? * *"


@pytest.fixture()
def workflow_id(client, org) -> str:
    return new_workflow(client, org.admin_headers, published_template(client, org.admin_headers),
                        file_hub_app(client, org.admin_headers))


def frequency(cron: str, zone: str | None = None) -> str:
    return json.dumps({"cronSchedule": cron, **({"timeZone": zone} if zone else {})})


def schedule(client, headers, workflow_id, text, on=True):
    return client.post("/api/WorkflowScheduler", json={"workflowId": workflow_id, "isScheduled": on,
                                                       "scheduleFrequency": text}, headers=headers)


def next_fire(cron: str, zone: str, after: datetime) -> str:
    return parse(cron).next_fire_time(after, ZoneInfo(zone)).astimezone(timezone.utc).isoformat()


def test_turning_the_scheduler_on_computes_date_next_schedule(client, org, workflow_id):
    before = datetime.now(timezone.utc)
    answer = schedule(client, org.admin_headers, workflow_id, frequency(DAILY, "Europe/Oslo"))
    after = datetime.now(timezone.utc)
    assert answer.status_code == 200 and answer.json == "Workflow Scheduler enabled"
    workflow = client.get(f"/api/Workflow/{workflow_id}", headers=org.admin_headers).json
    assert workflow["isScheduled"] is True
    assert workflow["schedulerFrequency"] == frequency(DAILY, "Europe/Oslo")
    assert workflow["dateNextSchedule"] in {next_fire(DAILY, "Europe/Oslo", before),
                                            next_fire(DAILY, "Europe/Oslo", after)}
    assert datetime.fromisoformat(workflow["dateNextSchedule"]).astimezone(ZoneInfo("Europe/Oslo")).hour == 2


def test_turning_it_off_clears_date_next_schedule_and_keeps_the_frequency(client, org, workflow_id):
    schedule(client, org.admin_headers, workflow_id, frequency(DAILY))
    answer = client.post("/api/WorkflowScheduler", json={"workflowId": workflow_id, "isScheduled": False},
                         headers=org.admin_headers)
    assert answer.status_code == 200 and answer.json == "Workflow Scheduler disabled"
    workflow = client.get(f"/api/Workflow/{workflow_id}", headers=org.admin_headers).json
    assert (workflow["isScheduled"], workflow["dateNextSchedule"]) == (False, None)
    assert workflow["schedulerFrequency"] == frequency(DAILY)
    again = client.post("/api/WorkflowScheduler", json={"workflowId": workflow_id, "isScheduled": True},
                        headers=org.admin_headers)
    assert again.json == "Workflow Scheduler enabled", "on again with the stored frequency"


ON_OSLO = ' (schedule \'0 0 2 ? * *\')'
INVALID_FREQUENCIES = [
    pytest.param(frequency("0 0 12 ? * 8"),
                 "scheduleFrequency.cronSchedule: '0 0 12 ? * 8' is not a valid Quartz cron expression: "
                 "day-of-week: '8' is out of range 1-7 (SUN-SAT)", id="day-of-week-out-of-range"),
    pytest.param(frequency("0 0 12 * * *"),
                 "scheduleFrequency.cronSchedule: '0 0 12 * * *' is not a valid Quartz cron expression: "
                 "day-of-month and day-of-week are '*' and '*'; one of them must be '?'", id="both-day-fields"),
    pytest.param(frequency("0 */5 * * *"),
                 "scheduleFrequency.cronSchedule: '0 */5 * * *' is not a valid Quartz cron expression: expected 6 "
                 "or 7 fields", id="unix-five-fields"),
    pytest.param(frequency("@daily"), "scheduleFrequency.cronSchedule: '@daily' is not a valid Quartz cron",
                 id="macro"),
    pytest.param(frequency(DAILY, "Mars/Olympus_Mons"),
                 "scheduleFrequency.timeZone: 'Mars/Olympus_Mons' is not a known IANA time zone, e.g. "
                 "'Europe/Oslo' or 'UTC'" + ON_OSLO, id="unknown-zone"),
    pytest.param(frequency(DAILY, "europe/oslo"), "scheduleFrequency.timeZone: 'europe/oslo' is not a known IANA",
                 id="zone-names-are-case-sensitive"),
    pytest.param('{"cronSchedule": "0 0 2 ? * *"', "scheduleFrequency: '{\"cronSchedule\": \"0 0 2 ? * *\"' is not "
                 "valid JSON", id="invalid-json"),
    pytest.param('"0 0 2 ? * *"', "scheduleFrequency: '\"0 0 2 ? * *\"' must be a JSON object", id="not-an-object"),
    pytest.param('{"timeZone": "UTC"}', "scheduleFrequency.cronSchedule: missing in '{\"timeZone\": \"UTC\"}'",
                 id="no-cron"),
    pytest.param('{"cronSchedule": 5}', "scheduleFrequency.cronSchedule: must be a string, got 5", id="cron-number"),
    pytest.param('{"cronSchedule": "0 0 2 ? * *", "zone": "UTC"}', "scheduleFrequency.zone: unknown field",
                 id="unknown-key"),
    pytest.param({"cronSchedule": DAILY}, "scheduleFrequency: must be a JSON string holding", id="object-not-string"),
]


@pytest.mark.parametrize(("text", "message"), INVALID_FREQUENCIES)
def test_invalid_frequencies_are_400s_that_quote_the_text_and_name_the_field(client, org, workflow_id, text,
                                                                             message):
    answer = schedule(client, org.admin_headers, workflow_id, text)
    assert answer.status_code == 400 and answer.json["State"] == 400
    assert answer.json["Msg"].startswith(message), answer.json["Msg"]
    workflow = client.get(f"/api/Workflow/{workflow_id}", headers=org.admin_headers).json
    assert (workflow["isScheduled"], workflow["dateNextSchedule"], workflow["schedulerFrequency"]) == (
        False, None, DEFAULT_SCHEDULER_FREQUENCY)


def test_turning_on_without_any_frequency_is_a_400(client, org, workflow_id):
    answer = client.post("/api/WorkflowScheduler", json={"workflowId": workflow_id, "isScheduled": True},
                         headers=org.admin_headers)
    assert answer.status_code == 400
    assert answer.json["Msg"].startswith("scheduleFrequency: required to turn the scheduler on")


@pytest.mark.parametrize(("body", "message"), [
    ({"isScheduled": True, "scheduleFrequency": frequency(DAILY)}, "workflowId: Missing data for required field."),
    ({"workflowId": "nope", "isScheduled": True}, "workflowId: Not a valid UUID."),
    ({"workflowId": "<workflow>", "scheduleFrequency": frequency(DAILY)},
     "isScheduled: Missing data for required field."),
], ids=["no-workflow", "bad-workflow-id", "no-is-scheduled"])
def test_request_fields_are_validated(client, org, workflow_id, body, message):
    body = {key: workflow_id if value == "<workflow>" else value for key, value in body.items()}
    answer = client.post("/api/WorkflowScheduler", json=body, headers=org.admin_headers)
    assert answer.status_code == 400 and answer.json["Msg"] == message


def test_unknown_and_other_accounts_workflows_are_404(client, org, workflow_id):
    _other_id, other_headers = org.add_account("User")
    for target in (str(uuid.uuid4()), workflow_id):
        answer = schedule(client, other_headers, target, frequency(DAILY))
        assert answer.status_code == 404 and answer.json["Msg"] == f"Unknown workflow {target}"


def test_a_past_year_is_valid_but_never_fires_so_it_is_not_scheduled(client, org, workflow_id):
    """As Quartz refuses a trigger that will never fire, rather than enable it with no next fire time."""
    answer = schedule(client, org.admin_headers, workflow_id, frequency("0 0 0 1 1 ? 2020"))
    assert answer.status_code == 400 and answer.json["Msg"].startswith("scheduleFrequency.cronSchedule: "
                                                                       "'0 0 0 1 1 ? 2020' never fires")
    workflow = client.get(f"/api/Workflow/{workflow_id}", headers=org.admin_headers).json
    assert (workflow["isScheduled"], workflow["dateNextSchedule"]) == (False, None)


def test_a_change_is_announced_to_the_schedulers(app, client, org, workflow_id, services):
    pubsub = services.redis.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(schedule_changes_channel(services.settings["REDIS_PREFIX"]))
    pubsub.get_message(timeout=1)
    schedule(client, org.admin_headers, workflow_id, frequency(DAILY))
    message = pubsub.get_message(timeout=2)
    pubsub.close()
    assert message is not None and message["data"] == b"changed"


def test_the_schedule_view_shows_expression_zone_policies_and_next_time(client, org, workflow_id):
    schedule(client, org.admin_headers, workflow_id, frequency("0 0 2 ? * mon-fri", "Asia/Tokyo"))
    view = client.get(f"/api/WorkflowSchedule?workflowId={workflow_id}", headers=org.admin_headers).json
    assert view["cronSchedule"] == "0 0 2 ? * MON-FRI", "stored normalised"
    assert (view["timeZone"], view["overlapPolicy"], view["misfirePolicy"]) == ("Asia/Tokyo", "skip", "coalesce")
    assert view["isScheduled"] is True and view["dateNextSchedule"]


def test_policies_are_set_per_workflow(client, org, workflow_id):
    answer = client.post("/api/WorkflowSchedulePolicy", json={"workflowId": workflow_id, "overlapPolicy": "queue",
                                                              "misfirePolicy": "run_each"}, headers=org.admin_headers)
    assert answer.status_code == 200
    assert (answer.json["overlapPolicy"], answer.json["misfirePolicy"]) == ("queue", "run_each")
    partial = client.post("/api/WorkflowSchedulePolicy", json={"workflowId": workflow_id, "misfirePolicy": "skip"},
                          headers=org.admin_headers).json
    assert (partial["overlapPolicy"], partial["misfirePolicy"]) == ("queue", "skip")
    bad = client.post("/api/WorkflowSchedulePolicy", json={"workflowId": workflow_id, "overlapPolicy": "parallel"},
                      headers=org.admin_headers)
    assert bad.status_code == 400 and bad.json["Msg"].startswith("overlapPolicy: Must be one of: skip, queue")


def test_schedules_without_a_zone_follow_the_account_default(client, org, workflow_id):
    zone = client.post("/api/AccountTimeZone", json={"timeZone": "America/New_York"}, headers=org.admin_headers)
    assert zone.status_code == 200 and zone.json == {"accountId": org.admin_id, "timeZone": "America/New_York"}
    schedule(client, org.admin_headers, workflow_id, frequency(DAILY))
    view = client.get(f"/api/WorkflowSchedule?workflowId={workflow_id}", headers=org.admin_headers).json
    assert view["timeZone"] == "America/New_York"
    assert datetime.fromisoformat(view["dateNextSchedule"]).astimezone(ZoneInfo("America/New_York")).hour == 2
    client.post("/api/AccountTimeZone", json={"timeZone": "Asia/Kolkata"}, headers=org.admin_headers)
    moved = client.get(f"/api/WorkflowSchedule?workflowId={workflow_id}", headers=org.admin_headers).json
    assert moved["timeZone"] == "Asia/Kolkata"
    assert datetime.fromisoformat(moved["dateNextSchedule"]).astimezone(ZoneInfo("Asia/Kolkata")).hour == 2
    assert client.get("/api/AccountTimeZone", headers=org.admin_headers).json["timeZone"] == "Asia/Kolkata"


def test_a_schedule_naming_its_zone_ignores_the_account_default(client, org, workflow_id):
    schedule(client, org.admin_headers, workflow_id, frequency(DAILY, "Europe/Oslo"))
    client.post("/api/AccountTimeZone", json={"timeZone": "Asia/Kolkata"}, headers=org.admin_headers)
    view = client.get(f"/api/WorkflowSchedule?workflowId={workflow_id}", headers=org.admin_headers).json
    assert view["timeZone"] == "Europe/Oslo"


def test_an_unknown_account_zone_is_a_400_and_null_clears_it(client, org):
    bad = client.post("/api/AccountTimeZone", json={"timeZone": "Nowhere/Town"}, headers=org.admin_headers)
    assert bad.status_code == 400
    assert bad.json["Msg"] == "timeZone: 'Nowhere/Town' is not a known IANA time zone, e.g. 'Europe/Oslo' or 'UTC'"
    client.post("/api/AccountTimeZone", json={"timeZone": "Europe/Oslo"}, headers=org.admin_headers)
    cleared = client.post("/api/AccountTimeZone", json={"timeZone": None}, headers=org.admin_headers)
    assert cleared.json["timeZone"] is None


@pytest.mark.parametrize("zone", ["localtime", "Factory", "posixrules"])
def test_a_zone_file_that_is_no_iana_zone_is_refused(client, org, zone):
    """'localtime' is this machine's own zone (in the system's zone files, and a different zone on each machine)."""
    bad = client.post("/api/AccountTimeZone", json={"timeZone": zone}, headers=org.admin_headers)
    assert bad.status_code == 400 and bad.json["Msg"].startswith(f"timeZone: '{zone}' is not a known IANA time zone")


def test_the_extensions_are_listed_by_get_metadata_and_describe(client):
    names = {(entry["name"], entry["verb"]) for entry in client.get("/api/GetMetaData").json}
    assert {("WorkflowScheduler", "POST"), ("SchedulePreview", "POST"), ("ScheduleOccurrences", "GET"),
            ("WorkflowSchedulePolicy", "POST"), ("AccountTimeZone", "POST"), ("AccountTimeZone", "GET"),
            ("WorkflowSchedule", "GET")} <= names
    described = client.get("/api/Describe?name=UpdateWorkfowSchedulerApiDto").json
    assert {entry["propertyName"]: (entry["typeName"], entry["isRequired"]) for entry in described} == {
        "workflowId": ("guid", True), "isScheduled": ("boolean", True), "scheduleFrequency": ("string", False)}
