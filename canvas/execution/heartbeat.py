"""A run's heartbeat in Redis: the worker refreshes it while the run is going; the reaper fails runs without one.

One beating thread per worker process serves every run of that process. The first beat of a run comes within one
interval: the reaper leaves runs younger than its grace period alone, so short runs (most of them) cost no Redis
writes, and a beat that expires by itself needs no delete.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import redis

log = logging.getLogger(__name__)
HEARTBEAT_INTERVAL_SECONDS = 5.0
HEARTBEAT_TTL_SECONDS = 20


class _Beater:
    def __init__(self, interval: float, ttl: int):
        self.interval, self.ttl = interval, ttl
        self.beating: dict[str, redis.Redis] = {}
        self.lock = threading.Lock()
        self.pid = os.getpid()
        threading.Thread(target=self._loop, name="run-heartbeat", daemon=True).start()

    def _loop(self) -> None:
        while True:
            time.sleep(self.interval)
            with self.lock:
                current = list(self.beating.items())
            for key, connection in current:
                try:
                    connection.set(key, "1", ex=self.ttl)
                except redis.RedisError as exc:  # Redis restarting: the next beat reconnects
                    log.warning("heartbeat not written: %s", exc.__class__.__name__)


_beater: _Beater | None = None
_beater_lock = threading.Lock()


def _current_beater() -> _Beater:
    """The process's beater; a forked child (RQ's forking worker) starts its own, threads do not survive a fork."""
    global _beater
    with _beater_lock:
        if _beater is None or _beater.pid != os.getpid():
            _beater = _Beater(HEARTBEAT_INTERVAL_SECONDS, HEARTBEAT_TTL_SECONDS)
        return _beater


@contextmanager
def heartbeat(connection: redis.Redis, key: str) -> Iterator[None]:
    beater = _current_beater()
    with beater.lock:
        beater.beating[key] = connection
    try:
        yield
    finally:
        with beater.lock:
            beater.beating.pop(key, None)
