"""The front of the Quartz dialect: ``parse()`` and ``CronExpression``."""
from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime, tzinfo

from . import search
from .errors import CronSyntaxError
from .fields import DAY_OF_MONTH, DAY_OF_WEEK, FIELD_SPECS, YEAR, CronField, parse_field
from .tokens import AllToken

FIELD_ORDER = "seconds minutes hours day-of-month month day-of-week [year]"
UNIX_FIELD_COUNT = 5


class CronExpression:
    """A parsed Quartz cron expression. ``str()`` gives its normalised text (upper case, single spaces, numbers
    without leading zeros, ``L-0`` as ``L``, a bare ``/n`` as ``*/n``); two expressions are equal when their
    normalised texts are."""

    __slots__ = ("fields", "year_field")

    def __init__(self, fields: Sequence[CronField]) -> None:
        self.fields = tuple(fields)  # 6 or 7, as written
        self.year_field = self.fields[6] if len(self.fields) == 7 else CronField(YEAR, (AllToken(),))

    # The ascending values the search walks through.
    @property
    def seconds(self) -> tuple[int, ...]:
        return self.fields[0].values

    @property
    def minutes(self) -> tuple[int, ...]:
        return self.fields[1].values

    @property
    def hours(self) -> tuple[int, ...]:
        return self.fields[2].values

    @property
    def months(self) -> tuple[int, ...]:
        return self.fields[4].values

    @property
    def years(self) -> tuple[int, ...]:
        return self.year_field.values

    def days_in_month(self, year: int, month: int) -> tuple[int, ...]:
        """The days of (year, month) the expression fires on: exactly one of the two day fields is '?'."""
        day_of_month, day_of_week = self.fields[3], self.fields[5]
        deciding = day_of_week if day_of_month.is_unspecified else day_of_month
        return deciding.days_in_month(year, month)

    def next_fire_time(self, after: datetime, tz: tzinfo) -> datetime | None:
        """The first fire time strictly after ``after`` (timezone-aware, any zone), aware in ``tz``; None if none
        is left up to the current year + 100 (Quartz's horizon)."""
        return search.next_fire_time(self, after, tz)

    def fire_times(self, after: datetime, tz: tzinfo, count: int) -> list[datetime]:
        """Up to ``count`` successive fire times after ``after``."""
        found: list[datetime] = []
        while len(found) < count and (after := self.next_fire_time(after, tz)) is not None:
            found.append(after)
        return found

    def __str__(self) -> str:
        return " ".join(str(field) for field in self.fields)

    def __repr__(self) -> str:
        return f"CronExpression({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CronExpression) and str(self) == str(other)

    def __hash__(self) -> int:
        return hash(str(self))


def parse(text: str) -> CronExpression:
    """Parse a Quartz cron expression (6 or 7 fields, case-insensitive); raise ``CronSyntaxError`` if invalid."""
    if not isinstance(text, str):
        raise CronSyntaxError(f"a cron expression must be a string, not {type(text).__name__}")
    stripped = text.strip()
    if not stripped:
        raise CronSyntaxError(f"the cron expression is empty; expected 6 or 7 fields ({FIELD_ORDER})")
    if stripped.startswith("@"):
        raise CronSyntaxError(f"'{stripped}': macros such as '@daily' are not Quartz; write e.g. '0 0 0 * * ?'")
    texts = stripped.upper().split()
    _check_field_count(texts)
    fields = [parse_field(spec, field_text) for spec, field_text in zip(FIELD_SPECS, texts)]
    _check_day_fields(fields[3], fields[5])
    return CronExpression(fields)


def _check_field_count(texts: list[str]) -> None:
    if len(texts) in (6, 7):
        return
    message = f"expected 6 or 7 fields ({FIELD_ORDER}), got {len(texts)}"
    if len(texts) == UNIX_FIELD_COUNT:
        message += f"; Quartz puts seconds first, e.g. '{_quartz_form_of_unix(texts)}'"
    raise CronSyntaxError(message)


def _check_day_fields(day_of_month: CronField, day_of_week: CronField) -> None:
    if day_of_month.is_unspecified != day_of_week.is_unspecified:
        return
    if day_of_month.is_unspecified:
        problem = "are both '?'; put '?' in only one of them"
    else:
        problem = (f"are '{day_of_month}' and '{day_of_week}'; one of them must be '?' (Quartz: support for "
                   "specifying both a day-of-week AND a day-of-month parameter is not implemented)")
    raise CronSyntaxError(f"{DAY_OF_MONTH.name} and {DAY_OF_WEEK.name} {problem}")


def _quartz_form_of_unix(texts: list[str]) -> str:
    """The Quartz spelling of a 5-field Unix expression: seconds first, '?' in the day field that is not used, and
    Unix weekday numbers (0 or 7 = SUN) renumbered to Quartz's 1 = SUN."""
    minute, hour, day_of_month, month, day_of_week = texts
    if day_of_week in ("*", "?"):
        day_of_month, day_of_week = ("?", "*") if day_of_month in ("*", "?") else (day_of_month, "?")
    else:
        day_of_month, day_of_week = "?", _quartz_weekday_numbers(day_of_week)
    return " ".join(["0", minute, hour, day_of_month, month, day_of_week])


def _quartz_weekday_numbers(unix_day_of_week: str) -> str:
    if not re.fullmatch(r"[0-9,-]+", unix_day_of_week):
        return unix_day_of_week  # names mean the same in both dialects; steps are left as written
    return re.sub(r"[0-9]+", lambda number: str(int(number[0]) % 7 + 1), unix_day_of_week)
