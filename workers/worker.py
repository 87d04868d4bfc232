"""`canvas worker`: an RQ worker (canvas.queueing.worker), inside the app context, on the run queue, with a reaper
thread. It rides out outages of Redis and of the database, and exits only when asked to: a signal, the end of a
burst, --max-jobs.

``run_worker`` runs RQ's work loop in a loop of its own. After a loop that ended for want of Redis, it waits, with
exponential backoff up to RECONNECT_MAX_SECONDS, until Redis answers a PING, then starts a fresh loop under the same
worker name, which registers the worker again. The outage is logged once when it starts and once when Redis is back
(``canvas.outages``). The database is used only by runs (the runner) and by the reaper thread, and both outlive it.

An idle worker stays small: it builds no HTTP API (``workers.process_app``), and a simple worker imports the runner
and its blocks with its first run. RQ's scheduler (delayed jobs: callback retries) runs in `canvas scheduler`; a
worker forks one only when asked (``--with-rq-scheduler``), for a deployment without a `canvas scheduler`.
"""
from __future__ import annotations

import ctypes
import importlib
import logging
import os
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from redis import Redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from rq.exceptions import StopRequested

from canvas.db import name_sessions
from canvas.defaults import DEFAULT_WORKER_CLASS
from canvas.execution import credentials as run_credentials
from canvas.execution.reaper import InFlightJobs, ReaperConfig, reap_lost_runs
from canvas.execution.warm_up import compile_run_statements
from canvas.long_lived import freeze_long_lived
from canvas.execution.retention import prune_everything
from canvas.observability.logging import current_run_id
from canvas.outages import REDIS_UNREACHABLE, Backoff, OutageLog, Retrying
from canvas.queueing.connections import redis_client
from canvas.queueing.keys import RUN_QUEUE
from canvas.schema_version import wait_for_schema
from canvas.queueing.worker import (
    WAITS_FOR_REDIS, WORKER_CLASSES, OutageTolerantWorker, RunQueue, run_stop_timeout, stop_on_signals,
)
from canvas.settings import redis_url
from canvas.storage.blob import BlobStoreError
from workers import process_app

log = logging.getLogger("canvas.worker")
PRUNE_INTERVAL_SECONDS = 3600.0
PROBE_TIMEOUT_SECONDS = 5.0


@dataclass
class WorkOrder:
    """What `canvas worker` was asked to do, over however many RQ work loops it takes."""
    burst: bool
    max_jobs: int | None
    logging_level: str
    with_rq_scheduler: bool = False  # fork RQ's scheduler (when no other process holds its lock)
    jobs_done: int = 0

    def jobs_left(self) -> int | None:
        return None if self.max_jobs is None else self.max_jobs - self.jobs_done


def run_worker(worker_class: str | None = None, burst: bool = False, name: str | None = None,
               max_jobs: int | None = None, with_rq_scheduler: bool = False) -> int:
    app = process_app()
    settings = app.config["CANVAS_SETTINGS"]
    _forked_children_die_with_the_worker()
    rq_log = logging.getLogger("rq.worker")
    rq_log.addFilter(LostConnectionsWithoutTraceback())
    rq_log.addFilter(JobSuccessAtDebug())
    chosen = worker_class or settings["WORKER_CLASS"] or DEFAULT_WORKER_CLASS
    url = redis_url(settings)
    # RQ stores pickled payloads: its connection must not decode responses.
    connection = redis_client(url, health_check_interval=30)
    probe = redis_client(url, socket_connect_timeout=PROBE_TIMEOUT_SECONDS, socket_timeout=PROBE_TIMEOUT_SECONDS,
                         retry=Retry(NoBackoff(), 0))  # our backoff paces the attempts
    name = name or uuid.uuid4().hex  # one name across reconnects: RQ keeps listing the same worker
    name_sessions(f"canvas worker {name}")
    reconnect_max = settings["RECONNECT_MAX_SECONDS"]
    outages = OutageLog(log, f"worker {name}")
    stop = threading.Event()
    stop_timeout = run_stop_timeout(settings["SHUTDOWN_GRACE_SECONDS"])  # a stopping worker's run, then it is ended

    database = app.extensions["canvas"].db
    forking = {"prepare_child": database.ready_for_work, "release_child": database.engine.dispose,
               "runs_per_child": settings["WORKER_RUNS_PER_CHILD"]} if chosen == "fork" else {}

    def new_worker() -> OutageTolerantWorker:
        return WORKER_CLASSES[chosen]([RunQueue(RUN_QUEUE, connection=connection)], connection=connection, name=name,
                                      outages=outages, stop=stop, probe=probe, reconnect_max=reconnect_max,
                                      stop_timeout=stop_timeout, database_check=database.check_reachable, **forking)

    with app.app_context():
        services = app.extensions["canvas"]
        stop_on_signals(stop)
        if not wait_for_schema(services.db.engine, f"worker {name}", stop):
            return 0
        run_credentials.say_if_keys_differ(services.db, services.secret_box, f"worker {name}")
        if chosen == "fork":
            _warm_up(services)
            services.db.keep_apart_from_forks()  # on SQLite: the threads' uses of it, never across a fork
        services.db.checkpoint_in_background()
        stop_reaper = _start_reaper(services, outages)
        try:
            log.info("%s worker %s listening on queue %s", chosen, name, RUN_QUEUE)
            order = WorkOrder(burst, max_jobs, settings["LOG_LEVEL"], with_rq_scheduler)
            return _work_through_outages(new_worker, order, probe, outages, stop, reconnect_max)
        finally:
            stop_reaper.set()


def _work_through_outages(new_worker: Callable[[], OutageTolerantWorker], order: WorkOrder, probe: Redis,
                          outages: OutageLog, stop: threading.Event, reconnect_max: float) -> int:
    """RQ work loops one after the other, with a wait for Redis between two, until one ends as asked. Exits 1 only
    when RQ's loop ended on an unexpected error (it logged the traceback), for a supervisor to restart the worker."""
    unretired: OutageTolerantWorker | None = None  # a worker whose death could not be registered
    backoff = Backoff(reconnect_max)  # kept across loops that die at once, reset by one that got going
    try:
        while True:
            stop_on_signals(stop)  # RQ installs its own handlers while its loop runs, and leaves them behind
            if stop.is_set():
                return 0
            try:
                if unretired is not None:
                    unretired.retire()
                    unretired = None
                worker = new_worker()  # its constructor already talks to Redis
            except REDIS_UNREACHABLE as error:
                outages.failed(error, "starting the worker", WAITS_FOR_REDIS)
            else:
                worker.work(burst=order.burst, logging_level=order.logging_level, max_jobs=order.jobs_left(),
                            with_scheduler=order.with_rq_scheduler)
                order.jobs_done += worker.jobs_done
                if worker.birth_date is not None:
                    backoff.reset()
                if stop.is_set() or worker.ended_as_asked(order.jobs_left()):
                    return 0
                if worker.lost is None:
                    log.error("worker %s: RQ's work loop ended on an unexpected error (logged above)", worker.name)
                    return 1
                unretired = None if worker.death_registered else worker
            stop_on_signals(stop)
            if not _wait_for_redis(probe, outages, stop, backoff):
                return 0
    except StopRequested:  # raised by RQ's handler for a signal that came after its loop ended
        return 0


def _wait_for_redis(probe: Redis, outages: OutageLog, stop: threading.Event, backoff: Backoff) -> bool:
    """Until Redis answers a PING (True), or a signal asks the worker to stop (False)."""
    while not stop.wait(backoff.next_delay()):
        try:
            probe.ping()
        except REDIS_UNREACHABLE as error:
            outages.failed(error, "waiting for Redis", WAITS_FOR_REDIS)
        else:
            outages.succeeded("Redis")
            return True
    return False


class LostConnectionsWithoutTraceback(logging.Filter):
    """RQ logs a few Redis failures with their traceback (a job's failure it could not store, say): for a lost
    connection the class name says it all, and the outage is logged anyway."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, REDIS_UNREACHABLE):
            record.msg = f"{record.msg} ({error.__class__.__name__})"
            record.exc_info, record.exc_text = None, None
        return True


class JobSuccessAtDebug(logging.Filter):
    """RQ says twice that a run's job went well ("Successfully completed ...", "Job OK"; a third line, on what
    became of its result, is off in the worker class), and the runner's own line says it already, with how long the
    run took and its ids. RQ's two are DEBUG lines for a run's jobs: at INFO a run that goes well has one line when a
    worker takes it (RQ's) and one when it ends (the runner's), which is what a reader wants and what a log pipeline
    pays for. Other jobs (callback deliveries, notification mails) keep RQ's lines: they log no outcome of their own."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.INFO or current_run_id() is None or not _is_job_success(record):
            return True
        record.levelno, record.levelname = logging.DEBUG, logging.getLevelName(logging.DEBUG)
        return logging.getLogger().isEnabledFor(logging.DEBUG)


def _is_job_success(record: logging.LogRecord) -> bool:
    message = str(record.msg)
    return (message.startswith("Successfully completed ")
            or (message == "Worker %s: %s: %s (%s)" and "Job OK" in str(record.args[2])))


_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _forked_children_die_with_the_worker() -> None:
    """RQ forks a child per job (the fork worker class) and its scheduler (--with-rq-scheduler). Killed with
    SIGKILL, a worker cannot stop them, and the scheduler would run on for ever; so each forked child asks Linux for
    SIGTERM when its parent dies (RQ's scheduler stops on it, releasing its lock) and leaves at once if the parent is
    already gone."""
    libc = _libc()
    if libc is None:
        return
    forking = {"pid": os.getpid()}  # each process has its own copy: the pid of whoever forks next

    def before_fork() -> None:
        forking["pid"] = os.getpid()

    def in_child() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != forking["pid"]:  # the parent died before prctl took effect
            os.kill(os.getpid(), signal.SIGTERM)

    os.register_at_fork(before=before_fork, after_in_child=in_child)


def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)  # the interpreter's own symbols, libc's among them
        return libc if hasattr(libc, "prctl") else None
    except OSError:
        return None


def _warm_up(services) -> None:  # noqa: ANN001 - canvas.extensions.Services
    """Import the runner and every block, and build the lazy services, before the first job: a forking worker's
    children then inherit them (copy-on-write) instead of paying for them on every run (~200 ms of imports, and
    ~90 ms more of CPU for an SFTP block's paramiko, ~140 ms for a PostgreSQL application's driver). A simple worker
    pays for them once, with its first run, and stays ~40 MB smaller until then."""
    importlib.import_module("canvas.execution.runner")  # and with it the block registry and every block
    from canvas.execution.registry import preload_block_libraries  # loaded by the line above

    preload_block_libraries()  # and what blocks import only when they run: paramiko, the SQL drivers

    # "db" too: built later by the reaper thread, a fork in the middle of it (importing psycopg takes seconds on a
    # loaded machine) would leave the child waiting for ever on cached_property's lock, held by a thread it lacks.
    # Each child drops the pooled connections it inherits (Database.after_fork).
    for name in ("blob_store", "network_policy", "secret_box", "redis", "db"):
        getattr(services, name)
    services.network_policy.ssl_context()  # the TLS trust stores (~25-30 ms of CPU each), for SMTP and FTPS
    services.network_policy.https_context()  # and for HTTPS
    compile_run_statements(services)  # else each child compiles a run's statements again, for itself alone
    # Out of the garbage collector's sight: a child's collection would otherwise walk (and so copy) every page the
    # parent's objects live on, which cost a forked run ~30 ms of its ~75 (measured, SQLite, no-op run). The
    # rehearsal's rolled-back rows are garbage by now: collected first rather than kept for ever.
    freeze_long_lived()


def _prune(services) -> None:  # noqa: ANN001 - canvas.extensions.Services
    """Old outputs pruned; a store that cannot be used meanwhile is a warning (what the store says, no traceback),
    tried again at the next hour: it has deleted nothing (canvas.execution.retention.prune_everything)."""
    try:
        prune_everything(services)
    except BlobStoreError as error:
        log.warning("pruning old outputs put off for an hour: %s", error)


def _start_reaper(services, outages: OutageLog) -> threading.Event:  # noqa: ANN001 - canvas.extensions.Services
    """Every worker also looks after the runs nobody else does (canvas.execution.reaper: a killed worker cannot report
    its own death, a Redis that lost its data lost the queued jobs), and prunes old outputs once an hour."""
    settings = services.settings
    config, in_flight = ReaperConfig.from_settings(settings), InFlightJobs()
    interval = settings["REAPER_INTERVAL_SECONDS"]
    retrying = Retrying("reaping lost runs", outages, settings["RECONNECT_MAX_SECONDS"])
    stop = threading.Event()
    last_prune = [0.0]

    def one_round() -> None:
        with services.db.apart_from_forks():
            reap_lost_runs(services.db, services.redis, config, in_flight)
            if time.monotonic() - last_prune[0] >= PRUNE_INTERVAL_SECONDS:
                last_prune[0] = time.monotonic()
                _prune(services)

    def loop() -> None:
        wait = interval
        while not stop.wait(wait):
            try:
                one_round()
            except Exception as error:  # noqa: BLE001 - logged by Retrying; the reaper outlives every failure
                wait = max(interval, retrying.failed(error))
            else:
                retrying.succeeded()
                wait = interval

    threading.Thread(target=loop, name="run-reaper", daemon=True).start()
    return stop
