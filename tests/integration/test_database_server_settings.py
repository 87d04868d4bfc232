"""What a PostgreSQL server's settings do to the service.

A failover that leaves the service's connections on a server that takes no writes (a demoted primary, a name
still leading to a standby: PostgreSQL refuses each write with SQLSTATE 25006): the API answers 503, never 500, and
once writes are taken again the next request works, on connections opened afresh. tests/faults/test_faults.py runs
the same with workers and runs under way. A limit on how long a session may sit idle in a transaction
(idle_in_transaction_session_timeout) meets no request that waits for a remote system inside one."""
from __future__ import annotations

import json
import time

from werkzeug.wrappers import Response

from tests.conftest import Org
from tests.faults.harness import REST_APPLICATION_ID
from tests.integration.run_helpers import make_workflow, run
from tests.servers.postgres import database_default


def test_the_api_answers_503_while_the_database_takes_no_writes_then_carries_on(postgres_database_url, make_app,
                                                                                clean_run_queue):
    # postgres_database_url first: its temporary database must outlive the app's tables being emptied
    app = make_app(DATABASE_URL=postgres_database_url)
    client, org = app.test_client(), Org(app, "Failover")
    workflow_id = make_workflow(client, org.admin_headers)
    with database_default(postgres_database_url, "default_transaction_read_only", "on"):
        app.extensions["canvas"].db.engine.dispose()  # its connections now open on "the standby"
        refused = run(client, org.admin_headers, workflow_id)
        assert refused.status_code == 503, refused.json
        assert refused.json["Msg"] == "The service cannot reach its database at the moment; try again shortly"
        assert refused.headers["Retry-After"]
    accepted = run(client, org.admin_headers, workflow_id)  # no connection of the read-only time is used again
    assert accepted.status_code == 202, accepted.json


def test_a_registration_holds_no_transaction_open_while_the_remote_system_answers(postgres_database_url, make_app,
                                                                                  http_server):
    """Credentials are verified against the real system, which may take seconds: no transaction waits open meanwhile
    (it would hold a pooled connection, and PostgreSQL ends a session idle in a transaction past
    idle_in_transaction_session_timeout, which managed databases often set)."""
    app = make_app(DATABASE_URL=postgres_database_url)
    client, org = app.test_client(), Org(app, "Slow")
    http_server.route("/health", lambda request: time.sleep(1.0) or Response(status=200))
    credentials = {"baseUrl": http_server.url(""), "authType": "none", "verifyPath": "/health"}
    body = {"applicationId": REST_APPLICATION_ID, "credentialsJson": json.dumps(credentials)}
    with database_default(postgres_database_url, "idle_in_transaction_session_timeout", "300ms"):
        app.extensions["canvas"].db.engine.dispose()  # its sessions now open under the limit
        registered = client.post("/api/RegApplication", json=body, headers=org.admin_headers)
        assert registered.status_code == 200, registered.json
        calls = [(f"/api/RegApplication/{registered.json}", body),
                 ("/api/UpdateRegApplication", {"id": registered.json, "credentialsJson": body["credentialsJson"]}),
                 ("/api/VerifyRegApplication", {"id": registered.json})]
        for path, call_body in calls:
            answer = client.post(path, json=call_body, headers=org.admin_headers)
            assert answer.status_code == 200, (path, answer.json)
    assert len([request for request in http_server.requests if request.path == "/health"]) == 4
