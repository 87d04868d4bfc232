"""The scheduler engine: APScheduler times the schedules, this module claims and dispatches what comes due.

* APScheduler runs one job per enabled workflow (job id = workflow id) in its memory job store, timed by
  ``QuartzTrigger``. The database is the source of truth; the job store is a cache rebuilt at every start.
* Its executor is ``OccurrenceExecutor``: instead of calling a function in a thread pool (where APScheduler drops
  runs that wait longer than ``misfire_grace_time``, about a fifth of 1,000 simultaneous ones by default), it puts the
  due (workflow, fire times) on an inbox. Jobs have ``misfire_grace_time=None`` and ``coalesce=False``, so APScheduler
  never drops or merges an occurrence itself: the misfire policy is ours.
* One dispatcher thread drains the inbox in batches (``claims.OccurrenceDispatcher``).
* A control thread reconciles with the database when a change is announced on Redis, and every few seconds anyway;
  releases occurrences that wait for a run to end; and reaps runs whose worker is gone.
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
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import redis
from apscheduler.executors.base import BaseExecutor
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.schedulers.background import BackgroundScheduler

from canvas import defaults
from canvas.db import Database
from canvas.execution.reaper import reap_lost_runs
from canvas.models.base import utcnow
from canvas.queueing.keys import schedule_changes_channel, schedulers_key
from canvas.scheduling.claims import OccurrenceDispatcher
from canvas.scheduling.occurrences import Firing, MisfireRules, latest_fire_times, plan_due
from canvas.scheduling.store import ScheduleRow, as_utc, enabled_versions, load_schedules, store_next_times
from canvas.scheduling.trigger import QuartzTrigger, parse_cached

log = logging.getLogger("canvas.scheduler")
BATCH_LIMIT = 1000  # firings per claim transaction
MISSED_LIMIT = 100  # newest missed occurrences recorded per workflow on load; older ones are not listed
RELEASE_INTERVAL_SECONDS = 1.0
PRESENCE_INTERVAL_SECONDS = 5.0  # a scheduler says it is alive this often (counted for SCHEDULER_PRESENCE_SECONDS)
PRESENCE_FORGET_SECONDS = 3600.0
REAP_INTERVAL_SECONDS = 10.0
UNKNOWN_VERSION = -1  # never a stored version: forces a reload


@dataclass(frozen=True)
class SchedulerConfig:
    reconcile_seconds: float = defaults.DEFAULT_SCHEDULER_RECONCILE_SECONDS
    misfire_grace_seconds: float = defaults.DEFAULT_SCHEDULER_MISFIRE_GRACE_SECONDS
    run_each_limit: int = defaults.DEFAULT_SCHEDULER_RUN_EACH_LIMIT
    lost_run_grace_seconds: float = defaults.DEFAULT_LOST_RUN_GRACE_SECONDS
    redis_prefix: str | None = None

    @classmethod
    def from_settings(cls, settings: dict) -> SchedulerConfig:
        return cls(settings["SCHEDULER_RECONCILE_SECONDS"], settings["SCHEDULER_MISFIRE_GRACE_SECONDS"],
                   settings["SCHEDULER_RUN_EACH_LIMIT"], settings["LOST_RUN_GRACE_SECONDS"],
                   settings.get("REDIS_PREFIX"))


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


class SchedulerEngine:
    def __init__(self, database: Database, connection: redis.Redis, config: SchedulerConfig,
                 name: str | None = None) -> None:
        self.database, self.connection, self.config = database, connection, config
        self.name = name or scheduler_name()
        self.rules = MisfireRules(timedelta(seconds=config.misfire_grace_seconds), config.run_each_limit)
        self.dispatcher = OccurrenceDispatcher(database, connection, self.name, on_unclaimed=self._reload_later)
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
        """Load every enabled schedule, then start timing them; returns the seconds the load took."""
        began = time.perf_counter()
        self.apscheduler.start(paused=True)
        self.reconcile()
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
        self._guarded("presence", lambda: self.connection.zrem(schedulers_key(self.config.redis_prefix), self.name))
        log.info("scheduler %s stopped (%s)", self.name, dict(self.stats))

    # --- timing -------------------------------------------------------------------------------------------------

    def _on_due(self, job_id: str, run_times: list[datetime], version: int | None) -> None:
        workflow_id = uuid.UUID(job_id)
        policy = self.misfire_policies.get(workflow_id, "coalesce")
        self.inbox.put(plan_due(workflow_id, run_times, policy, utcnow(), self.rules, version))

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
        trigger = QuartzTrigger(parse_cached(row.cron_expression), ZoneInfo(row.time_zone))
        now = utcnow()
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
                self._guarded("dispatch", lambda: self.stats.update(self.dispatcher.handle(batch)))

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

    def _control_loop(self) -> None:
        last = {"reconcile": time.monotonic(), "release": 0.0, "reap": time.monotonic(), "presence": 0.0}
        while not self.stopping.wait(0.25):
            now = time.monotonic()
            if now - last["presence"] >= PRESENCE_INTERVAL_SECONDS:
                last["presence"] = now
                self._guarded("presence", self._say_alive)
            if self.changed.is_set() or now - last["reconcile"] >= self.config.reconcile_seconds:
                self.changed.clear()
                last["reconcile"] = now
                self._guarded("reconcile", self.reconcile)
            if now - last["release"] >= RELEASE_INTERVAL_SECONDS:
                last["release"] = now
                self._guarded("release", lambda: self.stats.update(released=self.dispatcher.release_waiting()))
            if now - last["reap"] >= REAP_INTERVAL_SECONDS:
                last["reap"] = now
                self._guarded("reap", self._reap)

    def _say_alive(self) -> None:
        """For /healthz: schedulers are counted by how recently they said so."""
        key = schedulers_key(self.config.redis_prefix)
        now = time.time()
        with self.connection.pipeline() as pipe:
            pipe.zadd(key, {self.name: now})
            pipe.zremrangebyscore(key, "-inf", now - PRESENCE_FORGET_SECONDS)
            pipe.execute()

    def _reap(self) -> None:
        reap_lost_runs(self.database, self.connection, self.config.redis_prefix, self.config.lost_run_grace_seconds)

    def _listen_loop(self) -> None:
        """Announced changes trigger a reconcile at once; while Redis is away, the periodic reconcile covers."""
        channel = schedule_changes_channel(self.config.redis_prefix)
        while not self.stopping.is_set():
            try:
                self._listen(channel)
            except (redis.RedisError, OSError) as exc:
                log.warning("schedule change listener: %s; retrying", exc.__class__.__name__)
                self.stopping.wait(1.0)

    def _listen(self, channel: str) -> None:
        pubsub = self.connection.pubsub(ignore_subscribe_messages=True)
        try:
            pubsub.subscribe(channel)
            self.changed.set()  # anything announced while not subscribed
            while not self.stopping.is_set():
                if pubsub.get_message(timeout=0.5) is not None:
                    self.changed.set()
        finally:
            pubsub.close()

    def _guarded(self, what: str, action) -> None:  # noqa: ANN001 - a callable
        """A failed round is logged and tried again next time: the scheduler outlives database and Redis hiccups."""
        try:
            action()
        except Exception:  # noqa: BLE001
            log.exception("scheduler %s failed", what)
            self.stopping.wait(0.5)

