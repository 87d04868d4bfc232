"""The seven Quartz fields: their bounds, names, and which token forms each accepts; and parsing one field's text.

Quartz is lenient by accident in places (``12.5`` reads as 12, ``MON-FRI/2`` as MON-FRI, ``JANUARY`` as JAN,
``1,,2`` as ``1,2``); every such text is rejected here with a message that names the field and the token.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property, lru_cache

from .errors import CronSyntaxError
from .tokens import (
    AllToken,
    DayRuleToken,
    LastDayOfMonthToken,
    LastDayOfWeekToken,
    LastWeekdayOfMonthToken,
    NameRangeToken,
    NearestWeekdayToken,
    NoSpecificValueToken,
    NthDayOfWeekToken,
    RangeToken,
    SaturdayAliasToken,
    SetToken,
    Token,
    last_day_of_month,
    quartz_weekday,
)

MONTH_NAMES = {name: number for number, name in enumerate(
    ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"], start=1)}
WEEKDAY_NAMES = {name: number for number, name in enumerate(["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"], start=1)}

# Quartz documents years 1970-2199; fire times are searched only up to the current year + FIRE_HORIZON_YEARS (Quartz's
# MAX_YEAR), so a later year parses but never fires.
FIRST_YEAR, LAST_YEAR = 1970, 2199
FIRE_HORIZON_YEARS = 100


@dataclass(frozen=True, eq=False)
class FieldSpec:
    """One field's bounds and grammar. ``max_step`` is Quartz's increment limit (``Increment > 60``, ...)."""

    name: str
    low: int
    high: int
    token_types: tuple[type[Token], ...]
    names: Mapping[str, int] = field(default_factory=dict)
    max_step: int | None = None
    wraps: bool = True  # whether a range may run past the maximum back to the minimum (not for years)

    @property
    def span(self) -> int:
        return self.high - self.low + 1

    @property
    def range_text(self) -> str:
        if not self.names:
            return f"{self.low}-{self.high}"
        return f"{self.low}-{self.high} ({self.names_text})"

    @property
    def names_text(self) -> str:
        return f"{self.name_of(self.low)}-{self.name_of(self.high)}"

    def wrap(self, value: int) -> int:
        """Fold a value of a wrapped range (up to twice the maximum) back into the field's bounds."""
        return self.low + (value - self.low) % self.span

    def error(self, text: str, problem: str) -> CronSyntaxError:
        return CronSyntaxError(f"{self.name}: '{text}' {problem}")

    def number(self, digits: str, text: str) -> int:
        value = int(digits)
        if not self.low <= value <= self.high:
            raise self.error(text, f"is out of range {self.range_text}")
        return value

    def step(self, digits: str, text: str) -> int:
        step = int(digits)
        if step == 0:
            raise self.error(text, "has a step of 0; a step must be at least 1")
        if self.max_step is not None and step > self.max_step:
            raise self.error(text, f"has a step larger than {self.max_step}")
        return step

    def name_value(self, name: str, text: str) -> int:
        if name not in self.names:
            raise self.error(text, f"is not a {self.name} name; use {self.names_text} or {self.low}-{self.high}")
        return self.names[name]

    def name_of(self, value: int) -> str:
        return next(name for name, number in self.names.items() if number == value)

    def check_range_direction(self, first: int, last: int | None, text: str) -> None:
        if last is not None and last < first and not self.wraps:
            raise self.error(text, f"runs backwards; a {self.name} range cannot wrap around")


_TIME_TOKENS = (AllToken, RangeToken)
SECONDS = FieldSpec("seconds", 0, 59, _TIME_TOKENS, max_step=59)
MINUTES = FieldSpec("minutes", 0, 59, _TIME_TOKENS, max_step=59)
HOURS = FieldSpec("hours", 0, 23, _TIME_TOKENS, max_step=23)
DAY_OF_MONTH = FieldSpec("day-of-month", 1, 31, (
    NoSpecificValueToken, AllToken, RangeToken,
    LastDayOfMonthToken, LastWeekdayOfMonthToken, NearestWeekdayToken,
), max_step=31)
MONTH = FieldSpec("month", 1, 12, (AllToken, RangeToken, NameRangeToken), MONTH_NAMES, max_step=12)
DAY_OF_WEEK = FieldSpec("day-of-week", 1, 7, (
    NoSpecificValueToken, AllToken, RangeToken, NameRangeToken,
    SaturdayAliasToken, LastDayOfWeekToken, NthDayOfWeekToken,
), WEEKDAY_NAMES, max_step=7)
YEAR = FieldSpec("year", FIRST_YEAR, LAST_YEAR, _TIME_TOKENS, wraps=False)

FIELD_SPECS = (SECONDS, MINUTES, HOURS, DAY_OF_MONTH, MONTH, DAY_OF_WEEK, YEAR)


@dataclass(frozen=True, eq=False)
class CronField:
    """One parsed field: its tokens (a list when there are several), written back with ``str()``."""

    spec: FieldSpec
    tokens: tuple[Token, ...]

    def __str__(self) -> str:
        return ",".join(str(token) for token in self.tokens)

    @property
    def is_unspecified(self) -> bool:
        return isinstance(self.tokens[0], NoSpecificValueToken)

    @cached_property
    def values(self) -> tuple[int, ...]:
        """The field's values in ascending order (set tokens only; day rules have ``days_in_month`` instead)."""
        found: set[int] = set()
        for token in self.tokens:
            if isinstance(token, SetToken):
                found |= token.values(self.spec)
        return _shared(tuple(sorted(found)))

    def days_in_month(self, year: int, month: int) -> tuple[int, ...]:
        """The days of (year, month) this day-of-month or day-of-week field selects, in ascending order."""
        rule = self.tokens[0]
        if isinstance(rule, DayRuleToken):
            return rule.days_in_month(year, month)
        last = last_day_of_month(year, month)
        if self.spec is DAY_OF_MONTH:
            return tuple(day for day in self.values if day <= last)
        weekdays = set(self.values)
        return tuple(day for day in range(1, last + 1) if quartz_weekday(year, month, day) in weekdays)


@lru_cache(maxsize=2048)
def _shared(values: tuple[int, ...]) -> tuple[int, ...]:
    """One tuple for equal values: a scheduler holding 10,000 expressions would otherwise keep 10,000 copies of the
    230 years 1970-2199 (about 9 KB each; ints above 256 are separate objects)."""
    return values


def parse_field(spec: FieldSpec, text: str) -> CronField:
    """Parse one field's (upper-cased) text into a ``CronField``; raise ``CronSyntaxError`` naming field and token."""
    items = text.split(",")
    if any(item == "" for item in items):
        raise spec.error(text, "has an empty item in its list")
    tokens = tuple(_parse_token(spec, item) for item in items)
    if len(tokens) > 1:
        _check_list(spec, text, tokens)
    return CronField(spec, tokens)


def _parse_token(spec: FieldSpec, text: str) -> Token:
    for token_type in spec.token_types:
        token = token_type.parse(text, spec)
        if token is not None:
            return token
    raise _diagnose(spec, text)


def _check_list(spec: FieldSpec, text: str, tokens: tuple[Token, ...]) -> None:
    for token in tokens:
        if token.standalone:
            raise spec.error(text, f"combines '{token}' with other values; {token.description} must stand alone")


# Near misses worth a precise message, tried in order when no token form of the field matches.
_NAMES_WITH_STEP = re.compile(r"(?P<first>[A-Z]{3})(?:-(?P<last>[A-Z]{3}))?/(?P<step>[0-9]+)")
_LONG_NAME = re.compile(r"[A-Z]{4,}")
_MIXED_RANGE = re.compile(r"[A-Z]{3}-[0-9]+|[0-9]+-[A-Z]{3}")
_SUFFIX_ON_RANGE = re.compile(r"[0-9A-Z]+-[0-9A-Z]+(?:/[0-9]+)?(?P<suffix>[WL#].*)")


def _diagnose(spec: FieldSpec, text: str) -> CronSyntaxError:
    """Explain why ``text`` is no token form of ``spec``'s field."""
    if spec.names and (match := _NAMES_WITH_STEP.fullmatch(text)):
        return spec.error(text, "applies a step to names, which Quartz ignores; "
                                f"write it with numbers, e.g. '{_numeric_step_form(spec, match)}'")
    if spec.names and _LONG_NAME.fullmatch(text):
        return spec.error(text, f"is not a {spec.name} name; use the three-letter names {spec.names_text}")
    if spec.names and _MIXED_RANGE.fullmatch(text):
        return spec.error(text, "mixes a name and a number; write both ends as names or both as numbers")
    if match := _SUFFIX_ON_RANGE.fullmatch(text):
        suffix = match["suffix"][0]
        return spec.error(text, f"puts '{suffix}' on a range; '{suffix}' applies to a single value only")
    if other_fields := _fields_accepting(text, spec):
        return spec.error(text, f"is not allowed here; it is only valid in {' or '.join(other_fields)}")
    return spec.error(text, f"is not a valid value; expected {_expected_forms(spec)}")


def _numeric_step_form(spec: FieldSpec, match: re.Match[str]) -> str:
    first = spec.name_value(match["first"], match[0])
    last = "" if match["last"] is None else f"-{spec.name_value(match['last'], match[0])}"
    return f"{first}{last}/{match['step']}"


def _fields_accepting(text: str, this_spec: FieldSpec) -> list[str]:
    """The names of the other fields in which ``text`` is a valid token (e.g. 'L' typed into hours)."""
    accepting = []
    for spec in FIELD_SPECS:
        if spec is this_spec:
            continue
        for token_type in spec.token_types:
            try:
                token = token_type.parse(text, spec)
            except CronSyntaxError:
                token = None
            if token is not None:
                accepting.append(spec.name)
                break
    return accepting


def _expected_forms(spec: FieldSpec) -> str:
    forms = [token_type.description for token_type in spec.token_types]
    return f"{', '.join(forms)} (values {spec.range_text}), or a comma-separated list"
