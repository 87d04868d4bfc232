"""Daylight-saving time, as Quartz's wall-clock search handles it.

* A local time the clock skips (spring forward) does not fire that day: skipped, not shifted.
* A local time the clock shows twice (fall back) fires once, at the second (standard-time) pass; nothing fires during
  the first pass of the repeated hour.
* Quartz never walks the wall clock backwards: asked from inside the first pass, it goes on from that wall-clock time
  read as standard time (Java's Calendar re-reads a repeated wall time as standard time).

Europe/Oslo: 2026-03-29 02:00 -> 03:00, 2026-10-25 03:00 -> 02:00; 2027-03-28, 2027-10-31; 2028-03-26, 2028-10-29.
America/New_York: 2026-03-08 02:00 -> 03:00, 2026-11-01 02:00 -> 01:00; 2027-03-14, 2027-11-07; 2028-03-12, 2028-11-05.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from canvas.scheduling.quartz import parse

OSLO = ZoneInfo("Europe/Oslo")
NEW_YORK = ZoneInfo("America/New_York")
ZONES = {"Europe/Oslo": OSLO, "America/New_York": NEW_YORK}


def fire_times(expression: str, zone_name: str, after: str, count: int) -> list[str]:
    after_time = datetime.fromisoformat(after)  # written with its offset, so the instant is unambiguous
    return [moment.isoformat() for moment in parse(expression).fire_times(after_time, ZONES[zone_name], count)]


SPRING_FORWARD = [
    pytest.param("0 30 2 * * ?", "Europe/Oslo", "2026-03-28T03:00:00+01:00", ["2026-03-30T02:30:00+02:00"],
                 id="oslo-2026-missing-02-30-skipped-not-shifted"),
    pytest.param("0 0 2 * * ?", "Europe/Oslo", "2027-03-27T03:00:00+01:00", ["2027-03-29T02:00:00+02:00"],
                 id="oslo-2027-missing-02-00-skipped"),
    pytest.param("0 59 2 * * ?", "Europe/Oslo", "2028-03-25T03:00:00+01:00", ["2028-03-27T02:59:00+02:00"],
                 id="oslo-2028-missing-02-59-skipped"),
    pytest.param("0 30 2 ? * SUN", "Europe/Oslo", "2026-03-22T03:00:00+01:00", ["2026-04-05T02:30:00+02:00"],
                 id="oslo-weekly-sunday-run-lost-that-week"),
    pytest.param("0 30 2,3 * * ?", "Europe/Oslo", "2026-03-29T00:00:00+01:00", ["2026-03-29T03:30:00+02:00"],
                 id="oslo-only-the-existing-hour-fires"),
    pytest.param("0 */30 * ? * *", "Europe/Oslo", "2026-03-29T00:45:00+01:00",
                 ["2026-03-29T01:00:00+01:00", "2026-03-29T01:30:00+01:00", "2026-03-29T03:00:00+02:00",
                  "2026-03-29T03:30:00+02:00"], id="oslo-half-hourly-jumps-the-gap"),
    pytest.param("* * * ? * *", "Europe/Oslo", "2026-03-29T01:59:59+01:00", ["2026-03-29T03:00:00+02:00"],
                 id="oslo-every-second-jumps-the-gap"),
    pytest.param("0 30 2 * * ?", "America/New_York", "2026-03-07T03:00:00-05:00", ["2026-03-09T02:30:00-04:00"],
                 id="new-york-2026-missing-02-30-skipped"),
    pytest.param("0 0 2 * * ?", "America/New_York", "2027-03-13T03:00:00-05:00", ["2027-03-15T02:00:00-04:00"],
                 id="new-york-2027-missing-02-00-skipped"),
    pytest.param("0 15 2 ? * SUN", "America/New_York", "2028-03-06T00:00:00-05:00", ["2028-03-19T02:15:00-04:00"],
                 id="new-york-2028-sunday-run-lost"),
    pytest.param("0 0 * ? * *", "America/New_York", "2026-03-08T00:30:00-05:00",
                 ["2026-03-08T01:00:00-05:00", "2026-03-08T03:00:00-04:00", "2026-03-08T04:00:00-04:00"],
                 id="new-york-hourly-jumps-the-gap"),
]


@pytest.mark.parametrize(("expression", "zone", "after", "expected"), SPRING_FORWARD)
def test_spring_forward_missing_local_time_does_not_fire(expression, zone, after, expected):
    assert fire_times(expression, zone, after, len(expected)) == expected


FALL_BACK = [
    pytest.param("0 30 2 * * ?", "Europe/Oslo", "2026-10-24T03:00:00+02:00",
                 ["2026-10-25T02:30:00+01:00", "2026-10-26T02:30:00+01:00"], id="oslo-2026-repeated-02-30-fires-once"),
    pytest.param("0 0 2 * * ?", "Europe/Oslo", "2027-10-30T03:00:00+02:00",
                 ["2027-10-31T02:00:00+01:00", "2027-11-01T02:00:00+01:00"], id="oslo-2027-repeated-02-00-fires-once"),
    pytest.param("0 59 2 * * ?", "Europe/Oslo", "2028-10-28T03:00:00+02:00",
                 ["2028-10-29T02:59:00+01:00", "2028-10-30T02:59:00+01:00"], id="oslo-2028-repeated-02-59-fires-once"),
    pytest.param("0 30 * ? * *", "Europe/Oslo", "2026-10-25T01:00:00+02:00",
                 ["2026-10-25T01:30:00+02:00", "2026-10-25T02:30:00+01:00", "2026-10-25T03:30:00+01:00"],
                 id="oslo-hourly-at-30-fires-02-30-once-at-second-pass"),
    pytest.param("0 0 * ? * *", "Europe/Oslo", "2026-10-25T00:30:00+02:00",
                 ["2026-10-25T01:00:00+02:00", "2026-10-25T02:00:00+01:00", "2026-10-25T03:00:00+01:00"],
                 id="oslo-hourly-skips-first-pass"),
    pytest.param("0 * * ? * *", "Europe/Oslo", "2026-10-25T01:59:00+02:00", ["2026-10-25T02:00:00+01:00"],
                 id="oslo-every-minute-nothing-in-first-pass"),
    pytest.param("0 30 1 * * ?", "America/New_York", "2026-10-31T02:00:00-04:00",
                 ["2026-11-01T01:30:00-05:00", "2026-11-02T01:30:00-05:00"],
                 id="new-york-2026-repeated-01-30-fires-once"),
    pytest.param("0 0 1 * * ?", "America/New_York", "2027-11-06T02:00:00-04:00",
                 ["2027-11-07T01:00:00-05:00", "2027-11-08T01:00:00-05:00"],
                 id="new-york-2027-repeated-01-00-fires-once"),
    pytest.param("0 45 1 ? * SUN", "America/New_York", "2028-11-01T00:00:00-04:00",
                 ["2028-11-05T01:45:00-05:00", "2028-11-12T01:45:00-05:00"], id="new-york-2028-sunday-fires-once"),
    pytest.param("0 0 * ? * *", "America/New_York", "2026-11-01T00:30:00-04:00",
                 ["2026-11-01T01:00:00-05:00", "2026-11-01T02:00:00-05:00"], id="new-york-hourly-skips-first-pass"),
    pytest.param("0 */20 1 ? * *", "America/New_York", "2026-11-01T00:00:00-04:00",
                 ["2026-11-01T01:00:00-05:00", "2026-11-01T01:20:00-05:00", "2026-11-01T01:40:00-05:00",
                  "2026-11-02T01:00:00-05:00"], id="new-york-every-20-minutes-in-repeated-hour-once"),
]


@pytest.mark.parametrize(("expression", "zone", "after", "expected"), FALL_BACK)
def test_fall_back_repeated_local_time_fires_once_at_second_pass(expression, zone, after, expected):
    assert fire_times(expression, zone, after, len(expected)) == expected


INSIDE_REPEATED_HOUR = [
    pytest.param("0 30 * ? * *", "2026-10-25T02:10:00+02:00", "2026-10-25T02:30:00+01:00",
                 id="from-first-pass-the-same-wall-time-later-fires-at-second-pass"),
    pytest.param("0 30 * ? * *", "2026-10-25T02:10:00+01:00", "2026-10-25T02:30:00+01:00",
                 id="from-second-pass"),
    pytest.param("0 30 * ? * *", "2026-10-25T02:30:00+02:00", "2026-10-25T03:30:00+01:00",
                 id="from-first-pass-at-the-wall-time-itself-goes-to-next-hour"),
    pytest.param("0 * * ? * *", "2026-10-25T02:10:00+02:00", "2026-10-25T02:11:00+01:00",
                 id="every-minute-from-first-pass-continues-on-the-wall-clock-at-second-pass"),
    pytest.param("* * * ? * *", "2026-10-25T02:10:00+02:00", "2026-10-25T02:10:01+01:00",
                 id="every-second-from-first-pass"),
    pytest.param("0 5 * ? * *", "2026-10-25T02:10:00+02:00", "2026-10-25T03:05:00+01:00",
                 id="wall-clock-never-goes-backwards"),
    pytest.param("* * * ? * *", "2026-10-25T02:59:59+02:00", "2026-10-25T02:00:00+01:00",
                 id="one-second-after-first-pass-ends-is-second-pass-start"),
]


@pytest.mark.parametrize(("expression", "after", "expected"), INSIDE_REPEATED_HOUR)
def test_after_inside_the_repeated_hour_compares_as_instants(expression, after, expected):
    after_time = datetime.fromisoformat(after)
    fire_time = parse(expression).next_fire_time(after_time, OSLO)
    assert fire_time.isoformat() == expected
    assert fire_time > after_time


def test_repeated_time_result_carries_fold_and_standard_offset():
    fire_time = parse("0 30 1 * * ?").next_fire_time(datetime.fromisoformat("2026-11-01T00:00:00-04:00"), NEW_YORK)
    assert (fire_time.fold, fire_time.utcoffset().total_seconds()) == (1, -5 * 3600)
    assert fire_time.astimezone(timezone.utc).isoformat() == "2026-11-01T06:30:00+00:00"


def test_non_repeated_result_has_fold_zero():
    fire_time = parse("0 30 3 * * ?").next_fire_time(datetime.fromisoformat("2026-10-25T00:00:00+02:00"), OSLO)
    assert (fire_time.isoformat(), fire_time.fold) == ("2026-10-25T03:30:00+01:00", 0)


@pytest.mark.parametrize("zone", [pytest.param(OSLO, id="oslo"), pytest.param(NEW_YORK, id="new-york")])
def test_every_minute_across_fall_back_day_fires_each_wall_minute_once(zone):
    day = {OSLO: (2026, 10, 25), NEW_YORK: (2026, 11, 1)}[zone]
    just_before_midnight = datetime(*day, tzinfo=zone) - timedelta(seconds=1)
    found = parse("0 * * ? * *").fire_times(just_before_midnight, zone, 24 * 60)
    walls = [moment.replace(tzinfo=None, fold=0) for moment in found]
    assert len(set(walls)) == len(walls) == 24 * 60  # each wall-clock minute of the day once, none twice
    assert (walls[0], walls[-1]) == (datetime(*day, 0, 0), datetime(*day, 23, 59))
    assert all(earlier < later for earlier, later in zip(found, found[1:]))


@pytest.mark.parametrize("zone", [pytest.param(OSLO, id="oslo"), pytest.param(NEW_YORK, id="new-york")])
def test_every_minute_across_spring_forward_day_loses_the_missing_hour(zone):
    day = {OSLO: (2026, 3, 29), NEW_YORK: (2026, 3, 8)}[zone]
    just_before_midnight = datetime(*day, tzinfo=zone) - timedelta(seconds=1)
    found = parse("0 * * ? * *").fire_times(just_before_midnight, zone, 23 * 60)
    assert found[-1].replace(tzinfo=None) == datetime(*day, 23, 59)
    assert {moment.hour for moment in found} == set(range(24)) - {2}
