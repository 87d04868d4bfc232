"""`canvas worker`: a plain RQ worker, inside the app context, on the run queue."""
from __future__ import annotations

import logging

from redis import Redis
from rq import Queue, SimpleWorker, Worker

from canvas import create_app
from canvas.queueing.keys import RUN_QUEUE
from canvas.settings import redis_url

log = logging.getLogger("canvas.worker")
WORKER_CLASSES = {"simple": SimpleWorker, "fork": Worker}
DEFAULT_WORKER_CLASS = "simple"


def run_worker(worker_class: str | None = None, burst: bool = False, name: str | None = None) -> int:
    app = create_app()
    settings = app.config["CANVAS_SETTINGS"]
    chosen = worker_class or settings.get("WORKER_CLASS") or DEFAULT_WORKER_CLASS
    # RQ stores pickled payloads: its connection must not decode responses.
    connection = Redis.from_url(redis_url(settings))
    with app.app_context():
        rq_worker = WORKER_CLASSES[chosen]([Queue(RUN_QUEUE, connection=connection)], connection=connection,
                                           name=name)
        log.info("%s worker listening on queue %s", chosen, RUN_QUEUE)
        rq_worker.work(burst=burst, logging_level=settings["LOG_LEVEL"])
    return 0
