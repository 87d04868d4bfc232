"""Shared fixtures. The suite runs on PostgreSQL and a Redis server when CANVAS_TEST_DATABASE_URL and
CANVAS_TEST_REDIS_URL are set (CI), and on SQLite plus the embedded Redis when they are not."""
from __future__ import annotations

import contextlib
import gc
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

pytest_plugins = ["tests.servers.fixtures", "tests.faults.report"]

# Under pytest-xdist each worker process is one of several running at once ("gw0", "gw1"...; see pyproject.toml).
XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER")
MAX_XDIST_WORKERS = 4  # each one costs a database and a Redis database of its own (Redis has 16)


def _worker_redis_url(url: str, index: int) -> str:
    from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    if parts.scheme == "unix":
        query["db"] = str((int(query.get("db", 0)) + index) % 16)
        return urlunsplit(parts._replace(query=urlencode(query)))
    base = int(parts.path.strip("/") or 0)
    return urlunsplit(parts._replace(path=f"/{(base + index) % 16}"))


# Tests count the workers registered in Redis: under xdist, the configured Redis database would be another worker's
# at the same time. Each worker gets its own, before any test (or a process it starts, reading CANVAS_TEST_*) looks
# at it. (Its database of its own: the database_url fixture.)
if XDIST_WORKER and os.environ.get("CANVAS_TEST_REDIS_URL"):
    os.environ["CANVAS_TEST_REDIS_URL"] = _worker_redis_url(
        os.environ["CANVAS_TEST_REDIS_URL"], int(XDIST_WORKER.removeprefix("gw")))

TEST_DATABASE_URL = os.environ.get("CANVAS_TEST_DATABASE_URL")
TEST_REDIS_URL = os.environ.get("CANVAS_TEST_REDIS_URL")


def pytest_xdist_auto_num_workers(config) -> int:  # noqa: ANN001, ARG001
    """`-n auto`: one worker per core, at most MAX_XDIST_WORKERS."""
    return max(1, min(os.cpu_count() or 1, MAX_XDIST_WORKERS))


# The test process must not pick up an operator's configuration.
for _name in [name for name in os.environ if name.startswith("CANVAS_") and not name.startswith("CANVAS_TEST_")]:
    del os.environ[_name]


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("canvas-data")


@pytest.fixture(scope="session")
def redis_url(data_dir) -> Iterator[str]:
    if TEST_REDIS_URL:
        if XDIST_WORKER:  # a Redis database of this worker's own, left over from an earlier run perhaps
            import redis

            with redis.Redis.from_url(TEST_REDIS_URL) as connection:
                connection.flushdb()
        yield TEST_REDIS_URL
        return
    from canvas.queueing.embedded import EmbeddedRedis

    embedded = EmbeddedRedis({"DATA_DIR": str(data_dir), "REDIS_URL": None})
    embedded.start()
    yield embedded.url
    embedded.stop()


@pytest.fixture(scope="session")
def database_url(data_dir) -> Iterator[str]:
    if not TEST_DATABASE_URL:
        yield f"sqlite:///{data_dir / 'canvas-test.db'}"
        return
    if not (XDIST_WORKER and TEST_DATABASE_URL.startswith("postgresql")):
        yield TEST_DATABASE_URL
        return
    # Tests empty every table after them: under xdist, each worker on a database of its own, made on the configured
    # one's server and named after it (<db>_gw1_…, which .ci/run drops should the worker not)
    from sqlalchemy.engine import make_url

    from tests.servers.postgres import temporary_database

    with temporary_database(TEST_DATABASE_URL, f"{make_url(TEST_DATABASE_URL).database}_{XDIST_WORKER}") as url:
        yield url


@pytest.fixture(scope="session")
def base_settings(data_dir, database_url, redis_url) -> dict:
    from canvas.secrets import SecretBox

    return {
        "DATA_DIR": str(data_dir),
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "REDIS_PREFIX": f"canvas-test-{uuid.uuid4().hex[:8]}:",
        "SECRET_KEYS": SecretBox.generate_key(),
        "ALLOW_PRIVATE_NETWORKS": "true",  # tests talk to real servers on loopback
        "VERIFY_TIMEOUT_SECONDS": 5.0,
        "BLOCK_RETRY_BASE_SECONDS": 0.05,
        "LOG_LEVEL": "INFO",
    }


@pytest.fixture(scope="session")
def migrated_database(base_settings) -> str:
    """The schema, built once per session by the real migrations."""
    from canvas import migrate
    from canvas.db import Database
    from canvas.models import Base

    database = Database(base_settings["DATABASE_URL"])
    with database.engine.begin() as connection:
        Base.metadata.drop_all(connection)
        connection.execute(text("DROP TABLE IF EXISTS alembic_version"))
    migrate.upgrade(database.engine)
    database.dispose()
    return base_settings["DATABASE_URL"]


@pytest.fixture
def fresh_tls_contexts():
    """The process's shared TLS contexts (canvas.network.guard) built afresh in the test, and none kept after it."""
    from canvas.network.guard import _verifying_context

    _verifying_context.cache_clear()
    yield _verifying_context
    _verifying_context.cache_clear()


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    """The server `postgres_database_url` makes its databases on: the local one (127.0.0.1:5432, trust, user
    postgres) when it listens, else one of the session's own (tests/servers/postgres.py): the suite needs no service
    running."""
    from tests.servers.postgres import NoPostgresBinaries, postgres_server

    try:
        with postgres_server() as url:
            yield url
    except NoPostgresBinaries as error:
        pytest.fail(f"PostgreSQL is needed: {error}")


@pytest.fixture
def postgres_url(request) -> str:
    """A PostgreSQL database to make tables of a test's own in (tenant databases of SQL blocks): the suite's own when
    it runs on PostgreSQL, else the `postgres` database of the server postgres_server_url gives."""
    from sqlalchemy.engine import make_url

    on_postgres = TEST_DATABASE_URL and TEST_DATABASE_URL.startswith("postgresql")
    # database_url: the suite's own, which under pytest-xdist is made for this process by that fixture
    url = request.getfixturevalue("database_url" if on_postgres else "postgres_server_url")
    return make_url(url).set(drivername="postgresql+psycopg").render_as_string(hide_password=False)


@pytest.fixture
def postgres_database_url(migrated_database, request) -> Iterator[str]:
    """A migrated PostgreSQL database, for tests of what only a database server does (connections that are cut or
    terminated): the suite's own when it runs on PostgreSQL, else a temporary one (see postgres_server_url)."""
    if migrated_database.startswith("postgresql"):
        yield migrated_database
        return
    from sqlalchemy import create_engine

    from canvas import migrate
    from tests.servers.postgres import temporary_database

    with temporary_database(request.getfixturevalue("postgres_server_url"), "canvas_test") as url:
        engine = create_engine(url)
        migrate.upgrade(engine)
        engine.dispose()
        yield url


@pytest.fixture()
def own_redis(tmp_path):
    """A Redis server of the test's own, to stop and start (on a unix socket, its data kept on disk as the embedded
    one keeps it); never the shared one."""
    from canvas.queueing.embedded import EmbeddedRedis

    server = EmbeddedRedis({"DATA_DIR": str(tmp_path / "own-redis"), "REDIS_URL": None})
    server.start()
    yield server
    server.stop()


@pytest.fixture()
def make_app(base_settings, migrated_database):
    """Build an app with extra settings; tables are emptied after the test."""
    built = []

    def build(**overrides):
        from canvas import create_app

        from canvas.catalog.loader import sync_catalog_files

        app = create_app({**base_settings, **overrides})
        app.config["TESTING"] = True
        built.append(app)
        sync_catalog_files(app.extensions["canvas"].db, app.config["CANVAS_SETTINGS"])
        return app

    yield build
    for app in built:
        _empty_tables(app)
        app.extensions["canvas"].close()


@pytest.fixture(autouse=True)
def _earlier_engines_let_go() -> Iterator[None]:
    """The ORM keeps the statements it wrote rows with in a cache of each mapper (SQLAlchemy's Mapper._compiled_cache,
    100 entries), keyed by the engine's dialect, whose listeners hold the engine and its canvas Database: a test
    process that builds an app per test kept up to a hundred engines alive with their own caches, some 2 million
    objects, and the garbage collector's full passes through them took 1.5-6 s. A pause that long inside a
    transaction of an app with a short lost-run grace outlived the idle-in-transaction limit it sets (2 s) and the
    server ended the session: a 503 where the test expected its setup to succeed. A service process builds its
    engine once; only a test process needs to let go of the earlier ones."""
    yield
    from canvas.models import Base

    for mapper in Base.registry.mappers:
        mapper._compiled_cache.clear()  # noqa: SLF001 - no public way to empty it


@pytest.fixture(scope="module", autouse=True)
def _earlier_objects_out_of_the_collectors_sight() -> None:
    """What earlier test files left alive (the modules imported, the session's servers and fixtures, some 250,000
    objects) is frozen (gc.freeze) as the services do with their long-lived objects (canvas.long_lived): the
    collector's full passes during a test walk only what test files since made, and stay short."""
    gc.collect()
    gc.freeze()


def _empty_tables(app) -> None:
    from canvas.models import Base
    from canvas.ratelimits import forget_counts

    with contextlib.suppress(Exception):  # fresh rate-limit counts for the next test (its Redis may be stopped)
        forget_counts(app)

    engine = app.extensions["canvas"].db.engine
    with engine.begin() as connection:
        for table in reversed(Base.metadata.sorted_tables):
            connection.execute(table.delete())


@pytest.fixture()
def app(make_app):
    return make_app()


@pytest.fixture()
def client(app):
    return app.test_client()


@pytest.fixture()
def services(app):
    return app.extensions["canvas"]


class Org:
    """An organization created through the service layer, with helpers to call the API as its accounts."""

    def __init__(self, app, name: str):
        from canvas.accounts import service

        self.app = app
        with app.extensions["canvas"].db.transaction() as session:
            created = service.create_organization(session, name, f"admin-{uuid.uuid4().hex[:8]}@{name.lower()}.test")
        self.id = str(created.organization_id)
        self.admin_id = str(created.account_id)
        self.admin_headers = canvas_headers(created.consumer, created.secret_key)

    def add_account(self, role: str = "User", active: bool = True) -> tuple[str, dict]:
        """A new account of this organization with its own keys: (account id, headers)."""
        from canvas.accounts import service
        from canvas.models import Role

        with self.app.extensions["canvas"].db.transaction() as session:
            account = service._add_account(session, uuid.UUID(self.id), f"{uuid.uuid4().hex[:10]}@example.test",
                                           Role(role), active=active)
            keys = service.issue_keys(session, account.id)
        return str(account.id), canvas_headers(keys.consumer, keys.secret_key)


def canvas_headers(consumer: str, secret: str, managed_account_id: str | None = None) -> dict:
    headers = {"Consumer": consumer, "SecretKey": secret}
    if managed_account_id:
        headers["ManagedAccountId"] = managed_account_id
    return headers


@pytest.fixture()
def make_org(app):
    def build(name: str = "Acme") -> Org:
        return Org(app, name)

    return build


@pytest.fixture()
def org(make_org) -> Org:
    return make_org("Acme")


@pytest.fixture()
def clean_run_queue(app):
    """The run queue empty before and after the test: jobs of one test must not run in another's worker."""
    from tests.integration.run_helpers import empty_queue

    empty_queue(app)
    yield
    empty_queue(app)
