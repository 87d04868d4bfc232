"""The migrations build exactly the schema the models describe (on the suite's database: PostgreSQL in CI), and
processes that start together on an empty database migrate it once between them."""
from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Iterator

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from canvas.migrate import head_revision
from canvas.models import Base
from canvas.schema_version import database_revision
from tests.process_tools import canvas_env, one_error_line, run_canvas
from tests.servers.postgres import temporary_database, temporary_role


def test_the_migrated_schema_is_the_models_schema(migrated_database):
    engine = create_engine(migrated_database)
    try:
        with engine.connect() as connection:
            differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    finally:
        engine.dispose()
    assert differences == [], "a model changed without a migration (or the other way round)"


MIGRATORS = 4


@pytest.fixture
def empty_postgres_database(postgres_server_url) -> Iterator[str]:
    with temporary_database(postgres_server_url, "canvas_migrate") as url:
        yield url


@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
def test_processes_that_start_together_on_an_empty_database_all_find_it_migrated(backend, tmp_path, request):
    """An API on each machine starting at once (here `canvas db upgrade`, which migrates as `canvas api` does):
    one migrates, the others wait for it. Unserialized, all but one failed ("relation already exists")."""
    url = (request.getfixturevalue("empty_postgres_database") if backend == "postgresql"
           else f"sqlite:///{tmp_path / 'shared' / 'canvas.db'}")
    env = canvas_env(tmp_path / "data", CANVAS_DATABASE_URL=url)
    migrators = [subprocess.Popen([sys.executable, "-m", "canvas", "db", "upgrade"], env=env, text=True,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(MIGRATORS)]
    answers = [migrator.communicate(timeout=180) for migrator in migrators]
    failures = [error[-600:] for migrator, (_, error) in zip(migrators, answers) if migrator.returncode != 0]
    assert failures == []
    assert [output.strip() for output, _ in answers] == [f"database at revision {head_revision()}"] * MIGRATORS
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
    finally:
        engine.dispose()


def test_a_database_already_at_head_is_left_alone_without_a_line_from_alembic(tmp_path, caplog):
    """Every CLI command migrates first: on an up-to-date database it used to log alembic's "Context impl
    SQLiteImpl." and "Will assume non-transactional DDL." each time."""
    from canvas import migrate

    engine = create_engine(f"sqlite:///{tmp_path / 'canvas.db'}")
    try:
        migrate.upgrade(engine)
        caplog.clear()
        with caplog.at_level(logging.DEBUG):
            migrate.upgrade(engine)
        assert [record.getMessage() for record in caplog.records if record.name.startswith("alembic")] == []
        with engine.connect() as connection:
            assert database_revision(connection) == head_revision()
    finally:
        engine.dispose()


def test_a_user_who_may_not_create_tables_gets_one_line_saying_what_to_grant(empty_postgres_database, tmp_path):
    """Since PostgreSQL 15 only the owner of the `public` schema (the database's owner) may create in it: a
    deployment's own role got a traceback of 118 lines, the CREATE TABLE it tried among them."""
    database = make_url(empty_postgres_database).database
    with temporary_role(empty_postgres_database, "canvas_np") as (role, admin):
        url = make_url(empty_postgres_database).set(username=role, password=None)
        env = canvas_env(tmp_path / "data", CANVAS_DATABASE_URL=url.render_as_string(hide_password=False))
        with admin.connect() as connection:
            connection.execute(text("REVOKE CREATE ON SCHEMA public FROM PUBLIC"))  # as PostgreSQL 15 has it
        error = one_error_line(run_canvas("db", "upgrade", env=env))
        assert error == (f"Error: CANVAS_DATABASE_URL: user {role} may not create Canvas's tables in the database at "
                         f"{url!r}: permission denied for schema public. Make it the database's owner (ALTER "
                         f"DATABASE {database} OWNER TO {role}), or grant it CREATE on the schema")
        with admin.connect() as connection:
            connection.execute(text(f'GRANT CREATE ON SCHEMA public TO "{role}"'))
        upgraded = run_canvas("db", "upgrade", env=env)
        assert upgraded.stdout.strip() == f"database at revision {head_revision()}", upgraded.stderr[-3000:]
