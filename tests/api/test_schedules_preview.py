"""POST /api/SchedulePreview: the next fire times in the schedule's zone, ISO 8601 with offset, whole seconds."""
from __future__ import annotations

import json
import re
from datetime import datetime, timezone

import pytest

ISO_WITH_OFFSET = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d")


def preview(client, headers, cron: str, zone: str | None = None, **extra):
    text = json.dumps({"cronSchedule": cron, **({"timeZone": zone} if zone else {})})
    return client.post("/api/SchedulePreview", json={"scheduleFrequency": text, **extra}, headers=headers)


@pytest.mark.parametrize(("cron", "zone", "after", "count", "expected"), [
    pytest.param("0 30 2 ? * *", "Europe/Oslo", "2026-03-27T00:00:00Z", 3,
                 ["2026-03-27T02:30:00+01:00", "2026-03-28T02:30:00+01:00", "2026-03-30T02:30:00+02:00"],
                 id="spring-forward-skips-the-missing-time"),
    pytest.param("0 30 2 ? * *", "Europe/Oslo", "2026-10-24T12:00:00+00:00", 2,
                 ["2026-10-25T02:30:00+01:00", "2026-10-26T02:30:00+01:00"],
                 id="fall-back-fires-once-at-the-second-pass"),
    pytest.param("0 0 12 ? * 6L", "UTC", "2026-01-01T00:00:00Z", 3,
                 ["2026-01-30T12:00:00+00:00", "2026-02-27T12:00:00+00:00", "2026-03-27T12:00:00+00:00"],
                 id="last-friday"),
    pytest.param("0 0 9 LW * ?", "America/New_York", "2026-05-01T00:00:00Z", 2,
                 ["2026-05-29T09:00:00-04:00", "2026-06-30T09:00:00-04:00"], id="last-weekday"),
    pytest.param("0 0 0 1 1 ? 2027", "UTC", "2026-06-01T00:00:00Z", 5, ["2027-01-01T00:00:00+00:00"],
                 id="fewer-when-no-more"),
    pytest.param("0 0 0 1 1 ? 2020", "UTC", "2026-06-01T00:00:00Z", 5, [], id="a-past-year-never-fires"),
    pytest.param("0 0 12 * * ?", "UTC", "2026-06-01T12:00:00Z", 1, ["2026-06-02T12:00:00+00:00"],
                 id="strictly-after"),
    pytest.param("0 0 12 * * ?", "UTC", "2026-06-01T11:59:59.999999Z", 1, ["2026-06-01T12:00:00+00:00"],
                 id="sub-second-after"),
    pytest.param("0 0 12 * * ?", "Asia/Kolkata", "2026-06-01T00:00:00", 1, ["2026-06-01T12:00:00+05:30"],
                 id="after-without-offset-is-utc"),
])
def test_fire_times(client, org, cron, zone, after, count, expected):
    answer = preview(client, org.admin_headers, cron, zone, after=after, count=count)
    assert answer.status_code == 200, answer.json
    assert answer.json == expected


def test_defaults_are_five_times_after_now(client, org):
    before = datetime.now(timezone.utc)
    times = preview(client, org.admin_headers, "* * * ? * *").json
    assert len(times) == 5 and all(ISO_WITH_OFFSET.fullmatch(text) for text in times)
    instants = [datetime.fromisoformat(text) for text in times]
    assert instants == sorted(instants) and instants[0] > before.replace(microsecond=0)


def test_the_account_default_zone_applies(client, org):
    client.post("/api/AccountTimeZone", json={"timeZone": "Australia/Adelaide"}, headers=org.admin_headers)
    times = preview(client, org.admin_headers, "0 0 8 ? * *", after="2026-01-10T00:00:00Z", count=1).json
    assert times == ["2026-01-11T08:00:00+10:30"], "00:00 UTC is 10:30 in Adelaide"


@pytest.mark.parametrize(("body", "message"), [
    ({"count": 0}, "count: Must be greater than or equal to 1 and less than or equal to 100."),
    ({"count": 101}, "count: Must be greater than or equal to 1 and less than or equal to 100."),
    ({"count": "5"}, "count: Not a valid integer."),
    ({"after": "next tuesday"}, "after: 'next tuesday' is not an ISO 8601 instant, e.g. 2026-03-29T01:30:00+01:00"),
], ids=["count-zero", "count-too-big", "count-string", "after-not-iso"])
def test_bad_arguments_are_400s_naming_the_field(client, org, body, message):
    answer = preview(client, org.admin_headers, "0 0 12 * * ?", **body)
    assert answer.status_code == 400 and answer.json["Msg"] == message


def test_an_invalid_frequency_is_the_same_400_as_workflow_scheduler(client, org):
    answer = preview(client, org.admin_headers, "0 0 12 ? * MON-FRI/2")
    assert answer.status_code == 400
    assert answer.json["Msg"].startswith("scheduleFrequency.cronSchedule: '0 0 12 ? * MON-FRI/2' is not a valid "
                                         "Quartz cron expression: day-of-week: 'MON-FRI/2' applies a step to names")
    missing = client.post("/api/SchedulePreview", json={}, headers=org.admin_headers)
    assert missing.json["Msg"] == "scheduleFrequency: Missing data for required field."


def test_preview_needs_keys(client):
    answer = client.post("/api/SchedulePreview", json={"scheduleFrequency": '{"cronSchedule": "0 0 12 * * ?"}'})
    assert answer.status_code == 401
