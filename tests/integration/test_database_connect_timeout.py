"""A PostgreSQL server that takes the connection and never answers (a host behind a firewall that drops packets looks
the same to libpq) holds a new connection for CONNECT_TIMEOUT_SECONDS, not for as long as the operating system lets
it wait; a connection already made whose server goes dark (every packet dropped: tests/servers/network_hole.py) ends
within half the lost-run grace, not the quarter of an hour Linux retransmits for. Either error is a lost database,
which the runner, the reaper and /healthz wait out or report. A URL's own values win. The silent server is a real TCP
listener on loopback; the dark one a real PostgreSQL server behind a route that becomes a black hole."""
from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from canvas import db as database
from canvas.execution.lease import is_connection_error
from tests.process_tools import watched


@pytest.fixture()
def silent_server() -> Iterator[int]:
    """Accepts connections, reads what the client sends, answers nothing."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            accepted.append(connection)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join()
    for connection in accepted:
        connection.close()
    listener.close()


def first_connection(url: str) -> tuple[BaseException | None, float]:
    """The error of the engine's first connection and the seconds it took."""
    engine = database.build_engine(url)
    try:
        return watched(lambda: engine.connect().close())
    finally:
        engine.dispose()


def test_a_server_that_never_answers_costs_the_connect_timeout_and_reads_as_a_lost_database(silent_server,
                                                                                              monkeypatch):
    monkeypatch.setattr(database, "CONNECT_TIMEOUT_SECONDS", 1)
    error, seconds = first_connection(f"postgresql+psycopg://postgres@127.0.0.1:{silent_server}/canvas")
    assert isinstance(error, OperationalError), error
    assert seconds >= 0.9  # it did wait for the server, as long as it was told to
    assert is_connection_error(error)


def test_the_urls_own_connect_timeout_wins(silent_server, monkeypatch):
    monkeypatch.setattr(database, "CONNECT_TIMEOUT_SECONDS", 600)
    error, _ = first_connection(f"postgresql+psycopg://postgres@127.0.0.1:{silent_server}/canvas?connect_timeout=1")
    assert isinstance(error, OperationalError), error


def test_a_connection_whose_server_goes_dark_ends_within_half_the_grace(postgres_server_url):
    from sqlalchemy.engine import make_url

    from tests.servers.network_hole import NetworkHole

    server = make_url(postgres_server_url)
    with NetworkHole(server.host, server.port) as hole:
        engine = database.build_engine(server.set(host=hole.there_address, port=hole.port).render_as_string(
            hide_password=False), lost_run_grace_seconds=4)
        try:
            with engine.connect() as connection:
                assert connection.execute(text("SELECT 1")).scalar() == 1
                hole.open()
                error, seconds = watched(lambda: connection.execute(text("SELECT 2")))
        finally:
            engine.dispose()
    assert isinstance(error, OperationalError), error
    assert 1.5 <= seconds < 6, seconds  # 2 s unacknowledged, then the kernel's next look at the connection
    assert is_connection_error(error)


def test_the_defaults_reach_the_driver_and_sqlite_is_left_alone():
    keepalives = {"keepalives": 1, "keepalives_idle": database.KEEPALIVE_IDLE_SECONDS,
                  "keepalives_interval": database.KEEPALIVE_INTERVAL_SECONDS,
                  "keepalives_count": database.KEEPALIVE_COUNT}
    named = {"application_name": "canvas"}  # no command named this process's sessions (canvas.db.name_sessions)
    assert database._connect_args("postgresql+psycopg://postgres@db.internal/canvas") == {
        "connect_timeout": database.CONNECT_TIMEOUT_SECONDS, "tcp_user_timeout": 15000, **keepalives, **named}
    assert database._connect_args("postgresql+psycopg://postgres@db.internal/canvas", lost_run_grace_seconds=1) == {
        "connect_timeout": database.CONNECT_TIMEOUT_SECONDS, "tcp_user_timeout": 2000, **keepalives, **named}
    assert database._connect_args(
        "postgresql://canvas@db.internal/canvas?connect_timeout=3&tcp_user_timeout=9000&keepalives=0"
        "&application_name=mine") == {
        "keepalives_idle": database.KEEPALIVE_IDLE_SECONDS, "keepalives_interval": database.KEEPALIVE_INTERVAL_SECONDS,
        "keepalives_count": database.KEEPALIVE_COUNT}
    assert database._connect_args("sqlite:////tmp/canvas.db") == {}
