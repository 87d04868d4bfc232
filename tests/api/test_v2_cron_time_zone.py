"""The v2 `cron` (classic Unix cron, or Quartz) and `time_zone` attributes, and the schedule they share with the
Canvas dialect's WorkflowScheduler (scheduleFrequency's cronSchedule and timeZone)."""
from __future__ import annotations

import json
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest
from croniter import croniter

from tests.api.test_v2_support import V2, linear_body


@pytest.fixture()
def v2(app, client, org):
    return V2(app, client, org)


def patch(v2, flow_id: str, **attributes):
    return v2.call("PATCH", f"/v2/flows/{flow_id}", {"data": {"type": "flow", "id": flow_id,
                                                              "attributes": attributes}})


def canvas_schedule(v2, flow_id: str) -> dict:
    return v2.client.get(f"/api/WorkflowSchedule?workflowId={flow_id}", headers=v2.org.admin_headers).json


def canvas_scheduler(v2, flow_id: str, on: bool, frequency: dict | None):
    return v2.client.post("/api/WorkflowScheduler", json={
        "workflowId": flow_id, "isScheduled": on, "scheduleFrequency": json.dumps(frequency) if frequency else None},
        headers=v2.org.admin_headers)


def instant(text: str) -> datetime:
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def croniter_next(cron: str, zone: str, after: datetime) -> datetime:
    return croniter(cron, after.astimezone(ZoneInfo(zone))).get_next(datetime).astimezone(timezone.utc)


def assert_due_as_croniter(attributes: dict, cron: str, zone: str, before: datetime) -> None:
    """due_execution is croniter's next fire time, in the zone, after a moment just before the request."""
    assert instant(attributes["due_execution"]) in (croniter_next(cron, zone, before),
                                                    croniter_next(cron, zone, datetime.now(timezone.utc)))


# --- Unix cron --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("cron", ["0 9 * * 1-5", "0 9 * * 7", "0 9 * * 0,7", "30 6 1 * MON", "*/15 8-17 * jan-jun *",
                                  "0 9 * * mon-fri"])
def test_a_unix_cron_is_accepted_echoed_and_started_with_croniters_fire_times(v2, cron):
    flow = v2.create(cron=cron)
    assert (flow["attributes"]["cron"], flow["attributes"]["time_zone"]) == (cron, "UTC")
    before = datetime.now(timezone.utc)
    started = v2.call("POST", f"/v2/flows/{flow['id']}/start")
    assert started.status_code == 202, started.json
    attributes = started.json["data"]["attributes"]
    assert (attributes["status"], attributes["cron"]) == ("active", cron)
    assert_due_as_croniter(attributes, cron, "UTC", before)


def test_the_most_common_schedule_in_oslo(v2):
    flow = v2.create(cron="0 9 * * 1-5", time_zone="Europe/Oslo")
    assert (flow["attributes"]["cron"], flow["attributes"]["time_zone"]) == ("0 9 * * 1-5", "Europe/Oslo")
    before = datetime.now(timezone.utc)
    attributes = v2.call("POST", f"/v2/flows/{flow['id']}/start").json["data"]["attributes"]
    assert_due_as_croniter(attributes, "0 9 * * 1-5", "Europe/Oslo", before)
    local = instant(attributes["due_execution"]).astimezone(ZoneInfo("Europe/Oslo"))
    assert (local.hour, local.minute) == (9, 0) and local.weekday() < 5
    view = canvas_schedule(v2, flow["id"])
    assert (view["cronSchedule"], view["timeZone"], view["isScheduled"]) == ("0 9 * * 1-5", "Europe/Oslo", True)
    assert json.loads(view["scheduleFrequency"]) == {"cronSchedule": "0 9 * * 1-5", "timeZone": "Europe/Oslo",
                                                     "cronDialect": "unix"}


def test_the_canvas_dialect_turns_a_unix_schedule_off_and_on_again(v2):
    flow = v2.create(cron="0 9 * * 1-5", time_zone="Europe/Oslo")
    v2.call("POST", f"/v2/flows/{flow['id']}/start")
    assert canvas_scheduler(v2, flow["id"], False, None).status_code == 200
    assert canvas_scheduler(v2, flow["id"], True, None).status_code == 200, "the stored frequency parses again"
    got = v2.call("GET", f"/v2/flows/{flow['id']}").json["data"]["attributes"]
    assert (got["status"], got["cron"], got["time_zone"]) == ("active", "0 9 * * 1-5", "Europe/Oslo")
    view = canvas_schedule(v2, flow["id"])
    assert canvas_scheduler(v2, flow["id"], True, json.loads(view["scheduleFrequency"])).status_code == 200, \
        "what the Canvas dialect reads it may send back"


def test_the_canvas_preview_reads_a_unix_cron(v2):
    frequency = json.dumps({"cronSchedule": "0 9 * * 7", "cronDialect": "unix", "timeZone": "Europe/Oslo"})
    answer = v2.client.post("/api/SchedulePreview", json={"scheduleFrequency": frequency,
                                                          "after": "2026-01-01T00:00:00Z", "count": 2},
                            headers=v2.org.admin_headers)
    assert answer.status_code == 200, answer.json
    assert answer.json == ["2026-01-04T09:00:00+01:00", "2026-01-11T09:00:00+01:00"]


def test_the_canvas_dialect_still_refuses_an_unmarked_five_field_cron(v2):
    flow = v2.create()
    answer = canvas_scheduler(v2, flow["id"], True, {"cronSchedule": "0 9 * * 1-5"})
    assert answer.status_code == 400 and "not a valid Quartz cron expression" in answer.json["Msg"]


@pytest.mark.parametrize(("cron", "words"), [
    pytest.param("0 0 30 2 *", "never fires", id="february-30"),
    pytest.param("0 0 31 4,6,9,11 *", "never fires", id="31-in-30-day-months"),
    pytest.param("0 9 * * 8", "day-of-week: '8' is out of range 0-7", id="dow-8"),
    pytest.param("0 9 L * *", "not a Unix cron token", id="quartz-token-in-unix"),
    pytest.param("0 9 * * 5-2", "runs backwards", id="reversed-range"),
    pytest.param("nope", "not a valid", id="garbage"),
])
def test_a_bad_or_never_firing_cron_is_a_400_at_the_attribute(v2, cron, words):
    flow = v2.create()
    answer = patch(v2, flow["id"], cron=cron)
    assert answer.status_code == 400, answer.json
    error = answer.json["errors"][0]
    assert error["source"]["pointer"] == "/data/attributes/cron" and words in error["detail"], error
    assert v2.call("GET", f"/v2/flows/{flow['id']}").json["data"]["attributes"]["cron"] is None, "nothing kept"


@pytest.mark.parametrize("cron", [
    pytest.param("0 " + ",".join(str(minute) for minute in range(60)) + " " + ",".join(str(hour) for hour in range(24))
                 + " ? * *", id="quartz"),
    pytest.param(",".join(str(minute) for minute in range(60)) + " " + ",".join(str(hour) for hour in range(24))
                 + " * * *", id="unix"),
])
def test_a_cron_too_long_to_store_is_a_400(v2, cron):
    flow = v2.create()
    answer = patch(v2, flow["id"], cron=cron)
    assert answer.status_code == 400 and answer.json["errors"][0]["source"]["pointer"] == "/data/attributes/cron"
    canvas = canvas_scheduler(v2, flow["id"], True, {"cronSchedule": cron, "cronDialect": "unix"
                                                     if len(cron.split()) == 5 else "quartz"})
    assert canvas.status_code == 400 and "at most 200" in canvas.json["Msg"]


def test_a_never_firing_cron_is_refused_on_create_too(v2):
    document = linear_body(v2.credential, v2.org.id)
    document["data"]["attributes"]["cron"] = "0 0 30 2 *"
    answer = v2.call("POST", "/v2/flows", document)
    assert answer.status_code == 400 and answer.json["errors"][0]["source"]["pointer"] == "/data/attributes/cron"


def test_quartz_crons_keep_working_and_read_back_as_given(v2):
    flow = v2.create(cron="0 0/5 * * * ?")
    assert flow["attributes"]["cron"] == "0 0/5 * * * ?"
    started = v2.call("POST", f"/v2/flows/{flow['id']}/start")
    assert started.status_code == 202
    assert canvas_schedule(v2, flow["id"])["cronSchedule"] == "0 0/5 * * * ?"
    assert "cronDialect" not in json.loads(canvas_schedule(v2, flow["id"])["scheduleFrequency"])


# --- time zones shared with the Canvas schedule ----------------------------------------------------------------

def test_a_canvas_schedule_with_a_zone_shows_in_v2_and_starts(v2):
    flow = v2.create()
    answer = canvas_scheduler(v2, flow["id"], True, {"cronSchedule": "0 0 2,6 ? * TUE *", "timeZone": "Europe/Oslo"})
    assert answer.status_code == 200
    got = v2.call("GET", f"/v2/flows/{flow['id']}").json["data"]["attributes"]
    assert (got["status"], got["cron"], got["time_zone"]) == ("active", "0 0 2,6 ? * TUE *", "Europe/Oslo")
    assert v2.call("POST", f"/v2/flows/{flow['id']}/stop").status_code == 202
    started = v2.call("POST", f"/v2/flows/{flow['id']}/start")
    assert started.status_code == 202, started.json
    attributes = started.json["data"]["attributes"]
    assert (attributes["status"], attributes["time_zone"]) == ("active", "Europe/Oslo")
    local = instant(attributes["due_execution"]).astimezone(ZoneInfo("Europe/Oslo"))
    assert local.weekday() == 1 and local.hour in (2, 6), "a Tuesday at 02:00 or 06:00 Oslo time"
    assert canvas_schedule(v2, flow["id"])["timeZone"] == "Europe/Oslo"


def test_a_canvas_schedule_set_while_off_can_be_started_in_v2(v2):
    flow = v2.create()
    assert canvas_scheduler(v2, flow["id"], False, {"cronSchedule": "0 0 7 ? * *",
                                                    "timeZone": "Asia/Tokyo"}).status_code == 200
    got = v2.call("GET", f"/v2/flows/{flow['id']}").json["data"]["attributes"]
    assert (got["status"], got["cron"], got["time_zone"]) == ("inactive", "0 0 7 ? * *", "Asia/Tokyo")
    started = v2.call("POST", f"/v2/flows/{flow['id']}/start")
    assert started.status_code == 202
    local = instant(started.json["data"]["attributes"]["due_execution"]).astimezone(ZoneInfo("Asia/Tokyo"))
    assert (local.hour, local.minute) == (7, 0)


def test_a_v2_patch_of_cron_keeps_the_canvas_time_zone(v2):
    flow = v2.create()
    canvas_scheduler(v2, flow["id"], True, {"cronSchedule": "0 0 2 ? * *", "timeZone": "Europe/Oslo"})
    before = datetime.now(timezone.utc)
    patched = patch(v2, flow["id"], cron="0 9 * * 1-5")
    assert patched.status_code == 200, patched.json
    attributes = patched.json["data"]["attributes"]
    assert (attributes["cron"], attributes["time_zone"], attributes["status"]) == ("0 9 * * 1-5", "Europe/Oslo",
                                                                                   "active")
    assert_due_as_croniter(attributes, "0 9 * * 1-5", "Europe/Oslo", before)
    view = canvas_schedule(v2, flow["id"])
    assert (view["cronSchedule"], view["timeZone"]) == ("0 9 * * 1-5", "Europe/Oslo")
    assert json.loads(view["scheduleFrequency"])["timeZone"] == "Europe/Oslo", "still named: not the account's"


def test_a_v2_patch_of_time_zone_moves_the_canvas_schedule(v2):
    flow = v2.create(cron="0 9 * * *")
    v2.call("POST", f"/v2/flows/{flow['id']}/start")
    before = datetime.now(timezone.utc)
    patched = patch(v2, flow["id"], time_zone="America/New_York")
    assert patched.status_code == 200
    attributes = patched.json["data"]["attributes"]
    assert (attributes["cron"], attributes["time_zone"]) == ("0 9 * * *", "America/New_York")
    assert_due_as_croniter(attributes, "0 9 * * *", "America/New_York", before)
    assert canvas_schedule(v2, flow["id"])["timeZone"] == "America/New_York"


@pytest.mark.parametrize("zone", ["Mars/Olympus", "europe/oslo", 5, ""])
def test_an_unknown_time_zone_is_a_400_at_the_attribute(v2, zone):
    flow = v2.create(cron="0 9 * * *")
    answer = patch(v2, flow["id"], time_zone=zone)
    if zone == "":  # an empty zone is no zone: back to the default
        assert answer.status_code == 200 and answer.json["data"]["attributes"]["time_zone"] == "UTC"
        return
    assert answer.status_code == 400, answer.json
    assert answer.json["errors"][0]["source"]["pointer"] == "/data/attributes/time_zone"
    assert v2.call("GET", f"/v2/flows/{flow['id']}").json["data"]["attributes"]["time_zone"] == "UTC"


def test_the_default_zone_is_utc_or_the_accounts(v2):
    assert v2.create()["attributes"]["time_zone"] == "UTC"
    v2.client.post("/api/AccountTimeZone", json={"timeZone": "Asia/Tokyo"}, headers=v2.org.admin_headers)
    assert v2.create(name="Another")["attributes"]["time_zone"] == "Asia/Tokyo"
    flow = v2.create(name="Third", cron="0 9 * * *", time_zone="Europe/Oslo")
    reset = patch(v2, flow["id"], time_zone=None)
    assert reset.json["data"]["attributes"]["time_zone"] == "Asia/Tokyo", "null: back to the account's default"


def test_a_zone_set_before_any_cron_is_kept_for_it(v2):
    flow = v2.create(time_zone="Europe/Oslo")
    assert flow["attributes"]["time_zone"] == "Europe/Oslo" and flow["attributes"]["cron"] is None
    attributes = patch(v2, flow["id"], cron="0 9 * * 1-5").json["data"]["attributes"]
    assert (attributes["cron"], attributes["time_zone"]) == ("0 9 * * 1-5", "Europe/Oslo")


def test_cron_null_removes_the_schedule_and_keeps_the_zone(v2):
    flow = v2.create(cron="0 9 * * 1-5", time_zone="Europe/Oslo")
    v2.call("POST", f"/v2/flows/{flow['id']}/start")
    cleared = patch(v2, flow["id"], cron=None).json["data"]["attributes"]
    assert (cleared["cron"], cleared["status"], cleared["due_execution"], cleared["time_zone"]) == (
        None, "inactive", None, "Europe/Oslo")
    assert v2.call("POST", f"/v2/flows/{flow['id']}/start").status_code == 422
    assert canvas_schedule(v2, flow["id"])["cronSchedule"] is None


def test_a_published_draft_cron_keeps_the_flows_zone(v2):
    flow = v2.create(cron="0 9 * * *", time_zone="Europe/Oslo")
    put = v2.call("PUT", f"/v2/flows/{flow['id']}/draft", {"data": {"type": "flow-draft",
                                                                     "attributes": {"cron": "0 10 * * 1-5"}}})
    assert put.status_code == 200 and put.json["data"]["attributes"]["cron"] == "0 10 * * 1-5"
    published = v2.call("POST", f"/v2/flows/{flow['id']}/draft/publish")
    assert published.status_code == 200, published.json
    attributes = published.json["data"]["attributes"]
    assert (attributes["cron"], attributes["time_zone"]) == ("0 10 * * 1-5", "Europe/Oslo")
