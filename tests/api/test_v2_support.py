"""Helpers for the v2 tests: Basic credentials of an org's admin, and the seed's flow requests adapted to the
blocks this service has (the seed's commands name another platform's components)."""
from __future__ import annotations

import base64
import copy
import uuid

from tests.api.workflow_helpers import file_hub_app

JSONAPI = "application/vnd.api+json"


def basic_headers(app, account_id: str, canvas_headers: dict) -> dict:
    """HTTP Basic with the account's e-mail and its SecretKey (the API key)."""
    from canvas.models import Account

    with app.extensions["canvas"].db.transaction() as session:
        email = session.get(Account, uuid.UUID(account_id)).email
    token = base64.b64encode(f"{email}:{canvas_headers['SecretKey']}".encode()).decode()
    return {"Authorization": f"Basic {token}", "Accept": JSONAPI}


def seed_create_body(credential_id: str, workspace_id: str) -> dict:
    """The seed's "Create a flow" request, commands and ids substituted; its graph branches at step_2."""
    nodes = [
        {"name": "", "description": "", "command": "records.from_variable",
         "fields": {"records": [{"result": "Rex"}, {"result": "Tom"}]}, "id": "step_1",
         "selected_data_samples": ["{DATA_SAMPLE_ID}"]},
        {"name": "My component", "description": "Duis aute irure dolor in reprehenderit.",
         "command": "jsonata.transform", "fields": {"expression": "$"}, "id": "step_2",
         "vpn_agent_id": "{VPN_AGENT_ID}", "selected_data_samples": ["{DATA_SAMPLE_ID}"]},
        {"name": "", "description": "", "command": "filehub.write", "fields": {"filename": "sold_{runId}.jsonl"},
         "id": "step_3", "credentials_id": credential_id, "selected_data_samples": ["{DATA_SAMPLE_ID}"]},
        {"name": "", "description": "", "command": "filehub.write", "fields": {"filename": "pending_{runId}.jsonl"},
         "id": "step_4", "credentials_id": credential_id, "selected_data_samples": ["{DATA_SAMPLE_ID}"]},
    ]
    edges = [
        {"config": {"mapper": {}, "condition": None}, "source": "step_1", "target": "step_2"},
        {"config": {"mapper_type": "jsonata", "mapper": {"status": "\"sold\"", "name": "result"},
                    "condition": None}, "source": "step_2", "target": "step_3"},
        {"config": {"mapper_type": "jsonata", "mapper": {"status": "\"pending\"", "name": "result"},
                    "condition": None}, "source": "step_2", "target": "step_4"},
    ]
    return {"data": {
        "attributes": {
            "default_mapper_type": "jsonata", "type": "ordinary", "name": "My flow",
            "description": "Lorem ipsum dolor sit amet, consectetur adipiscing elit.", "cron": None,
            "graph": {"nodes": nodes, "edges": edges},
            "nodes_config": {"step_1": {"passthrough": {"disabled": True}},
                             "step_2": {"prefetch": 3, "replicas": 2, "disable_dynamic_flow_control": True,
                                        "log_level": "info"}},
        },
        "relationships": {"workspace": {"data": {"type": "workspace", "id": workspace_id}}},
        "type": "flow"}}


def linear_body(credential_id: str, workspace_id: str, name: str = "My flow") -> dict:
    """The seed's request with its branch (step_4) removed: a single path."""
    body = seed_create_body(credential_id, workspace_id)
    graph = body["data"]["attributes"]["graph"]
    graph["nodes"] = graph["nodes"][:3]
    graph["edges"] = graph["edges"][:2]
    body["data"]["attributes"]["name"] = name
    return body


SEED_PATCH_BODY = {"data": {"type": "flow", "id": "{FLOW_ID}", "attributes": {
    "name": "this is a test task",
    "nodes_config": {"step_1": {"passthrough": {"disabled": True}},
                     "step_2": {"prefetch": 3, "disable_dynamic_flow_control": True, "replicas": 2,
                                "log_level": "info"}}}}}


def patch_body(flow_id: str) -> dict:
    body = copy.deepcopy(SEED_PATCH_BODY)
    body["data"]["id"] = flow_id
    return body


class V2:
    """An org's admin calling /v2 with Basic auth."""

    def __init__(self, app, client, org):
        self.client, self.org = client, org
        self.headers = basic_headers(app, org.admin_id, org.admin_headers)
        self.credential = file_hub_app(client, org.admin_headers)

    def call(self, method: str, path: str, body=None, **params):
        return self.client.open(path, method=method, json=body, headers=self.headers, query_string=params or None)

    def create(self, name: str = "My flow", **attributes):
        body = linear_body(self.credential, self.org.id, name)
        body["data"]["attributes"].update(attributes)
        answer = self.call("POST", "/v2/flows", body)
        assert answer.status_code == 201, answer.json
        return answer.json["data"]
