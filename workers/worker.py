"""`canvas worker`: a plain RQ worker, inside the app context, on the run queue, with a reaper thread."""
from __future__ import annotations

import importlib
import logging
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
