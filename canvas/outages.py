"""Riding out a lost Redis or database: which errors say that a service cannot be reached (rather than that the code
is wrong), how long to wait before the next attempt, and what to log.

A process that keeps trying logs an outage twice: one warning when the service goes away (naming the service and the
error class, never the error's text, which may carry a URL or a driver's dump) and one line when it is back. Between
the two, the attempts back off exponentially up to ``RECONNECT_MAX_SECONDS`` and log nothing, so an hour without the
database is two lines, not thousands of tracebacks. An unexpected error is a bug: it keeps its traceback every time.
"""
from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping

import redis
from redis._parsers.base import BaseParser
from redis.exceptions import MasterDownError
from sqlalchemy import exc as sqlalchemy_errors

FIRST_RETRY_SECONDS = 1.0
OUTAGE_RETRY_AFTER_SECONDS = 5  # what a 503 for an outage tells the client to wait (Retry-After)
DISK_FULL_SQLSTATE = "53100"  # PostgreSQL's disk_full
# PostgreSQL ended the session because one of its transactions stayed idle past idle_in_transaction_session_timeout
# (canvas.db sets it on the service's sessions): the process itself went quiet in the middle of a transaction.
IDLE_IN_TRANSACTION_SQLSTATE = "25P03"


class RedisWritesRefusedError(redis.ResponseError):
    """MISCONF: Redis refuses every write because it cannot save its data (a full disk under its append-only file or
    snapshot) until it can again."""


# redis-py names most of Redis's error replies by class (OOM, READONLY, LOADING...) but leaves MISCONF a plain
# ResponseError, which says "a bad command" as much as "Redis is in trouble": registered here so that it has a class
# `except` can name. Every parser of redis-py (RESP2, RESP3, hiredis) reads this one table.
_RESPONSE_ERRORS = BaseParser.EXCEPTION_CLASSES
_RESPONSE_ERRORS.setdefault("MISCONF", RedisWritesRefusedError)

# Redis cannot serve this process now, and will again without a change here: gone or restarting (ConnectionError,
# "loading the dataset" among them), too slow, a replica during a failover (READONLY, MASTERDOWN), or refusing writes
# while it is full (OOM at maxmemory) or cannot save (MISCONF). Work waits for it instead of failing.
REDIS_UNREACHABLE = (redis.ConnectionError, redis.TimeoutError, redis.ReadOnlyError, MasterDownError,
                     redis.OutOfMemoryError, RedisWritesRefusedError)
# Of those, the ones where Redis answers but takes no write: the log must not send the operator to the network.
REDIS_REFUSING_WRITES = (redis.ReadOnlyError, redis.OutOfMemoryError, RedisWritesRefusedError)


DATABASE = "the database"  # what unreachable_service calls it, and OutageLog files its outages under


def unreachable_service(error: BaseException) -> str | None:
    """"Redis", "the database" or "the network" when ``error`` means that service cannot be reached now; None for
    any other error."""
    if isinstance(error, REDIS_UNREACHABLE):
        return "Redis"
    if isinstance(error, (sqlalchemy_errors.OperationalError, sqlalchemy_errors.InterfaceError,
                          sqlalchemy_errors.TimeoutError)):
        return DATABASE  # TimeoutError: no pooled connection came free
    if isinstance(error, sqlalchemy_errors.DBAPIError) and error.connection_invalidated:
        return DATABASE
    if isinstance(error, OSError):
        return "the network"
    return None


def database_is_full(error: BaseException) -> bool:
    """The database answers but has no room for a write: SQLite's SQLITE_FULL ("database or disk is full"),
    PostgreSQL's disk_full (SQLSTATE 53100). Waited out like an outage (room may be made), but not one of the
    network: the operator must be sent to the disk."""
    driver_error = getattr(error, "orig", None)
    return (getattr(driver_error, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL
            or sqlstate(error) == DISK_FULL_SQLSTATE)


def sqlstate(error: BaseException) -> str | None:
    """PostgreSQL's code for the driver's error under a SQLAlchemy one."""
    return getattr(getattr(error, "orig", None), "sqlstate", None)


# PostgreSQL refusing a connection because a limit is reached (SQLSTATE 53300, too_many_connections): the server's
# max_connections, a role's or a database's CONNECTION LIMIT. libpq reports a refusal at connect time without its
# SQLSTATE, so the server's words are looked for too (in English, PostgreSQL's default lc_messages).
TOO_MANY_CONNECTIONS_SQLSTATE = "53300"
TOO_MANY_CONNECTIONS_WORDS = ("too many connections", "too many clients", "remaining connection slots are reserved")


def connections_exhausted(error: BaseException) -> bool:
    """The database answers but takes no more connections: its connection limit is reached. An outage all the
    same (connections come free), but not one of the network: the operator must be sent to the limit."""
    driver_error = getattr(error, "orig", None) or error
    if getattr(driver_error, "sqlstate", None) == TOO_MANY_CONNECTIONS_SQLSTATE:
        return True
    text = str(driver_error).lower()
    return any(words in text for words in TOO_MANY_CONNECTIONS_WORDS)


def outage_text(service: str, error: BaseException) -> str:
    """How the log says that `service` (see unreachable_service) failed with `error`: "Redis refuses writes
    (OutOfMemoryError)", "the database refuses writes: its disk is full (OperationalError)", "the database is
    unreachable (OperationalError)", "the database refuses new connections: its connection limit is reached
    (OperationalError)"; the class only, never the error's text."""
    if isinstance(error, REDIS_REFUSING_WRITES):
        state = "refuses writes"
    elif database_is_full(error):
        state = "refuses writes: its disk is full"
    elif service == DATABASE and connections_exhausted(error):
        state = "refuses new connections: its connection limit is reached"
    elif service == DATABASE and sqlstate(error) == IDLE_IN_TRANSACTION_SQLSTATE:
        state = ("ended this process's session: one of its transactions stayed idle past "
                 "idle_in_transaction_session_timeout (the process paused, starved of CPU, or waited inside it)")
    else:
        state = "is unreachable"
    return f"{service} {state} ({error.__class__.__name__})"


class Backoff:
    """Waits that double after each failed attempt, from ``first_seconds`` up to ``max_seconds``."""

    def __init__(self, max_seconds: float, first_seconds: float = FIRST_RETRY_SECONDS) -> None:
        self.max_seconds, self.first_seconds = max_seconds, min(first_seconds, max_seconds)
        self.failures = 0

    def next_delay(self) -> float:
        delay = min(self.max_seconds, self.first_seconds * 2 ** min(self.failures, 32))
        self.failures += 1
        return delay

    def reset(self) -> None:
        self.failures = 0


class OutageLog:
    """The outages one process sees, one entry per service, shared by its threads and tasks: the first failure of any
    task logs the warning, the first success of a task that had failed for want of the service logs its return."""

    def __init__(self, logger: logging.Logger, who: str,
                 probes: Mapping[str, Callable[[], object]] | None = None) -> None:
        self.logger, self.who = logger, who
        self._lock = threading.Lock()
        self._since: dict[str, float] = {}  # service -> monotonic time of its first failure
        # service -> a call that fails while it is away: a task that succeeds may not have used the service this
        # time (a reconcile with nothing to publish), so its success alone does not say the service is back
        self._probes = dict(probes or {})

    def is_down(self, service: str) -> bool:
        with self._lock:
            return service in self._since

    def failed(self, error: BaseException, during: str, consequence: str = "retrying") -> str:
        """Record a failure caused by an unreachable service (see unreachable_service); returns the service."""
        service = unreachable_service(error) or "a service"
        with self._lock:
            first = service not in self._since
            self._since.setdefault(service, time.monotonic())
        if first:
            self.logger.warning("%s: %s failed: %s; %s", self.who, during, outage_text(service, error), consequence)
        return service

    def succeeded(self, service: str) -> None:
        if not self.is_down(service) or not self._answers(service):
            return
        with self._lock:
            since = self._since.pop(service, None)
        if since is not None:
            self.logger.info("%s: %s is back after %.0f s", self.who, service, time.monotonic() - since)


    def _answers(self, service: str) -> bool:
        probe = self._probes.get(service)
        if probe is None:
            return True
        try:
            probe()
        except Exception:  # noqa: BLE001 - any failure of the probe: still away
            return False
        return True


class Retrying:
    """The failures of one recurring task: a lost connection goes to the process's OutageLog, an unexpected error is
    logged with its traceback; either way ``failed`` answers how long to wait before the next attempt."""

    def __init__(self, what: str, outages: OutageLog, max_seconds: float) -> None:
        self.what, self.outages = what, outages
        self.backoff = Backoff(max_seconds)
        self.failed_for: str | None = None  # the service whose absence made the last attempt fail

    def failed(self, error: BaseException) -> float:
        if unreachable_service(error) is not None:
            consequence = f"retrying with backoff, at most {self.backoff.max_seconds:g} s apart"
            self.failed_for = self.outages.failed(error, self.what, consequence)
        else:
            self.outages.logger.error("%s: %s failed", self.outages.who, self.what, exc_info=error)
        return self.backoff.next_delay()

    def succeeded(self) -> None:
        if self.failed_for is not None:
            self.outages.succeeded(self.failed_for)
            self.failed_for = None
        self.backoff.reset()
