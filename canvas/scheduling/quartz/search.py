"""Next fire time: a field-by-field search over local wall-clock time, as Quartz's ``getTimeAfter`` does it.

Quartz walks a ``java.util.GregorianCalendar`` forward through wall-clock fields, from the wall-clock reading of
``after`` + 1 s (milliseconds dropped), and every time it sets a field the calendar re-reads the wall time in the zone.
Java resolves a wall time that occurs twice (fall back) as standard time, the second pass, and a wall time that does
not exist (spring forward) with the offset from before the gap, which moves it forward by the gap. Hence:

* a repeated wall time fires once, at its second (standard-time) pass, and never during the first pass;
* a missing wall time does not fire; the search goes on from that time moved forward by the gap;
* the search never goes back in wall-clock time: if ``after`` lies in the first pass of a repeated hour, the times
  of that hour earlier on the clock than ``after`` are not revisited (their second pass is skipped, exactly as Quartz
  skips them), and everything found is still strictly after ``after`` as an instant.
"""
from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from datetime import date, datetime, time, timedelta, timezone, tzinfo
from typing import Protocol

from .fields import FIRE_HORIZON_YEARS

MIDNIGHT = time(0, 0, 0)
ONE_SECOND = timedelta(seconds=1)


def last_fire_year() -> int:
    """The last year searched for a fire time: Quartz's ``MAX_YEAR``, the current year + 100. A fixed year would
    drop rare fire times Quartz still finds (the 5th Tuesday of February falls in 2084, then in 2124)."""
    return datetime.now(timezone.utc).year + FIRE_HORIZON_YEARS


class Schedule(Protocol):
    """What the search needs from a parsed expression: ascending values per field and the days of a month."""

    years: Sequence[int]
    months: Sequence[int]
    hours: Sequence[int]
    minutes: Sequence[int]
    seconds: Sequence[int]

    def days_in_month(self, year: int, month: int) -> Sequence[int]: ...


def next_fire_time(schedule: Schedule, after: datetime, zone: tzinfo) -> datetime | None:
    """The first fire time strictly after ``after`` (aware), as an aware datetime in ``zone``; None if there is none."""
    if after.tzinfo is None or after.utcoffset() is None:
        raise ValueError("'after' must be a timezone-aware datetime")
    after_utc = after.astimezone(timezone.utc)
    if after_utc.year > last_fire_year() + 1:  # surely past the last year in any zone (and clear of datetime.max)
        return None
    start = after_utc.replace(microsecond=0) + ONE_SECOND
    wall = start.astimezone(zone).replace(tzinfo=None, fold=0)
    while (candidate := next_wall_time(schedule, wall)) is not None:
        fire_time = _existing_second_pass(candidate, zone)
        if fire_time is not None:
            return fire_time
        wall = _moved_past_gap(candidate, zone)
    return None


def next_wall_time(schedule: Schedule, start: datetime) -> datetime | None:
    """The first naive wall-clock time at or after ``start`` that every field matches; None if none is left by the
    end of ``last_fire_year()``."""
    last_year = last_fire_year()
    year, month, day, earliest = start.year, start.month, start.day, start.time()
    while year <= last_year:
        next_year = _first_at_or_after(schedule.years, year)
        if next_year is None or next_year > last_year:
            return None
        if next_year != year:
            year, month, day, earliest = next_year, 1, 1, MIDNIGHT
        next_month = _first_at_or_after(schedule.months, month)
        if next_month is None:
            year, month, day, earliest = year + 1, 1, 1, MIDNIGHT
            continue
        if next_month != month:
            month, day, earliest = next_month, 1, MIDNIGHT
        next_day = _first_at_or_after(schedule.days_in_month(year, month), day)
        if next_day is None:
            year, month = (year + 1, 1) if month == 12 else (year, month + 1)
            day, earliest = 1, MIDNIGHT
            continue
        if next_day != day:
            day, earliest = next_day, MIDNIGHT
        time_of_day = _first_time_at_or_after(schedule, earliest)
        if time_of_day is not None:
            return datetime.combine(date(year, month, day), time_of_day)
        day, earliest = day + 1, MIDNIGHT  # past the month's end, the day lookup above moves to the next month
    return None


def _first_time_at_or_after(schedule: Schedule, earliest: time) -> time | None:
    for hour in _at_or_after(schedule.hours, earliest.hour):
        minute_floor = earliest.minute if hour == earliest.hour else 0
        for minute in _at_or_after(schedule.minutes, minute_floor):
            second_floor = earliest.second if (hour, minute) == (earliest.hour, earliest.minute) else 0
            second = _first_at_or_after(schedule.seconds, second_floor)
            if second is not None:
                return time(hour, minute, second)
    return None


def _existing_second_pass(wall: datetime, zone: tzinfo) -> datetime | None:
    """``wall`` in ``zone`` at its later pass if it occurs twice; None if the clock skips it."""
    # (fold reset: astimezone() hands back the very object, fold=1 included, when zone is already UTC)
    instant = wall.replace(tzinfo=zone, fold=1).astimezone(timezone.utc).replace(fold=0)
    local = instant.astimezone(zone)  # carries the right offset and fold
    return local if local.replace(tzinfo=None, fold=0) == wall else None


def _moved_past_gap(wall: datetime, zone: tzinfo) -> datetime:
    """Where Java's calendar lands for a missing wall time: read with the offset before the gap, i.e. moved forward
    by the gap's length."""
    moved = wall.replace(tzinfo=zone, fold=0).astimezone(timezone.utc).astimezone(zone).replace(tzinfo=None, fold=0)
    return max(moved, wall + ONE_SECOND)  # always progress, whatever the tzinfo does with a gap


def _at_or_after(values: Sequence[int], floor: int) -> Sequence[int]:
    return values[bisect_left(values, floor):]


def _first_at_or_after(values: Sequence[int], floor: int) -> int | None:
    index = bisect_left(values, floor)
    return values[index] if index < len(values) else None
