"""Fixtures of the fault-injection suite (its table at the end of the run: tests/faults/report.py).

Each scenario gets a Redis server of its own (a free loopback port, never the shared one), a side-effect receiver,
the in-process API on that Redis and on the database the run is configured with (CANVAS_TEST_DATABASE_URL, else the
SQLite file of the session), and real `canvas worker` / `canvas scheduler` processes. The PostgreSQL scenario always
runs on PostgreSQL (the `postgres_database_url` fixture of tests/conftest.py).
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

from tests.faults.harness import TIMING, EffectReceiver, RedisServer
from tests.faults.report import record_figures


@pytest.fixture
def fault_scenario(make_app, tmp_path, request) -> Iterator:
    """`fault_scenario(name, database_url=None, process_database_url=None)` -> a Scenario (tests/faults/scenario.py),
    cleaned up whatever happens: its processes stopped before the tables are emptied."""
    from tests.faults.scenario import Scenario

    built = []
    with contextlib.ExitStack() as stack:
        stack.callback(record_figures, request.node, built)

        def build(name: str, database_url: str | None = None, process_database_url: str | None = None,
                  **settings: str) -> Scenario:
            """`process_database_url`: the workers' and schedulers' way to the database, when not the API's and the
            observer's (`database_url`). `settings`: more settings of the API and the processes alike (their names
            without CANVAS_; those tests/faults/harness.process_env passes on)."""
            index = len(built)
            redis_server = RedisServer(tmp_path / f"redis-{index}").start()
            stack.callback(redis_server.stop)
            receiver = EffectReceiver().start()
            stack.callback(receiver.stop)
            overrides = {"REDIS_URL": redis_server.url, **TIMING.settings(), **settings}
            if database_url:
                overrides["DATABASE_URL"] = database_url
            app = make_app(**overrides)
            log_dir = tmp_path / f"logs-{index}"
            log_dir.mkdir()
            scenario = Scenario(name, app, redis_server, receiver, log_dir, process_database_url=process_database_url)
            built.append(scenario)
            stack.callback(scenario.close)
            return scenario

        yield build
