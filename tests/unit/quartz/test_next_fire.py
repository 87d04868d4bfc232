"""Next fire times, checked against Quartz's documented examples, its CronExpressionTest and a hand-read calendar.

Calendar facts used below: 2026-01-01 is a Thursday, 2026-08-01 a Saturday, 2026-11-15 a Sunday, 2026-05-31 a
Sunday; 2028 is a leap year and 2028-02-29 is a Tuesday; 2010-10-31 was a Sunday.
"""
from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from canvas.scheduling.quartz import parse

UTC = timezone.utc
HORIZON = datetime.now(UTC).year + 100  # Quartz's MAX_YEAR: no fire time is searched for past it


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def fire_times(expression: str, after: str, count: int) -> list[str]:
    found = parse(expression).fire_times(utc(after), UTC, count)
    return [moment.replace(tzinfo=None).isoformat() for moment in found]


# (expression, after (UTC), the next fire times (UTC)); ids say which documented behaviour is checked.
QUARTZ_DOCUMENTED = [
    pytest.param("0 0 12 * * ?", "2026-01-01T12:00:00", ["2026-01-02T12:00:00"], id="tutorial-noon-every-day"),
    pytest.param("0 15 10 ? * *", "2026-03-10T10:15:00", ["2026-03-11T10:15:00"], id="tutorial-10-15-every-day"),
    pytest.param("0 15 10 * * ? 2026", "2026-12-31T10:15:00", [], id="tutorial-single-year-runs-out"),
    pytest.param("0 * 14 * * ?", "2026-05-05T14:58:00", ["2026-05-05T14:59:00", "2026-05-06T14:00:00"],
                 id="tutorial-every-minute-of-hour-14"),
    pytest.param("0 0/5 14 * * ?", "2026-05-05T13:00:00",
                 ["2026-05-05T14:00:00", "2026-05-05T14:05:00", "2026-05-05T14:10:00"], id="tutorial-every-5-minutes"),
    pytest.param("0 0/5 14,18 * * ?", "2026-05-05T14:55:00", ["2026-05-05T18:00:00"], id="tutorial-two-hours"),
    pytest.param("0 0-5 14 * * ?", "2026-05-05T14:05:00", ["2026-05-06T14:00:00"], id="tutorial-minute-range"),
    pytest.param("0 10,44 14 ? 3 WED", "2026-01-01T00:00:00",
                 ["2026-03-04T14:10:00", "2026-03-04T14:44:00", "2026-03-11T14:10:00"],
                 id="tutorial-wednesdays-in-march"),
    pytest.param("0 15 10 ? * MON-FRI", "2026-01-02T10:15:00", ["2026-01-05T10:15:00"],
                 id="tutorial-weekdays-skip-weekend"),
    pytest.param("0 15 10 15 * ?", "2026-01-15T10:15:00", ["2026-02-15T10:15:00"], id="tutorial-15th-of-month"),
    pytest.param("0 15 10 L * ?", "2026-02-01T00:00:00", ["2026-02-28T10:15:00", "2026-03-31T10:15:00"],
                 id="tutorial-last-day-of-month"),
    pytest.param("0 15 10 L-2 * ?", "2026-02-01T00:00:00", ["2026-02-26T10:15:00", "2026-03-29T10:15:00"],
                 id="tutorial-second-to-last-day"),
    pytest.param("0 15 10 ? * 6L", "2026-01-01T00:00:00", ["2026-01-30T10:15:00", "2026-02-27T10:15:00"],
                 id="tutorial-last-friday"),
    pytest.param("0 15 10 ? * 6L 2002-2005", "2026-01-01T00:00:00", [], id="tutorial-past-years-never-fire"),
    pytest.param("0 15 10 ? * 6#3", "2026-01-01T00:00:00", ["2026-01-16T10:15:00", "2026-02-20T10:15:00"],
                 id="tutorial-third-friday"),
    pytest.param("0 0 12 1/5 * ?", "2026-01-26T12:00:00",
                 ["2026-01-31T12:00:00", "2026-02-01T12:00:00", "2026-02-06T12:00:00"], id="tutorial-every-5-days"),
    pytest.param("0 11 11 11 11 ?", "2026-01-01T00:00:00", ["2026-11-11T11:11:00", "2027-11-11T11:11:00"],
                 id="tutorial-november-11th"),
    # CronExpressionTest.testLastDayOffset (October 2010 ends on a Sunday)
    pytest.param("0 15 10 L-2 * ? 2010", "2010-10-01T00:00:00", ["2010-10-29T10:15:00"], id="quartz-test-L-2"),
    pytest.param("0 15 10 L-5W * ? 2010", "2010-10-01T00:00:00", ["2010-10-26T10:15:00"], id="quartz-test-L-5W"),
    pytest.param("0 15 10 L-1 * ? 2010", "2010-10-01T00:00:00", ["2010-10-30T10:15:00"], id="quartz-test-L-1"),
    pytest.param("0 15 10 L-1W * ? 2010", "2010-10-01T00:00:00", ["2010-10-29T10:15:00"],
                 id="quartz-test-L-1W-saturday-to-friday"),
    pytest.param("0 15 10 * * ? 2005", "2005-06-01T10:14:59", ["2005-06-01T10:15:00"], id="quartz-test-is-satisfied"),
    # Quartz(.NET) TestNthWeekDayPassingMonth
    pytest.param("0 30 10-13 ? * FRI#3", "2008-12-19T00:00:00",
                 ["2008-12-19T10:30:00", "2008-12-19T11:30:00", "2008-12-19T12:30:00", "2008-12-19T13:30:00",
                  "2009-01-16T10:30:00"], id="quartz-test-nth-weekday-passing-month"),
]


@pytest.mark.parametrize(("expression", "after", "expected"), QUARTZ_DOCUMENTED)
def test_documented_quartz_examples(expression, after, expected):
    assert fire_times(expression, after, len(expected) or 1) == expected


MONTH_ENDS_AND_LEAP_YEARS = [
    pytest.param("0 0 0 29 2 ?", "2026-01-01T00:00:00", ["2028-02-29T00:00:00", "2032-02-29T00:00:00"],
                 id="feb-29-waits-for-leap-years"),
    pytest.param("0 0 0 L 2 ?", "2026-01-01T00:00:00",
                 ["2026-02-28T00:00:00", "2027-02-28T00:00:00", "2028-02-29T00:00:00"], id="L-in-february-leap-year"),
    pytest.param("0 0 0 L-1 2 ?", "2027-03-01T00:00:00", ["2028-02-28T00:00:00"], id="L-1-in-leap-february"),
    pytest.param("0 0 0 ? 2 3#5", "2026-01-01T00:00:00", ["2028-02-29T00:00:00"], id="fifth-tuesday-only-in-leap-feb"),
    pytest.param("0 0 0 ? 2 3L", "2028-01-01T00:00:00", ["2028-02-29T00:00:00"], id="last-tuesday-is-leap-day"),
    pytest.param("0 0 0 ? * 2#5", "2026-01-01T00:00:00", ["2026-03-30T00:00:00", "2026-06-29T00:00:00"],
                 id="months-without-a-fifth-monday-are-skipped"),
    pytest.param("0 0 0 L-30 * ?", "2026-01-02T00:00:00", ["2026-03-01T00:00:00", "2026-05-01T00:00:00"],
                 id="L-30-skips-months-shorter-than-31-days"),
    pytest.param("0 0 0 LW * ?", "2026-01-01T00:00:00",
                 ["2026-01-30T00:00:00", "2026-02-27T00:00:00", "2026-03-31T00:00:00"],
                 id="LW-saturday-month-ends-move-to-friday"),
    pytest.param("0 0 0 LW * ?", "2026-05-01T00:00:00", ["2026-05-29T00:00:00"], id="LW-sunday-month-end-to-friday"),
    pytest.param("0 0 0 L-3W * ?", "2026-02-01T00:00:00", ["2026-02-25T00:00:00"], id="L-3W-on-a-weekday"),
    pytest.param("0 0 9 1W * ?", "2026-07-02T00:00:00", ["2026-08-03T09:00:00"], id="1W-saturday-goes-to-monday-3rd"),
    pytest.param("0 0 9 15W * ?", "2026-08-01T00:00:00", ["2026-08-14T09:00:00"], id="15W-saturday-goes-to-friday"),
    pytest.param("0 0 9 15W * ?", "2026-11-01T00:00:00", ["2026-11-16T09:00:00"], id="15W-sunday-goes-to-monday"),
    pytest.param("0 0 9 15W * ?", "2026-01-01T00:00:00", ["2026-01-15T09:00:00"], id="15W-on-a-weekday-stays"),
    pytest.param("0 0 9 31W * ?", "2026-05-01T00:00:00", ["2026-05-29T09:00:00"],
                 id="31W-sunday-month-end-goes-back-to-friday"),
    pytest.param("0 0 9 31W * ?", "2026-06-01T00:00:00", ["2026-07-31T09:00:00"],
                 id="31W-skips-june-which-has-no-31st"),
    pytest.param("0 0 9 15W * ?", "2026-08-14T09:00:00", ["2026-09-15T09:00:00"],
                 id="15W-after-its-friday-fire-moves-to-next-month"),
    pytest.param("0 0 0 31 * ?", "2026-01-31T00:00:00", ["2026-03-31T00:00:00", "2026-05-31T00:00:00"],
                 id="day-31-skips-short-months"),
    pytest.param("0 0 0 30 2 ?", "2026-01-01T00:00:00", [], id="feb-30-never-fires"),
    pytest.param("0 0 0 31 4,6,9,11 ?", "2026-01-01T00:00:00", [], id="31st-of-30-day-months-never-fires"),
    pytest.param("0 0 0 ? * L", "2026-01-01T00:00:00", ["2026-01-03T00:00:00", "2026-01-10T00:00:00"],
                 id="L-alone-in-day-of-week-means-saturday"),
]


@pytest.mark.parametrize(("expression", "after", "expected"), MONTH_ENDS_AND_LEAP_YEARS)
def test_month_ends_and_leap_years(expression, after, expected):
    assert fire_times(expression, after, len(expected) or 1) == expected


WRAP_AROUND_RANGES = [
    pytest.param("0 0 22-2 ? * *", "2026-01-01T21:00:00",
                 ["2026-01-01T22:00:00", "2026-01-01T23:00:00", "2026-01-02T00:00:00", "2026-01-02T01:00:00",
                  "2026-01-02T02:00:00", "2026-01-02T22:00:00"], id="hours-22-to-2"),
    pytest.param("0 0 12 ? * FRI-MON", "2026-01-01T00:00:00",
                 ["2026-01-02T12:00:00", "2026-01-03T12:00:00", "2026-01-04T12:00:00", "2026-01-05T12:00:00",
                  "2026-01-09T12:00:00"], id="friday-to-monday"),
    pytest.param("0 0 0 1 NOV-FEB ?", "2026-02-02T00:00:00", ["2026-11-01T00:00:00", "2026-12-01T00:00:00",
                                                              "2027-01-01T00:00:00", "2027-02-01T00:00:00"],
                 id="november-to-february"),
    pytest.param("0 0 0 28-2 * ?", "2026-02-02T00:00:00",
                 ["2026-02-28T00:00:00", "2026-03-01T00:00:00", "2026-03-02T00:00:00", "2026-03-28T00:00:00"],
                 id="day-28-to-2"),
    pytest.param("50-5/5 0 0 ? * *", "2026-01-01T00:00:00", ["2026-01-01T00:00:05", "2026-01-01T00:00:50",
                                                             "2026-01-01T00:00:55", "2026-01-02T00:00:00"],
                 id="seconds-50-to-5-step-5"),
]


@pytest.mark.parametrize(("expression", "after", "expected"), WRAP_AROUND_RANGES)
def test_wrap_around_ranges(expression, after, expected):
    assert fire_times(expression, after, len(expected)) == expected


STEPS_AND_YEARS = [
    pytest.param("0 5-55/10 * ? * *", "2026-01-01T00:55:00", ["2026-01-01T01:05:00"], id="range-step-rolls-hour"),
    pytest.param("*/20 * * ? * *", "2026-12-31T23:59:40", ["2027-01-01T00:00:00"], id="step-rolls-the-year"),
    pytest.param("0 0 0 1 1 ? 2027/2", "2026-01-01T00:00:00", ["2027-01-01T00:00:00", "2029-01-01T00:00:00"],
                 id="every-other-year"),
    pytest.param("0 0 0 1 1 ? 2099", "2099-01-01T00:00:00", [], id="nothing-after-the-only-year"),
    pytest.param("0 0 0 31 12 ? *", f"{HORIZON}-12-31T00:00:00", [], id="year-star-stops-at-current-year-plus-100"),
    pytest.param("0 0 0 31 12 ? *", f"{HORIZON}-12-30T00:00:00", [f"{HORIZON}-12-31T00:00:00"],
                 id="last-fire-in-current-year-plus-100"),
    pytest.param("0 0 0 1 1 ? 2199", "2026-01-01T00:00:00", [], id="valid-year-beyond-the-horizon-never-fires"),
    pytest.param(f"0 0 0 1 1 ? {HORIZON - 1}-2199", "2026-01-01T00:00:00",
                 [f"{HORIZON - 1}-01-01T00:00:00", f"{HORIZON}-01-01T00:00:00"],
                 id="year-range-fires-only-through-current-year-plus-100"),
    pytest.param("0 30 6 ? FEB 3#5", "2084-03-01T00:00:00", ["2124-02-29T06:30:00"],
                 id="fifth-tuesday-of-february-found-past-2100-like-quartz"),
]


@pytest.mark.parametrize(("expression", "after", "expected"), STEPS_AND_YEARS)
def test_steps_and_years(expression, after, expected):
    assert fire_times(expression, after, len(expected) or 1) == expected


def test_next_fire_time_is_strictly_after():
    expression = parse("0 0 12 * * ?")
    assert expression.next_fire_time(utc("2026-01-01T12:00:00"), UTC) == utc("2026-01-02T12:00:00")
    assert expression.next_fire_time(utc("2026-01-01T11:59:59"), UTC) == utc("2026-01-01T12:00:00")


def test_milliseconds_of_after_are_dropped_like_quartz():
    expression = parse("* * * ? * *")
    after = utc("2026-01-01T00:00:00") + timedelta(milliseconds=999)
    assert expression.next_fire_time(after, UTC) == utc("2026-01-01T00:00:01")


def test_after_may_be_in_any_zone_and_result_is_in_tz():
    oslo = ZoneInfo("Europe/Oslo")
    after = datetime(2026, 1, 1, 12, 0, tzinfo=oslo)  # 11:00 UTC
    fire_time = parse("0 0 12 * * ?").next_fire_time(after, UTC)
    assert fire_time == utc("2026-01-01T12:00:00")
    in_oslo = parse("0 0 12 * * ?").next_fire_time(utc("2026-01-01T11:00:00"), oslo)
    assert in_oslo.isoformat() == "2026-01-02T12:00:00+01:00"
    assert in_oslo.tzinfo is oslo


@pytest.mark.parametrize("expression", [
    pytest.param("0 0 0 L-2 * ? *", id="quartz-qtz-259-L-2"),
    pytest.param("0 0 0 LW * ? *", id="quartz-qtz-259-LW"),
    pytest.param("0 0 0 L-3W * ?", id="L-3W"),
    pytest.param("0 0 0 ? * 6#5", id="fifth-friday"),
])
def test_successive_fire_times_never_repeat(expression):
    found = parse(expression).fire_times(utc("2026-01-01T00:00:00"), UTC, 26)
    assert len(found) == 26
    assert all(earlier < later for earlier, later in zip(found, found[1:]))


def test_fire_times_stops_when_expression_runs_out():
    assert len(parse("0 0 0 1 * ? 2026").fire_times(utc("2026-01-01T00:00:00"), UTC, 50)) == 11


def test_naive_after_is_rejected():
    with pytest.raises(ValueError, match="timezone-aware"):
        parse("0 0 12 * * ?").next_fire_time(datetime(2026, 1, 1), UTC)


@pytest.mark.parametrize("expression", [
    pytest.param("0 0 0 30 FEB ?", id="feb-30"),
    pytest.param("0 0 0 31 APR,JUN,SEP,NOV ?", id="31st-of-short-months"),
    pytest.param("0 0 0 ? 2 2#5 2026-2027", id="fifth-monday-in-feb-of-common-years"),
])
def test_impossible_expressions_return_none_quickly(expression):
    started = time.perf_counter()
    assert parse(expression).next_fire_time(utc("2026-01-01T00:00:00"), UTC) is None
    assert time.perf_counter() - started < 0.5
