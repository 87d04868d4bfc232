"""`canvas worker`: a plain RQ worker, inside the app context, on the run queue, with a reaper thread."""
from __future__ import annotations

import ctypes
import importlib
import logging
import os
import signal
import sys
import threading
import time

import redis
from redis import Redis
from rq import Queue, SimpleWorker, Worker

from canvas import create_app
from canvas.defaults import DEFAULT_WORKER_CLASS
from canvas.execution.reaper import reap_lost_runs
from canvas.execution.retention import prune_everything
from canvas.queueing.keys import RUN_QUEUE
from canvas.settings import redis_url

log = logging.getLogger("canvas.worker")
WORKER_CLASSES = {"simple": SimpleWorker, "fork": Worker}
REAP_INTERVAL_SECONDS = 10.0
PRUNE_INTERVAL_SECONDS = 3600.0


def run_worker(worker_class: str | None = None, burst: bool = False, name: str | None = None,
               max_jobs: int | None = None) -> int:
    app = create_app()
    settings = app.config["CANVAS_SETTINGS"]
    _forked_children_die_with_the_worker()
    chosen = worker_class or settings["WORKER_CLASS"] or DEFAULT_WORKER_CLASS
    # RQ stores pickled payloads: its connection must not decode responses.
    connection = Redis.from_url(redis_url(settings), health_check_interval=30)
    with app.app_context():
        _warm_up(app.extensions["canvas"])
        stop_reaper = _start_reaper(app, connection)
        try:
            rq_worker = WORKER_CLASSES[chosen]([Queue(RUN_QUEUE, connection=connection)], connection=connection,
                                               name=name)
            log.info("%s worker listening on queue %s", chosen, RUN_QUEUE)
            # RQ's scheduler (one per queue, elected among workers) runs delayed jobs: callback retries.
            rq_worker.work(burst=burst, logging_level=settings["LOG_LEVEL"], max_jobs=max_jobs,
                           with_scheduler=True)
        finally:
            stop_reaper.set()
    return 0


_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _forked_children_die_with_the_worker() -> None:
    """RQ forks its scheduler (and, as the fork worker class, a child per job). Killed with SIGKILL, a worker cannot
    stop them, and the scheduler would run on for ever; so each forked child asks Linux for SIGTERM when its parent
    dies (RQ's scheduler stops on it, releasing its lock) and leaves at once if the parent is already gone."""
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
    children then inherit them instead of paying for them on every run (~200 ms of imports)."""
    importlib.import_module("canvas.execution.runner")  # and with it the block registry and every block

    for name in ("blob_store", "network_policy", "secret_box", "redis"):
        getattr(services, name)


def _start_reaper(app, connection: Redis) -> threading.Event:  # noqa: ANN001
    """Every worker also looks for runs lost by other workers (a killed worker cannot report its own death), and
    prunes old outputs once an hour."""
    services = app.extensions["canvas"]
    settings = services.settings
    stop = threading.Event()

    def reap() -> None:
        last_prune = 0.0
        while not stop.wait(REAP_INTERVAL_SECONDS):
            try:
                reap_lost_runs(services.db, connection, settings.get("REDIS_PREFIX"),
                               settings["LOST_RUN_GRACE_SECONDS"])
                if time.monotonic() - last_prune >= PRUNE_INTERVAL_SECONDS:
                    last_prune = time.monotonic()
                    prune_everything(services)
            except (redis.RedisError, OSError) as exc:
                log.warning("reaper skipped a round: %s", exc.__class__.__name__)
            except Exception:  # noqa: BLE001 - the reaper must outlive a database hiccup
                log.exception("reaper round failed")

    threading.Thread(target=reap, name="run-reaper", daemon=True).start()
    return stop
