"""Flow drafts (/v2/flows/<id>/draft, publish) and copy (/v2/flows/<id>/copy), and filter[has_draft]."""
from __future__ import annotations

import copy

import pytest

from tests.api.test_v2_support import JSONAPI, V2


@pytest.fixture()
def v2(app, client, org):
    return V2(app, client, org)


def draft_body(**attributes) -> dict:
    return {"data": {"type": "flow-draft", "attributes": attributes}}


def changed_graph(flow: dict) -> dict:
    graph = copy.deepcopy(flow["attributes"]["graph"])
    graph["nodes"][1]["fields"] = {"expression": "$merge([$, {\"drafted\": true}])"}
    return graph


def test_get_put_delete_a_draft_without_touching_the_flow(v2):
    flow = v2.create("Drafted")
    flow_id = flow["id"]
    missing = v2.call("GET", f"/v2/flows/{flow_id}/draft")
    assert missing.status_code == 404 and missing.mimetype == JSONAPI
    assert missing.json["errors"][0]["status"] == "404"

    graph = changed_graph(flow)
    put = v2.call("PUT", f"/v2/flows/{flow_id}/draft",
                  draft_body(name="Drafted v2", description="Some real description", graph=graph, cron="*/5 * * * *"))
    assert put.status_code == 200, put.json
    draft = put.json["data"]
    assert draft["type"] == "flow-draft" and draft["links"]["self"] == f"/v2/flows/{flow_id}/draft"
    attributes = draft["attributes"]
    assert attributes["name"] == "Drafted v2" and attributes["description"] == "Some real description"
    assert attributes["cron"] == "*/5 * * * *" and attributes["graph"] == graph
    assert attributes["nodes_config"]["step_2"]["prefetch"] == 3  # kept from the flow
    assert attributes["created_at"] and attributes["updated_at"]
    assert draft["relationships"]["flow"]["data"] == {"type": "flow", "id": flow_id}
    assert put.json["meta"] == {}

    # a second PUT updates the same draft; attributes not given stay
    again = v2.call("PUT", f"/v2/flows/{flow_id}/draft", draft_body(description=None))
    assert again.status_code == 200 and again.json["data"]["id"] == draft["id"]
    assert again.json["data"]["attributes"]["name"] == "Drafted v2"
    assert again.json["data"]["attributes"]["description"] is None
    assert v2.call("GET", f"/v2/flows/{flow_id}/draft").json["data"]["attributes"]["graph"] == graph

    unchanged = v2.call("GET", f"/v2/flows/{flow_id}").json["data"]
    assert unchanged["attributes"]["name"] == "Drafted" and unchanged["attributes"]["cron"] is None
    assert unchanged["attributes"]["graph"] == flow["attributes"]["graph"]
    assert unchanged["relationships"]["draft"]["data"] == {"type": "flow-draft", "id": draft["id"]}
    assert "draft" not in flow["relationships"]

    deleted = v2.call("DELETE", f"/v2/flows/{flow_id}/draft")
    assert deleted.status_code == 204 and deleted.data == b""
    assert v2.call("GET", f"/v2/flows/{flow_id}/draft").status_code == 404
    assert v2.call("DELETE", f"/v2/flows/{flow_id}/draft").status_code == 404
    assert v2.call("GET", "/v2/flows/not-an-id/draft").status_code == 404


def test_a_bad_graph_in_a_draft_is_refused_naming_the_node(v2):
    flow = v2.create()
    graph = changed_graph(flow)
    graph["nodes"][1]["command"] = "no.such.block"
    answer = v2.call("PUT", f"/v2/flows/{flow['id']}/draft", draft_body(graph=graph))
    assert answer.status_code == 422
    error = answer.json["errors"][0]
    assert "step_2" in error["detail"] and error["source"]["pointer"] == "/data/attributes/graph/nodes/1/command"
    assert v2.call("GET", f"/v2/flows/{flow['id']}/draft").status_code == 404  # nothing was kept

    cyclic = changed_graph(flow)  # graphs may branch, not loop
    cyclic["edges"].append({"source": "step_3", "target": "step_1"})
    answer = v2.call("PUT", f"/v2/flows/{flow['id']}/draft", draft_body(graph=cyclic))
    assert answer.status_code == 422 and "step_1 -> step_2 -> step_3 -> step_1" in answer.json["errors"][0]["detail"]
    assert v2.call("PUT", f"/v2/flows/{flow['id']}/draft", draft_body(cron="nope")).status_code == 400
    wrong_type = {"data": {"type": "flow", "attributes": {"name": "x"}}}
    assert v2.call("PUT", f"/v2/flows/{flow['id']}/draft", wrong_type).status_code == 409


def test_publish_makes_a_new_version_and_changes_the_canvas_workflow(v2):
    flow = v2.create("To publish")
    flow_id = flow["id"]
    first_version = flow["relationships"]["latest_version"]["data"]["id"]
    assert v2.call("POST", f"/v2/flows/{flow_id}/draft/publish").status_code == 404  # no draft

    graph = changed_graph(flow)
    assert v2.call("PUT", f"/v2/flows/{flow_id}/draft",
                   draft_body(name="Published", graph=graph)).status_code == 200
    before = v2.client.get(f"/api/Workflow/{flow_id}", headers=v2.org.admin_headers).json
    assert before["chain"][1]["variables"] == {"expression": "$"}

    published = v2.call("POST", f"/v2/flows/{flow_id}/draft/publish")
    assert published.status_code == 200, published.json
    data = published.json["data"]
    assert data["attributes"]["name"] == "Published" and "draft" not in data["relationships"]
    assert data["attributes"]["graph"]["nodes"][1]["fields"] == graph["nodes"][1]["fields"]
    new_version = data["relationships"]["latest_version"]["data"]["id"]
    assert new_version != first_version
    versions = v2.call("GET", f"/v2/flows/{flow_id}/versions").json
    assert [row["id"] for row in versions["data"]] == [new_version, first_version]

    after = v2.client.get(f"/api/Workflow/{flow_id}", headers=v2.org.admin_headers).json
    assert after["name"] == "Published"
    assert after["chain"][1]["variables"] == graph["nodes"][1]["fields"]
    assert v2.call("GET", f"/v2/flows/{flow_id}/draft").status_code == 404


def test_filter_has_draft(v2):
    with_draft, without = v2.create("With draft")["id"], v2.create("Without")["id"]
    assert v2.call("PUT", f"/v2/flows/{with_draft}/draft", draft_body(name="Draft")).status_code == 200

    def listed(value: str) -> list[str]:
        answer = v2.call("GET", "/v2/flows", **{"filter[has_draft]": value})
        assert answer.status_code == 200
        return [row["id"] for row in answer.json["data"]]

    assert listed("true") == [with_draft]
    assert listed("false") == [without]
    assert v2.call("GET", "/v2/flows", **{"filter[has_draft]": "maybe"}).status_code == 400


def test_copy_into_a_new_flow_puts_the_copy_in_its_draft(v2):
    source = v2.create("Original")
    body = {"data": {"type": "flow-copy", "attributes": {"name": "Copied"},
                     "relationships": {"dest_workspace": {"data": {"type": "workspace", "id": v2.org.id}}}}}
    answer = v2.call("POST", f"/v2/flows/{source['id']}/copy", body)
    assert answer.status_code == 201, answer.json
    copied = answer.json["data"]
    assert copied["type"] == "flow" and copied["id"] != source["id"]
    assert answer.headers["Location"] == f"/v2/flows/{copied['id']}"
    assert copied["attributes"]["name"] == "Copied" and copied["attributes"]["status"] == "inactive"
    assert copied["attributes"]["graph"] == {"nodes": [], "edges": []}
    assert copied["relationships"]["draft"]["data"]["type"] == "flow-draft"

    draft = v2.call("GET", f"/v2/flows/{copied['id']}/draft").json["data"]["attributes"]
    assert draft["name"] == "Copied" and draft["graph"] == source["attributes"]["graph"]
    assert draft["nodes_config"] == source["attributes"]["nodes_config"]
    assert v2.call("GET", f"/v2/flows/{source['id']}/draft").status_code == 404  # the original is untouched

    published = v2.call("POST", f"/v2/flows/{copied['id']}/draft/publish")
    assert published.status_code == 200
    assert published.json["data"]["attributes"]["graph"] == source["attributes"]["graph"]


def test_copy_into_an_existing_flows_draft_and_refusals(v2, app, client, make_org):
    source, destination = v2.create("Source"), v2.create("Destination")
    body = {"data": {"type": "flow-copy", "attributes": {"dest_flow_id": destination["id"]}}}
    answer = v2.call("POST", f"/v2/flows/{source['id']}/copy", body)
    assert answer.status_code == 201 and answer.json["data"]["id"] == destination["id"]
    draft = v2.call("GET", f"/v2/flows/{destination['id']}/draft").json["data"]["attributes"]
    assert draft["name"] == "Source"
    assert v2.call("GET", f"/v2/flows/{destination['id']}").json["data"]["attributes"]["name"] == "Destination"

    both = {"data": {"type": "flow-copy", "attributes": {"dest_flow_id": destination["id"]},
                     "relationships": {"dest_workspace": {"data": {"type": "workspace", "id": v2.org.id}}}}}
    assert v2.call("POST", f"/v2/flows/{source['id']}/copy", both).status_code == 400
    neither = {"data": {"type": "flow-copy", "attributes": {}}}
    assert v2.call("POST", f"/v2/flows/{source['id']}/copy", neither).status_code == 400
    elsewhere = {"data": {"type": "flow-copy", "relationships": {
        "dest_workspace": {"data": {"type": "workspace", "id": "00000000-0000-0000-0000-000000000000"}}}}}
    assert v2.call("POST", f"/v2/flows/{source['id']}/copy", elsewhere).status_code == 404

    other = V2(app, client, make_org("Other"))
    assert other.call("POST", f"/v2/flows/{source['id']}/copy", neither).status_code == 404
    assert other.call("GET", f"/v2/flows/{destination['id']}/draft").status_code == 404
