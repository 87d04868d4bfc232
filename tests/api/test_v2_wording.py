"""v2 errors speak v2: flows, steps and credentials, the request's own field names, and pointers only into a
document the request sent (`/data/type` is not an attribute). Graphs that could not run are refused at write time."""
from __future__ import annotations

import uuid

import pytest

from tests.api.test_v2_support import V2, linear_body


@pytest.fixture()
def v2(app, client, org):
    return V2(app, client, org)


def only_error(answer) -> dict:  # noqa: ANN001
    [error] = answer.json["errors"]
    return error


def test_a_step_range_error_names_the_v2_attribute(v2):
    flow_id = v2.create()["id"]
    answer = v2.call("POST", f"/v2/flows/{flow_id}/executions",
                     {"data": {"type": "execution", "attributes": {"run_from_step": 9}}})
    error = only_error(answer)
    assert answer.status_code == 400
    assert error["detail"] == "run_from_step must be between 1 and 3, got 9"
    assert error["source"] == {"pointer": "/data/attributes/run_from_step"}


def test_an_active_run_is_named_as_a_flow(v2):
    flow_id = v2.create()["id"]
    assert v2.call("POST", f"/v2/flows/{flow_id}/executions").status_code == 202
    error = only_error(v2.call("POST", f"/v2/flows/{flow_id}/executions"))
    assert error["detail"].startswith(f"Flow {flow_id} is already queued or running")
    assert "Workflow" not in error["detail"] and "source" not in error


def test_a_credential_in_use_is_named_a_credential_and_points_nowhere(v2):
    v2.create()
    answer = v2.call("DELETE", f"/v2/credentials/{v2.credential}")
    error = only_error(answer)
    assert answer.status_code == 409
    assert error["detail"].startswith("Credential ") and "Registered application" not in error["detail"]
    assert "workflow" not in error["detail"].lower()
    assert "source" not in error  # a DELETE sends no document


def test_a_wrong_type_points_at_data_type(v2):
    flow_id = v2.create()["id"]
    answer = v2.call("PATCH", f"/v2/flows/{flow_id}", {"data": {"type": "credential", "id": flow_id,
                                                                 "attributes": {}}})
    assert answer.status_code == 409
    assert only_error(answer)["source"] == {"pointer": "/data/type"}


@pytest.mark.parametrize("body", [{}, {"data": None}, {"data": []}, {"meta": {}}])
def test_a_document_without_a_data_object_points_at_data(v2, body):
    answer = v2.call("POST", "/v2/flows", body)
    assert answer.status_code == 400
    assert only_error(answer)["source"] == {"pointer": "/data"}


@pytest.mark.parametrize("part", ["mapper", "condition"])
def test_a_mapper_or_condition_after_a_file_step_is_refused(v2, part):
    body = linear_body(v2.credential, v2.org.id)
    graph = body["data"]["attributes"]["graph"]
    graph["nodes"][1] = {"id": "step_2", "command": "csv.from_records", "fields": {}}
    graph["edges"][1]["config"] = {"mapper": {"name": "result"}} if part == "mapper" else {"condition": "true"}
    answer = v2.call("POST", "/v2/flows", body)
    error = only_error(answer)
    assert answer.status_code == 422, answer.json
    assert error["source"] == {"pointer": f"/data/attributes/graph/edges/1/config/{part}"}
    assert "step_2" in error["detail"] and "gives a file" in error["detail"]


def empty_flow(app, v2) -> str:
    """A flow whose graph has no nodes: what a workflow with an empty chain looks like in v2."""
    from canvas.models import Workflow

    flow_id = v2.create()["id"]
    with app.extensions["canvas"].db.transaction() as session:
        session.get(Workflow, uuid.UUID(flow_id)).chain = []
    return flow_id


def test_an_empty_flow_cannot_start_and_says_so_in_v2_words(app, v2):
    flow_id = empty_flow(app, v2)
    answer = v2.call("POST", f"/v2/flows/{flow_id}/executions")
    error = only_error(answer)
    assert answer.status_code == 422
    assert "has no steps" in error["detail"] and "runFromBlock" not in error["detail"]


def test_copying_an_empty_flow_is_refused_without_a_pointer_into_a_graph_not_sent(app, v2):
    flow_id = empty_flow(app, v2)
    body = {"data": {"type": "flow-copy", "attributes": {"name": "Copy"},
                     "relationships": {"dest_workspace": {"data": {"type": "workspace", "id": v2.org.id}}}}}
    answer = v2.call("POST", f"/v2/flows/{flow_id}/copy", body)
    error = only_error(answer)
    assert answer.status_code == 422, answer.json
    assert "no steps" in error["detail"] and "source" not in error


def test_a_client_that_accepts_no_json_gets_406(v2):
    answer = v2.client.get("/v2/flows", headers={**v2.headers, "Accept": "application/xml"})
    assert answer.status_code == 406
    assert answer.json["errors"][0]["status"] == "406"
    for accept in ("application/vnd.api+json", "application/json", "*/*", "application/*;q=0.5"):
        assert v2.client.get("/v2/flows", headers={**v2.headers, "Accept": accept}).status_code == 200, accept
    assert v2.client.get("/v2/flows", headers={"Authorization": v2.headers["Authorization"]}).status_code == 200


def test_a_204_has_no_content_type(v2):
    flow_id = v2.create()["id"]
    answer = v2.call("DELETE", f"/v2/flows/{flow_id}")
    assert answer.status_code == 204 and answer.data == b""
    assert "Content-Type" not in answer.headers


def test_the_seeds_urls_with_a_trailing_slash_answer_as_without(v2):
    for path in ("/v2/flows/", "/v2/credentials/"):
        answer = v2.call("GET", path)
        assert answer.status_code == 200, path
        assert answer.json["data"] == v2.call("GET", path.rstrip("/")).json["data"]


@pytest.mark.parametrize(("path", "parameter"), [
    ("/v2/flows", "filter[statsu]"), ("/v2/flows", "include"), ("/v2/executions", "filter[flows]"),
    ("/v2/credentials", "page[nmber]"), ("/v2/users/me", "fields[user]"),
])
def test_an_unknown_query_parameter_is_refused_naming_it(v2, path, parameter):
    answer = v2.call("GET", path, **{parameter: "x"})
    assert answer.status_code == 400, answer.json
    error = only_error(answer)
    assert error["source"] == {"parameter": parameter} and parameter in error["detail"]


def test_known_query_parameters_still_work(v2):
    v2.create()
    assert v2.call("GET", "/v2/flows", **{"filter[status]": "inactive", "page[size]": "5"}).json["meta"]["total"] == 1


def test_a_search_with_a_nul_character_is_refused_not_a_match_for_everything(v2):
    v2.create()
    answer = v2.call("GET", "/v2/flows", search="\x00")
    assert answer.status_code == 400
    assert only_error(answer)["source"] == {"parameter": "search"}


def test_a_retry_of_an_unknown_execution_says_execution_and_points_at_its_attribute(v2):
    flow_id = v2.create()["id"]
    answer = v2.call("POST", f"/v2/flows/{flow_id}/executions", {"data": {"type": "execution", "attributes": {
        "retry_failed_records": {"execution_id": str(uuid.uuid4()), "step": 1}}}})
    error = only_error(answer)
    assert answer.status_code == 404 and error["detail"].startswith("Unknown execution ")
    assert error["source"] == {"pointer": "/data/attributes/retry_failed_records/execution_id"}


def test_a_cron_that_never_fires_is_said_in_v2_words(v2):
    flow_id = v2.create()["id"]
    answer = v2.call("PATCH", f"/v2/flows/{flow_id}", {"data": {"type": "flow", "id": flow_id, "attributes": {
        "cron": "0 0 30 2 *"}}})
    error = only_error(answer)
    assert answer.status_code == 400 and "scheduleFrequency" not in error["detail"], error
    assert error["source"] == {"pointer": "/data/attributes/cron"}


# --- JSON:API's rules for a request document ---------------------------------------------------------------------

@pytest.mark.parametrize("data, status, pointer", [
    ({"attributes": {"name": "no type"}}, 400, "/data/type"),
    ({"type": "flow", "id": 5, "attributes": {"name": "numeric id"}}, 400, "/data/id"),
    ({"type": "flow", "id": "mine", "attributes": {"name": "client id"}}, 403, "/data/id"),
    ({"type": "flow", "attributes": {"name": "x"}, "relationships": []}, 400, "/data/relationships")])
def test_a_document_breaking_json_api_rules_is_refused_pointing_at_the_member(v2, data, status, pointer):
    answer = v2.call("POST", "/v2/flows", {"data": data})
    error = only_error(answer)
    assert answer.status_code == status and error["source"] == {"pointer": pointer}, error


def test_a_patch_without_a_type_is_refused_and_changes_nothing(v2):
    flow = v2.create(name="Kept")
    answer = v2.call("PATCH", f"/v2/flows/{flow['id']}", {"data": {"attributes": {"name": "Changed"}}})
    assert answer.status_code == 400 and only_error(answer)["source"] == {"pointer": "/data/type"}
    assert v2.call("GET", f"/v2/flows/{flow['id']}").json["data"]["attributes"]["name"] == "Kept"
