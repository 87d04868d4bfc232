"""The scheduler engine: APScheduler times the schedules, this module claims and dispatches what comes due.

* APScheduler runs one job per enabled workflow (job id = workflow id) in its memory job store, timed by
  ``QuartzTrigger`` (Quartz expressions) or ``UnixCronTrigger`` (5-field Unix cron of the v2 dialect, croniter's
  fire times). The database is the source of truth; the job store is a cache rebuilt at every start.
* Its executor is ``OccurrenceExecutor``: instead of calling a function in a thread pool (where APScheduler drops
  runs that wait longer than ``misfire_grace_time``, about a fifth of 1,000 simultaneous ones by default), it puts the
  due (workflow, fire times) on an inbox. Jobs have ``misfire_grace_time=None`` and ``coalesce=False``, so APScheduler
  never drops or merges an occurrence itself: the misfire policy is ours.
* One dispatcher thread drains the inbox in batches (``claims.OccurrenceDispatcher``).
* A control thread reconciles with the database when a change is announced on Redis, and every few seconds anyway;
  releases occurrences that wait for a run to end; says the scheduler is alive (for /healthz); and runs the reaper
  (``canvas.execution.reaper``: runs whose worker is lost, queued runs whose job Redis lost).
* The scheduler outlives its database and its Redis: a task that fails for want of one is tried again with
  exponential backoff, and the outage is logged once when it starts and once when it ends (``canvas.outages``).
  Occurrences that could not be claimed are handed back and found again by the next reload.
* On load (start, or a changed schedule), the occurrences since the workflow's newest ledger entry (or its last
  schedule change) that nobody claimed are due at once: within the grace time they fire, older ones go to the
  workflow's misfire policy.
"""
from __future__ import annotations

import logging
import os
import queue
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import redis
from apscheduler.executors.base import BaseExecutor
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.schedulers.background import BackgroundScheduler

from canvas import defaults
from canvas.audit.service import prune_expired
from canvas.clock import machine_utcnow, now_seconds
from canvas.db import Database
from canvas.execution.reaper import InFlightJobs, ReaperConfig, reap_lost_runs
from canvas.outages import OutageLog, Retrying
from canvas.queueing.keys import schedule_changes_channel, schedulers_key
from canvas.scheduling.claims import OccurrenceDispatcher
from canvas.scheduling.occurrences import Firing, MisfireRules, latest_fire_times, plan_due
from canvas.scheduling.store import ScheduleRow, as_utc, enabled_versions, load_schedules, store_next_times
from canvas.scheduling.trigger import trigger_for
from canvas.settings import default_settings

log = logging.getLogger("canvas.scheduler")
BATCH_LIMIT = 1000  # firings per claim transaction
MISSED_LIMIT = 100  # newest missed occurrences recorded per workflow on load; older ones are not listed
RELEASE_INTERVAL_SECONDS = 1.0
PRESENCE_INTERVAL_SECONDS = 5.0  # a scheduler says it is alive this often (counted for SCHEDULER_PRESENCE_SECONDS)
PRESENCE_FORGET_SECONDS = 3600.0
CONTROL_TICK_SECONDS = 0.25
UNKNOWN_VERSION = -1  # never a stored version: forces a reload


@dataclass(frozen=True)
class SchedulerConfig:
    reconcile_seconds: float = defaults.DEFAULT_SCHEDULER_RECONCILE_SECONDS
    misfire_grace_seconds: float = defaults.DEFAULT_SCHEDULER_MISFIRE_GRACE_SECONDS
    run_each_limit: int = defaults.DEFAULT_SCHEDULER_RUN_EACH_LIMIT
    lost_run_grace_seconds: float = defaults.DEFAULT_LOST_RUN_GRACE_SECONDS  # for the reaper, when none is given
    redis_prefix: str | None = None
    reap_interval_seconds: float = defaults.DEFAULT_REAPER_INTERVAL_SECONDS
    reconnect_max_seconds: float = defaults.DEFAULT_RECONNECT_MAX_SECONDS
    reaper: ReaperConfig | None = None  # None: built from lost_run_grace_seconds and redis_prefix
    audit_retention_days: float = defaults.DEFAULT_AUDIT_RETENTION_DAYS  # 0: the audit log is kept forever
    audit_prune_interval_seconds: float = defaults.DEFAULT_AUDIT_PRUNE_INTERVAL_SECONDS

    def __post_init__(self) -> None:
        if self.reaper is None:
            object.__setattr__(self, "reaper", ReaperConfig.from_settings({
                **default_settings(), "LOST_RUN_GRACE_SECONDS": self.lost_run_grace_seconds,
                "SCHEDULER_MISFIRE_GRACE_SECONDS": self.misfire_grace_seconds, "REDIS_PREFIX": self.redis_prefix}))

    @classmethod
    def from_settings(cls, settings: dict) -> SchedulerConfig:
        return cls(settings["SCHEDULER_RECONCILE_SECONDS"], settings["SCHEDULER_MISFIRE_GRACE_SECONDS"],
                   settings["SCHEDULER_RUN_EACH_LIMIT"], settings["LOST_RUN_GRACE_SECONDS"],
                   settings.get("REDIS_PREFIX"),
                   reap_interval_seconds=settings["REAPER_INTERVAL_SECONDS"],
                   reconnect_max_seconds=settings["RECONNECT_MAX_SECONDS"],
                   reaper=ReaperConfig.from_settings(settings),
                   audit_retention_days=settings["AUDIT_RETENTION_DAYS"],
                   audit_prune_interval_seconds=settings["AUDIT_PRUNE_INTERVAL_SECONDS"])


def scheduler_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _job_never_called(version: int | None = None) -> None:
    """APScheduler wants a callable per job; OccurrenceExecutor never calls it. ``version`` rides along in the job's
    kwargs: the schedule version the job was built from, for the occurrences it hands over."""


class OccurrenceExecutor(BaseExecutor):
    """Hands due run times to a callback at once, in the scheduler's own thread: nothing waits in a pool, so nothing
    can outlive a grace time, and no "maximum instances" check can skip a run (overlap is a per-workflow policy)."""

    def __init__(self, on_due) -> None:  # noqa: ANN001 - callable(job id, run times, schedule version)
        super().__init__()
        self.on_due = on_due

    def submit_job(self, job, run_times) -> None:  # noqa: ANN001
        self._do_submit_job(job, run_times)

    def _do_submit_job(self, job, run_times) -> None:  # noqa: ANN001
        self.on_due(job.id, run_times, job.kwargs.get("version"))


class Chore:
    """A recurring task of the control loop: done every ``interval`` seconds, or sooner once ``wake`` is set; after a
    failure, not before its backoff has passed, however often it is woken."""

    def __init__(self, action: Callable[[], object], interval: float, retrying: Retrying, first_due: float,
                 wake: threading.Event | None = None) -> None:
        self.action, self.interval, self.retrying, self.wake = action, interval, retrying, wake
        self.next_due = first_due
        self.not_before = 0.0

    def due(self, now: float) -> bool:
        woken = self.wake is not None and self.wake.is_set()
        return now >= self.not_before and (woken or now >= self.next_due)

    def run(self, now: float) -> None:
        if self.wake is not None:
            self.wake.clear()
        try:
            self.action()
        except Exception as error:  # noqa: BLE001 - logged by Retrying; the control loop outlives every failure
            self.not_before = self.next_due = now + max(self.interval, self.retrying.failed(error))
            return
        self.retrying.succeeded()
        self.not_before, self.next_due = now, now + self.interval


class SchedulerEngine:
    def __init__(self, database: Database, connection: redis.Redis, config: SchedulerConfig,
                 name: str | None = None) -> None:
        self.database, self.connection, self.config = database, connection, config
        self.name = name or scheduler_name()
        self.rules = MisfireRules(timedelta(seconds=config.misfire_grace_seconds), config.run_each_limit)
        self.in_flight = InFlightJobs()  # the reaper's memory between its rounds
        self.outages = OutageLog(log, f"scheduler {self.name}", probes={"Redis": connection.ping})
        self.dispatcher = OccurrenceDispatcher(database, connection, self.name, on_unclaimed=self._reload_later,
                                               outages=self.outages)
        self.dispatching = Retrying("dispatching occurrences", self.outages, config.reconnect_max_seconds)
        self.chores: dict[str, Chore] = {}
        self.inbox: queue.SimpleQueue[list[Firing]] = queue.SimpleQueue()
        self.loaded: dict[uuid.UUID, int] = {}  # workflow id -> schedule version of its job
        self.misfire_policies: dict[uuid.UUID, str] = {}
        self.changed = threading.Event()
        self.stopping = threading.Event()
        self.stats = Counter()
        self._threads: list[threading.Thread] = []
        # APScheduler logs every added job at INFO: 10,000 lines at each start.
        logging.getLogger("apscheduler.scheduler").setLevel(logging.WARNING)
        self.apscheduler = BackgroundScheduler(
            jobstores={"default": MemoryJobStore()}, executors={"default": OccurrenceExecutor(self._on_due)},
            job_defaults={"misfire_grace_time": None, "coalesce": False}, timezone=timezone.utc)

    # --- lifecycle ----------------------------------------------------------------------------------------------

    def start(self) -> float:
        """Load every enabled schedule, then start timing them; returns the seconds the load took. With the database
        away, the control loop loads them when it answers."""
        began = time.perf_counter()
        self.apscheduler.start(paused=True)
        self.chores = self._chores(time.monotonic())
        self.chores["reconcile"].run(time.monotonic())
        self.apscheduler.resume()
        seconds = time.perf_counter() - began
        log.info("scheduler %s started: %d schedules loaded in %.2f s", self.name, len(self.loaded), seconds)
        for target, name in ((self._dispatch_loop, "occurrence-dispatcher"), (self._control_loop, "schedule-control"),
                             (self._listen_loop, "schedule-listener")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        return seconds

    def shutdown(self, timeout: float = 10.0) -> None:
        """Stop timing, dispatch what is already due, stop the threads."""
        self.apscheduler.shutdown(wait=False)
        self.stopping.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._forget_presence()
        log.info("scheduler %s stopped (%s)", self.name, dict(self.stats))

    def _forget_presence(self) -> None:
        try:
            self.connection.zrem(schedulers_key(self.config.redis_prefix), self.name)
        except Exception as error:  # noqa: BLE001 - /healthz stops counting a silent scheduler by itself
            log.warning("scheduler %s: presence not removed (%s)", self.name, error.__class__.__name__)

    # --- timing -------------------------------------------------------------------------------------------------

    def _on_due(self, job_id: str, run_times: list[datetime], version: int | None) -> None:
        workflow_id = uuid.UUID(job_id)
        policy = self.misfire_policies.get(workflow_id, "coalesce")
        self.inbox.put(plan_due(workflow_id, run_times, policy, machine_utcnow(), self.rules, version))

    def reconcile(self) -> None:
        """Bring the jobs in line with the database: drop removed schedules, (re)load new and changed ones."""
        with self.database.sessions() as session:
            versions = enabled_versions(session)
            for workflow_id in set(self.loaded) - set(versions):
                self._unload(workflow_id)
            changed = [workflow_id for workflow_id, version in versions.items()
                       if self.loaded.get(workflow_id) != version]
            if not changed:
                return
            stale: dict[uuid.UUID, datetime | None] = {}
            for row in load_schedules(session, None if not self.loaded else changed):
                self._load(row, stale)
        if stale:  # its own short write transaction, after the reads
            with self.database.transaction() as session:
                store_next_times(session, stale)

    def _load(self, row: ScheduleRow, stale: dict) -> None:
        trigger = trigger_for(row.cron_expression, ZoneInfo(row.time_zone))
        now = machine_utcnow()  # APScheduler fires the jobs by this clock
        backlog = latest_fire_times(trigger.expression, trigger.zone, row.window_start, now, MISSED_LIMIT)
        next_time = trigger.expression.next_fire_time(now, trigger.zone)
        self.misfire_policies[row.workflow_id] = row.misfire_policy
        self.loaded[row.workflow_id] = row.version
        if backlog:
            self.inbox.put(plan_due(row.workflow_id, backlog, row.misfire_policy, now, self.rules, row.version))
        elif as_utc(next_time) != row.date_next_schedule:
            stale[row.workflow_id] = as_utc(next_time)  # with a backlog, dispatching it sets the next time
        if next_time is None:
            self._remove_job(row.workflow_id)
            return
        self.apscheduler.add_job(_job_never_called, trigger=trigger, id=str(row.workflow_id), name="schedule",
                                 kwargs={"version": row.version}, replace_existing=True, next_run_time=next_time)

    def _reload_later(self, workflow_ids: set[uuid.UUID]) -> None:
        """Occurrences that could not be claimed (database down): the next reconcile reloads these schedules, and
        loading finds every occurrence since the newest ledger entry."""
        for workflow_id in workflow_ids:
            if workflow_id in self.loaded:
                self.loaded[workflow_id] = UNKNOWN_VERSION
        self.changed.set()

    def _unload(self, workflow_id: uuid.UUID) -> None:
        self.loaded.pop(workflow_id, None)
        self.misfire_policies.pop(workflow_id, None)
        self._remove_job(workflow_id)

    def _remove_job(self, workflow_id: uuid.UUID) -> None:
        if self.apscheduler.get_job(str(workflow_id)) is not None:
            self.apscheduler.remove_job(str(workflow_id))

    # --- threads ------------------------------------------------------------------------------------------------

    def _dispatch_loop(self) -> None:
        """Claim and dispatch in batches of whatever is due; keep draining while stopping, so nothing due is lost."""
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            if batch:
                self._dispatch(batch)

    def _dispatch(self, batch: list[Firing]) -> None:
        """A batch that fails is not held back for a retry (more are due meanwhile): its occurrences are handed back,
        and the reload finds the unclaimed ones in the ledger's gap."""
        try:
            self.stats.update(self.dispatcher.handle(batch))
        except Exception as error:  # noqa: BLE001 - logged by Retrying; the dispatcher outlives every failure
            self.dispatching.failed(error)
            self._reload_later({firing.workflow_id for firing in batch})
        else:
            self.dispatching.succeeded()

    def _next_batch(self) -> list[Firing] | None:
        try:
            firings = list(self.inbox.get(timeout=0.2))
        except queue.Empty:
            return None if self.stopping.is_set() else []
        while len(firings) < BATCH_LIMIT:
            try:
                firings.extend(self.inbox.get_nowait())
            except queue.Empty:
                break
        return firings

    def _chores(self, now: float) -> dict[str, Chore]:
        """Presence and release at once, reconcile and reap after their first interval (start() reconciles)."""
        config = self.config

        def chore(what: str, action: Callable[[], object], interval: float, first_due: float,
                  wake: threading.Event | None = None) -> Chore:
            return Chore(action, interval, Retrying(what, self.outages, config.reconnect_max_seconds), first_due, wake)

        return {"presence": chore("saying it is alive", self._say_alive, PRESENCE_INTERVAL_SECONDS, now),
                "reconcile": chore("reconciling schedules", self.reconcile, config.reconcile_seconds,
                                   now + config.reconcile_seconds, wake=self.changed),
                "release": chore("releasing waiting occurrences", self._release, RELEASE_INTERVAL_SECONDS, now),
                "reap": chore("reaping lost runs", self._reap, config.reap_interval_seconds,
                              now + config.reap_interval_seconds),
                "audit": chore("removing expired audit entries", self._prune_audit_log,
                               config.audit_prune_interval_seconds, now + config.reap_interval_seconds)}

    def _control_loop(self) -> None:
        while not self.stopping.wait(CONTROL_TICK_SECONDS):
            for chore in self.chores.values():
                now = time.monotonic()
                if chore.due(now):
                    chore.run(now)

    def _release(self) -> None:
        self.stats.update(released=self.dispatcher.release_waiting())

    def _say_alive(self) -> None:
        """For /healthz: schedulers are counted by how recently they said so."""
        key = schedulers_key(self.config.redis_prefix)
        now = now_seconds()
        with self.connection.pipeline() as pipe:
            pipe.zadd(key, {self.name: now})
            pipe.zremrangebyscore(key, "-inf", now - PRESENCE_FORGET_SECONDS)
            pipe.execute()

    def _reap(self) -> None:
        reap_lost_runs(self.database, self.connection, self.config.reaper, self.in_flight)

    def _prune_audit_log(self) -> None:
        prune_expired(self.database, self.config.audit_retention_days)

    def _listen_loop(self) -> None:
        """Announced changes trigger a reconcile at once; while Redis is away, the periodic reconcile covers."""
        channel = schedule_changes_channel(self.config.redis_prefix)
        retrying = Retrying("listening for schedule changes", self.outages, self.config.reconnect_max_seconds)
        while not self.stopping.is_set():
            try:
                self._listen(channel, subscribed=retrying.succeeded)
            except Exception as error:  # noqa: BLE001 - logged by Retrying; the listener outlives every failure
                self.stopping.wait(retrying.failed(error))

    def _listen(self, channel: str, subscribed: Callable[[], None]) -> None:
        pubsub = self.connection.pubsub(ignore_subscribe_messages=True)
        try:
            pubsub.subscribe(channel)
            subscribed()
            self.changed.set()  # anything announced while not subscribed
            while not self.stopping.is_set():
                if pubsub.get_message(timeout=0.5) is not None:
                    self.changed.set()
        finally:
            pubsub.close()

