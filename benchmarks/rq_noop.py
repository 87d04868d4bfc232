"""The raw-RQ baseline job of benchmarks/run_throughput.py: records when it was enqueued, started and finished, and by
which worker, and does nothing else.

It talks to Redis over one connection per process, made at its first job and kept, as a `canvas worker` keeps its
services' client: a SimpleWorker's jobs share one; a forking worker's child makes its own, as the platform's does
(redis-py opens a new connection after a fork).
"""
from __future__ import annotations

import os
import time

from redis import Redis
from rq import get_current_job

RESULTS_KEY = "bench:rq-noop-starts"
_connection: Redis | None = None
_connection_pid: int | None = None


def connection() -> Redis:
    global _connection, _connection_pid
    if _connection is None or _connection_pid != os.getpid():
        _connection, _connection_pid = Redis.from_url(os.environ["BENCH_REDIS_URL"]), os.getpid()
    return _connection


def record_start(enqueued_at: float) -> None:
    started = time.time()
    job = get_current_job()
    worker = (job.worker_name if job is not None else None) or str(os.getpid())
    connection().rpush(RESULTS_KEY, f"{enqueued_at},{started},{time.time()},{worker}")
