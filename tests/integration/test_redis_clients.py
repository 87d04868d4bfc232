"""The platform's Redis clients (canvas.queueing.connections) open new connections without redis-py's lookup of its own
version in the installed packages' metadata: before redis-py 8.2 that lookup came with every new connection (a
forking worker's job child opens two per job); from 8.2 redis-py caches it once per process. A plain redis-py client
is the control: it does look it up."""
from __future__ import annotations

from collections.abc import Callable
from importlib import metadata

import pytest
import redis
import redis.utils

from canvas.queueing.connections import redis_client

NEW_CONNECTIONS = 3


@pytest.fixture()
def version_lookups(monkeypatch) -> list[str]:
    """Every distribution whose version is read from the installed metadata, through importlib.metadata."""
    looked_up: list[str] = []
    lookup = metadata.version

    def counted(name: str) -> str:
        looked_up.append(name)
        return lookup(name)

    monkeypatch.setattr(metadata, "version", counted)
    return looked_up


def pings_on_new_connections(make_client: Callable[[str], redis.Redis], url: str) -> list[bool]:
    """A PING over each of NEW_CONNECTIONS new connections (a new pool's, as a forked child's pool is new)."""
    answers = []
    for _ in range(NEW_CONNECTIONS):
        client = make_client(url)
        try:
            answers.append(client.ping())
        finally:
            client.close()
    return answers


def test_a_platform_client_opens_connections_without_reading_package_metadata(redis_url, version_lookups):
    assert pings_on_new_connections(redis_client, redis_url) == [True] * NEW_CONNECTIONS
    assert version_lookups == []


def test_a_plain_client_reads_it(redis_url, version_lookups):
    """The control: what the platform's clients avoid happens with redis-py's defaults - for each new connection
    before redis-py 8.2; from 8.2 once per process (its cache, emptied here, so that this test sees that once)."""
    cache_clear = getattr(redis.utils.get_lib_version, "cache_clear", None)
    if cache_clear is not None:
        cache_clear()
    assert pings_on_new_connections(redis.Redis.from_url, redis_url) == [True] * NEW_CONNECTIONS
    assert version_lookups.count("redis") >= (1 if cache_clear is not None else NEW_CONNECTIONS)


def test_the_platform_announces_what_redis_py_would(redis_url):
    """The same identity as redis-py's own (CLIENT SETINFO, on servers from 7.2), only worked out once."""
    client = redis_client(redis_url)
    try:
        driver = client.connection_pool.connection_kwargs["driver_info"]
        assert (driver.formatted_name, driver.lib_version) == ("redis-py", metadata.version("redis"))
    finally:
        client.close()
