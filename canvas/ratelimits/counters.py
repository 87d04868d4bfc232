"""Fixed-window request counters in Redis, without Flask: the limits of the service and the one round trip that
counts a request against them.

Strategy: a fixed-window counter (one Redis key per subject and window, INCRBY plus EXPIREAT, pipelined without a
transaction). It is the cheapest correct choice: one round trip for any number of limits, one small key per subject,
and an honest Retry-After (the end of the current window, when the count starts again). With large limits a process
adds its events to Redis in small batches (batch_size), so most requests make no round trip at all. A sliding window would smooth
the edge of a window (up to twice the limit across one boundary) for a second key read per limit; with limits meant to
stop runaway clients, not to meter them, that precision buys nothing.
"""
from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import redis

from canvas.outages import OutageLog
from canvas.queueing.keys import rate_limit_key, rate_limit_pattern
from canvas.settings import ENV_PREFIX, SettingsError

log = logging.getLogger(__name__)
REDIS = "Redis"
BATCH_MAX, BATCH_SHARE = 10, 500  # see batch_size
MAX_TALLIES = 10_000  # subjects a process keeps tallies of before it drops those of past windows


@dataclass(frozen=True)
class Limit:
    """At most `per_window` events of one `kind` per subject in each window of `window_seconds`; 0 is no limit."""

    kind: str
    per_window: int
    window_seconds: int

    @property
    def enabled(self) -> bool:
        return self.per_window > 0

    def describe(self) -> str:
        return f"{self.per_window} per {self.window_seconds} s"


@dataclass(frozen=True)
class RateLimits:
    """Every limit of the service, from the settings."""

    per_key: Limit
    per_organization: Limit
    webhook_per_flow: Limit
    auth_failures: Limit
    sign_in_failures: Limit  # the console's failed sign-ins per e-mail (the address's count is auth_failures)

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> RateLimits:
        window = _setting(settings, "RATE_LIMIT_WINDOW_SECONDS", minimum=1)
        return cls(per_key=Limit("key", _setting(settings, "RATE_LIMIT_PER_KEY"), window),
                   per_organization=Limit("organization", _setting(settings, "RATE_LIMIT_PER_ORGANIZATION"), window),
                   webhook_per_flow=Limit("webhook-flow", _setting(settings, "WEBHOOK_RATE_LIMIT_PER_FLOW"), window),
                   auth_failures=Limit("auth-failure", _setting(settings, "AUTH_FAILURE_LIMIT"),
                                       _setting(settings, "AUTH_FAILURE_WINDOW_SECONDS", minimum=1)),
                   sign_in_failures=Limit("sign-in-failure", _setting(settings, "CONSOLE_SIGN_IN_FAILURE_LIMIT"),
                                          _setting(settings, "CONSOLE_SIGN_IN_FAILURE_WINDOW_SECONDS", minimum=1)))


def _setting(settings: Mapping[str, Any], name: str, minimum: int = 0) -> int:
    value = settings[name]
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise SettingsError(f"{ENV_PREFIX}{name} must be a whole number of at least {minimum}, got {value!r}")
    return value


@dataclass(frozen=True)
class Over:
    """A limit a request went over, and the whole seconds until its window ends (the honest Retry-After)."""

    limit: Limit
    retry_after: int


@dataclass
class Tally:
    """One process's view of one counter in one window: the shared count as Redis last answered it, and the events
    counted here since (not yet added to Redis)."""

    window_end: int
    known: int = 0
    pending: int = 0


def batch_size(limit: Limit) -> int:
    """Events a process counts on its own before it adds them to Redis in one INCRBY: at most BATCH_MAX, and at most
    1/BATCH_SHARE of the limit, so a request goes over by at most (processes x batch) events (0.2 % of the limit per
    process), and small limits (below 2 x BATCH_SHARE) are counted exactly, in Redis, on every event."""
    return max(1, min(BATCH_MAX, limit.per_window // BATCH_SHARE))


class Counters:
    """Counts events against limits, shared through Redis by every process of the service: one pipelined round trip
    per call when a counter's batch is due, none otherwise (see batch_size). Redis unreachable: nothing is refused
    (the limits protect the service; they must not take it down with Redis), and the outage is logged once."""

    def __init__(self, connection: Callable[[], redis.Redis], prefix: str | None,
                 clock: Callable[[], float] = time.time):
        self.connection, self.prefix, self.clock = connection, prefix, clock
        self._tallies: dict[tuple[str, str], Tally] = {}
        self._lock = threading.Lock()  # a process's threads share its tallies
        # A Redis outage is logged once (and its end once), whatever the request count in between: limits fail open.
        self.outages = OutageLog(log, "rate limits")
        self._redis_down = False  # read without the outage log's lock on every round trip

    def count(self, counted: Sequence[tuple[Limit, str]], watched: Sequence[tuple[Limit, str]] = ()) -> Over | None:
        """Adds one event to each `counted` (limit, subject) and looks at each `watched` one without adding to it;
        the first limit over (counted: above its number, watched: at it) or None. Disabled limits are left out."""
        counted = [(limit, subject) for limit, subject in counted if limit.enabled]
        watched = [(limit, subject) for limit, subject in watched if limit.enabled]
        if not counted and not watched:
            return None
        now = self.clock()
        with self._lock:
            tallies = [self._tally(limit, subject, now) for limit, subject in [*counted, *watched]]
            for tally in tallies[:len(counted)]:
                tally.pending += 1
            due = [index for index, (limit, _) in enumerate(counted) if tallies[index].pending >= batch_size(limit)]
            flushed = [tallies[index].pending for index in due]
            for index in due:
                tallies[index].pending = 0
            # This call decides on its own view of each count, not on the tallies, which the process's other
            # threads raise meanwhile: a request must not be refused for the events counted after it.
            seen = [tally.known + tally.pending for tally in tallies]
        if due:
            self._synchronise(now, due, counted, flushed, watched, tallies, seen)
        for (limit, _), count in zip(counted, seen, strict=False):
            if count > limit.per_window:
                return Over(limit, seconds_left(limit, now))
        for (limit, _), count in zip(watched, seen[len(counted):], strict=True):
            if count >= limit.per_window:
                return Over(limit, seconds_left(limit, now))
        return None

    def _tally(self, limit: Limit, subject: str, now: float) -> Tally:
        tally = self._tallies.get((limit.kind, subject))
        if tally is None or tally.window_end <= now:
            if len(self._tallies) >= MAX_TALLIES:
                self._tallies = {name: kept for name, kept in self._tallies.items() if kept.window_end > now}
            tally = self._tallies[(limit.kind, subject)] = Tally(window_end(limit, now))
        return tally

    def _synchronise(self, now: float, due: list[int], counted: list, flushed: list[int], watched: list,
                     tallies: list[Tally], seen: list[int]) -> None:
        """Adds the due counters' events (``due``: their indexes in ``counted``) to Redis and reads the watched ones,
        in one round trip; each answer is this call's count (``seen``) and the process's latest knowledge."""
        values = self._execute(now, [counted[index] for index in due], flushed, watched)
        if values is None:
            return
        answered = [*due, *range(len(counted), len(tallies))]  # INCRBY's answers, then GET's
        answers = [*values[0::2][:len(due)], *values[2 * len(due):]]
        with self._lock:
            for index, answer in zip(answered, answers, strict=True):
                seen[index] = int(answer or 0)
                tallies[index].known = max(tallies[index].known, seen[index])

    def _execute(self, now: float, due: list, flushed: list[int], watched: list) -> list | None:
        try:
            pipe = self.connection().pipeline(transaction=False)
            for (limit, subject), events in zip(due, flushed, strict=True):
                key = self._key(limit, subject, now)
                pipe.incrby(key, events)
                pipe.expireat(key, window_end(limit, now) + 1)  # gone soon after its window, however busy it was
            for limit, subject in watched:
                pipe.get(self._key(limit, subject, now))
            values = pipe.execute()
        except (redis.RedisError, OSError) as error:
            self._redis_down = True
            self.outages.failed(error, "counting a request", "requests are not limited until it is back")
            return None
        if self._redis_down:
            self._redis_down = False
            self.outages.succeeded(REDIS)
        return values

    def _key(self, limit: Limit, subject: str, now: float) -> str:
        return rate_limit_key(self.prefix, limit.kind, subject, window_number(limit, now))

    def forget_all(self) -> None:
        """Drops every counter of this prefix, and this process's tallies (tests start each with fresh counts)."""
        with self._lock:
            self._tallies.clear()
        connection = self.connection()
        names = list(connection.scan_iter(match=rate_limit_pattern(self.prefix), count=1000))
        if names:
            connection.delete(*names)


def window_number(limit: Limit, now: float) -> int:
    return int(now // limit.window_seconds)


def window_end(limit: Limit, now: float) -> int:
    return (window_number(limit, now) + 1) * limit.window_seconds


def seconds_left(limit: Limit, now: float) -> int:
    """Whole seconds until the window ends, rounded up: a request sent after them is counted in a fresh window."""
    return max(1, math.ceil(window_end(limit, now) - now))
