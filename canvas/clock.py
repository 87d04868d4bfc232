"""The time every process goes by: its machine's clock, set right by how far that clock is off the database
server's when it is off by CLOCK_TOLERANCE_SECONDS or more.

Several machines share one PostgreSQL database, and a run's lease is written by one machine's clock and judged by
another's: every worker's reaper fails a run whose heartbeat looks older than the grace period. A machine whose clock
is off by more than the grace minus the renewal interval makes every live run of a machine behind it look lost (seen:
each run of a healthy worker whose clock was 18 s behind the others' failed "worker lost"), and lets lost runs wait
longer. The database server's clock is the one clock every process reaches, so each process measures how far off it
is (a round trip on its first connection, then once a minute, and at once when the machine's clock is stepped) and
the times it writes and compares (`utcnow`, `now_seconds`) follow the server's. SQLite is one machine's: nothing to
measure.

Schedules fire by the scheduler machine's own clock, as cron does (APScheduler reads it; `machine_utcnow` is that
clock), which is one reason a process whose clock is off says so in its log.
"""
from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timedelta, timezone
from typing import Any

log = logging.getLogger("canvas.clock")
CLOCK_TOLERANCE_SECONDS = 1.0  # closer than this, the machine's clock is taken as it is (NTP keeps clocks within ms)
CLOCK_CHECK_SECONDS = 60.0
STEP_SECONDS = CLOCK_TOLERANCE_SECONDS / 2  # the machine's clock moving this far against its monotonic one: a step
# A measurement whose round trip took longer than this says little about the offset (its error is up to half of it).
SLOWEST_USEFUL_ROUND_TRIP_SECONDS = CLOCK_TOLERANCE_SECONDS / 2
DATABASE_TIME = "SELECT extract(epoch FROM clock_timestamp())"

_offset = timedelta(0)  # database server's clock minus this machine's, as applied
_offset_seconds = 0.0
_next_check = 0.0  # time.monotonic(); a forked child inherits its parent's, and the offset with it
_wall_minus_monotonic = 0.0  # at the last measurement: it moves when the machine's clock is stepped (NTP, a person)
_lock = threading.Lock()


def utcnow() -> datetime:
    return datetime.now(timezone.utc) + _offset


def now_seconds() -> float:
    """`time.time()` on the same clock as `utcnow`."""
    return time.time() + _offset_seconds


def machine_utcnow() -> datetime:
    """This machine's own clock, uncorrected: the one APScheduler fires schedules by."""
    return datetime.now(timezone.utc)


def offset_seconds() -> float:
    return _offset_seconds


def check_due() -> bool:
    """A minute since the last measurement, or the machine's clock stepped since (the offset measured is then off
    by the step)."""
    monotonic = time.monotonic()
    return monotonic >= _next_check or abs(time.time() - monotonic - _wall_minus_monotonic) > STEP_SECONDS


def measure(dbapi_connection: Any) -> None:
    """How far this machine's clock is off the PostgreSQL server's, on a DB-API connection with no transaction under
    way (as the pool hands one out): its one statement runs in autocommit, as SQLAlchemy's ping does. The next check
    is due in CLOCK_CHECK_SECONDS even if this one fails: a connection error is its caller's to handle."""
    global _next_check, _wall_minus_monotonic
    monotonic = time.monotonic()
    _next_check, _wall_minus_monotonic = monotonic + CLOCK_CHECK_SECONDS, time.time() - monotonic
    autocommit = dbapi_connection.autocommit
    dbapi_connection.autocommit = True
    try:
        cursor = dbapi_connection.cursor()
        try:
            sent = time.time()
            cursor.execute(DATABASE_TIME)
            server = float(cursor.fetchone()[0])
            answered = time.time()
        finally:
            cursor.close()
    finally:
        dbapi_connection.autocommit = autocommit
    if answered - sent <= SLOWEST_USEFUL_ROUND_TRIP_SECONDS:
        adopt(server - (sent + answered) / 2)


def adopt(measured: float) -> None:
    """Follow the server's clock when this machine's is CLOCK_TOLERANCE_SECONDS or more off it, else this machine's;
    say so when that changes by the tolerance or more."""
    global _offset, _offset_seconds
    applied = measured if abs(measured) >= CLOCK_TOLERANCE_SECONDS else 0.0
    with _lock:
        before = _offset_seconds
        _offset_seconds, _offset = applied, timedelta(seconds=applied)
    if abs(applied - before) < CLOCK_TOLERANCE_SECONDS:
        return
    if applied:
        log.warning("this machine's clock is %.1f s %s the database server's: run times and leases follow the "
                    "database server's clock, schedules fire by this machine's; set this machine's time right "
                    "(NTP)", abs(applied), "behind" if applied > 0 else "ahead of")
    else:
        log.info("this machine's clock agrees with the database server's again (within %g s)",
                 CLOCK_TOLERANCE_SECONDS)
