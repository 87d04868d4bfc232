"""A run's heartbeat in Redis: the worker refreshes it while the run is going; the reaper fails runs without one.

The first beat comes after one interval: the reaper leaves runs younger than its grace period alone, so short
runs (most of them) cost no Redis writes at all, and a beat that expires by itself needs no delete.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import redis

log = logging.getLogger(__name__)
HEARTBEAT_INTERVAL_SECONDS = 5.0
HEARTBEAT_TTL_SECONDS = 20


@contextmanager
def heartbeat(connection: redis.Redis, key: str, interval: float = HEARTBEAT_INTERVAL_SECONDS,
              ttl: int = HEARTBEAT_TTL_SECONDS) -> Iterator[None]:
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(interval):
            try:
                connection.set(key, "1", ex=ttl)
            except redis.RedisError as exc:  # Redis restarting: the next beat reconnects
                log.warning("heartbeat not written: %s", exc.__class__.__name__)

    thread = threading.Thread(target=beat, name=f"heartbeat-{key[-8:]}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(5)
