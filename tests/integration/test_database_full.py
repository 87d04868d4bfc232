"""A database that answers but has no room for a write (a full disk) is told apart from one that cannot be reached:
the API answers 503 "cannot write to its database" and logs "the database refuses writes: its disk is full" (the
operator is sent to the disk, not to the network), reads go on, and writes work again once there is room."""
from __future__ import annotations

import logging

import pytest
from sqlalchemy import create_engine, event, text
from sqlalchemy.exc import OperationalError

from canvas.outages import database_is_full, outage_text
from tests.conftest import Org
from tests.integration.run_helpers import make_workflow, run

pytestmark = pytest.mark.usefixtures("clean_run_queue")
CANNOT_WRITE = "The service cannot write to its database at the moment; try again shortly"


@pytest.fixture
def sqlite_app(base_settings, tmp_path):
    """The API on a SQLite database of its own (migrated, with the catalog)."""
    from canvas import create_app, migrate
    from canvas.catalog.loader import sync_catalog_files

    url = f"sqlite:///{tmp_path / 'full.db'}"
    engine = create_engine(url)
    migrate.upgrade(engine)
    engine.dispose()
    app = create_app({**base_settings, "DATABASE_URL": url})
    app.config["TESTING"] = True
    sync_catalog_files(app.extensions["canvas"].db, app.config["CANVAS_SETTINGS"])
    yield app
    app.extensions["canvas"].close()


def no_room_left(engine):  # noqa: ANN001, ANN201 - the listener, for room_again
    """SQLite's own limit on the database's pages, set at its current size on every connection: the next write
    that needs a page fails with SQLITE_FULL, "database or disk is full", as on a full disk."""
    with engine.connect() as connection:
        pages = connection.exec_driver_sql("PRAGMA page_count").scalar()

    def limit(dbapi_connection, _record) -> None:  # noqa: ANN001
        dbapi_connection.execute(f"PRAGMA max_page_count = {pages}")

    event.listen(engine, "connect", limit)
    engine.dispose()
    return limit


def room_again(engine, limit) -> None:  # noqa: ANN001
    event.remove(engine, "connect", limit)
    engine.dispose()


def test_a_full_sqlite_database_answers_503_in_words_and_reads_go_on(sqlite_app, caplog):
    client, org = sqlite_app.test_client(), Org(sqlite_app, "Full")
    workflows = [make_workflow(client, org.admin_headers) for _ in range(20)]
    engine = sqlite_app.extensions["canvas"].db.engine
    limit = no_room_left(engine)
    caplog.set_level(logging.WARNING, logger="canvas.web")
    answers = [run(client, org.admin_headers, workflow_id) for workflow_id in workflows]  # until a page is needed
    refused = [answer for answer in answers if answer.status_code != 202]
    assert refused, "every run found room: the limit did not bite"
    assert {(answer.status_code, answer.headers.get("Retry-After")) for answer in refused} == {(503, "5")}
    assert refused[0].json == {"State": 503, "Msg": CANNOT_WRITE}
    assert "POST /api/RunWorkflow: the database refuses writes: its disk is full (OperationalError)" in caplog.text
    assert "unreachable" not in caplog.text
    assert client.get("/api/Workflows", headers=org.admin_headers).status_code == 200  # reads need no room

    room_again(engine, limit)
    assert run(client, org.admin_headers, workflows[-1]).status_code == 202


def test_postgresqls_disk_full_is_told_apart(postgres_database_url):
    """A real answer of PostgreSQL with SQLSTATE 53100 (disk_full), raised by the server itself."""
    engine = create_engine(postgres_database_url)
    try:
        with pytest.raises(OperationalError) as raised, engine.connect() as connection:
            connection.execute(text("DO $$ BEGIN RAISE EXCEPTION 'could not extend file' USING ERRCODE = 'disk_full';"
                                    " END $$"))
    finally:
        engine.dispose()
    assert database_is_full(raised.value)
    assert outage_text("the database", raised.value) == \
        "the database refuses writes: its disk is full (OperationalError)"
    assert not database_is_full(OperationalError("SELECT 1", {}, Exception("connection refused")))
