"""Run leases with fencing: how a worker holds a run, proves it still does, and stops when it no longer does.

* Claiming a run (Queued -> Running) raises the run's ``lease_token``; the claimed value is the worker's fencing
  token. Every later write of the run's bookkeeping first renews the lease with a statement conditional on that
  token and on the run still being Running (``run_records.renew_lease``), in the same transaction as the write. A
  write that finds the lease gone raises ``LeaseLostError``: the worker starts no further block, records no output
  and sends no callback.
* The lease lives in the database, beside the run, so a Redis restart or data loss does not end it. Between writes,
  one thread per worker process (``LeaseKeeper``) renews every lease of that process that has not been renewed for
  ``LEASE_RENEW_SECONDS``; a run of short blocks renews through its own writes and costs the keeper nothing.
* The reaper declares a run lost when its ``heartbeat_at`` is older than ``LOST_RUN_GRACE_SECONDS`` and revokes the
  lease in the same conditional statement (status and token change together). A worker that could not renew for
  ``grace - renew`` seconds stops its run itself (``RunLease.expired``), before the reaper can act: the renewal
  interval is the margin for clock skew between machines. A worker paused longer than that (SIGSTOP, a frozen VM)
  sees its lease expired the moment it resumes, at its next check, before its next side effect.
"""
from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from sqlalchemy.engine import Connection, Engine, Row
from sqlalchemy.exc import DBAPIError

from canvas.execution import run_records
from canvas.models.base import utcnow
from canvas.observability import metrics
from canvas.outages import DATABASE, database_is_full, unreachable_service

log = logging.getLogger(__name__)
T = TypeVar("T")
FIRST_PAUSE_SECONDS = 0.05  # then doubling, up to the renewal interval


class LeaseLostError(Exception):
    """The run is no longer this worker's: declared lost and ended elsewhere, or not renewed in time."""


class DatabaseUnreachableError(Exception):
    """The database stayed away past the lease's deadline while the run had something to record. The message is
    for people ("database connection lost while recording block 2; the run was stopped"); the driver's text goes to
    the log only. `cause`: what the database did, as database_trouble names it."""

    def __init__(self, cause: str, when: str, detail: str = ""):
        super().__init__(f"{cause} {when}; the run was stopped{detail}")
        self.cause = cause


LOST_CONNECTION, DISK_FULL = "database connection lost", "database disk full"


def database_trouble(error: BaseException | None) -> str:
    """How a run's error names what the database did: its disk full (it answered, but took no write), else a lost
    connection."""
    return DISK_FULL if error is not None and database_is_full(error) else LOST_CONNECTION


def is_connection_error(error: BaseException) -> bool:
    """A lost or refused database connection (or SQLite's busy lock): worth waiting out. Anything else is a bug."""
    return unreachable_service(error) == DATABASE


@dataclass(frozen=True)
class LeaseTiming:
    grace: float  # LOST_RUN_GRACE_SECONDS: silent longer than this, a run is lost
    renew: float  # LEASE_RENEW_SECONDS

    @classmethod
    def from_settings(cls, settings: dict) -> LeaseTiming:
        return cls(float(settings["LOST_RUN_GRACE_SECONDS"]), float(settings["LEASE_RENEW_SECONDS"]))

    @property
    def deadline(self) -> float:
        """How long a worker may go without a renewal before it stops its run itself."""
        return self.grace - self.renew


class RunLease:
    """One worker's hold on one run. Renewal times are taken before the renewing statement is sent, so the local
    view is never younger than the database's ``heartbeat_at``; both clocks are watched, because a paused process's
    monotonic clock and a suspended machine's wall clock each miss one kind of pause."""

    def __init__(self, run_id: uuid.UUID, token: int, timing: LeaseTiming,
                 clock: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time) -> None:
        self.run_id, self.token, self.timing = run_id, token, timing
        self.clock, self.wall = clock, wall
        self.revoked = False
        self.renewed_at = (clock(), wall())
        self.node: tuple[uuid.UUID, str] | None = None  # (block run, worker) when held for one block of the run
        self.cancel_requested = False  # as the last renewal found the run
        self.trouble: BaseException | None = None  # the database's error to the last renewal, if it failed
        self.ending = False  # the run's final state is being written: a renewal refused now may be refused by it

    def now(self) -> tuple[float, float]:
        return self.clock(), self.wall()

    def renewed(self, at: tuple[float, float]) -> None:
        self.renewed_at = max(self.renewed_at, at)

    def silent_for(self) -> float:
        return max(self.clock() - self.renewed_at[0], self.wall() - self.renewed_at[1])

    def due(self) -> bool:
        return self.silent_for() >= self.timing.renew

    def expired(self, beyond: float = 0.0) -> bool:
        """Revoked, or silent past the deadline (and `beyond` it: FencedWriter.patient)."""
        return self.revoked or self.silent_for() > self.timing.deadline + beyond

    def check(self) -> None:
        if self.revoked:
            raise LeaseLostError(f"run {self.run_id} was declared lost and ended by another process")
        if self.expired():
            raise LeaseLostError(f"run {self.run_id}: its lease was not renewed for {self.silent_for():.0f} s")


def _driver_error(error: DBAPIError) -> str:
    """The driver's error in one line, for the log (never for a run's error, which is written for people)."""
    cause = error.orig or error
    lines = str(cause).strip().splitlines() or [""]
    return f"{type(cause).__name__}: {lines[0][:200]}"


class FencedWriter:
    """Writes one run's bookkeeping, each transaction fenced by the run's lease.

    A lost connection is waited out and the write tried again until the lease's deadline; before trying again, the
    ``landed`` probe (when given) asks whether the failed attempt committed after all, so a transaction whose COMMIT
    got lost is not applied twice."""

    def __init__(self, engine: Engine, lease: RunLease, sleep: Callable[[float], None] = time.sleep) -> None:
        self.engine, self.lease, self.sleep = engine, lease, sleep
        self.patience = 0.0  # seconds an outage is waited out past the lease's deadline (see `patient`)
        self.back_at: datetime | None = None  # when the database last answered again after an outage

    @contextmanager
    def patient(self, seconds: float) -> Iterator[None]:
        """While nothing of the run is in flight (between its blocks, or a block done and not yet recorded), an
        outage is waited out up to `seconds` past the lease's deadline instead of stopping the run: nothing can
        have a side effect meanwhile, and the next write, fenced by the lease, says whether the run is still this
        worker's (the reaper may have declared it lost once the database was back)."""
        previous, self.patience = self.patience, seconds
        try:
            yield
        finally:
            self.patience = previous

    def out_of_time(self) -> bool:
        return self.lease.expired(beyond=self.patience)

    def write(self, what: str, work: Callable[[Connection], None],
              landed: Callable[[Connection], bool] | None = None, until: float | None = None,
              fences_itself: bool = False, one_statement: bool = False) -> None:
        """``until``: a monotonic time to keep trying until, instead of the lease's deadline. ``fences_itself``: the
        work's first statement is a conditional write of the run row that raises LeaseLostError when it finds the
        lease gone (the run's end), so the renewal would only repeat it. ``one_statement`` (with it): that write is
        all the work does on PostgreSQL, so it needs no transaction around it (run_records.bookkeeping)."""
        pause = FIRST_PAUSE_SECONDS
        while True:
            try:
                self._attempt(work, fences_itself, one_statement)
                break
            except DBAPIError as error:
                if not is_connection_error(error):
                    raise
                self._wait_out(what, error, pause, until)
                pause = min(pause * 2, self.lease.timing.renew)
                if landed is not None and self._has_landed(landed):
                    break
        if pause > FIRST_PAUSE_SECONDS:
            self.back_at = utcnow()
            log.info("run %s: the database is back; %s done", self.lease.run_id, what)

    def confirm(self) -> bool:
        """Is the run still this worker's? Locally, while the lease is fresh; when it is not (the process was
        paused, or the keeper could not reach the database), the database decides through one fenced renewal -
        or, while it cannot be reached, the patience left (see `patient`). Renewing as soon as the database is back
        keeps a reaper from declaring lost a run that rode an outage out."""
        if self.lease.revoked:
            return False
        if not self.lease.expired():
            return True
        return self.write_once("the run's lease", lambda _connection: None) or not self.out_of_time()

    def write_once(self, what: str, work: Callable[[Connection], None]) -> bool:
        """One attempt, for writes that the next one supersedes (progress): a lost connection is only logged; a lost
        lease is remembered, for the block's next check to stop it."""
        try:
            self._attempt(work)
            return True
        except LeaseLostError:
            return False
        except DBAPIError as error:
            if not is_connection_error(error):
                raise
            log.warning("run %s: %s not written: database unavailable (%s)", self.lease.run_id, what,
                        type(error.orig or error).__name__)
            return False

    def read(self, what: str, query: Callable[[], T]) -> T:
        """A read of the run's inputs (credentials, a stored output), tried again while the connection is lost."""
        pause = FIRST_PAUSE_SECONDS
        while True:
            try:
                answer = query()
            except DBAPIError as error:
                if not is_connection_error(error):
                    raise
                self._wait_out(what, error, pause, None)
                pause = min(pause * 2, self.lease.timing.renew)
                continue
            if pause > FIRST_PAUSE_SECONDS:
                self.back_at = utcnow()
            return answer

    def _attempt(self, work: Callable[[Connection], None], fences_itself: bool = False,
                 one_statement: bool = False) -> None:
        began = self.lease.now()
        with run_records.bookkeeping(self.engine, one_statement=fences_itself and one_statement) as connection:
            if fences_itself:
                work(connection)
                return
            renewal = run_records.renew_lease(connection, self.lease.run_id, self.lease.token, utcnow(),
                                              self.lease.node)
            self.renewed(renewal, began)
            work(connection)

    def renewed(self, renewal: Row | None, began: tuple[float, float]) -> None:
        """What a fenced renewal found, sent at `began` (RunLease.now): the lease lost (None: LeaseLostError), or
        held, with whether a cancel was asked for."""
        if renewal is None:
            self.lease.revoked = True
            metrics.lease_failed("revoked")
            raise LeaseLostError(f"run {self.lease.run_id} was declared lost and ended by another process")
        self.lease.cancel_requested = bool(renewal.cancel_requested)
        self.lease.renewed(began)

    def _wait_out(self, what: str, error: DBAPIError, pause: float, until: float | None) -> None:
        if pause == FIRST_PAUSE_SECONDS:  # one line per outage, not one per attempt
            log.warning("run %s: database unavailable while %s (%s); trying again", self.lease.run_id, what,
                        _driver_error(error))
        out_of_time = self.out_of_time() if until is None else self.lease.clock() >= until
        if out_of_time:
            if pause > FIRST_PAUSE_SECONDS:  # the last attempt's error may not be the first's (refused, then reset)
                log.warning("run %s: database still unavailable while %s (%s); giving up", self.lease.run_id, what,
                            _driver_error(error))
            raise DatabaseUnreachableError(database_trouble(error), f"while {what}") from None
        self.sleep(pause)

    def _has_landed(self, landed: Callable[[Connection], bool]) -> bool:
        try:
            with self.engine.connect() as connection:
                return landed(connection)
        except DBAPIError as error:
            if not is_connection_error(error):
                raise
            return False


class LeaseKeeper:
    """Renews the leases of a worker process's running runs between their own writes. One thread per process: a
    forked child (RQ's forking worker) starts its own, as threads do not survive a fork."""

    def __init__(self, engine: Engine, timing: LeaseTiming) -> None:
        self.engine, self.timing = engine, timing
        self.leases: dict[uuid.UUID, RunLease] = {}
        self.lock = threading.Lock()
        self.pid = os.getpid()
        self.failing = False
        self.stopping = threading.Event()
        threading.Thread(target=self._loop, name="run-lease-keeper", daemon=True).start()

    @contextmanager
    def holding(self, lease: RunLease) -> Iterator[RunLease]:
        with self.lock:
            self.leases[lease.run_id] = lease
        try:
            yield lease
        finally:
            with self.lock:
                self.leases.pop(lease.run_id, None)

    def _loop(self) -> None:
        while not self.stopping.wait(max(0.05, self.timing.renew / 2)):
            with self.lock:
                due = [lease for lease in self.leases.values() if lease.due() and not lease.revoked]
            for lease in due:
                self.renew(lease)

    def renew(self, lease: RunLease) -> None:
        began = lease.now()
        try:
            with run_records.bookkeeping(self.engine) as connection:
                renewal = run_records.renew_lease(connection, lease.run_id, lease.token, utcnow(), lease.node)
        except DBAPIError as error:
            if not self.failing:  # one line per outage, not one per beat
                log.warning("run leases not renewed: database unavailable (%s)", type(error.orig or error).__name__)
            self.failing = True
            lease.trouble = error
            metrics.lease_failed("unreachable")
            return
        lease.trouble = None
        if self.failing:
            log.info("run leases renewed again: the database is back")
        self.failing = False
        if renewal is not None:
            lease.renewed(began)
            lease.cancel_requested = bool(renewal.cancel_requested)
        else:
            lease.revoked = True
            if lease.ending:  # ended by this worker's final write, or the write finds it lost and says so
                return
            metrics.lease_failed("revoked")
            log.warning("run %s was declared lost and ended by another process; this worker stops it", lease.run_id)


_keeper: LeaseKeeper | None = None
_keeper_lock = threading.Lock()


def lease_keeper(engine: Engine, timing: LeaseTiming) -> LeaseKeeper:
    """The process's keeper."""
    global _keeper
    with _keeper_lock:
        if _keeper is None or _keeper.pid != os.getpid() or _keeper.engine is not engine or _keeper.timing != timing:
            if _keeper is not None and _keeper.pid == os.getpid():
                _keeper.stopping.set()  # another app in this process (tests): its runs have ended
            _keeper = LeaseKeeper(engine, timing)
        return _keeper
