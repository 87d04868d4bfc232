"""Schema migrations with Alembic, callable from the CLI and from tests."""
from __future__ import annotations

import fcntl
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Engine

from canvas.schema_version import SCHEMA_HEAD, database_revision, is_newer, warn_newer

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
MIGRATION_LOCK_KEY = 0x63616E7661735F6D  # "canvas_m": the PostgreSQL advisory lock every migrating process takes
log = logging.getLogger(__name__)


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Apply pending migrations. Safe to call on every start: an up-to-date database is left alone. Processes that
    start together (an API on each machine, `canvas db upgrade` beside them) migrate one at a time; the others wait,
    then find the database at head. Unserialized, all but one failed ("relation already exists")."""
    config = alembic_config(engine.url.render_as_string(hide_password=False))
    with _sqlite_file_lock(engine), engine.begin() as connection:
        if connection.dialect.name == "postgresql":  # released when the transaction ends
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        # Read without alembic's context (it logs two lines) or its script directory (~140 ms to load)
        current = database_revision(connection)
        if current == SCHEMA_HEAD:
            return
        if is_newer(current):  # alembic would fail on a revision it does not know, with a traceback
            warn_newer("migrations", current, doing="nothing to migrate")
            return
        config.attributes["connection"] = connection
        log.info("applying database migrations up to %s", revision)
        command.upgrade(config, revision)


@contextmanager
def _sqlite_file_lock(engine: Engine) -> Iterator[None]:
    """An SQLite database file's migrations, one process at a time: SQLite has no advisory lock, and pysqlite runs
    DDL outside a transaction, so the lock is the operating system's, on a file beside the database's."""
    database = engine.url.database if engine.dialect.name == "sqlite" else None
    if not database or database == ":memory:":
        yield
        return
    with open(f"{database}.migrations.lock", "a") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)  # released when the file closes
        yield


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
