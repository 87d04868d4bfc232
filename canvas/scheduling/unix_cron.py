"""Classic Unix cron, the dialect of the v2 ``cron`` attribute, evaluated by croniter.

Five fields: minute, hour, day-of-month, month, day-of-week. Day of week 0-7 (0 and 7 = Sunday) or ``SUN``-``SAT``,
months 1-12 or ``JAN``-``DEC`` (case-insensitive); ``*``, lists, ranges and steps (``*/n``, ``a-b/n``, ``a/n``). When
both day fields are restricted, a day matches when either matches (cron's rule, croniter's ``day_or``). Fire times are
croniter's, read in the wall clock of the schedule's time zone.

The parser is stricter than croniter, which also reads Quartz-like and Jenkins extensions (``L``, ``#``, ``?``, ``H``,
seconds, years) and some texts it reads oddly (``7-7`` or ``7/2`` as every day, ``5-2`` as a wrap-around range):
those are refused with a message naming the field and the token. ``CronSyntaxError`` is the Quartz dialect's error,
so callers catch one error for both dialects.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone, tzinfo

from croniter import CroniterBadCronError, CroniterBadDateError, CroniterError, croniter

from canvas.scheduling.quartz.errors import CronSyntaxError
from canvas.scheduling.quartz.expression import CronExpression
from canvas.scheduling.quartz.search import last_fire_year

UNIX_FIELD_COUNT = 5
MAX_LENGTH = 200  # the stored expression's column
FIELD_ORDER = "minute hour day-of-month month day-of-week"
MONTH_NAMES = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
WEEKDAY_NAMES = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
ITEM = re.compile(r"(?:(?P<star>\*)|(?P<first>[0-9]+|[A-Z]{3})(?:-(?P<last>[0-9]+|[A-Z]{3}))?)(?:/(?P<step>[0-9]+))?")
STRICTLY_AFTER_ATTEMPTS = 4  # croniter answers a time after its start; a few more tries if a zone quirk says otherwise


@dataclass(frozen=True)
class UnixField:
    name: str
    low: int
    high: int
    names: dict[str, int] = field(default_factory=dict)

    def value(self, token: str, item: str) -> int:
        if token.isdigit():
            number = int(token)
        elif token in self.names:
            number = self.names[token]
        else:
            accepted = f" or a name {'-'.join((next(iter(self.names)), list(self.names)[-1]))}" if self.names else ""
            raise CronSyntaxError(f"{self.name}: '{item}' is not a number{accepted}")
        if not self.low <= number <= self.high:
            raise CronSyntaxError(f"{self.name}: '{item}' is out of range {self.low}-{self.high}")
        return number


FIELDS = (
    UnixField("minute", 0, 59),
    UnixField("hour", 0, 23),
    UnixField("day-of-month", 1, 31),
    UnixField("month", 1, 12, {name: number for number, name in enumerate(MONTH_NAMES, start=1)}),
    UnixField("day-of-week", 0, 7, {name: number for number, name in enumerate(WEEKDAY_NAMES)}),
)
DAY_OF_WEEK = FIELDS[4]


class UnixCronExpression:
    """A parsed Unix cron expression. ``str()`` gives the text as written, in single spaces; the fire-time interface
    is the Quartz ``CronExpression``'s, so the scheduler, the ledger and the previews take either."""

    __slots__ = ("text",)
    dialect = "unix"

    def __init__(self, text: str) -> None:
        self.text = text

    def next_fire_time(self, after: datetime, tz: tzinfo) -> datetime | None:
        """croniter's first fire time strictly after ``after`` (aware), aware in ``tz``; None if there is none up to
        the end of the search horizon the Quartz dialect uses (the current year + 100)."""
        if after.tzinfo is None or after.utcoffset() is None:
            raise ValueError("'after' must be a timezone-aware datetime")
        after_utc = after.astimezone(timezone.utc)
        start = after_utc
        for _attempt in range(STRICTLY_AFTER_ATTEMPTS):
            if start.year > last_fire_year():
                return None
            try:
                found = croniter(self.text, start.astimezone(tz)).get_next(datetime)
            except (CroniterBadDateError, OverflowError, ValueError):
                return None
            if found.astimezone(timezone.utc) > after_utc:
                return found if found.year <= last_fire_year() else None
            start = max(found.astimezone(timezone.utc), start + timedelta(minutes=1))
        return None

    fire_times = CronExpression.fire_times  # the same walk over next_fire_time as Quartz expressions

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"UnixCronExpression({self.text!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, UnixCronExpression) and self.text == other.text

    def __hash__(self) -> int:
        return hash(("unix", self.text))


def is_unix_form(text: str) -> bool:
    """Five fields: a Unix cron (the Quartz dialect has 6 or 7)."""
    return isinstance(text, str) and len(text.split()) == UNIX_FIELD_COUNT


def parse_unix(text: str) -> UnixCronExpression:
    """Parse a classic 5-field Unix cron expression; raise ``CronSyntaxError`` naming the field and token."""
    if not isinstance(text, str):
        raise CronSyntaxError(f"a cron expression must be a string, not {type(text).__name__}")
    texts = text.split()
    if not texts:
        raise CronSyntaxError(f"the cron expression is empty; expected 5 fields ({FIELD_ORDER})")
    if texts[0].startswith("@"):
        raise CronSyntaxError(f"'{texts[0]}': macros such as '@daily' are not accepted; write e.g. '0 0 * * *'")
    if len(texts) != UNIX_FIELD_COUNT:
        raise CronSyntaxError(f"expected 5 fields ({FIELD_ORDER}), got {len(texts)}")
    for spec, field_text in zip(FIELDS, texts):
        _check_field(spec, field_text)
    normalised = " ".join(texts)
    if len(normalised) > MAX_LENGTH:
        raise CronSyntaxError(f"the expression is {len(normalised)} characters long; at most {MAX_LENGTH}")
    try:
        croniter(normalised, datetime(2000, 1, 1, tzinfo=timezone.utc))
    except (CroniterBadCronError, CroniterError) as exc:  # a form the checks above let through and croniter does not
        raise CronSyntaxError(f"'{normalised}': {exc}") from None
    return UnixCronExpression(normalised)


def _check_field(spec: UnixField, text: str) -> None:
    for item in text.upper().split(","):
        match = ITEM.fullmatch(item)
        if match is None:
            raise CronSyntaxError(f"{spec.name}: '{item}' is not a Unix cron token (a number, a name, '*', a range "
                                  "'a-b' or a step '/n'; L, W, # and ? are Quartz)")
        _check_item(spec, item, match)


def _check_item(spec: UnixField, item: str, match: re.Match[str]) -> None:
    step = match["step"]
    if step is not None and not 1 <= int(step) <= spec.high:
        raise CronSyntaxError(f"{spec.name}: '{item}' has step {int(step)}; a step is 1-{spec.high}")
    if match["star"]:
        return
    first = spec.value(match["first"], item)
    last = spec.value(match["last"], item) if match["last"] is not None else None
    if last is not None and first > last:
        raise CronSyntaxError(f"{spec.name}: '{item}' is a range that runs backwards; write e.g. "
                              f"'{match['last']}-{match['first']}' or a list")
    if spec is DAY_OF_WEEK and first == 7 and (last is not None or step is not None):
        raise CronSyntaxError(f"{spec.name}: '{item}' starts a range or step at 7; write Sunday as 0 (or SUN) there")
