"""The database goes away under a running run (a relay between the service and PostgreSQL is cut): a short outage is
ridden out and the run succeeds; a long one stops the run, which then records its failure in words once the
database is back, its block in flight included, and nothing after it starts."""
from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url

from canvas.execution.runner import Runner
from canvas.models import BlockRun, WorkflowRun
from tests.conftest import Org
from tests.integration.run_helpers import THREE_BLOCKS, empty_queue, make_workflow, run, wait_for
from tests.servers.tcp_proxy import TcpProxy

GRACE, RENEW = 3.0, 0.5


@pytest.fixture
def proxy(postgres_database_url) -> Iterator[TcpProxy]:
    url = make_url(postgres_database_url)
    with TcpProxy(url.host or "127.0.0.1", url.port or 5432) as relay:
        yield relay


@pytest.fixture
def outage_app(proxy, postgres_database_url, make_app):  # the relay goes last: the tables are emptied through it
    proxied = make_url(postgres_database_url).set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    app = make_app(DATABASE_URL=proxied, LOST_RUN_GRACE_SECONDS=GRACE, LEASE_RENEW_SECONDS=RENEW)
    empty_queue(app)
    yield app
    proxy.restore()  # the tables are emptied through it
    empty_queue(app)


def start_run(app, seconds: float) -> tuple[uuid.UUID, threading.Thread, dict]:
    client, org = app.test_client(), Org(app, "Outage")
    workflow_id = make_workflow(client, org.admin_headers, [THREE_BLOCKS[0], ("Wait", "delay", {"seconds": seconds}),
                                                            THREE_BLOCKS[2]])
    answer = run(client, org.admin_headers, workflow_id)
    assert answer.status_code == 202, answer.json
    run_id = uuid.UUID(answer.headers["Location"].rsplit("/", 1)[1])
    outcome: dict = {}

    def execute() -> None:
        with app.app_context():
            outcome["result"] = Runner(app.extensions["canvas"]).run(run_id)

    thread = threading.Thread(target=execute, daemon=True)
    thread.start()
    wait_for(lambda: [block.status for block in blocks(app, run_id)] == ["Succeeded", "Running"], what="block 2")
    return run_id, thread, outcome


def blocks(app, run_id: uuid.UUID) -> list[BlockRun]:
    with app.extensions["canvas"].db.sessions() as session:
        return list(session.scalars(select(BlockRun).where(BlockRun.run_id == run_id).order_by(BlockRun.number)))


def run_row(app, run_id: uuid.UUID) -> WorkflowRun:
    with app.extensions["canvas"].db.sessions() as session:
        return session.get(WorkflowRun, run_id)


def test_a_database_outage_shorter_than_the_lease_is_ridden_out(outage_app, proxy):
    run_id, thread, outcome = start_run(outage_app, seconds=3)
    proxy.cut()
    time.sleep(1.0)  # under grace - renew (2.5 s)
    proxy.restore()
    thread.join(30)
    assert outcome["result"] == "Succeeded"
    assert [block.status for block in blocks(outage_app, run_id)] == ["Succeeded"] * 3


def test_a_long_database_outage_stops_the_run_which_says_so_in_words(outage_app, proxy):
    run_id, thread, outcome = start_run(outage_app, seconds=30)
    proxy.cut()
    time.sleep(GRACE + 1)  # the worker gives up at grace - renew; nobody else can reach the database either
    proxy.restore()
    thread.join(30)
    assert outcome["result"] == "Failed"
    failed = run_row(outage_app, run_id)
    assert failed.status == "Failed" and failed.failed_block == 2
    assert failed.error.startswith("database connection lost while running block 2; the run was stopped")
    assert "psycopg" not in failed.error and "OperationalError" not in failed.error
    assert [(block.number, block.status) for block in blocks(outage_app, run_id)] == [(1, "Succeeded"),
                                                                                       (2, "Failed")]
    assert blocks(outage_app, run_id)[1].error == failed.error
