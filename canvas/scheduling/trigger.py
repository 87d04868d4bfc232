"""APScheduler's trigger interface over the Quartz dialect.

APScheduler's own ``CronTrigger`` numbers weekdays from Monday, has no ``W``, ``LW`` or ``L-n``, and treats daylight
saving time differently from Quartz, so the scheduler times its jobs with this trigger instead.
"""
from __future__ import annotations

from datetime import datetime, timedelta, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo

from apscheduler.triggers.base import BaseTrigger

from canvas.scheduling.quartz import CronExpression, parse

ONE_MICROSECOND = timedelta(microseconds=1)


@lru_cache(maxsize=4096)
def parse_cached(text: str) -> CronExpression:
    """Parsed expressions are immutable: many schedules sharing one expression share one parse."""
    return parse(text)


class QuartzTrigger(BaseTrigger):
    """Fires at the fire times of a Quartz cron expression, read in the wall-clock time of ``zone``."""

    __slots__ = ("expression", "zone")

    def __init__(self, expression: CronExpression | str, zone: tzinfo | str = "UTC") -> None:
        self.expression = parse_cached(expression) if isinstance(expression, str) else expression
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
        self.expression = parse_cached(state["expression"])
        self.zone = ZoneInfo(state["zone"])

    def __str__(self) -> str:
        return f"quartz[{self.expression}, {self.zone}]"

    def __repr__(self) -> str:
        return f"<QuartzTrigger ({str(self.expression)!r}, zone={str(self.zone)!r})>"
