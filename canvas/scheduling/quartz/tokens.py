"""One class per Quartz token form, in the manner of APScheduler's ``triggers/cron/expressions.py``.

Each class owns the regex of its form, checks its numbers against the field it sits in (a ``FieldSpec``), and writes
itself back with ``__str__``. Two kinds:

* set tokens (``*``, ``a-b/n``, names, ``L`` alone in day-of-week) expand to a set of field values;
* day-rule tokens (``L``, ``L-n``, ``LW``, ``nW``, ``nL``, ``n#k``) say which days of a given month they select,
  because those days depend on the month's length and on the weekday it starts on.

Day-rule tokens, ``?`` and ``L`` in day-of-week must stand alone in their field: Quartz rejects them in lists, or
silently mis-reads them there.
"""
from __future__ import annotations

import calendar
import re
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from .fields import FieldSpec

SUNDAY, SATURDAY = 1, 7  # Quartz numbers weekdays 1=SUN .. 7=SAT
MAX_LAST_DAY_OFFSET = 30  # Quartz: "Offset from last day must be <= 30"
MAX_NTH_WEEKDAY = 5  # Quartz: "A numeric value between 1 and 5 must follow the '#' option"


def last_day_of_month(year: int, month: int) -> int:
    return calendar.monthrange(year, month)[1]


def quartz_weekday(year: int, month: int, day: int) -> int:
    """The weekday of a date in Quartz numbering (1=SUN .. 7=SAT); ``calendar.weekday`` counts 0=MON .. 6=SUN."""
    return (calendar.weekday(year, month, day) + 1) % 7 + 1


def nearest_weekday(year: int, month: int, day: int) -> int:
    """Quartz's ``W``: the Monday-Friday day nearest ``day`` without leaving the month."""
    weekday = quartz_weekday(year, month, day)
    if weekday == SATURDAY:
        return day + 2 if day == 1 else day - 1
    if weekday == SUNDAY:
        return day - 2 if day == last_day_of_month(year, month) else day + 1
    return day


class Token:
    """Base of every token form: parse with ``parse()``, write back with ``str()``."""

    pattern: ClassVar[re.Pattern[str]]
    standalone: ClassVar[bool] = False  # True: must be the only item of its field
    description: ClassVar[str] = ""

    @classmethod
    def parse(cls, text: str, spec: FieldSpec) -> Token | None:
        """The token ``text`` spells in ``spec``'s field, or None when ``text`` is not this form at all."""
        match = cls.pattern.fullmatch(text)
        return None if match is None else cls.from_match(match, text, spec)

    @classmethod
    def from_match(cls, match: re.Match[str], text: str, spec: FieldSpec) -> Token:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and str(self) == str(other)

    def __hash__(self) -> int:
        return hash((type(self).__name__, str(self)))


class SetToken(Token):
    """A token that stands for a fixed set of field values."""

    def values(self, spec: FieldSpec) -> frozenset[int]:
        raise NotImplementedError


class DayRuleToken(Token):
    """A token whose days depend on the month: it answers which days of (year, month) it selects."""

    standalone = True

    def days_in_month(self, year: int, month: int) -> tuple[int, ...]:
        raise NotImplementedError


class AllToken(SetToken):
    """``*`` (every value) or ``*/n`` (every n-th value from the field's minimum); a bare ``/n`` is Quartz's
    shorthand for ``*/n`` and is written back as ``*/n``."""

    pattern = re.compile(r"\*|\*?/(?P<step>[0-9]+)")
    description = "'*' or '*/n'"

    def __init__(self, step: int | None = None) -> None:
        self.step = step

    @classmethod
    def from_match(cls, match: re.Match[str], text: str, spec: FieldSpec) -> AllToken:
        step = match["step"]
        return cls(None if step is None else spec.step(step, text))

    def values(self, spec: FieldSpec) -> frozenset[int]:
        return frozenset(range(spec.low, spec.high + 1, self.step or 1))

    def __str__(self) -> str:
        return "*" if self.step is None else f"*/{self.step}"


class RangeToken(SetToken):
    """``a``, ``a-b``, ``a/n`` (from a to the field's maximum) and ``a-b/n``. A range whose end is below its start
    wraps past the field's maximum as in Quartz: hours ``22-2`` are 22,23,0,1,2."""

    pattern = re.compile(r"(?P<first>[0-9]+)(?:-(?P<last>[0-9]+))?(?:/(?P<step>[0-9]+))?")
    description = "a number, a range 'a-b', or a step 'a/n' or 'a-b/n'"

    def __init__(self, first: int, last: int | None = None, step: int | None = None) -> None:
        self.first, self.last, self.step = first, last, step

    @classmethod
    def from_match(cls, match: re.Match[str], text: str, spec: FieldSpec) -> RangeToken:
        first = spec.number(match["first"], text)
        last = None if match["last"] is None else spec.number(match["last"], text)
        step = None if match["step"] is None else spec.step(match["step"], text)
        spec.check_range_direction(first, last, text)
        return cls(first, last, step)

    def values(self, spec: FieldSpec) -> frozenset[int]:
        if self.last is None and self.step is None:
            return frozenset({self.first})
        last = spec.high if self.last is None else self.last
        if last < self.first:
            last += spec.span  # wrap-around range, folded back by spec.wrap
        return frozenset(spec.wrap(value) for value in range(self.first, last + 1, self.step or 1))

    def _bound_text(self, value: int) -> str:
        return str(value)

    def __str__(self) -> str:
        text = self._bound_text(self.first)
        if self.last is not None:
            text += f"-{self._bound_text(self.last)}"
        return text if self.step is None else f"{text}/{self.step}"


class NameRangeToken(RangeToken):
    """A month or weekday name (``JAN``, ``MON``) or a range of two names (``MON-FRI``, wrapping ``FRI-MON``).
    Quartz ignores a step after names (``MON-FRI/2`` fires every weekday), so no step is accepted here."""

    pattern = re.compile(r"(?P<first>[A-Z]{3})(?:-(?P<last>[A-Z]{3}))?")
    description = "a name or a range of names"

    def __init__(self, first: int, last: int | None, spec: FieldSpec) -> None:
        super().__init__(first, last)
        self._spec = spec

    @classmethod
    def from_match(cls, match: re.Match[str], text: str, spec: FieldSpec) -> NameRangeToken:
        first = spec.name_value(match["first"], text)
        last = None if match["last"] is None else spec.name_value(match["last"], text)
        return cls(first, last, spec)

    def _bound_text(self, value: int) -> str:
        return self._spec.name_of(value)


class NoSpecificValueToken(Token):
    """``?``: no specific value, allowed in day-of-month or day-of-week (exactly one of them)."""

    pattern = re.compile(r"\?")
    standalone = True
    description = "'?'"

    @classmethod
    def from_match(cls, match: re.Match[str], text: str, spec: FieldSpec) -> NoSpecificValueToken:
        return cls()

    def __str__(self) -> str:
        return "?"


class SaturdayAliasToken(SetToken):
    """``L`` alone in day-of-week: Quartz reads it as 7 (SAT), not as "last day"."""

    pattern = re.compile(r"L")
    standalone = True
    description = "'L'"

    @classmethod
    def from_match(cls, match: re.Match[str], text: str, spec: FieldSpec) -> SaturdayAliasToken:
        return cls()

    def values(self, spec: FieldSpec) -> frozenset[int]:
        return frozenset({SATURDAY})

    def __str__(self) -> str:
        return "L"


class LastDayOfMonthToken(DayRuleToken):
    """``L`` (last day of the month) or ``L-n`` (n days before it, 0 <= n <= 30); a month too short for the offset
    has no such day and is skipped. ``L-0`` is written back as ``L``."""

    pattern = re.compile(r"L(?:-(?P<offset>[0-9]+))?")
    description = "'L' or 'L-n'"

    def __init__(self, offset: int = 0) -> None:
        self.offset = offset

    @classmethod
    def from_match(cls, match: re.Match[str], text: str, spec: FieldSpec) -> LastDayOfMonthToken:
        return cls(_last_day_offset(match["offset"], text, spec))

    def days_in_month(self, year: int, month: int) -> tuple[int, ...]:
        day = last_day_of_month(year, month) - self.offset
        return (day,) if day >= 1 else ()

    def __str__(self) -> str:
        return f"L-{self.offset}" if self.offset else "L"


class LastWeekdayOfMonthToken(LastDayOfMonthToken):
    """``LW`` (the last Monday-Friday of the month) or ``L-nW`` (the weekday nearest the day n before the last)."""

    pattern = re.compile(r"L(?:-(?P<offset>[0-9]+))?W")
    description = "'LW' or 'L-nW'"

    def days_in_month(self, year: int, month: int) -> tuple[int, ...]:
        return tuple(nearest_weekday(year, month, day) for day in super().days_in_month(year, month))

    def __str__(self) -> str:
        return f"{super().__str__()}W"


class NearestWeekdayToken(DayRuleToken):
    """``nW``: the Monday-Friday nearest day n, never crossing into another month. A month without day n is
    skipped (as for a plain ``n``; Quartz 2.3 sometimes fires on day n-1 there through a calendar roll-over)."""

    pattern = re.compile(r"(?P<day>[0-9]+)W")
    description = "'nW'"

    def __init__(self, day: int) -> None:
        self.day = day

    @classmethod
    def from_match(cls, match: re.Match[str], text: str, spec: FieldSpec) -> NearestWeekdayToken:
        return cls(spec.number(match["day"], text))

    def days_in_month(self, year: int, month: int) -> tuple[int, ...]:
        if self.day > last_day_of_month(year, month):
            return ()
        return (nearest_weekday(year, month, self.day),)

    def __str__(self) -> str:
        return f"{self.day}W"


class WeekdayRuleToken(DayRuleToken):
    """Base of the day-of-week rules that name one weekday by number (1-7) or name (SUN-SAT)."""

    def __init__(self, weekday: int, weekday_text: str) -> None:
        self.weekday, self.weekday_text = weekday, weekday_text

    @staticmethod
    def parse_weekday(match: re.Match[str], text: str, spec: FieldSpec) -> tuple[int, str]:
        written = match["weekday"]
        if written.isdigit():
            weekday = spec.number(written, text)
            return weekday, str(weekday)
        return spec.name_value(written, text), written


class LastDayOfWeekToken(WeekdayRuleToken):
    """``nL`` (or ``FRIL``): the last weekday n of the month; ``6L`` is the last Friday."""

    pattern = re.compile(r"(?P<weekday>[0-9]+|[A-Z]{3})L")
    description = "'nL'"

    @classmethod
    def from_match(cls, match: re.Match[str], text: str, spec: FieldSpec) -> LastDayOfWeekToken:
        return cls(*cls.parse_weekday(match, text, spec))

    def days_in_month(self, year: int, month: int) -> tuple[int, ...]:
        last = last_day_of_month(year, month)
        return (last - (quartz_weekday(year, month, last) - self.weekday) % 7,)

    def __str__(self) -> str:
        return f"{self.weekday_text}L"


class NthDayOfWeekToken(WeekdayRuleToken):
    """``n#k`` (or ``FRI#3``): the k-th weekday n of the month, 1 <= k <= 5; a month without one is skipped."""

    pattern = re.compile(r"(?P<weekday>[0-9]+|[A-Z]{3})#(?P<nth>[0-9]+)")
    description = "'n#k'"

    def __init__(self, weekday: int, weekday_text: str, nth: int) -> None:
        super().__init__(weekday, weekday_text)
        self.nth = nth

    @classmethod
    def from_match(cls, match: re.Match[str], text: str, spec: FieldSpec) -> NthDayOfWeekToken:
        weekday, weekday_text = cls.parse_weekday(match, text, spec)
        nth = int(match["nth"])
        if not 1 <= nth <= MAX_NTH_WEEKDAY:
            raise spec.error(text, f"asks for occurrence {nth}; the number after '#' must be 1-{MAX_NTH_WEEKDAY}")
        return cls(weekday, weekday_text, nth)

    def days_in_month(self, year: int, month: int) -> tuple[int, ...]:
        first = 1 + (self.weekday - quartz_weekday(year, month, 1)) % 7
        day = first + 7 * (self.nth - 1)
        return (day,) if day <= last_day_of_month(year, month) else ()

    def __str__(self) -> str:
        return f"{self.weekday_text}#{self.nth}"


def _last_day_offset(digits: str | None, text: str, spec: FieldSpec) -> int:
    offset = 0 if digits is None else int(digits)
    if offset > MAX_LAST_DAY_OFFSET:
        raise spec.error(text, f"has an offset of {offset}; the offset from the last day must be "
                               f"0-{MAX_LAST_DAY_OFFSET}")
    return offset
