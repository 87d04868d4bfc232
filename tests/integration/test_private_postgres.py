"""The PostgreSQL server the suite starts for itself where none listens on 127.0.0.1:5432 (tests/servers/postgres.py):
it serves on loopback with trust authentication, as the tests of cut and terminated connections need, and leaves
neither a process nor a directory behind."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests.process_tools import arguments_of
from tests.servers import postgres
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
    _serves_then_leaves_nothing(private_server)


@pytest.fixture
def machine_without_postgres(monkeypatch):
    """As on a machine with nothing but Python: no server binaries on PATH or where packages put them."""
    monkeypatch.setenv("PATH", os.pathsep.join(directory for directory in os.environ["PATH"].split(os.pathsep)
                                               if not (Path(directory) / "pg_ctl").exists()))
    monkeypatch.setattr(postgres, "BINARY_DIRECTORIES", ())


def test_with_no_binaries_on_the_machine_the_test_dependencies_serve(machine_without_postgres):
    server = PrivatePostgres()
    assert server.bin.parent.parent.name == postgres.WHEEL_PACKAGE
    server.start()
    try:
        _serves_then_leaves_nothing(server)
    finally:
        server.stop()


def test_binaries_the_servers_account_cannot_reach_are_copied_for_it(machine_without_postgres, tmp_path):
    """A virtual environment under root's home (mode 700): as root, the server runs as another account, which
    could not execute them there."""
    locked = tmp_path / "home"
    locked.mkdir(mode=0o700)
    wheel_bin = postgres.wheel_binary_directory()
    site_packages = wheel_bin.parent.parent.parent
    (locked / "site-packages").symlink_to(site_packages, target_is_directory=True)
    locked_bin = locked / "site-packages" / wheel_bin.relative_to(site_packages)
    server = PrivatePostgres()
    server.bin = locked_bin
    server.start()
    try:
        if server.account is None:  # not root: the server runs as this account, which reaches them in place
            assert server.bin == locked_bin
        else:
            assert server.directory / "server" in server.bin.parents
        _serves_then_leaves_nothing(server)
    finally:
        server.stop()


def test_without_binaries_or_the_test_dependencies_the_error_says_how_to_get_them(machine_without_postgres,
                                                                                   monkeypatch):
    monkeypatch.setitem(sys.modules, postgres.WHEEL_PACKAGE, None)  # as if it were not installed
    with pytest.raises(NoPostgresBinaries, match=r"pip install -e '\.\[dev\]'.*apt-get install postgresql"):
        PrivatePostgres()


def _serves_then_leaves_nothing(server: PrivatePostgres) -> None:
    engine = create_engine(server.url)
    try:
        with engine.connect() as connection:
            user, port = connection.execute(text("SELECT current_user, inet_server_port()")).one()
    finally:
        engine.dispose()
    assert (user, port) == ("postgres", server.port)
    server.stop()
    assert not listening("127.0.0.1", server.port)
    assert not server.directory.exists()
    assert not [process for process in Path("/proc").glob("[0-9]*")
                if str(server.data) in arguments_of(int(process.name))]
