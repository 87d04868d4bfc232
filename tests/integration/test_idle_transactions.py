"""PostgreSQL ends a session of the service left idle inside a transaction for half the lost-run grace
(canvas.db.silence_limit), so that a process frozen or gone in the middle of one releases its locks (the fault suite's
"a scheduler frozen inside its claim" shows what they held up); a shorter limit of the server's is kept, and a
transaction that waits for another system on purpose is spared."""
from __future__ import annotations

import time
import uuid

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

GRACE_SECONDS = 4.0  # a limit of 2 s


def limit_of(database) -> str:  # noqa: ANN001 - canvas.db.Database
    with database.engine.connect() as connection:
        return connection.execute(text("SHOW idle_in_transaction_session_timeout")).scalar_one()


def test_the_service_limits_how_long_its_transactions_may_idle(postgres_database_url):
    from canvas.db import Database, silence_limit
    from canvas.outages import DATABASE, outage_text, unreachable_service

    database = Database(postgres_database_url, GRACE_SECONDS)
    try:
        assert limit_of(database) == f"{silence_limit(GRACE_SECONDS):g}s"
        with database.sessions() as session:
            session.execute(text("SELECT 1"))
            time.sleep(silence_limit(GRACE_SECONDS) + 0.5)
            with pytest.raises(DBAPIError) as ended:
                session.execute(text("SELECT 2"))
        assert ended.value.connection_invalidated  # taken for a lost connection: waited out, retried on a new one
        assert outage_text(DATABASE, ended.value) == (  # what the log says: this process went quiet, not the network
            "the database ended this process's session: one of its transactions stayed idle past "
            "idle_in_transaction_session_timeout (the process paused, starved of CPU, or waited inside it) "
            "(InternalError)")
        assert unreachable_service(ended.value) == DATABASE
        with database.sessions() as session:  # the pool goes on with a new connection
            assert session.execute(text("SELECT 3")).scalar_one() == 3
    finally:
        database.dispose()


def test_a_shorter_limit_of_the_server_is_kept(postgres_database_url):
    from canvas.db import Database
    from tests.servers.postgres import database_default

    with database_default(postgres_database_url, "idle_in_transaction_session_timeout", "1s"):
        database = Database(postgres_database_url, 60.0)  # its own limit would be 30 s
        try:
            assert limit_of(database) == "1s"
        finally:
            database.dispose()


def test_a_transaction_that_waits_for_another_system_on_purpose_is_spared(postgres_database_url):
    from canvas.db import Database, silence_limit, wait_inside_transaction

    database = Database(postgres_database_url, GRACE_SECONDS)
    try:
        with database.sessions() as session:
            session.execute(text("SELECT 1"))
            wait_inside_transaction(session)
            time.sleep(silence_limit(GRACE_SECONDS) + 0.5)  # the mail relay taking its time
            assert session.execute(text("SELECT 2")).scalar_one() == 2
            session.commit()
        assert limit_of(database) == f"{silence_limit(GRACE_SECONDS):g}s"  # lifted for that transaction only
    finally:
        database.dispose()


@pytest.mark.usefixtures("postgres_database_url")  # before the apps: it outlives their clean-up
def test_an_account_is_registered_while_the_mail_relay_takes_its_time(postgres_database_url, make_app, smtp_server):
    """Registering an account with an activation e-mail waits for the relay inside its transaction on purpose (the
    account exists only if the e-mail left): a relay slower than the idle limit does not cost the account."""
    from canvas.db import silence_limit
    from canvas.models import Account
    from tests.conftest import Org

    app = make_app(DATABASE_URL=postgres_database_url, LOST_RUN_GRACE_SECONDS=GRACE_SECONDS, LEASE_RENEW_SECONDS=1.0,
                   SMTP_URL=f"smtp://{smtp_server.username}:{smtp_server.password}@{smtp_server.host}:"
                            f"{smtp_server.port}")
    org = Org(app, "Slowrelay")
    smtp_server.data_delay_seconds = silence_limit(GRACE_SECONDS) + 1.0
    answer = app.test_client().post("/api/Account", headers=org.admin_headers,
                                    json={"email": "late@example.com", "firstName": "Late", "lastName": "Mail",
                                          "roleName": "User", "activated": False})
    assert answer.status_code == 200, answer.json
    assert [message.rcpt_tos for message in smtp_server.messages] == [["late@example.com"]]
    with app.extensions["canvas"].db.sessions() as session:
        assert session.get(Account, uuid.UUID(answer.json)).email == "late@example.com"
