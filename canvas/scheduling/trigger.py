"""APScheduler's trigger interface over the two cron dialects a stored schedule may hold.

APScheduler's own ``CronTrigger`` numbers weekdays from Monday, has no ``W``, ``LW`` or ``L-n``, and treats daylight
saving time differently from Quartz, so the scheduler times its jobs with these triggers instead: ``QuartzTrigger``
for Quartz expressions (6 or 7 fields, the Canvas dialect), ``UnixCronTrigger`` for classic Unix cron (5 fields, set
through the v2 dialect, evaluated by croniter). ``trigger_for`` picks one from the stored text.
"""
from __future__ import annotations

from datetime import datetime, timedelta, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo

from apscheduler.triggers.base import BaseTrigger

from canvas.scheduling.quartz import CronExpression, parse
from canvas.scheduling.unix_cron import UnixCronExpression, is_unix_form, parse_unix

ONE_MICROSECOND = timedelta(microseconds=1)
Expression = CronExpression | UnixCronExpression


@lru_cache(maxsize=4096)
def parse_cached(text: str) -> Expression:
    """A stored schedule expression: 5 fields are Unix cron, 6 or 7 Quartz (which never has 5). Parsed expressions
    are immutable: many schedules sharing one expression share one parse."""
    return parse_unix(text) if is_unix_form(text) else parse_quartz_cached(text)


@lru_cache(maxsize=4096)
def parse_quartz_cached(text: str) -> CronExpression:
    return parse(text)


def trigger_for(expression: Expression | str, zone: tzinfo | str = "UTC") -> QuartzTrigger | UnixCronTrigger:
    parsed = parse_cached(expression) if isinstance(expression, str) else expression
    return UnixCronTrigger(parsed, zone) if isinstance(parsed, UnixCronExpression) else QuartzTrigger(parsed, zone)


class QuartzTrigger(BaseTrigger):
    """Fires at the fire times of a Quartz cron expression, read in the wall-clock time of ``zone``."""

    __slots__ = ("expression", "zone")

    def __init__(self, expression: CronExpression | str, zone: tzinfo | str = "UTC") -> None:
        self.expression = parse_quartz_cached(expression) if isinstance(expression, str) else expression
        self.zone = ZoneInfo(zone) if isinstance(zone, str) else zone

    def get_next_fire_time(self, previous_fire_time: datetime | None, now: datetime) -> datetime | None:
        """Strictly after the previous fire time; for a new job, the first fire time at or after ``now``."""
        if previous_fire_time is not None:
            return self.expression.next_fire_time(previous_fire_time, self.zone)
        return self.expression.next_fire_time(now - ONE_MICROSECOND, self.zone)

    def __getstate__(self) -> dict:
        # Text, not objects: a persistent job store could unpickle it with another version of the dialect.
        return {"version": 1, "expression": str(self.expression), "zone": str(self.zone)}

    def __setstate__(self, state: dict) -> None:
        self.expression = parse_quartz_cached(state["expression"])
        self.zone = ZoneInfo(state["zone"])

    def __str__(self) -> str:
        return f"quartz[{self.expression}, {self.zone}]"

    def __repr__(self) -> str:
        return f"<QuartzTrigger ({str(self.expression)!r}, zone={str(self.zone)!r})>"


class UnixCronTrigger(QuartzTrigger):
    """Fires at croniter's fire times of a classic 5-field Unix cron expression, in the wall-clock time of ``zone``."""

    __slots__ = ()

    def __init__(self, expression: UnixCronExpression | str, zone: tzinfo | str = "UTC") -> None:
        self.expression = parse_unix(expression) if isinstance(expression, str) else expression
        self.zone = ZoneInfo(zone) if isinstance(zone, str) else zone

    def __setstate__(self, state: dict) -> None:
        self.expression = parse_unix(state["expression"])
        self.zone = ZoneInfo(state["zone"])

    def __str__(self) -> str:
        return f"unix-cron[{self.expression}, {self.zone}]"

    def __repr__(self) -> str:
        return f"<UnixCronTrigger ({str(self.expression)!r}, zone={str(self.zone)!r})>"
