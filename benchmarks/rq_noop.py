"""The raw-RQ baseline job of benchmarks/run_throughput.py: records when it started, does nothing else."""
import os
import time

from redis import Redis

RESULTS_KEY = "bench:rq-noop-starts"


def record_start(enqueued_at: float) -> None:
    connection = Redis.from_url(os.environ["BENCH_REDIS_URL"])
    connection.rpush(RESULTS_KEY, f"{enqueued_at},{time.time()}")
