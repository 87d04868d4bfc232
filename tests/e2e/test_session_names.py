"""Each process names its PostgreSQL sessions (libpq's application_name: canvas.db.name_sessions), so that
pg_stat_activity and the server's log tell an operator which process holds a lock, runs a slow statement or sits
idle in a transaction."""
from __future__ import annotations

import socket
import subprocess
import sys
import uuid

import pytest
from sqlalchemy import create_engine, text

from tests.integration.run_helpers import start_worker, stop_worker, wait_for, worker_env
from tests.process_tools import free_port, stop_gracefully, wait_for_http

pytestmark = pytest.mark.slow


def session_names(database_url: str) -> set[str]:
    engine = create_engine(database_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            return set(connection.execute(text("SELECT application_name FROM pg_stat_activity "
                                               "WHERE datname = current_database()")).scalars())
    finally:
        engine.dispose()


def test_the_api_workers_and_schedulers_name_their_database_sessions(postgres_database_url, make_app, tmp_path):
    settings = make_app(DATABASE_URL=postgres_database_url).config["CANVAS_SETTINGS"]
    env = worker_env(settings)
    worker_name = f"named-{uuid.uuid4().hex[:10]}"
    port = free_port()
    worker = start_worker(settings, tmp_path / "worker.log", "--name", worker_name)
    processes = [subprocess.Popen([sys.executable, "-m", "canvas", *args], env=env, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL) for args in (["scheduler"], ["api", "--port", str(port)])]
    scheduler, api = processes
    try:
        wait_for_http(f"http://127.0.0.1:{port}/healthz", api)
        expected = {f"canvas worker {worker_name}", f"canvas scheduler {socket.gethostname()}:{scheduler.pid}",
                    f"canvas api 127.0.0.1:{port}"}
        wait_for(lambda: expected <= session_names(postgres_database_url), 60,
                 what=f"sessions named {expected} (seen: {session_names(postgres_database_url)})")
    finally:
        stop_worker(worker)
        for process in processes:
            stop_gracefully(process, 30)
