"""Flow graphs that fork and join (canvas.execution.graph describes how they are stored): accepted, stored with each
block's `inputs`, read back as given; cycles and joins of files refused naming them; the seed's branching graphs;
`failure_policy`; run_from_step / run_till_step by step id."""
from __future__ import annotations

import uuid

import pytest

from tests.api.test_v2_seed_replay import example
from tests.api.test_v2_support import JSONAPI, V2, linear_body, seed_create_body


@pytest.fixture()
def v2(app, client, org):
    return V2(app, client, org)


def node(node_id: str, command: str = "jsonata.transform", **fields) -> dict:
    defaults = {"jsonata.transform": {"expression": "$"}, "records.from_variable": {"records": [{"n": 1}]},
                "csv.from_records": {}, "noop": {}}
    return {"id": node_id, "command": command, "name": "", "description": "",
            "fields": fields or defaults.get(command, {})}


def edge(source: str, target: str, mapper: dict | None = None, condition: str | None = None) -> dict:
    given = {"source": source, "target": target}
    if mapper is not None or condition is not None:
        given["config"] = {"mapper_type": "jsonata", "mapper": mapper or {}, "condition": condition}
    return given


def flow_body(v2: V2, nodes: list, edges: list, name: str = "Graph", **attributes) -> dict:
    return {"data": {"type": "flow", "attributes": {"name": name, "type": "ordinary",
                                                    "graph": {"nodes": nodes, "edges": edges}, **attributes},
                     "relationships": {"workspace": {"data": {"type": "workspace", "id": v2.org.id}}}}}


def stored_chain(app, flow_id: str) -> list[dict]:
    from canvas.models import Workflow

    with app.extensions["canvas"].db.transaction() as session:
        return session.get(Workflow, uuid.UUID(flow_id)).chain


def only_error(answer) -> dict:  # noqa: ANN001
    [error] = answer.json["errors"]
    return error


FORK_NODES = [node("read", "records.from_variable"), node("shape"), node("sold"), node("pending")]
FORK_EDGES = [edge("read", "shape"), edge("shape", "sold", {"status": "\"sold\""}),
              edge("shape", "pending", {"status": "\"pending\""}, "qty > 0")]


def test_a_fork_is_stored_with_each_blocks_inputs_and_read_back_as_given(app, v2):
    answer = v2.call("POST", "/v2/flows", flow_body(v2, FORK_NODES, FORK_EDGES))
    assert answer.status_code == 201, answer.json
    flow = answer.json["data"]
    chain = stored_chain(app, flow["id"])
    assert [entry["nodeId"] for entry in chain] == ["read", "shape", "sold", "pending"]
    ids = {entry["nodeId"]: entry["uniqueBlockId"] for entry in chain}
    assert chain[0]["inputs"] == []
    assert [given["from"] for given in chain[1]["inputs"]] == [ids["read"]]
    assert [given["from"] for given in chain[2]["inputs"]] == [ids["shape"]]
    assert chain[2]["inputs"][0]["inputMapper"] == '{"status": ("sold")}'
    assert chain[3]["inputs"][0]["inputCondition"] == "qty > 0"
    assert all("inputMapper" not in entry and "edge" not in entry for entry in chain)  # on the edges only

    graph = v2.call("GET", f"/v2/flows/{flow['id']}").json["data"]["attributes"]["graph"]
    assert graph == flow["attributes"]["graph"]
    assert [n["id"] for n in graph["nodes"]] == ["read", "shape", "sold", "pending"]
    assert [(e["id"], e["source"], e["target"]) for e in graph["edges"]] == [
        ("read:shape", "read", "shape"), ("mapper:shape:sold", "shape", "sold"),
        ("mapper:shape:pending", "shape", "pending")]
    assert graph["edges"][1]["config"]["mapper"] == {"status": "\"sold\""}
    assert graph["edges"][2]["config"]["condition"] == "qty > 0"

    # sending the graph back unchanged changes nothing: same blocks, same version
    again = v2.call("PATCH", f"/v2/flows/{flow['id']}",
                    {"data": {"type": "flow", "id": flow["id"], "attributes": {"graph": graph}}})
    assert again.status_code == 200, again.json
    assert again.json["data"]["attributes"]["graph"] == graph
    assert (again.json["data"]["relationships"]["latest_version"]["data"]["id"]
            == flow["relationships"]["latest_version"]["data"]["id"])
    assert stored_chain(app, flow["id"]) == chain


def test_nodes_are_put_in_topological_order_the_given_order_breaking_ties(app, v2):
    nodes = [node("pending"), node("sold"), node("shape"), node("read", "records.from_variable")]
    answer = v2.call("POST", "/v2/flows", flow_body(v2, nodes, FORK_EDGES))
    assert answer.status_code == 201, answer.json
    assert [n["id"] for n in answer.json["data"]["attributes"]["graph"]["nodes"]] == [
        "read", "shape", "pending", "sold"]


def test_a_single_path_is_stored_as_a_chain_without_inputs(app, v2):
    nodes = [node("c"), node("a", "records.from_variable"), node("b")]  # given out of order
    answer = v2.call("POST", "/v2/flows", flow_body(v2, nodes, [edge("a", "b", {"x": "n"}), edge("b", "c")]))
    assert answer.status_code == 201, answer.json
    chain = stored_chain(app, answer.json["data"]["id"])
    assert [entry["nodeId"] for entry in chain] == ["a", "b", "c"]
    assert not any("inputs" in entry for entry in chain)
    assert chain[1]["inputMapper"] == '{"x": (n)}' and chain[1]["edge"]["mapper"] == {"x": "n"}


def test_a_diamond_is_accepted_its_join_taking_the_parents_in_step_order(app, v2):
    nodes = [node("start", "records.from_variable"), node("left"), node("right"), node("join", "noop")]
    edges = [edge("start", "left"), edge("start", "right"), edge("right", "join", condition="ok"),
             edge("left", "join")]
    answer = v2.call("POST", "/v2/flows", flow_body(v2, nodes, edges))
    assert answer.status_code == 201, answer.json
    chain = stored_chain(app, answer.json["data"]["id"])
    ids = {entry["nodeId"]: entry["uniqueBlockId"] for entry in chain}
    assert [given["from"] for given in chain[3]["inputs"]] == [ids["left"], ids["right"]]  # by position
    assert chain[3]["inputs"][1]["inputCondition"] == "ok"
    graph = answer.json["data"]["attributes"]["graph"]
    assert [e["id"] for e in graph["edges"]] == ["start:left", "start:right", "left:join", "mapper:right:join"]


def test_a_cycle_is_refused_naming_it(v2):
    nodes = [node("step_a", "records.from_variable"), node("step_b"), node("step_c")]
    edges = [edge("step_a", "step_b"), edge("step_b", "step_c"), edge("step_c", "step_b")]
    answer = v2.call("POST", "/v2/flows", flow_body(v2, nodes, edges))
    error = only_error(answer)
    assert answer.status_code == 422 and answer.mimetype == JSONAPI
    assert error["detail"] == "graph: the graph has a cycle: step_b -> step_c -> step_b"
    assert error["source"] == {"pointer": "/data/attributes/graph/edges"}

    loop = v2.call("POST", "/v2/flows", flow_body(v2, [node("step_a", "records.from_variable"), node("step_b")],
                                                   [edge("step_a", "step_b"), edge("step_b", "step_a")]))
    assert loop.status_code == 422
    assert only_error(loop)["detail"] == "graph: the graph has a cycle: step_a -> step_b -> step_a"


def test_a_second_edge_between_the_same_steps_is_refused_naming_it(v2):
    nodes = [node("a", "records.from_variable"), node("b")]
    answer = v2.call("POST", "/v2/flows", flow_body(v2, nodes, [edge("a", "b"), edge("a", "b", {"x": "1"})]))
    error = only_error(answer)
    assert answer.status_code == 422
    assert "a second edge from 'a' to 'b'" in error["detail"] and "graph.edges[0]" in error["detail"]
    assert error["source"] == {"pointer": "/data/attributes/graph/edges/1"}


def test_an_edge_to_an_unknown_node_is_refused_as_before(v2):
    answer = v2.call("POST", "/v2/flows", flow_body(v2, [node("a", "records.from_variable")], [edge("a", "zz")]))
    assert answer.status_code == 400
    assert only_error(answer)["source"] == {"pointer": "/data/attributes/graph/edges/0/target"}


def test_a_join_of_a_file_giving_step_is_refused_naming_the_join(v2):
    nodes = [node("read", "records.from_variable"), node("csv", "csv.from_records"), node("shape"),
             node("both", "noop")]
    edges = [edge("read", "csv"), edge("read", "shape"), edge("csv", "both"), edge("shape", "both")]
    answer = v2.call("POST", "/v2/flows", flow_body(v2, nodes, edges))
    error = only_error(answer)
    assert answer.status_code == 422
    assert error["detail"].startswith("graph: node 'both' joins the outputs of steps csv, shape, and step 'csv' "
                                      "(csv.from_records) gives a file: a join takes records only")
    assert error["source"] == {"pointer": "/data/attributes/graph/nodes/3"}


def test_a_fork_after_a_file_step_is_accepted_without_mappers(v2):
    nodes = [node("read", "records.from_variable"), node("csv", "csv.from_records"), node("one", "noop"),
             node("two", "noop")]
    answer = v2.call("POST", "/v2/flows", flow_body(v2, nodes, [edge("read", "csv"), edge("csv", "one"),
                                                                 edge("csv", "two")]))
    assert answer.status_code == 201, answer.json
    with_mapper = flow_body(v2, nodes, [edge("read", "csv"), edge("csv", "one"), edge("csv", "two", {"a": "b"})])
    refused = v2.call("POST", "/v2/flows", with_mapper)
    assert refused.status_code == 422
    assert only_error(refused)["source"] == {"pointer": "/data/attributes/graph/edges/2/config/mapper"}


def test_the_seeds_create_a_flow_graph_forking_at_step_2_is_accepted(app, v2):
    answer = v2.call("POST", "/v2/flows", seed_create_body(v2.credential, v2.org.id))
    assert answer.status_code == 201, answer.json
    graph = answer.json["data"]["attributes"]["graph"]
    assert [n["id"] for n in graph["nodes"]] == ["step_1", "step_2", "step_3", "step_4"]
    assert [e["id"] for e in graph["edges"]] == ["step_1:step_2", "mapper:step_2:step_3", "mapper:step_2:step_4"]
    assert graph["edges"][2]["config"]["mapper"] == {"status": "\"pending\"", "name": "result"}
    chain = stored_chain(app, answer.json["data"]["id"])
    assert chain[3]["inputs"][0]["from"] == chain[1]["uniqueBlockId"]
    assert chain[3]["inputs"][0]["inputMapper"] == '{"status": ("pending"), "name": (result)}'


# The seed's components, replaced by blocks this project has (docs/graphs.md has the mapping).
SEED_COMMANDS = {"squiz-apidocs/code:executeTrigger@latest": "records.from_variable",
                 "squiz-apidocs/code:execute@latest": "jsonata.transform"}


def seed_version_graph() -> dict:
    return example("Retrieve flow version by hash", "Flow versions").response["data"]["attributes"]["graph"]


def seed_version_flow_body(v2: V2) -> dict:
    """The seed's flow-version graph (it forks at step_1) as a flow of this project's blocks."""
    seed_graph = seed_version_graph()
    nodes = [node(given["id"], SEED_COMMANDS[given["command"]]) for given in seed_graph["nodes"]]
    return flow_body(v2, nodes, seed_graph["edges"])


def test_the_seeds_flow_version_graph_forking_at_step_1_is_accepted_and_versioned(v2):
    seed_graph = seed_version_graph()
    answer = v2.call("POST", "/v2/flows", seed_version_flow_body(v2))
    assert answer.status_code == 201, answer.json
    flow = answer.json["data"]
    assert flow["attributes"]["graph"]["edges"] == seed_graph["edges"]  # as the seed's version shows them
    version_id = flow["relationships"]["latest_version"]["data"]["id"]
    version = v2.call("GET", f"/v2/flows/{flow['id']}/versions/{version_id}")
    assert version.status_code == 200
    assert version.json["data"]["attributes"]["graph"] == flow["attributes"]["graph"]


def test_failure_policy_defaults_round_trips_and_refuses_other_values(v2):
    flow = v2.create()
    assert flow["attributes"]["failure_policy"] == "failFast"
    patched = v2.call("PATCH", f"/v2/flows/{flow['id']}",
                      {"data": {"type": "flow", "id": flow["id"], "attributes": {"failure_policy": "continue"}}})
    assert patched.status_code == 200 and patched.json["data"]["attributes"]["failure_policy"] == "continue"
    assert v2.call("GET", f"/v2/flows/{flow['id']}").json["data"]["attributes"]["failure_policy"] == "continue"
    untouched = v2.call("PATCH", f"/v2/flows/{flow['id']}",
                        {"data": {"type": "flow", "id": flow["id"], "attributes": {"name": "Renamed"}}})
    assert untouched.json["data"]["attributes"]["failure_policy"] == "continue"

    created = v2.call("POST", "/v2/flows", {**linear_body(v2.credential, v2.org.id, "Goes on")})
    assert created.json["data"]["attributes"]["failure_policy"] == "failFast"
    body = linear_body(v2.credential, v2.org.id, "Goes on")
    body["data"]["attributes"]["failure_policy"] = "continue"
    assert v2.call("POST", "/v2/flows", body).json["data"]["attributes"]["failure_policy"] == "continue"

    body["data"]["attributes"]["failure_policy"] = "sometimes"
    refused = v2.call("POST", "/v2/flows", body)
    error = only_error(refused)
    assert refused.status_code == 400 and refused.mimetype == JSONAPI
    assert error["detail"] == 'failure_policy must be one of failFast, continue, got "sometimes"'
    assert error["source"] == {"pointer": "/data/attributes/failure_policy"}
    bad_patch = v2.call("PATCH", f"/v2/flows/{flow['id']}",
                        {"data": {"type": "flow", "id": flow["id"], "attributes": {"failure_policy": 1}}})
    assert bad_patch.status_code == 400
    assert only_error(bad_patch)["source"] == {"pointer": "/data/attributes/failure_policy"}
    assert v2.call("GET", f"/v2/flows/{flow['id']}").json["data"]["attributes"]["failure_policy"] == "continue"


def test_a_copy_into_a_new_flow_keeps_the_failure_policy(v2):
    flow = v2.create("Source", failure_policy="continue")
    copied = v2.call("POST", f"/v2/flows/{flow['id']}/copy", {"data": {"type": "flow-copy", "attributes": {
        "name": "Copy"}, "relationships": {"dest_workspace": {"data": {"type": "workspace", "id": v2.org.id}}}}})
    assert copied.status_code == 201, copied.json
    assert copied.json["data"]["attributes"]["failure_policy"] == "continue"


def execute(v2: V2, flow_id: str, **attributes):
    return v2.call("POST", f"/v2/flows/{flow_id}/executions",
                   {"data": {"type": "execution", "attributes": attributes}})


def test_run_from_and_till_step_take_a_step_id(v2):
    nodes = [node("read", "records.from_variable"), node("shape"), node("tidy")]
    answer = v2.call("POST", "/v2/flows", flow_body(v2, nodes, [edge("read", "shape"), edge("shape", "tidy")]))
    flow_id = answer.json["data"]["id"]
    started = execute(v2, flow_id, run_from_step="read", run_till_step="shape")
    assert started.status_code == 202, started.json
    attributes = started.json["data"]["attributes"]
    assert (attributes["run_from_step"], attributes["run_till_step"]) == (1, 2)
    read_back = v2.call("GET", f"/v2/executions/{started.json['data']['id']}").json["data"]["attributes"]
    assert (read_back["run_from_step"], read_back["run_till_step"]) == (1, 2)


def test_an_unknown_step_id_is_refused_naming_the_attribute_and_the_steps(v2):
    flow_id = v2.create()["id"]
    answer = execute(v2, flow_id, run_till_step="step_9")
    error = only_error(answer)
    assert answer.status_code == 400
    assert error["detail"] == (f"run_till_step: flow {flow_id} has no step 'step_9'; its steps are: step_1, step_2, "
                               "step_3")
    assert error["source"] == {"pointer": "/data/attributes/run_till_step"}
    for bad in ("", True, 1.5, ["step_1"]):
        refused = execute(v2, flow_id, run_from_step=bad)
        assert refused.status_code == 400
        assert only_error(refused)["source"] == {"pointer": "/data/attributes/run_from_step"}


def test_a_step_id_of_a_fork_names_its_block_number(v2):
    answer = v2.call("POST", "/v2/flows", flow_body(v2, FORK_NODES, FORK_EDGES))
    started = execute(v2, answer.json["data"]["id"], run_till_step="pending")
    assert started.status_code == 202, started.json
    assert started.json["data"]["attributes"]["run_till_step"] == 4
