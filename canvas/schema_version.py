"""The database schema this release needs, for the processes that do not migrate (`canvas worker`, `canvas
scheduler`): started before any API has migrated a new database (or a new release's migration), they wait for it
with one line saying so, instead of a traceback from each query of a table that is not there yet.

Without alembic: importing it costs every worker ~7 MB. Migrations are numbered in one line ('0001', '0002'…, each
the previous one's successor; tests/unit/test_schema_version.py holds them to it), so revisions compare as text.
"""
from __future__ import annotations

import logging
import threading
import time

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection, Engine

from canvas.outages import DATABASE, unreachable_service

SCHEMA_HEAD = "0019"  # alembic's head revision (canvas/migrations/versions): a test checks they agree
POLL_SECONDS = 2.0
REMIND_SECONDS = 60.0
MIGRATORS = "`canvas api`, `canvas up` or `canvas db upgrade`"
log = logging.getLogger(__name__)


def database_revision(connection: Connection) -> str | None:
    """The revision alembic recorded; None for a database it never migrated."""
    if not inspect(connection).has_table("alembic_version"):
        return None
    return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()


def wait_for_schema(engine: Engine, who: str, stop: threading.Event) -> bool:
    """Until the database's schema is at SCHEMA_HEAD: True then, False when `stop` is set first. A schema newer than
    this release (a rolling upgrade, its migration applied) does not hold it up, nor does a database that cannot be
    reached: the process's own outage handling rides that out, as it would later."""
    said_at = None
    while not stop.is_set():
        try:
            with engine.connect() as connection:
                revision = database_revision(connection)
        except Exception as error:
            if unreachable_service(error) != DATABASE:
                raise
            return True
        finally:
            engine.dispose()  # no connection kept: a forking worker's parent must hold none across its forks
        if revision is not None and revision >= SCHEMA_HEAD:
            _ready(who, revision, said_at is not None)
            return True
        if said_at is None or time.monotonic() - said_at >= REMIND_SECONDS:
            log.warning("%s: the database schema is at %s; this release needs revision %s. Waiting for %s to "
                        "migrate it", who, f"revision {revision}" if revision else "no revision (a new database)",
                        SCHEMA_HEAD, MIGRATORS)
            said_at = time.monotonic()
        stop.wait(POLL_SECONDS)
    return False


def is_newer(revision: str | None) -> bool:
    """The schema is ahead of this release: a newer release migrated it (a rolling upgrade, or this machine rolled
    back). Nothing here can migrate it, nor should try: alembic does not know the revision."""
    return revision is not None and revision > SCHEMA_HEAD


def warn_newer(who: str, revision: str, doing: str = "starting") -> None:
    log.warning("%s: the database schema is at revision %s, newer than this release's %s (a newer release "
                "migrated it): %s; upgrade this machine", who, revision, SCHEMA_HEAD, doing)


def _ready(who: str, revision: str, waited: bool) -> None:
    if is_newer(revision):
        warn_newer(who, revision)
    elif waited:
        log.info("%s: the database schema is at revision %s now: starting", who, revision)
