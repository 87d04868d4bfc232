"""Due occurrences and the misfire policies (pure functions)."""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from canvas.scheduling.occurrences import (
    MISS,
    RUN,
    WAIT,
    MisfireRules,
    fire_times_between,
    is_fire_time,
    latest_fire_times,
    plan_due,
)
from canvas.scheduling.quartz import parse

WORKFLOW = uuid.uuid4()
NOW = datetime(2026, 6, 1, 12, 0, 0, tzinfo=timezone.utc)
RULES = MisfireRules(grace=timedelta(seconds=60), run_each_limit=3)


def seconds_ago(*seconds: int) -> list[datetime]:
    return [NOW - timedelta(seconds=value) for value in seconds]


def shape(firings) -> list[tuple[str, int]]:
    return [(firing.action, len(firing.times)) for firing in firings]


def test_occurrences_within_the_grace_time_fire_one_by_one():
    firings = plan_due(WORKFLOW, seconds_ago(59, 1, 0), "skip", NOW, RULES)
    assert shape(firings) == [(RUN, 1)] * 3 and all(firing.reason is None for firing in firings)


def test_coalesce_makes_the_late_ones_one_run_first():
    firings = plan_due(WORKFLOW, seconds_ago(300, 200, 61, 5), "coalesce", NOW, RULES)
    assert shape(firings) == [(RUN, 3), (RUN, 1)]
    assert firings[0].times == tuple(seconds_ago(300, 200, 61))
    assert firings[0].reason == "3 missed occurrence(s) coalesced into one run (misfire policy coalesce)"


def test_skip_records_the_late_ones_missed():
    [missed] = plan_due(WORKFLOW, seconds_ago(300, 200), "skip", NOW, RULES)
    assert (missed.action, missed.times) == (MISS, tuple(seconds_ago(300, 200)))
    assert missed.reason == "missed: not fired within the misfire grace time of 60 s; misfire policy skip"


def test_run_each_runs_the_newest_up_to_the_limit_one_after_the_other():
    late = seconds_ago(500, 400, 300, 200, 100)
    firings = plan_due(WORKFLOW, late, "run_each", NOW, RULES)
    assert shape(firings) == [(MISS, 2), (RUN, 1), (WAIT, 1), (WAIT, 1)]
    assert firings[0].times == tuple(late[:2]) and firings[0].reason == \
        "missed: beyond the run_each limit of 3 catch-up runs"
    assert [firing.times[0] for firing in firings[1:]] == late[2:]


def test_run_each_with_a_limit_of_zero_misses_them_all():
    rules = MisfireRules(timedelta(seconds=60), run_each_limit=0)
    assert shape(plan_due(WORKFLOW, seconds_ago(300, 200), "run_each", NOW, rules)) == [(MISS, 2)]


@pytest.mark.parametrize(("cron", "after_days", "limit", "expected_count"), [
    pytest.param("* * * ? * *", 3, 100, 100, id="dense-over-days-only-the-newest"),
    pytest.param("0 0 2 ? * *", 30, 100, 30, id="sparse-all-of-them"),
    pytest.param("0 0 2 ? * *", 30, 7, 7, id="sparse-newest-seven"),
    pytest.param("0 0 0 1 1 ? 2020", 30, 5, 0, id="none"),
])
def test_latest_fire_times_are_the_newest_in_the_window(cron, after_days, limit, expected_count):
    expression, zone = parse(cron), ZoneInfo("UTC")
    after = NOW - timedelta(days=after_days)
    times = latest_fire_times(expression, zone, after, NOW, limit)
    assert len(times) == expected_count
    if times:
        assert times == sorted(times) and times[-1] <= NOW and times[0] > after
        assert expression.next_fire_time(times[-1], zone) > NOW, "nothing newer was left out"
        assert times == fire_times_between(expression, zone, times[0] - timedelta(seconds=1), NOW)


def test_is_fire_time_checks_membership_including_the_second_pass_of_a_repeated_hour():
    expression, oslo = parse("0 30 2 ? * *"), ZoneInfo("Europe/Oslo")
    second_pass = datetime(2026, 10, 25, 1, 30, tzinfo=timezone.utc)  # 02:30 CET, after the clocks went back
    assert is_fire_time(expression, oslo, second_pass)
    assert not is_fire_time(expression, oslo, second_pass - timedelta(hours=1)), "the first pass does not fire"
    assert not is_fire_time(expression, oslo, second_pass + timedelta(seconds=1))
