"""Property tests: generated valid expressions, checked against a model built independently of the parser.

Each generated expression comes with a model: the set of allowed values per field, expanded here by walking the
field's values one by one (wrapping past the maximum), and the day rule checked day by day by ``matches``. Nothing
here reuses the package's search or token code.
"""
from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from canvas.scheduling.quartz import parse

UTC = timezone.utc
ZONES = [UTC, ZoneInfo("Europe/Oslo"), ZoneInfo("America/New_York")]
MONTH_NAMES = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
WEEKDAY_NAMES = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]
DST_CHANGES_UTC = [datetime(*moment, tzinfo=UTC) for moment in [
    (2026, 3, 29, 1), (2026, 10, 25, 1), (2027, 3, 28, 1), (2027, 10, 31, 1), (2028, 3, 26, 1), (2028, 10, 29, 1),
    (2026, 3, 8, 7), (2026, 11, 1, 6), (2027, 3, 14, 7), (2027, 11, 7, 6), (2028, 3, 12, 7), (2028, 11, 5, 6),
]]
PROPERTY_SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@dataclass(frozen=True)
class Model:
    seconds: frozenset[int]
    minutes: frozenset[int]
    hours: frozenset[int]
    months: frozenset[int]
    years: frozenset[int]
    day_rule: tuple  # ("day-of-month", {days}) | ("L", offset) | ("LW", offset) | ("W", day) | ("day-of-week", {days})
    #                  | ("nL", weekday) | ("#", weekday, nth)


def walk(low: int, high: int, first: int, last: int) -> list[int]:
    """The values from first to last, one by one, going past high back to low."""
    values = [first]
    while values[-1] != last:
        values.append(low if values[-1] == high else values[-1] + 1)
    return values


@st.composite
def set_item(draw, low: int, high: int, names: list[str] | None = None):
    """One list item of a set field: (text, the values it allows)."""
    kind = draw(st.sampled_from(["star", "star-step", "value", "range", "start-step", "range-step"]))
    first, last = draw(st.integers(low, high)), draw(st.integers(low, high))
    step = draw(st.integers(1, high - low))  # Quartz caps steps: */60 in seconds is an error
    spell = (lambda value: names[value - low]) if names and draw(st.booleans()) else str
    if kind == "star":
        return "*", set(range(low, high + 1))
    if kind == "star-step":
        return f"*/{step}", set(walk(low, high, low, high)[::step])
    if kind == "value":
        return spell(first), {first}
    if kind == "range":
        return f"{spell(first)}-{spell(last)}", set(walk(low, high, first, last))
    if kind == "start-step":
        return f"{first}/{step}", set(walk(low, high, first, high)[::step])
    return f"{first}-{last}/{step}", set(walk(low, high, first, last)[::step])


@st.composite
def set_field(draw, low: int, high: int, names: list[str] | None = None):
    items = draw(st.lists(set_item(low, high, names), min_size=1, max_size=3))
    return ",".join(text for text, _ in items), frozenset().union(*(values for _, values in items))


@st.composite
def day_fields(draw):
    """(day-of-month text, day-of-week text, day rule of the model)."""
    kind = draw(st.sampled_from(["day-of-month", "L", "LW", "W", "day-of-week", "nL", "#"]))
    weekday, offset = draw(st.integers(1, 7)), draw(st.integers(0, 30))
    if kind == "day-of-month":
        text, days = draw(set_field(1, 31))
        return text, "?", (kind, days)
    if kind == "day-of-week":
        text, weekdays = draw(set_field(1, 7, WEEKDAY_NAMES))
        return "?", text, (kind, weekdays)
    if kind in ("L", "LW"):
        return f"L-{offset}{kind[1:]}", "?", (kind, offset)
    if kind == "W":
        day = draw(st.integers(1, 31))
        return f"{day}W", "?", (kind, day)
    if kind == "nL":
        return "?", f"{weekday}L", (kind, weekday)
    nth = draw(st.integers(1, 5))
    return "?", f"{weekday}#{nth}", (kind, weekday, nth)


@st.composite
def expressions(draw):
    """(expression text, model): a valid Quartz expression and what it means."""
    seconds = draw(st.one_of(st.just(("0", frozenset({0}))), set_field(0, 59)))
    minutes, hours = draw(set_field(0, 59)), draw(set_field(0, 23))
    months = draw(st.one_of(st.just(("*", frozenset(range(1, 13)))), set_field(1, 12, MONTH_NAMES)))
    day_of_month, day_of_week, day_rule = draw(day_fields())
    first_year = draw(st.integers(2026, 2030))
    year_text, years = draw(st.sampled_from([
        ("", frozenset(range(1970, 2100))), ("*", frozenset(range(1970, 2100))),
        (f"{first_year}-{first_year + 2}", frozenset(range(first_year, first_year + 3))),
    ]))
    text = " ".join([seconds[0], minutes[0], hours[0], day_of_month, months[0], day_of_week, year_text]).strip()
    return text, Model(seconds[1], minutes[1], hours[1], months[1], years, day_rule)


def last_day(day: date) -> int:
    return calendar.monthrange(day.year, day.month)[1]


def quartz_weekday(day: date) -> int:
    return day.isoweekday() % 7 + 1  # 1=SUN .. 7=SAT


def nearest_weekday(year: int, month: int, target: int) -> int:
    """The Monday-Friday of the same month closest to the target day."""
    weekdays = [day for day in range(1, calendar.monthrange(year, month)[1] + 1)
                if date(year, month, day).isoweekday() <= 5]
    return min(weekdays, key=lambda day: abs(day - target))


def day_matches(rule: tuple, day: date) -> bool:
    kind, last = rule[0], last_day(day)
    if kind == "day-of-month":
        return day.day in rule[1]
    if kind == "day-of-week":
        return quartz_weekday(day) in rule[1]
    if kind == "L":
        return day.day == last - rule[1]
    if kind == "LW":
        return last - rule[1] >= 1 and day.day == nearest_weekday(day.year, day.month, last - rule[1])
    if kind == "W":
        return rule[1] <= last and day.day == nearest_weekday(day.year, day.month, rule[1])
    if kind == "nL":
        return quartz_weekday(day) == rule[1] and day.day + 7 > last
    return quartz_weekday(day) == rule[1] and (day.day - 1) // 7 + 1 == rule[2]


def matches(model: Model, wall: datetime) -> bool:
    """Does the expression fire at this local wall-clock time?"""
    return (wall.second in model.seconds and wall.minute in model.minutes and wall.hour in model.hours
            and wall.month in model.months and wall.year in model.years and day_matches(model.day_rule, wall.date()))


def brute_force_next(model: Model, after: datetime, horizon_days: int) -> datetime | None:
    """The first matching naive time after ``after``, trying every day and every allowed time of day in order."""
    for offset in range(horizon_days):
        day = after.date() + timedelta(days=offset)
        if day.year not in model.years or day.month not in model.months or not day_matches(model.day_rule, day):
            continue
        for hour in sorted(model.hours):
            if (day, hour) < (after.date(), after.hour):
                continue  # all of that hour is before `after`
            for minute in sorted(model.minutes):
                for second in sorted(model.seconds):
                    candidate = datetime.combine(day, time(hour, minute, second))
                    if candidate > after:
                        return candidate
    return None


moments_2026_to_2028 = st.datetimes(datetime(2026, 1, 1), datetime(2028, 12, 31)).map(
    lambda moment: moment.replace(tzinfo=UTC))
moments_near_dst_changes = st.builds(
    lambda change, seconds: change + timedelta(seconds=seconds),
    st.sampled_from(DST_CHANGES_UTC), st.integers(-3 * 3600, 3 * 3600))


@PROPERTY_SETTINGS
@given(expressions(), st.one_of(moments_2026_to_2028, moments_near_dst_changes), st.sampled_from(ZONES))
def test_fire_times_strictly_increase_and_each_matches_the_expression(expression, after, zone):
    text, model = expression
    found = parse(text).fire_times(after, zone, 4)
    instants = [after] + found
    assert all(earlier < later for earlier, later in zip(instants, instants[1:]))
    for fire_time in found:
        wall = fire_time.replace(tzinfo=None, fold=0)
        assert fire_time.tzinfo is zone
        assert matches(model, wall), f"{text} does not match {fire_time.isoformat()}"
        round_trip = fire_time.astimezone(UTC).astimezone(zone)
        assert (round_trip.replace(tzinfo=None), round_trip.fold) == (fire_time.replace(tzinfo=None), fire_time.fold)
        repeated = wall.replace(tzinfo=zone, fold=0).utcoffset() != wall.replace(tzinfo=zone, fold=1).utcoffset()
        assert fire_time.fold == (1 if repeated else 0), "a repeated wall time fires at its second pass only"


@PROPERTY_SETTINGS
@given(expressions(), moments_2026_to_2028)
def test_no_fire_time_is_missed_in_utc(expression, after):
    text, model = expression
    horizon_days = 800
    expected = brute_force_next(model, after.replace(tzinfo=None, microsecond=0), horizon_days)
    found = parse(text).next_fire_time(after, UTC)
    if expected is not None:
        assert found == expected.replace(tzinfo=UTC)
    else:
        assert found is None or found > after + timedelta(days=horizon_days - 1)


@PROPERTY_SETTINGS
@given(expressions())
def test_normalised_text_round_trips(expression):
    text, _ = expression
    parsed = parse(text.lower())
    assert parse(str(parsed)) == parsed
    assert str(parse(str(parsed))) == str(parsed)
