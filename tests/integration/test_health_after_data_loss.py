"""/healthz counts after Redis lost its data: a running scheduler is counted again within seconds (it says it is
alive every few seconds), and a worker whose registration expired is not counted (RQ keeps it in its sets)."""
from __future__ import annotations

import time

from rq import Queue, worker_registration

from canvas.queueing.keys import RUN_QUEUE, schedulers_key
from canvas.scheduling.scheduler import PRESENCE_INTERVAL_SECONDS, SchedulerConfig, SchedulerEngine
from tests.integration.run_helpers import wait_for


def health(client) -> dict:
    answer = client.get("/healthz")
    assert answer.status_code == 200, answer.json
    return answer.json


def test_a_scheduler_is_counted_again_after_redis_lost_its_data(make_app, own_redis):
    app = make_app(REDIS_URL=own_redis.url)
    services, client = app.extensions["canvas"], app.test_client()
    settings = app.config["CANVAS_SETTINGS"]
    engine = SchedulerEngine(services.db, services.redis, SchedulerConfig.from_settings(settings), name="flushed:1")
    engine.start()
    try:
        wait_for(lambda: health(client)["schedulers"] == 1, timeout=10, what="the scheduler counted")
        services.redis.flushall()
        assert health(client)["schedulers"] == 0, "its presence went with the data"
        lost_at = time.monotonic()
        wait_for(lambda: health(client)["schedulers"] == 1, timeout=PRESENCE_INTERVAL_SECONDS + 3,
                 what="the scheduler counted again")
        assert time.monotonic() - lost_at <= PRESENCE_INTERVAL_SECONDS + 3
        assert services.redis.zscore(schedulers_key(settings["REDIS_PREFIX"]), "flushed:1") is not None
    finally:
        engine.shutdown()


def test_a_worker_whose_registration_expired_is_not_counted(make_app, own_redis):
    """As a killed worker after RQ's worker TTL: its key is gone, its name stays in RQ's sets."""
    app = make_app(REDIS_URL=own_redis.url)
    connection = app.extensions["canvas"].redis
    live, expired = "rq:worker:live", "rq:worker:expired"
    connection.hset(live, "state", "idle")
    for key in (live, expired):
        connection.sadd(worker_registration.WORKERS_BY_QUEUE_KEY % RUN_QUEUE, key)
    assert len(worker_registration.get_keys(queue=Queue(RUN_QUEUE, connection=connection))) == 2
    assert health(app.test_client())["workers"] == 1
