"""Classic 5-field Unix cron (the v2 dialect's `cron`): the parser, and fire times equal to croniter's as the
scheduler's trigger computes them."""
from __future__ import annotations

import pickle
import random
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from apscheduler.schedulers.background import BackgroundScheduler
from croniter import croniter

from canvas.scheduling.occurrences import is_fire_time, latest_fire_times
from canvas.scheduling.quartz import CronExpression, CronSyntaxError
from canvas.scheduling.trigger import QuartzTrigger, UnixCronTrigger, parse_cached, trigger_for
from canvas.scheduling.unix_cron import UnixCronExpression, parse_unix

UTC, OSLO = ZoneInfo("UTC"), ZoneInfo("Europe/Oslo")
SEED, COUNT, FIRES = 20261202, 240, 10
MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
DAYS = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=timezone.utc)


# --- generated expressions -----------------------------------------------------------------------------------------

def _item(rng: random.Random, low: int, high: int, names: list[str] | None, name_offset: int) -> str:
    """One list item of a field: a number, a name, a range, a step over '*', a range or a start."""
    def value(number: int) -> str:
        if names and rng.random() < 0.4 and number - name_offset < len(names):
            return names[number - name_offset]
        return str(number)

    first = rng.randint(low, high)
    last = rng.randint(first, high)
    step = rng.randint(1, max(1, (high - low) // 2))
    return rng.choice([value(first), value(first), f"{value(first)}-{value(last)}", f"*/{step}",
                       f"{value(first)}-{value(last)}/{step}", f"{first}/{step}"])


def _field(rng: random.Random, low: int, high: int, names: list[str] | None = None, name_offset: int = 0,
           star: float = 0.4) -> str:
    if rng.random() < star:
        return "*"
    return ",".join(_item(rng, low, high, names, name_offset) for _ in range(rng.choice([1, 1, 1, 2, 3])))


def _day_of_week(rng: random.Random) -> str:
    kind = rng.random()
    if kind < 0.15:
        return rng.choice(["1-5", "0", "7", "0,7", "6,7", "MON-FRI", "SAT,SUN", "mon-fri", "5-7", "*/2"])
    if kind < 0.3:
        return "7" if rng.random() < 0.5 else f"{rng.randint(1, 5)},7"
    item = _field(rng, 0, 6, DAYS, 0, star=0.0)
    return item


def generated_expressions() -> list[str]:
    rng = random.Random(SEED)
    found: list[str] = []
    while len(found) < COUNT:
        both = rng.random() < 0.35  # both day fields restricted: cron's either-matches rule
        minute = _field(rng, 0, 59, star=0.15)
        hour = _field(rng, 0, 23, star=0.3)
        day_of_month = _field(rng, 1, 31, star=0.0 if both else 0.6)
        month = _field(rng, 1, 12, MONTHS, 1, star=0.6)
        day_of_week = _day_of_week(rng) if both or rng.random() < 0.4 else "*"
        text = f"{minute} {hour} {day_of_month} {month} {day_of_week}"
        try:
            croniter(text, utc(2026, 1, 1)).get_next(datetime)
        except Exception:  # noqa: BLE001, S112 - never fires (31 FEB): not a case for this comparison
            continue
        found.append(text)
    return found


EXPRESSIONS = generated_expressions()
STARTS = [utc(2026, 3, 28, 22, 17, 13), utc(2026, 10, 24, 21, 59, 59), utc(2027, 2, 27, 8, 3, 41),
          utc(2028, 12, 31, 23, 30, 7)]


def croniter_times(text: str, zone: ZoneInfo, start: datetime) -> list[datetime]:
    times = croniter(text, start.astimezone(zone))
    return [times.get_next(datetime) for _ in range(FIRES)]


def trigger_times(text: str, zone: ZoneInfo, start: datetime) -> list[datetime]:
    """As the scheduler fires a job: the first time at or after now, then each next time after the previous."""
    trigger = trigger_for(text, zone)
    fired = [trigger.get_next_fire_time(None, start)]
    while len(fired) < FIRES:
        fired.append(trigger.get_next_fire_time(fired[-1], fired[-1]))
    return fired


def test_the_generated_set_covers_the_forms():
    joined = " | ".join(EXPRESSIONS)
    assert len(EXPRESSIONS) >= 200 and len(set(EXPRESSIONS)) >= 200
    day_fields = [text.split()[2:5:2] for text in EXPRESSIONS]
    assert sum(1 for dom, dow in day_fields if dom != "*" and dow != "*") >= 40, "both day fields restricted"
    assert any(text.split()[4] == "7" for text in EXPRESSIONS), "7 as Sunday"
    assert any(any(name in text.split()[4] for name in DAYS) for text in EXPRESSIONS), "named days of week"
    assert any(any(ch.isdigit() for ch in text.split()[4]) for text in EXPRESSIONS), "numeric days of week"
    for form in ("*/", "-", ",", "JAN", "FEB"):
        assert form in joined or form.lower() in joined, form


@pytest.mark.parametrize("zone", [UTC, OSLO], ids=["UTC", "Europe-Oslo"])
@pytest.mark.parametrize("index", range(COUNT), ids=lambda index: f"expr{index}")
def test_fire_times_equal_croniters(index, zone):
    text = EXPRESSIONS[index]
    start = STARTS[index % len(STARTS)]
    expected = croniter_times(text, zone, start)
    got = trigger_times(text, zone, start)
    assert [time.astimezone(timezone.utc) for time in got] == [time.astimezone(timezone.utc) for time in expected], \
        text
    assert [time.utcoffset() for time in got] == [time.utcoffset() for time in expected], "the zone's wall clock"


# --- the parser ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text", [
    pytest.param("0 9 * * 1-5", id="weekdays-numeric"),
    pytest.param("0 9 * * MON-FRI", id="weekdays-named"),
    pytest.param("0 9 * * mon-fri/2", id="named-range-with-step"),
    pytest.param("0 9 * * 0,7", id="both-sundays"),
    pytest.param("0 9 * * 5-7", id="range-ending-at-7"),
    pytest.param("*/15 8-17 1,15 jan-jun *", id="steps-ranges-lists-month-names"),
    pytest.param("5/10 * * * *", id="start-with-step"),
    pytest.param("0 09 * * *", id="leading-zero"),
])
def test_valid_unix_cron(text):
    assert str(parse_unix(text)) == text


def test_text_is_kept_in_single_spaces():
    assert str(parse_unix("  0  9 * *\t1-5 ")) == "0 9 * * 1-5"


@pytest.mark.parametrize(("text", "message"), [
    pytest.param("0 9 * * 8", "day-of-week: '8' is out of range 0-7", id="dow-8"),
    pytest.param("60 * * * *", "minute: '60' is out of range 0-59", id="minute-60"),
    pytest.param("0 24 * * *", "hour: '24' is out of range 0-23", id="hour-24"),
    pytest.param("0 0 0 * *", "day-of-month: '0' is out of range 1-31", id="dom-0"),
    pytest.param("0 9 * * 5-2", "runs backwards", id="reversed-range"),
    pytest.param("0 9 * * 7-7", "write Sunday as 0", id="range-from-7"),
    pytest.param("0 9 * * 7/2", "write Sunday as 0", id="step-from-7"),
    pytest.param("*/0 * * * *", "step 0", id="step-0"),
    pytest.param("0 9 L * *", "not a Unix cron token", id="quartz-L"),
    pytest.param("0 9 ? * *", "not a Unix cron token", id="quartz-question-mark"),
    pytest.param("0 9 * * 1#2", "not a Unix cron token", id="quartz-hash"),
    pytest.param("0 9 * * MONDAY", "not a Unix cron token", id="full-day-name"),
    pytest.param("0 9 * * FOO", "not a number or a name SUN-SAT", id="unknown-name"),
    pytest.param("0 9 * JAN-MON *", "not a number or a name JAN-DEC", id="weekday-in-months"),
    pytest.param("@daily", "macros", id="macro"),
    pytest.param("0 0 9 * * *", "expected 5 fields", id="six-fields"),
    pytest.param("", "empty", id="empty"),
])
def test_invalid_unix_cron(text, message):
    with pytest.raises(CronSyntaxError, match=message):
        parse_unix(text)


# --- meaning ----------------------------------------------------------------------------------------------------

def test_0_and_7_are_sunday():
    after = utc(2026, 1, 1)
    sunday = utc(2026, 1, 4, 9)
    for text in ("0 9 * * 0", "0 9 * * 7", "0 9 * * SUN"):
        assert parse_unix(text).next_fire_time(after, UTC) == sunday, text


def test_weekdays_at_nine_in_oslo():
    times = parse_unix("0 9 * * 1-5").fire_times(utc(2026, 1, 2, 12), OSLO, 3)  # a Friday
    assert [time.isoformat() for time in times] == ["2026-01-05T09:00:00+01:00", "2026-01-06T09:00:00+01:00",
                                                     "2026-01-07T09:00:00+01:00"]


def test_both_day_fields_restricted_match_either():
    times = parse_unix("0 0 1 * 1").fire_times(utc(2026, 1, 1), UTC, 5)  # the 1st, or a Monday
    assert [time.day for time in times] == [5, 12, 19, 26, 1] and times[-1].month == 2


def test_an_expression_that_never_fires_answers_none():
    assert parse_unix("0 0 30 2 *").next_fire_time(utc(2026, 1, 1), UTC) is None
    assert parse_unix("0 0 31 4,6,9,11 *").fire_times(utc(2026, 1, 1), UTC, 3) == []


def test_fire_times_are_strictly_after():
    expression = parse_unix("0 9 * * *")
    assert expression.next_fire_time(utc(2026, 1, 1, 9), UTC) == utc(2026, 1, 2, 9)
    assert expression.next_fire_time(utc(2026, 1, 1, 8, 59, 59), UTC) == utc(2026, 1, 1, 9)


def test_fall_back_fires_both_passes_as_croniter_does():
    times = parse_unix("30 2 * * *").fire_times(utc(2026, 10, 24, 12), OSLO, 3)
    assert [time.isoformat() for time in times] == ["2026-10-25T02:30:00+02:00", "2026-10-25T02:30:00+01:00",
                                                    "2026-10-26T02:30:00+01:00"]


# --- the scheduler's side: trigger, ledger helpers ------------------------------------------------------------------

def test_stored_text_picks_the_dialect():
    assert isinstance(parse_cached("0 9 * * 1-5"), UnixCronExpression)
    assert isinstance(parse_cached("0 0 9 ? * MON-FRI"), CronExpression)
    assert isinstance(trigger_for("0 9 * * 1-5", "Europe/Oslo"), UnixCronTrigger)
    assert type(trigger_for("0 0 9 ? * MON-FRI")) is QuartzTrigger
    with pytest.raises(CronSyntaxError):
        QuartzTrigger("0 9 * * 1-5")  # a Quartz trigger stays Quartz


def test_a_new_job_fires_at_or_after_now():
    trigger = UnixCronTrigger("*/10 * * * *")
    assert trigger.get_next_fire_time(None, utc(2026, 6, 1, 12, 0)) == utc(2026, 6, 1, 12, 0)
    assert trigger.get_next_fire_time(utc(2026, 6, 1, 12, 0), utc(2026, 6, 1, 12, 30)) == utc(2026, 6, 1, 12, 10)


def test_unix_trigger_pickles_as_text():
    copy = pickle.loads(pickle.dumps(UnixCronTrigger("0 9 * * 1-5", "Europe/Oslo")))
    assert (str(copy.expression), str(copy.zone)) == ("0 9 * * 1-5", "Europe/Oslo")
    assert str(copy) == "unix-cron[0 9 * * 1-5, Europe/Oslo]"


def test_apscheduler_times_a_job_with_it():
    scheduler = BackgroundScheduler(timezone=timezone.utc)
    scheduler.start(paused=True)
    try:
        job = scheduler.add_job(print, UnixCronTrigger("0 9 * * 7", "Europe/Oslo"), id="sunday")
        local = job.next_run_time.astimezone(OSLO)
        assert (local.weekday(), local.hour, local.minute) == (6, 9, 0), "Sunday 09:00 in Oslo"
    finally:
        scheduler.shutdown(wait=False)


def test_ledger_helpers_take_a_unix_expression():
    expression = parse_unix("0 * * * *")
    until = utc(2026, 1, 1, 12, 30)
    assert latest_fire_times(expression, UTC, utc(2026, 1, 1, 6), until, 3) == [
        utc(2026, 1, 1, 10), utc(2026, 1, 1, 11), utc(2026, 1, 1, 12)]
    assert is_fire_time(expression, OSLO, utc(2026, 1, 1, 11))
    assert not is_fire_time(expression, OSLO, utc(2026, 1, 1, 11) + timedelta(minutes=1))
