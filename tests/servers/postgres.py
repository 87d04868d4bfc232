"""A PostgreSQL server of the test session's own, for the tests of what only a database server does (connections cut
or terminated, the fault suite) on a machine where none listens on 127.0.0.1:5432: the machine's PostgreSQL binaries,
a cluster initialised in a temporary directory (trust authentication, no fsync: nothing in it outlives the session),
listening on a free loopback port, stopped and removed at the end of the session."""
from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from tests.process_tools import free_port

LOCAL_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"  # the machine's own, where one listens
START_TIMEOUT_SECONDS = 60
# Where Debian/Ubuntu (postgresql-NN), Fedora and the PostgreSQL source build put them when they are not on PATH.
BINARY_DIRECTORIES = ("/usr/lib/postgresql/*/bin", "/usr/pgsql-*/bin", "/usr/local/pgsql/bin")
INSTALL_HINT = ("install PostgreSQL's server (Debian/Ubuntu: apt-get install postgresql), or start one on "
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
    """The newest server binaries found: on PATH first, else in the usual places of a package's install."""
    on_path = shutil.which("pg_ctl")
    if on_path and shutil.which("initdb"):
        return Path(on_path).parent
    for pattern in BINARY_DIRECTORIES:
        found = sorted(glob.glob(pattern), key=_version_key, reverse=True)
        for directory in found:
            if (Path(directory) / "pg_ctl").exists() and (Path(directory) / "initdb").exists():
                return Path(directory)
    raise NoPostgresBinaries(f"no PostgreSQL server binaries (pg_ctl, initdb) found: {INSTALL_HINT}")


def _version_key(directory: str) -> tuple[int, ...]:
    return tuple(int(part) for part in Path(directory).parent.name.replace("pgsql-", "").split(".") if part.isdigit())


class PrivatePostgres:
    """PostgreSQL refuses to run as root: as root, the cluster belongs to the `postgres` system user when there is
    one (a package's install makes it), else to `nobody`."""

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


def _unprivileged_account() -> pwd.struct_passwd:
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise NoPostgresBinaries("running as root with neither a postgres nor a nobody account to run PostgreSQL as")
