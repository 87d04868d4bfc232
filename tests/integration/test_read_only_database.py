"""A failover that leaves the service's connections on a server that takes no writes (a demoted primary, a name
still leading to a standby: PostgreSQL refuses each write with SQLSTATE 25006): the API answers 503, never 500, and
once writes are taken again the next request works, on connections opened afresh. tests/faults/test_faults.py runs
the same with workers and runs under way."""
from __future__ import annotations

from tests.conftest import Org
from tests.integration.run_helpers import make_workflow, run
from tests.servers.postgres import read_only_by_default


def test_the_api_answers_503_while_the_database_takes_no_writes_then_carries_on(postgres_database_url, make_app,
                                                                                clean_run_queue):
    # postgres_database_url first: its temporary database must outlive the app's tables being emptied
    app = make_app(DATABASE_URL=postgres_database_url)
    client, org = app.test_client(), Org(app, "Failover")
    workflow_id = make_workflow(client, org.admin_headers)
    with read_only_by_default(postgres_database_url):
        app.extensions["canvas"].db.engine.dispose()  # its connections now open on "the standby"
        refused = run(client, org.admin_headers, workflow_id)
        assert refused.status_code == 503, refused.json
        assert refused.json["Msg"] == "The service cannot reach its database at the moment; try again shortly"
        assert refused.headers["Retry-After"]
    accepted = run(client, org.admin_headers, workflow_id)  # no connection of the read-only time is used again
    assert accepted.status_code == 202, accepted.json
