"""Callbacks: a signed JSON summary of each finished run is POSTed to the flow's callback URL, retried after a 500."""
from __future__ import annotations

import hashlib
import hmac
import json
import time

import pytest
from werkzeug.wrappers import Response

from tests.api.test_v2_support import V2
from tests.integration.run_helpers import work_off

pytestmark = pytest.mark.usefixtures("clean_run_queue")


@pytest.fixture()
def fast_app(make_app):
    return make_app(CALLBACK_RETRY_BASE_SECONDS=0)


@pytest.fixture()
def v2(fast_app):
    from tests.conftest import Org

    return V2(fast_app, fast_app.test_client(), Org(fast_app, "Hooks"))


def add_callback(v2, flow_id: str, url: str, **attributes) -> dict:
    body = {"data": {"type": "callback", "attributes": {"url": url, **attributes}}}
    answer = v2.call("POST", f"/v2/flows/{flow_id}/callbacks", body)
    assert answer.status_code == 201, answer.json
    return answer.json["data"]


def run_flow(v2, app, flow_id: str) -> None:
    answer = v2.client.post("/api/RunWorkflow", json={"workflowId": flow_id}, headers=v2.org.admin_headers)
    assert answer.status_code == 202, answer.json
    work_off(app)


def verify(secret: str, request) -> bool:
    parts = dict(part.split("=", 1) for part in request.headers["X-Canvas-Signature"].split(","))
    expected = hmac.new(secret.encode(), f"{parts['t']}.".encode() + request.body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, parts["v1"])


def test_a_finished_run_is_delivered_signed_and_retried_after_a_500(v2, fast_app, http_server):
    answers = iter([Response(status=500), Response(status=204)])
    http_server.route("/hook", lambda request: next(answers))
    flow = v2.create("Called back")
    callback = add_callback(v2, flow["id"], http_server.url("/hook"))
    secret = callback["attributes"]["secret"]
    run_flow(v2, fast_app, flow["id"])
    received = [request for request in http_server.requests if request.path == "/hook"]
    assert len(received) == 2 and received[0].body == received[1].body
    summary = received[-1].json()
    assert summary["event"] == "run.succeeded" and summary["flow_id"] == flow["id"]
    assert summary["status"] == "Succeeded" and [step["status"] for step in summary["steps"]]
    assert verify(secret, received[-1]) and received[-1].headers["X-Canvas-Event"] == "run.succeeded"
    deliveries = v2.call("GET", f"/v2/flows/{flow['id']}/callbacks/{callback['id']}/deliveries").json["data"]
    assert [(d["attributes"]["status"], d["attributes"]["attempts"]) for d in deliveries] == [("Delivered", 2)]
    listed = v2.call("GET", f"/v2/flows/{flow['id']}/callbacks").json["data"]
    assert "secret" not in listed[0]["attributes"]
    for resource in (deliveries[0], listed[0]):  # self links lead to the resource
        followed = v2.call("GET", resource["links"]["self"])
        assert followed.status_code == 200, resource["links"]["self"]
        assert followed.json["data"]["id"] == resource["id"]


def test_delivery_gives_up_after_max_attempts(v2, fast_app, http_server):
    http_server.route("/down", lambda request: Response(status=503))
    flow = v2.create("Unlucky")
    callback = add_callback(v2, flow["id"], http_server.url("/down"), max_attempts=3)
    run_flow(v2, fast_app, flow["id"])
    assert http_server.hits("/down") == 3
    [delivery] = v2.call("GET", f"/v2/flows/{flow['id']}/callbacks/{callback['id']}/deliveries").json["data"]
    assert delivery["attributes"]["status"] == "Failed" and delivery["attributes"]["last_status_code"] == 503


def test_events_filter_which_runs_are_reported(v2, fast_app, http_server):
    http_server.route("/failures", lambda request: Response(status=200))
    flow = v2.create("Quiet")
    add_callback(v2, flow["id"], http_server.url("/failures"), events=["run.failed"])
    run_flow(v2, fast_app, flow["id"])
    assert http_server.hits("/failures") == 0


@pytest.mark.parametrize(("attributes", "pointer"), [
    ({"url": "ftp://example.com"}, "url"),
    ({"url": "https://example.com", "events": ["run.exploded"]}, "events"),
    ({"url": "https://example.com", "max_attempts": 0}, "max_attempts"),
])
def test_bad_callbacks_are_refused_naming_the_attribute(v2, attributes, pointer):
    flow = v2.create("Picky")
    answer = v2.call("POST", f"/v2/flows/{flow['id']}/callbacks", {"data": {"type": "callback",
                                                                              "attributes": attributes}})
    assert answer.status_code == 400
    assert answer.json["errors"][0]["source"]["pointer"] == f"/data/attributes/{pointer}"


def test_callbacks_of_another_account_are_not_found(v2, fast_app):
    flow = v2.create("Mine")
    _other_id, other_headers = v2.org.add_account("User")
    answer = fast_app.test_client().get(f"/v2/flows/{flow['id']}/callbacks", headers=other_headers)
    assert answer.status_code in (401, 404)
    assert json.loads(answer.data)["errors"]


@pytest.mark.usefixtures("postgres_database_url")  # before the apps: it outlives their clean-up
def test_a_slow_receiver_gets_its_delivery_once_on_postgresql(postgres_database_url, make_app, http_server):
    """The receiver answers after longer than PostgreSQL lets one of the service's transactions idle (half the
    lost-run grace: canvas.db.silence_limit). The POST happens between two transactions, so the outcome is
    recorded: delivered once, on the first attempt (inside one transaction, the server ended it during the POST,
    the outcome was lost and the delivery sent again)."""
    from canvas.db import silence_limit
    from tests.conftest import Org

    grace = 4.0
    app = make_app(DATABASE_URL=postgres_database_url, LOST_RUN_GRACE_SECONDS=grace, LEASE_RENEW_SECONDS=1.0,
                   CALLBACK_RETRY_BASE_SECONDS=0)
    v2 = V2(app, app.test_client(), Org(app, "Slowhooks"))

    def slow(request):  # noqa: ANN001, ANN202
        time.sleep(silence_limit(grace) + 1.5)
        return Response(status=204)

    http_server.route("/slow", slow)
    flow = v2.create("Called back slowly")
    callback = add_callback(v2, flow["id"], http_server.url("/slow"))
    run_flow(v2, app, flow["id"])
    assert http_server.hits("/slow") == 1
    [delivery] = v2.call("GET", f"/v2/flows/{flow['id']}/callbacks/{callback['id']}/deliveries").json["data"]
    assert (delivery["attributes"]["status"], delivery["attributes"]["attempts"]) == ("Delivered", 1)
