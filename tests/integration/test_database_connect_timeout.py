"""A PostgreSQL server that takes the connection and never answers (a host behind a firewall that drops packets looks
the same to libpq) holds a new connection for CONNECT_TIMEOUT_SECONDS, not for as long as the operating system lets
it wait; the error is a lost database, which the runner, the reaper and /healthz wait out or report. A URL's own
`connect_timeout` wins. The silent server is a real TCP listener on loopback."""
from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
from sqlalchemy.exc import OperationalError

from canvas import db as database
from canvas.execution.lease import is_connection_error

WATCHDOG_SECONDS = 20.0  # far past the timeouts below; a connection still waiting then would wait for minutes


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
    """The error of the engine's first connection and the seconds it took, in a thread a watchdog waits for."""
    engine = database.build_engine(url)
    outcome: dict = {}

    def connect() -> None:
        began = time.monotonic()
        try:
            engine.connect().close()
        except Exception as error:  # noqa: BLE001 - what the test inspects
            outcome["error"] = error
        outcome["seconds"] = time.monotonic() - began

    thread = threading.Thread(target=connect, daemon=True)
    thread.start()
    thread.join(WATCHDOG_SECONDS)
    assert not thread.is_alive(), f"the connection was still waiting after {WATCHDOG_SECONDS} s"
    engine.dispose()
    return outcome.get("error"), outcome["seconds"]


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


def test_the_default_reaches_the_driver_and_sqlite_is_left_alone():
    assert database._connect_args("postgresql+psycopg://postgres@db.internal/canvas") == {
        "connect_timeout": database.CONNECT_TIMEOUT_SECONDS}
    assert database._connect_args("postgresql://canvas@db.internal/canvas?connect_timeout=3") == {}
    assert database._connect_args("sqlite:////tmp/canvas.db") == {}
