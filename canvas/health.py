"""`/healthz`: does the database answer, does Redis answer; and, as information beside the verdict, how many
workers and schedulers are there and how many runs wait in the queue (a service whose runs never start usually has
no worker, which neither check would show)."""
from __future__ import annotations

import logging

import redis
from flask import Blueprint, jsonify
from rq import Queue, worker_registration

from canvas.clock import now_seconds
from canvas.defaults import SCHEDULER_PRESENCE_SECONDS
from canvas.extensions import services
from canvas.queueing.keys import RUN_QUEUE, WORKER_WAITING_FOR_DATABASE, schedulers_key

blp = Blueprint("health", __name__)
log = logging.getLogger(__name__)


@blp.get("/healthz")
def healthz():  # noqa: ANN201
    checks = {"database": _check(_ping_database), "redis": _check(_ping_redis)}
    healthy = all(state == "ok" for state in checks.values())
    body = {"status": "ok" if healthy else "unavailable", **checks}
    if checks["redis"] == "ok":
        body.update(_activity())
    response = jsonify(body)
    response.status_code = 200 if healthy else 503
    return response


def _activity() -> dict:
    """The workers of the run queue, the schedulers heard from lately, and the runs waiting for a worker. After Redis
    lost its data, workers and schedulers register again within seconds (workers.worker, canvas.scheduling)."""
    connection = services().redis
    prefix = services().settings.get("REDIS_PREFIX")
    queue = Queue(RUN_QUEUE, connection=connection)
    heard_since = now_seconds() - SCHEDULER_PRESENCE_SECONDS
    try:
        live, waiting = live_workers(queue)
        return {"workers": live, "workersWaitingForDatabase": waiting,
                "schedulers": connection.zcount(schedulers_key(prefix), heard_since, "+inf"),
                "queuedRuns": queue.count}
    except redis.RedisError as exc:
        log.warning("health activity not read: %s", exc.__class__.__name__)
        return {}


def live_workers(queue: Queue) -> tuple[int, int]:
    """RQ's registered workers of the queue whose key has not expired, and how many of those take no run for want of
    the database (canvas.queueing.worker). A killed worker's key expires within RQ's worker TTL (minutes), but it
    leaves RQ's sets (what Worker.count reads) only when a live worker cleans them up, every ten minutes, or never
    when no worker is left."""
    registered = worker_registration.get_keys(queue=queue)
    if not registered:
        return 0, 0
    with queue.connection.pipeline(transaction=False) as pipeline:
        for key in registered:
            pipeline.exists(key)
            pipeline.hget(key, "state")
        answers = pipeline.execute()
    waiting = [state in (WORKER_WAITING_FOR_DATABASE, WORKER_WAITING_FOR_DATABASE.encode())
               for state in answers[1::2]]
    return sum(answers[::2]), sum(waiting)


def _ping_database() -> None:
    services().db.check_reachable()


def _ping_redis() -> None:
    services().redis.ping()


def _check(probe) -> str:  # noqa: ANN001
    try:
        probe()
    except Exception as exc:  # noqa: BLE001 - any failure means "not healthy", reported by class only
        log.warning("health check %s failed: %s", probe.__name__, exc.__class__.__name__)
        return f"error: {exc.__class__.__name__}"
    return "ok"
