"""A real run (a real RQ worker in this process, a real HTTP target) logged through the process handler: its lines
carry the run, workflow, account and block, in JSON and in text, and the credentials of the registered application
it uses appear in neither, though the target quotes the key back in the error that fails the run."""
from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from tests.integration.run_helpers import B1, B2, run, work_off
from tests.servers.http import json_response

pytestmark = pytest.mark.usefixtures("clean_run_queue")
REST_APPLICATION_ID = "db9b3fee-fcb0-4033-a4ed-6c73d4657402"  # "REST API" of the shipped catalog
API_KEY = "k3y-that-must-never-be-logged"


def keyed_workflow(client, headers, http_server) -> str:
    """Records posted one by one to an API that wants its key in the query string, and refuses record 2 quoting
    the key it was given."""
    def answer(request):  # noqa: ANN001, ANN202
        if request.args.get("key") != API_KEY:
            return json_response({"error": "bad key"}, 401)
        if request.method == "POST" and request.get_json().get("id") == 2:
            return json_response({"error": f"key {request.args['key']} may not write order 2"}, 422)
        return json_response({"ok": True})

    http_server.route("/api/health", answer)
    http_server.route("/api/orders", answer)
    registered = client.post("/api/RegApplication", headers=headers, json={
        "applicationId": REST_APPLICATION_ID, "credentialsJson": json.dumps(
            {"baseUrl": http_server.url("/api"), "authType": "apikey_query", "apiKeyName": "key",
             "apiKey": API_KEY, "verifyPath": "/health"})})
    assert registered.status_code == 200, registered.json
    template = client.post("/api/WorkflowTemplate", headers=headers, json={
        "name": "Post orders", "description": "", "applications": ["REST"], "chain": [
            {"uniqueBlockId": B1, "blockName": "Orders", "block": "records.from_variable",
             "variables": {"records": [{"id": 1}, {"id": 2}]}},
            {"uniqueBlockId": B2, "blockName": "Post", "block": "http.request", "application": "REST",
             "variables": {"method": "POST", "path": "/orders", "bodyMode": "each_record", "retries": 0}}]})
    assert template.status_code == 200, template.json
    client.post("/api/PublishWorkflowTemplate", headers=headers, json={"id": template.json})
    workflow = client.post("/api/Workflow", headers=headers, json={"workflowTemplateId": template.json,
                                                                   "applications": {"REST": registered.json}})
    assert workflow.status_code == 200, workflow.json
    return workflow.json


@pytest.fixture
def process_log(request) -> Iterator[io.StringIO]:
    """The process handler (``log_format`` from the test's parameter) on the root logger, as config/logging.py sets
    it up, with the HTTP library at DEBUG."""
    from canvas.observability.logging import process_handler

    buffer = io.StringIO()
    handler = process_handler(request.param, buffer)
    root, urllib3 = logging.getLogger(), logging.getLogger("urllib3")
    levels = root.level, urllib3.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    urllib3.setLevel(logging.DEBUG)
    try:
        yield buffer
    finally:
        root.removeHandler(handler)
        root.setLevel(levels[0])
        urllib3.setLevel(levels[1])


def run_once(app, client, org, http_server) -> tuple[str, str]:
    workflow_id = keyed_workflow(client, org.admin_headers, http_server)
    started = run(client, org.admin_headers, workflow_id)
    assert started.status_code == 202, started.json
    work_off(app)
    run_id = started.headers["Location"].rsplit("/", 1)[-1]
    assert client.get(started.headers["Location"], headers=org.admin_headers).json["status"] == "Failed"
    return workflow_id, run_id


@pytest.mark.parametrize("process_log", ["json"], indirect=True)
def test_json_lines_of_a_run_carry_its_ids_and_no_secret(app, client, org, http_server, process_log):
    workflow_id, run_id = run_once(app, client, org, http_server)
    lines = [json.loads(line) for line in process_log.getvalue().splitlines()]  # every line is one JSON object
    of_the_run = [line for line in lines if line.get("run_id") == run_id]
    assert of_the_run, lines
    assert {(line["workflow_id"], line["account_id"]) for line in of_the_run} == {(workflow_id, org.admin_id)}
    assert {line.get("block") for line in of_the_run} >= {2}
    requests = [line for line in of_the_run if line["logger"].startswith("urllib3") and "/api/orders" in
                line["message"]]
    assert requests and all(line["block"] == 2 for line in requests)  # a library's lines too
    failed = [line for line in of_the_run if "failed at block 2" in line["message"]]
    assert failed and "key *** may not write order 2" in failed[0]["message"]  # redacted, not left out
    assert API_KEY not in process_log.getvalue()


@pytest.mark.parametrize("process_log", ["text"], indirect=True)
def test_text_lines_of_a_run_carry_its_ids_and_no_secret(app, client, org, http_server, process_log):
    workflow_id, run_id = run_once(app, client, org, http_server)
    written = process_log.getvalue()
    posts = [line for line in written.splitlines() if '"POST /api/orders HTTP/1.1"' in line]
    assert posts and all(line.endswith(f"[run_id={run_id} workflow_id={workflow_id} account_id={org.admin_id} "
                                       "block=2]") for line in posts)
    assert "key *** may not write order 2" in written and API_KEY not in written
