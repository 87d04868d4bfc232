"""Webhooks: a secret URL starts a run with the body as the first block's input; HMAC valid, invalid, stale
timestamp and replayed nonce."""
from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid

import pytest

from tests.api.test_v2_support import V2
from tests.integration.run_helpers import work_off

pytestmark = pytest.mark.usefixtures("clean_run_queue")

SECRET = "a-webhook-secret-of-some-length"


@pytest.fixture()
def v2(app, client, org):
    return V2(app, client, org)


def webhook_flow(v2) -> str:
    graph = {"nodes": [{"id": "in", "command": "jsonata.transform", "fields": {"expression": "$"}},
                       {"id": "out", "command": "filehub.write", "credentials_id": v2.credential,
                        "fields": {"filename": "hook_{runId}.jsonl"}}],
             "edges": [{"source": "in", "target": "out"}]}
    body = {"data": {"type": "flow", "attributes": {"name": "Hooked", "type": "ordinary", "graph": graph}}}
    answer = v2.call("POST", "/v2/flows", body)
    assert answer.status_code == 201, answer.json
    return answer.json["data"]["id"]


def add_webhook(v2, flow_id: str, hmac_settings: dict | None = None) -> str:
    body = {"data": {"type": "webhook", "attributes": {"hmac": hmac_settings}}}
    answer = v2.call("POST", f"/v2/flows/{flow_id}/webhooks", body)
    assert answer.status_code == 201, answer.json
    url = answer.json["data"]["attributes"]["url"]
    return url[url.index("/v2/hooks/"):]


def signed_headers(body: bytes, timestamp: int | None = None, nonce: str | None = None,
                   secret: str = SECRET) -> dict:
    timestamp = int(time.time()) if timestamp is None else timestamp
    nonce = nonce or uuid.uuid4().hex
    signature = hmac.new(secret.encode(), f"{timestamp}.{nonce}.".encode() + body, hashlib.sha256).hexdigest()
    return {"X-Signature": f"sha256={signature}", "X-Timestamp": str(timestamp), "X-Nonce": nonce,
            "Content-Type": "application/json"}


def test_a_webhook_call_runs_the_flow_with_the_body_as_input(app, v2):
    flow_id = webhook_flow(v2)
    path = add_webhook(v2, flow_id)
    answer = v2.client.post(path, json=[{"id": 1}, {"id": 2}, {"id": 3}])
    assert answer.status_code == 202, answer.json
    execution = answer.json["data"]
    assert execution["attributes"]["trigger"] == "webhook"
    work_off(app)
    done = v2.call("GET", f"/v2/executions/{execution['id']}").json["data"]["attributes"]
    assert done["status"] == "succeeded"
    assert done["steps"][0]["records_out"] == 3
    listed = v2.call("GET", f"/v2/flows/{flow_id}/webhooks").json["data"]
    assert listed[0]["attributes"]["url"] is None  # the secret URL is shown only once


def test_unknown_webhook_is_404(v2):
    assert v2.client.post("/v2/hooks/not-a-token", json={}).status_code == 404


def test_hmac_valid_invalid_stale_and_replayed(v2):
    flow_id = webhook_flow(v2)
    path = add_webhook(v2, flow_id, {"algorithm": "sha256", "secret": SECRET, "tolerance_seconds": 60})
    body = json.dumps({"id": 1}).encode()

    unsigned = v2.client.post(path, data=body, headers={"Content-Type": "application/json"})
    assert unsigned.status_code == 401
    wrong = v2.client.post(path, data=body, headers=signed_headers(body, secret="another-secret-entirely"))
    assert wrong.status_code == 401 and wrong.json["errors"][0]["status"] == "401"
    stale = v2.client.post(path, data=body, headers=signed_headers(body, timestamp=int(time.time()) - 3600))
    assert stale.status_code == 401 and "tolerance" in stale.json["errors"][0]["detail"]

    headers = signed_headers(body, nonce="nonce-1")
    assert v2.client.post(path, data=body, headers=headers).status_code == 202
    replayed = v2.client.post(path, data=body, headers=headers)
    assert replayed.status_code == 409 and "replayed" in replayed.json["errors"][0]["detail"]


def test_webhook_settings_are_validated_and_secrets_never_shown(v2):
    flow_id = webhook_flow(v2)
    short = v2.call("POST", f"/v2/flows/{flow_id}/webhooks",
                    {"data": {"type": "webhook", "attributes": {"hmac": {"secret": "short"}}}})
    assert short.status_code == 400
    assert short.json["errors"][0]["source"]["pointer"] == "/data/attributes/hmac/secret"
    add_webhook(v2, flow_id, {"algorithm": "sha512", "secret": SECRET})
    listed = v2.call("GET", f"/v2/flows/{flow_id}/webhooks")
    assert SECRET not in listed.get_data(as_text=True)
    webhook_id = listed.json["data"][0]["id"]
    assert v2.call("DELETE", f"/v2/flows/{flow_id}/webhooks/{webhook_id}").status_code == 204
    assert v2.call("DELETE", f"/v2/flows/{flow_id}/webhooks/{webhook_id}").status_code == 404


def test_a_call_refused_while_a_run_is_active_can_be_sent_again(app, v2):
    """The refusal spends neither the nonce nor storage: the sender's retry of the very same call starts the run."""
    flow_id = webhook_flow(v2)
    path = add_webhook(v2, flow_id, {"algorithm": "sha256", "secret": SECRET, "tolerance_seconds": 600})
    first, second = json.dumps({"id": 1}).encode(), json.dumps({"id": 2}).encode()
    assert v2.client.post(path, data=first, headers=signed_headers(first)).status_code == 202
    retried_headers = signed_headers(second, nonce="sent-while-busy")

    refused = v2.client.post(path, data=second, headers=retried_headers)
    assert refused.status_code == 409
    assert int(refused.headers["Retry-After"]) > 0
    assert "send it again" in refused.json["errors"][0]["detail"]
    blob_store = app.extensions["canvas"].blob_store
    assert len(blob_store.list_keys(f"inputs/{flow_id}")) == 1  # the refused body was not kept

    work_off(app)
    accepted = v2.client.post(path, data=second, headers=retried_headers)
    assert accepted.status_code == 202, accepted.json
    work_off(app)
    done = v2.call("GET", f"/v2/executions/{accepted.json['data']['id']}").json["data"]["attributes"]
    assert done["status"] == "succeeded" and done["steps"][0]["records_out"] == 1
    assert v2.client.post(path, data=second, headers=retried_headers).status_code == 409  # now it is a replay


def test_a_call_that_could_not_be_queued_can_be_sent_again(app, make_app, tmp_path, v2):
    flow_id = webhook_flow(v2)
    path = add_webhook(v2, flow_id, {"algorithm": "sha256", "secret": SECRET, "tolerance_seconds": 600})
    body = json.dumps({"id": 7}).encode()
    headers = signed_headers(body, nonce="sent-while-redis-was-away")
    broken = make_app(REDIS_URL=f"unix://{tmp_path}/no-redis.sock").test_client()

    unavailable = broken.post(path, data=body, headers=headers)
    assert unavailable.status_code == 503, unavailable.json
    accepted = v2.client.post(path, data=body, headers=headers)
    assert accepted.status_code == 202, accepted.json
    work_off(app)
    done = v2.call("GET", f"/v2/executions/{accepted.json['data']['id']}").json["data"]["attributes"]
    assert done["status"] == "succeeded" and done["steps"][0]["records_out"] == 1


def test_a_stopped_flow_refuses_webhook_calls_until_it_is_started(app, v2):
    flow_id = webhook_flow(v2)
    path = add_webhook(v2, flow_id)
    assert v2.call("POST", f"/v2/flows/{flow_id}/stop").status_code == 202
    refused = v2.client.post(path, json={"id": 1})
    assert refused.status_code == 409
    assert "stopped" in refused.json["errors"][0]["detail"]
    history = v2.call("GET", "/v2/executions", **{"filter[flow]": flow_id}).json
    assert history["meta"]["total"] == 0  # no run was started

    assert v2.call("POST", f"/v2/flows/{flow_id}/start").status_code == 202  # no cron: start only lifts the stop
    assert v2.call("GET", f"/v2/flows/{flow_id}").json["data"]["attributes"]["cron"] is None
    accepted = v2.client.post(path, json={"id": 1})
    assert accepted.status_code == 202, accepted.json
    work_off(app)
    assert v2.call("POST", f"/v2/flows/{flow_id}/start").status_code == 422  # nothing to start: no cron, not stopped
