"""The seed's flow requests replayed against /v2: create, list (paging, filter, search, sort), get, PATCH, start,
stop, delete; graph <-> chain; and flows seen as workflows in the Canvas dialect and back."""
from __future__ import annotations

import base64

import pytest

from canvas.v2.auth import BAD_CREDENTIALS_MESSAGE
from tests.api.test_v2_support import (
    JSONAPI,
    V2,
    linear_body,
    patch_body,
    seed_create_body,
)
from tests.api.workflow_helpers import new_workflow, published_template, template_body


@pytest.fixture()
def v2(app, client, org):
    return V2(app, client, org)


def test_seed_create_with_a_branching_graph_is_accepted(v2):
    # graphs may fork (tests/api/test_v2_graphs.py): the seed's graph, forking at step_2, is the seed's answer
    answer = v2.call("POST", "/v2/flows", seed_create_body(v2.credential, v2.org.id))
    assert answer.status_code == 201 and answer.mimetype == JSONAPI
    edges = answer.json["data"]["attributes"]["graph"]["edges"]
    assert [edge["id"] for edge in edges] == ["step_1:step_2", "mapper:step_2:step_3", "mapper:step_2:step_4"]


def test_seed_create_of_a_single_path_answers_the_documented_flow(v2):
    answer = v2.call("POST", "/v2/flows", linear_body(v2.credential, v2.org.id))
    assert answer.status_code == 201
    assert answer.mimetype == JSONAPI
    flow = answer.json["data"]
    assert flow["type"] == "flow" and flow["links"]["self"] == f"/v2/flows/{flow['id']}"
    attributes = flow["attributes"]
    for name in ("name", "status", "type", "created_at", "updated_at", "current_status", "default_mapper_type",
                 "description", "graph", "nodes_config", "api_version", "last_modified"):
        assert name in attributes
    assert attributes["status"] == "inactive" and attributes["type"] == "ordinary"
    assert attributes["nodes_config"]["step_2"]["prefetch"] == 3
    nodes = attributes["graph"]["nodes"]
    assert [node["id"] for node in nodes] == ["step_1", "step_2", "step_3"]
    assert nodes[2]["credentials_id"] == v2.credential and nodes[2]["command"] == "filehub.write"
    mapped = attributes["graph"]["edges"][1]
    assert mapped["id"] == "mapper:step_2:step_3" and mapped["config"]["mapper"]["status"] == "\"sold\""
    relationships = flow["relationships"]
    assert relationships["user"]["data"] == {"type": "user", "id": v2.org.admin_id}
    assert relationships["latest_version"]["data"]["type"] == "flow-version"
    assert len(relationships["latest_version"]["data"]["id"]) == 40


def test_vnd_api_json_content_type_is_accepted(v2):
    import json

    answer = v2.client.post("/v2/flows", data=json.dumps(linear_body(v2.credential, v2.org.id)),
                            headers={**v2.headers, "Content-Type": JSONAPI})
    assert answer.status_code == 201


def test_get_patch_start_stop_delete_as_in_the_seed(v2):
    flow_id = v2.create()["id"]
    got = v2.call("GET", f"/v2/flows/{flow_id}")
    assert got.status_code == 200 and got.json["data"]["id"] == flow_id and got.json["meta"] == {}

    patched = v2.call("PATCH", f"/v2/flows/{flow_id}", patch_body(flow_id))
    assert patched.status_code == 200
    assert patched.json["data"]["attributes"]["name"] == "this is a test task"
    assert patched.json["data"]["attributes"]["nodes_config"]["step_2"]["replicas"] == 2

    no_cron = v2.call("POST", f"/v2/flows/{flow_id}/start")
    assert no_cron.status_code == 422 and "cron" in no_cron.json["errors"][0]["detail"]
    assert "source" not in no_cron.json["errors"][0]  # the request has no document to point into
    body = {"data": {"type": "flow", "id": flow_id, "attributes": {"cron": "*/3 * * * *"}}}
    assert v2.call("PATCH", f"/v2/flows/{flow_id}", body).json["data"]["attributes"]["cron"] == "*/3 * * * *"  # Unix cron, echoed as sent

    started = v2.call("POST", f"/v2/flows/{flow_id}/start")
    assert started.status_code == 202
    assert started.json["data"]["attributes"]["status"] == "active"
    assert started.json["data"]["attributes"]["due_execution"] is not None
    assert started.json["data"]["attributes"]["last_start_time"] is not None
    canvas = v2.client.get(f"/api/Workflow/{flow_id}", headers=v2.org.admin_headers).json
    assert canvas["isScheduled"] is True

    stopped = v2.call("POST", f"/v2/flows/{flow_id}/stop")
    assert stopped.status_code == 202 and stopped.json == {"data": {}, "meta": {}}
    assert v2.call("GET", f"/v2/flows/{flow_id}").json["data"]["attributes"]["status"] == "inactive"

    deleted = v2.call("DELETE", f"/v2/flows/{flow_id}")
    assert deleted.status_code == 204 and deleted.data == b""
    assert v2.call("GET", f"/v2/flows/{flow_id}").status_code == 404


def test_list_with_paging_filter_search_and_sort(v2):
    ids = [v2.create(name)["id"] for name in ("Webhook to FTP", "Alpha timer", "Zulu WEBHOOK sync")]
    v2.call("PATCH", f"/v2/flows/{ids[1]}", {"data": {"type": "flow", "id": ids[1],
                                                      "attributes": {"cron": "0 0 * * * ?", "type": "long_running"}}})
    v2.call("POST", f"/v2/flows/{ids[1]}/start")

    paged = v2.call("GET", "/v2/flows", **{"page[size]": "2", "page[number]": "1", "workspace_id": v2.org.id})
    assert paged.status_code == 200
    assert len(paged.json["data"]) == 2
    assert paged.json["meta"] == {"page": 1, "per_page": 2, "total": 3, "total_pages": 2}
    assert "next" in paged.json["links"] and "prev" not in paged.json["links"]
    second = v2.call("GET", "/v2/flows", **{"page[size]": "2", "page[number]": "2"})
    assert len(second.json["data"]) == 1 and "prev" in second.json["links"]

    active = v2.call("GET", "/v2/flows", **{"filter[status]": "active"}).json["data"]
    assert [flow["id"] for flow in active] == [ids[1]]
    inactive = v2.call("GET", "/v2/flows", **{"filter[status]": "inactive"}).json["data"]
    assert {flow["id"] for flow in inactive} == {ids[0], ids[2]}
    long_running = v2.call("GET", "/v2/flows", **{"filter[type]": "long_running"}).json["data"]
    assert [flow["id"] for flow in long_running] == [ids[1]]
    assert len(v2.call("GET", "/v2/flows", **{"filter[user]": v2.org.admin_id}).json["data"]) == 3
    assert v2.call("GET", "/v2/flows", **{"filter[has_draft]": "true"}).json["data"] == []

    found = v2.call("GET", "/v2/flows", search="  webhook ").json["data"]
    assert {flow["id"] for flow in found} == {ids[0], ids[2]}
    by_name = v2.call("GET", "/v2/flows", sort="name").json["data"]
    assert [flow["attributes"]["name"] for flow in by_name] == ["Alpha timer", "Webhook to FTP", "Zulu WEBHOOK sync"]
    by_name_desc = v2.call("GET", "/v2/flows", sort="-name").json["data"]
    assert by_name_desc[0]["attributes"]["name"] == "Zulu WEBHOOK sync"
    newest = v2.call("GET", "/v2/flows", sort="-created_at").json["data"]
    assert newest[0]["id"] == ids[2]


@pytest.mark.parametrize("parameter, value", [
    ("page[size]", "0"), ("page[size]", "-1"), ("page[size]", "ten"), ("page[number]", "0"),
    ("page[number]", "-3"), ("page[number]", "x"), ("page[size]", "501"), ("filter[status]", "sleeping"),
    ("filter[type]", "odd"), ("filter[user]", "not-an-id"), ("filter[has_draft]", "maybe"), ("sort", "colour"),
], ids=lambda value: str(value))
def test_bad_list_parameters_answer_400_naming_the_parameter(v2, parameter, value):
    answer = v2.call("GET", "/v2/flows", **{parameter: value})
    assert answer.status_code == 400
    assert answer.json["errors"][0]["source"] == {"parameter": parameter}


def test_a_page_beyond_the_end_is_empty(v2):
    v2.create()
    answer = v2.call("GET", "/v2/flows", **{"page[number]": "9", "page[size]": "5"})
    assert answer.status_code == 200 and answer.json["data"] == []
    assert answer.json["meta"]["total"] == 1 and "next" not in answer.json["links"]


def test_malformed_requests_get_jsonapi_errors_naming_the_field(v2):
    flow_id = v2.create()["id"]
    assert v2.call("POST", "/v2/flows", {"nope": 1}).status_code == 400
    no_name = linear_body(v2.credential, v2.org.id)
    del no_name["data"]["attributes"]["name"]
    answer = v2.call("POST", "/v2/flows", no_name)
    assert answer.status_code == 400 and answer.json["errors"][0]["source"]["pointer"] == "/data/attributes/name"
    bad_block = linear_body(v2.credential, v2.org.id)
    bad_block["data"]["attributes"]["graph"]["nodes"][1]["command"] = "no.such.block"
    answer = v2.call("POST", "/v2/flows", bad_block)
    assert answer.status_code == 422 and "step_2" in answer.json["errors"][0]["detail"]
    assert answer.json["errors"][0]["source"]["pointer"] == "/data/attributes/graph/nodes/1/command"
    bad_mapper = linear_body(v2.credential, v2.org.id)
    bad_mapper["data"]["attributes"]["graph"]["edges"][1]["config"]["mapper"] = {"x": "(("}
    assert v2.call("POST", "/v2/flows", bad_mapper).status_code == 422
    wrong_type = {"data": {"type": "credential", "id": flow_id, "attributes": {}}}
    assert v2.call("PATCH", f"/v2/flows/{flow_id}", wrong_type).status_code == 409
    assert v2.call("PATCH", f"/v2/flows/{flow_id}", {"data": {"type": "flow", "attributes": {"cron": "nope"}}}) \
        .json["errors"][0]["source"]["pointer"] == "/data/attributes/cron"
    assert v2.call("GET", "/v2/flows/not-an-id").status_code == 404
    text = v2.client.post("/v2/flows", data="{", headers={**v2.headers, "Content-Type": "application/json"})
    assert text.status_code == 400 and "errors" in text.json


def test_basic_auth_is_required_and_checked(app, client, org):
    v2 = V2(app, client, org)
    assert client.get("/v2/flows").status_code == 401
    assert client.get("/v2/flows", headers=org.admin_headers).status_code == 401
    wrong = client.get("/v2/flows", auth=("nobody@example.test", "secret"))
    assert wrong.status_code == 401 and wrong.json["errors"][0]["status"] == "401"
    assert client.get("/v2/users/me", headers=v2.headers).json["data"]["id"] == org.admin_id


@pytest.mark.parametrize("value", ["Basic øø", "Basic ////", "Basic " + base64.b64encode(b"\xff\xfe:\xc3").decode(),
                                   "Basic", "Bearer x", "Basic =="])
def test_an_authorization_header_that_cannot_be_read_is_a_401(client, value):
    answer = client.get("/v2/flows", headers={"Authorization": value})
    assert answer.status_code == 401 and answer.json["errors"][0]["detail"] == BAD_CREDENTIALS_MESSAGE, answer.data


def test_a_401_names_the_basic_scheme_so_http_clients_send_credentials(client, org):
    import urllib.request

    for answer in (client.get("/v2/flows"), client.get("/v2/flows", auth=("nobody@example.test", "secret"))):
        challenge = answer.headers["WWW-Authenticate"]
        match = urllib.request.AbstractBasicAuthHandler.rx.search(challenge)  # how urllib reads a challenge
        assert match is not None and match.group(1) == "Basic" and match.group(3), challenge


def test_a_new_api_key_works_for_basic_auth(app, client, org):
    v2 = V2(app, client, org)
    created = v2.call("POST", "/v2/api-keys")
    assert created.status_code == 201
    secret = created.json["data"]["attributes"]["secret_key"]
    email = v2.call("GET", "/v2/users/me").json["data"]["attributes"]["email"]
    assert client.get("/v2/flows", auth=(email, secret)).status_code == 200
    assert client.get("/v2/flows", headers=v2.headers).status_code == 200  # the older key still works


def test_tenancy_other_accounts_flows_are_invisible(app, client, org, make_org):
    v2 = V2(app, client, org)
    flow_id = v2.create()["id"]
    other = V2(app, client, make_org("Other"))
    assert other.call("GET", f"/v2/flows/{flow_id}").status_code == 404
    assert other.call("GET", "/v2/flows").json["data"] == []
    assert other.call("DELETE", f"/v2/flows/{flow_id}").status_code == 404


def test_a_flow_is_a_workflow_in_the_canvas_dialect(v2):
    flow_id = v2.create("Seen in Canvas")["id"]
    listed = v2.client.get("/api/Workflows", headers=v2.org.admin_headers).json
    assert [workflow["name"] for workflow in listed if workflow["id"] == flow_id] == ["Seen in Canvas"]
    detail = v2.client.get(f"/api/Workflow/{flow_id}", headers=v2.org.admin_headers).json
    assert [entry["block"] for entry in detail["chain"]] == ["records.from_variable", "jsonata.transform",
                                                             "filehub.write"]
    assert detail["regApplicationIds"] == [v2.credential]


def test_a_canvas_workflow_is_a_flow_in_v2(v2):
    template_id = published_template(v2.client, v2.org.admin_headers, template_body())
    workflow_id = new_workflow(v2.client, v2.org.admin_headers, template_id, v2.credential, name="From Canvas")
    flow = v2.call("GET", f"/v2/flows/{workflow_id}").json["data"]
    assert flow["attributes"]["name"] == "From Canvas"
    graph = flow["attributes"]["graph"]
    assert [node["id"] for node in graph["nodes"]] == ["step_1", "step_2", "step_3"]
    assert graph["nodes"][2]["credentials_id"] == v2.credential
    assert [(edge["source"], edge["target"]) for edge in graph["edges"]] == [("step_1", "step_2"),
                                                                             ("step_2", "step_3")]
    assert workflow_id in [entry["id"] for entry in v2.call("GET", "/v2/flows").json["data"]]
    assert v2.call("DELETE", f"/v2/flows/{workflow_id}").status_code == 204
    assert v2.client.get(f"/api/Workflow/{workflow_id}", headers=v2.org.admin_headers).status_code == 404


def test_openapi_covers_both_dialects(client):
    paths = client.get("/openapi.json").json["paths"]
    assert "/api/Workflows" in paths and "/v2/flows" in paths and "/v2/flows/{flow_id}/start" in paths
    assert "/v2/credentials" in paths and "/v2/logs" in paths
    metadata = client.get("/api/GetMetaData").json
    assert all("/v2" not in str(entry) for entry in metadata)
