"""canvas.outages against real failures: a closed Redis port and a closed PostgreSQL port are "unreachable" (an outage,
logged once when it starts and once when it ends), a bug is not (its traceback is logged every time)."""
from __future__ import annotations

import logging

import pytest
import redis
from sqlalchemy import create_engine, text

from canvas.outages import Backoff, OutageLog, Retrying, unreachable_service
from tests.process_tools import free_port


def redis_error() -> Exception:
    client = redis.Redis(port=free_port(), socket_connect_timeout=1, retry=None)
    with pytest.raises(redis.RedisError) as caught:
        client.ping()
    return caught.value


def database_error() -> Exception:
    engine = create_engine(f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/none")
    with pytest.raises(Exception) as caught, engine.connect() as connection:
        connection.execute(text("SELECT 1"))
    engine.dispose()
    return caught.value


def test_lost_connections_are_outages_and_bugs_are_not():
    assert unreachable_service(redis_error()) == "Redis"
    assert unreachable_service(database_error()) == "the database"
    assert unreachable_service(KeyError("bug")) is None
    assert unreachable_service(redis.ResponseError("WRONGTYPE")) is None


def test_an_outage_is_two_lines_however_many_attempts_fail(caplog):
    caplog.set_level(logging.INFO)
    outages = OutageLog(logging.getLogger("test.outages"), "worker w1")
    tasks = [Retrying("waiting for a run", outages, 30.0), Retrying("reaping lost runs", outages, 30.0)]
    error = redis_error()
    delays = [task.failed(error) for _ in range(4) for task in tasks]
    for task in tasks:
        task.succeeded()
    lines = [record.getMessage() for record in caplog.records]
    assert lines == ["worker w1: waiting for a run failed: Redis is unreachable (ConnectionError); retrying with "
                     "backoff, at most 30 s apart", "worker w1: Redis is back after 0 s"]
    assert delays[::2] == [1.0, 2.0, 4.0, 8.0], "each task backs off on its own"
    assert all(record.exc_info is None for record in caplog.records), "no traceback for a lost connection"


def test_a_task_that_succeeds_without_the_service_does_not_say_it_is_back(own_redis, caplog):
    """The scheduler's chores share one OutageLog: a chore that failed on Redis and next time had nothing to send
    it said "Redis is back" while Redis was still away, every second or two. With a probe, the return is said once
    the service answers."""
    caplog.set_level(logging.INFO)
    own_redis.stop()
    client = redis.Redis.from_url(own_redis.url, socket_connect_timeout=1, retry=None)
    outages = OutageLog(logging.getLogger("test.outages"), "scheduler s1", probes={"Redis": client.ping})
    listener, reconcile = Retrying("listening", outages, 30.0), Retrying("reconciling", outages, 30.0)
    for _ in range(3):
        listener.failed(redis_error())
        reconcile.failed(redis_error())
        reconcile.succeeded()  # nothing to publish this time: Redis was not used
    assert outages.is_down("Redis")
    own_redis.start()
    listener.succeeded()
    client.close()
    assert [record.getMessage() for record in caplog.records if record.name == "test.outages"] == [
        "scheduler s1: listening failed: Redis is unreachable (ConnectionError); retrying with backoff, at most 30 s "
        "apart", "scheduler s1: Redis is back after 0 s"]


def test_a_redis_that_answers_but_takes_no_writes_is_said_to_refuse_them(own_redis, caplog):
    """Full at maxmemory: an outage all the same (work waits for it), but "unreachable" would send the operator to
    the network, where nothing is wrong."""
    client = redis.Redis.from_url(own_redis.url)
    client.config_set("maxmemory-policy", "noeviction")
    client.config_set("maxmemory", "1")
    with pytest.raises(redis.RedisError) as caught:
        client.set("a key", "a value")
    client.close()
    assert unreachable_service(caught.value) == "Redis"
    caplog.set_level(logging.INFO)
    outages = OutageLog(logging.getLogger("test.outages"), "worker w1")
    outages.failed(caught.value, "recording a run's end", "waiting for it")
    outages.failed(redis_error(), "waiting for a run", "waiting for it")  # the same outage: not logged again
    assert [record.getMessage() for record in caplog.records] == [
        "worker w1: recording a run's end failed: Redis refuses writes (OutOfMemoryError); waiting for it"]


def test_a_bug_keeps_its_traceback_every_time(caplog):
    retrying = Retrying("reconciling schedules", OutageLog(logging.getLogger("test.outages"), "scheduler s1"), 2.0)
    delays = [retrying.failed(KeyError("bug")) for _ in range(3)]
    assert [record.exc_info is not None for record in caplog.records] == [True, True, True]
    assert delays == [1.0, 2.0, 2.0], "capped by RECONNECT_MAX_SECONDS"


def test_backoff_doubles_up_to_its_cap_and_starts_again_after_a_reset():
    backoff = Backoff(5.0)
    assert [backoff.next_delay() for _ in range(5)] == [1.0, 2.0, 4.0, 5.0, 5.0]
    backoff.reset()
    assert backoff.next_delay() == 1.0
