"""Which occurrences are due and what to do with each: pure functions, no database, no clock of their own.

An occurrence is one (workflow, scheduled fire time). The scheduler hands due occurrences to ``plan_due``, which
applies the misfire policy to the ones late by more than the grace time; on start, ``missed_fire_times`` finds the
occurrences nobody claimed while no scheduler ran.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone, tzinfo

from canvas.scheduling.quartz import CronExpression

RUN, MISS, WAIT = "run", "miss", "wait"
FIRST_LOOKBACK = timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class Firing:
    """What to do about one or more occurrences of a workflow. ``run``: start one run covering ``times`` (subject to
    the overlap policy); ``miss``: record them missed; ``wait``: queue one run behind the active one."""

    workflow_id: uuid.UUID
    times: tuple[datetime, ...]
    action: str = RUN
    reason: str | None = None
    version: int | None = None  # of the schedule the times were computed from; None: unknown, check them


@dataclass(frozen=True, slots=True)
class MisfireRules:
    grace: timedelta
    run_each_limit: int

    def late(self, time: datetime, now: datetime) -> bool:
        return now - time > self.grace


def plan_due(workflow_id: uuid.UUID, times: list[datetime], policy: str, now: datetime, rules: MisfireRules,
             version: int | None = None) -> list[Firing]:
    """Occurrences within the grace time fire one by one; the late ones go to the misfire policy, first."""
    late = [time for time in times if rules.late(time, now)]
    timely = [Firing(workflow_id, (time,), version=version) for time in times if not rules.late(time, now)]
    return (plan_missed(workflow_id, late, policy, rules, version) if late else []) + timely


def plan_missed(workflow_id: uuid.UUID, late: list[datetime], policy: str, rules: MisfireRules,
                version: int | None = None) -> list[Firing]:
    seconds = f"{rules.grace.total_seconds():g}"
    if policy == "skip":
        return [Firing(workflow_id, tuple(late), MISS,
                       f"missed: not fired within the misfire grace time of {seconds} s; misfire policy skip", version)]
    if policy == "run_each":
        return _run_each(workflow_id, late, rules.run_each_limit, seconds, version)
    return [Firing(workflow_id, tuple(late), RUN,
                   f"{len(late)} missed occurrence(s) coalesced into one run (misfire policy coalesce)", version)]


def _run_each(workflow_id: uuid.UUID, late: list[datetime], limit: int, seconds: str,
              version: int | None) -> list[Firing]:
    """The latest ``limit`` run one after the other (a workflow runs once at a time); older ones are missed."""
    dropped, kept = late[:-limit] if limit else late, late[-limit:] if limit else []
    firings = []
    if dropped:
        firings.append(Firing(workflow_id, tuple(dropped), MISS,
                              f"missed: beyond the run_each limit of {limit} catch-up runs", version))
    reason = f"missed by more than {seconds} s; caught up (misfire policy run_each)"
    for index, time in enumerate(kept):
        firings.append(Firing(workflow_id, (time,), RUN if index == 0 else WAIT, reason, version))
    return firings


def latest_fire_times(expression: CronExpression, zone: tzinfo, after: datetime, until: datetime,
                      limit: int) -> list[datetime]:
    """The last ``limit`` fire times in (after, until], oldest first, without walking a long gap one by one: the
    window looks back from ``until`` and doubles until it holds ``limit`` times or reaches ``after``."""
    lookback = FIRST_LOOKBACK
    while True:
        start = max(after, until - lookback)
        times = fire_times_between(expression, zone, start, until)
        if len(times) >= limit or start == after:
            return times[-limit:]
        lookback *= 2


def fire_times_between(expression: CronExpression, zone: tzinfo, after: datetime, until: datetime) -> list[datetime]:
    """Every fire time in (after, until]."""
    found = []
    while (after := expression.next_fire_time(after, zone)) is not None and after <= until:
        found.append(after)
    return found


def is_fire_time(expression: CronExpression, zone: tzinfo, time: datetime) -> bool:
    """Whether ``time`` is one of the expression's fire times (a stale job may still offer a time of an old one)."""
    fire_time = expression.next_fire_time(time - timedelta(seconds=1), zone)
    # Compared in UTC: PEP 495 makes a time in the second pass of a repeated hour unequal to any other zone's.
    return fire_time is not None and fire_time.astimezone(timezone.utc) == time.astimezone(timezone.utc)
