"""QuartzTrigger: APScheduler's trigger interface over the Quartz dialect."""
from __future__ import annotations

import pickle
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from apscheduler.schedulers.background import BackgroundScheduler

from canvas.scheduling.trigger import QuartzTrigger

OSLO = ZoneInfo("Europe/Oslo")


def utc(*parts: int, microsecond: int = 0) -> datetime:
    return datetime(*parts, microsecond=microsecond, tzinfo=timezone.utc)


@pytest.mark.parametrize(("now", "expected"), [
    pytest.param(utc(2026, 6, 1, 12, 0, 0), utc(2026, 6, 1, 12, 0, 0), id="a-fire-time-equal-to-now-is-next"),
    pytest.param(utc(2026, 6, 1, 12, 0, 0, microsecond=1), utc(2026, 6, 1, 12, 0, 10), id="just-past-it-is-not"),
])
def test_a_new_job_fires_at_or_after_now(now, expected):
    assert QuartzTrigger("*/10 * * ? * *").get_next_fire_time(None, now) == expected


def test_after_a_fire_the_next_is_strictly_later():
    trigger = QuartzTrigger("*/10 * * ? * *")
    previous = utc(2026, 6, 1, 12, 0, 0)
    assert trigger.get_next_fire_time(previous, utc(2026, 6, 1, 12, 0, 30)) == utc(2026, 6, 1, 12, 0, 10), \
        "from the previous fire time, not from now: APScheduler collects every run time in between"


def test_fire_times_follow_quartz_dst_rules_in_the_zone():
    trigger = QuartzTrigger("0 30 2 ? * *", "Europe/Oslo")
    fired = trigger.get_next_fire_time(utc(2026, 3, 28, 12, 0), utc(2026, 3, 28, 12, 0))
    assert fired == datetime(2026, 3, 30, 2, 30, tzinfo=OSLO), "02:30 does not exist on 29 March: skipped"
    assert fired.utcoffset().total_seconds() == 7200


def test_a_schedule_with_no_more_fire_times_answers_none():
    assert QuartzTrigger("0 0 0 1 1 ? 2020").get_next_fire_time(None, utc(2026, 1, 1)) is None


def test_it_pickles_as_text():
    trigger = QuartzTrigger("0 0 9 ? * MON-FRI", "Asia/Tokyo")
    copy = pickle.loads(pickle.dumps(trigger))
    assert (str(copy.expression), str(copy.zone)) == ("0 0 9 ? * MON-FRI", "Asia/Tokyo")
    assert str(copy) == "quartz[0 0 9 ? * MON-FRI, Asia/Tokyo]"


def test_apscheduler_times_a_job_with_it():
    scheduler = BackgroundScheduler(timezone=timezone.utc)
    scheduler.start(paused=True)
    try:
        job = scheduler.add_job(print, QuartzTrigger("0 0 12 ? * 6L", "UTC"), id="last-friday")
        fire_time = job.next_run_time
        assert (fire_time.weekday(), fire_time.hour) == (4, 12), "a Friday at noon"
        assert (fire_time + timedelta(days=7)).month != fire_time.month, "the month's last Friday"
    finally:
        scheduler.shutdown(wait=False)


def test_expressions_share_equal_field_values():
    """10,000 loaded schedules must not keep 10,000 copies of the years 1970-2199 (about 9 KB each)."""
    from canvas.scheduling.quartz import parse

    first, second = parse("0 0 2 ? * *"), parse("5 4 3 ? * MON *")
    assert first.years is second.years and len(first.years) == 230
