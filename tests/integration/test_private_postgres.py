"""The PostgreSQL server the suite starts for itself where none listens on 127.0.0.1:5432 (tests/servers/postgres.py):
it serves on loopback with trust authentication, as the tests of cut and terminated connections need, and leaves
neither a process nor a directory behind."""
from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests.process_tools import arguments_of
from tests.servers.postgres import NoPostgresBinaries, PrivatePostgres, listening


@pytest.fixture
def private_server():
    try:
        server = PrivatePostgres()
    except NoPostgresBinaries as error:
        pytest.fail(str(error))
    server.start()
    yield server
    server.stop()


def test_a_private_server_serves_on_loopback_and_leaves_nothing_behind(private_server):
    engine = create_engine(private_server.url)
    try:
        with engine.connect() as connection:
            user, port = connection.execute(text("SELECT current_user, inet_server_port()")).one()
    finally:
        engine.dispose()
    assert (user, port) == ("postgres", private_server.port)
    private_server.stop()
    assert not listening("127.0.0.1", private_server.port)
    assert not private_server.directory.exists()
    assert not [process for process in Path("/proc").glob("[0-9]*")
                if str(private_server.data) in arguments_of(int(process.name))]
