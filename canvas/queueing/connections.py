"""The platform's Redis clients, made in one place."""
from __future__ import annotations

import socket
from typing import Any

import redis

# Left to itself, redis-py builds the identity it announces (CLIENT SETINFO) for every new connection, reading the
# installed packages' metadata to learn its own version (~0.45 ms a connection here; redis-py 8.2 caches it itself),
# and a forking worker's job child opens two. The same identity, worked out once per process.
DRIVER_INFO = redis.DriverInfo(lib_version=redis.__version__)

# When Redis's host goes dark (powered off, a failover moving its address away: packets dropped, no reset), a command
# already sent waits for its socket timeout, which RQ raises to ~7 minutes on a worker's connection so that its
# blocking dequeue fits in it, or for Linux's quarter of an hour of retransmissions: the worker takes no job that
# long. Sent data unacknowledged for ESTABLISHED_TIMEOUT_SECONDS ends the connection instead, an outage the worker
# waits out and logs; keepalives (redis-py's default values) find an idle one dead. A slow command is not cut:
# Redis's kernel acknowledges it. Linux only, as are the names below; elsewhere redis-py's defaults stay.
ESTABLISHED_TIMEOUT_SECONDS = 15
_TCP_OPTIONS = {"TCP_KEEPIDLE": 30, "TCP_KEEPINTVL": 5, "TCP_KEEPCNT": 3,
                "TCP_USER_TIMEOUT": ESTABLISHED_TIMEOUT_SECONDS * 1000}
TCP_OPTIONS = {getattr(socket, name): value for name, value in _TCP_OPTIONS.items()} \
    if all(hasattr(socket, name) for name in _TCP_OPTIONS) else {}


def redis_client(url: str, **options: Any) -> redis.Redis:
    if TCP_OPTIONS and url.startswith(("redis://", "rediss://")):
        options.setdefault("socket_keepalive", True)
        options.setdefault("socket_keepalive_options", TCP_OPTIONS)
    return redis.Redis.from_url(url, driver_info=DRIVER_INFO, **options)
