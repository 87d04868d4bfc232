"""A flow edited while a run of it waits in the queue or runs: new steps or edges wait for the run's end (409), the
steps' fields may change. A run whose blocks left the workflow all the same (an edit that raced its dispatch) fails at
once saying why, and the worker goes on: it crashed on the missing block, and the run ended "worker lost" a grace
period later; a run whose graph grew ran a mix of old and new and called it Succeeded. An ended execution keeps its
steps' ids whatever the graph becomes."""
from __future__ import annotations

import uuid

import pytest
from sqlalchemy import update

from canvas.models import Workflow
from tests.api.test_v2_graphs import flow_body
from tests.api.test_v2_support import V2
from tests.integration.run_helpers import run, work_off

pytestmark = pytest.mark.usefixtures("clean_run_queue")

THREE_NODES = [{"id": "a", "command": "records.from_variable", "fields": {"records": [{"n": 1}]}},
               {"id": "b", "command": "jsonata.transform", "fields": {"expression": "$"}},
               {"id": "c", "command": "jsonata.transform", "fields": {"expression": "$"}}]
CHAIN_EDGES = [{"source": "a", "target": "b"}, {"source": "b", "target": "c"}]


def _flow(v2: V2) -> str:
    created = v2.call("POST", "/v2/flows", flow_body(v2, THREE_NODES, CHAIN_EDGES))
    assert created.status_code == 201, created.json
    return created.json["data"]["id"]


def _patch_graph(v2: V2, flow_id: str, nodes: list, edges: list):
    return v2.call("PATCH", f"/v2/flows/{flow_id}", {"data": {"type": "flow", "id": flow_id, "attributes": {
        "graph": {"nodes": nodes, "edges": edges}}}})


@pytest.mark.parametrize("nodes, edges", [
    (THREE_NODES[:1], []),
    (THREE_NODES + [{"id": "d", "command": "jsonata.transform", "fields": {"expression": "$"}}],
     CHAIN_EDGES + [{"source": "c", "target": "d"}]),
    ([THREE_NODES[0], {"id": "x", "command": "jsonata.transform", "fields": {"expression": "$"}}, *THREE_NODES[1:]],
     [{"source": "a", "target": "x"}, {"source": "x", "target": "b"}, CHAIN_EDGES[1]])],
    ids=["steps removed", "a step added", "a step inserted"])
def test_new_steps_or_edges_wait_for_the_queued_run_and_it_runs_the_graph_it_was_queued_with(
        app, client, org, nodes, edges):
    v2 = V2(app, client, org)
    flow_id = _flow(v2)
    queued = run(client, org.admin_headers, flow_id)
    assert queued.status_code == 202, queued.json
    refused = _patch_graph(v2, flow_id, nodes, edges)
    assert refused.status_code == 409 and "has an active run" in refused.json["errors"][0]["detail"]
    fields_only = _patch_graph(v2, flow_id, [*THREE_NODES[:2], {**THREE_NODES[2], "fields": {"expression": "$$"}}],
                               CHAIN_EDGES)
    assert fields_only.status_code == 200, fields_only.json
    work_off(app)
    ended = client.get(queued.headers["Location"], headers=org.admin_headers).json
    assert ended["status"] == "Succeeded" and [block["blockName"] for block in ended["blocks"]] == ["a", "b", "c"]
    assert _patch_graph(v2, flow_id, nodes, edges).status_code == 200, "once the run has ended"


@pytest.mark.parametrize("plan", [{}, {"runFromBlock": 2, "runTillBlock": 3}], ids=["every block", "blocks 2-3"])
def test_a_run_whose_blocks_left_the_workflow_all_the_same_fails_saying_so(app, client, org, plan):
    v2 = V2(app, client, org)
    flow_id = _flow(v2)
    if plan:  # blocks 2-3 read block 1's stored output
        run(client, org.admin_headers, flow_id, runTillBlock=1)
        work_off(app)
    queued = run(client, org.admin_headers, flow_id, **plan)
    assert queued.status_code == 202, queued.json
    with app.extensions["canvas"].db.transaction() as session:  # an edit that raced the dispatch
        chain = session.get(Workflow, uuid.UUID(flow_id)).chain
        session.execute(update(Workflow).where(Workflow.id == uuid.UUID(flow_id)).values(chain=chain[:1]))

    work_off(app)

    ended = client.get(queued.headers["Location"], headers=org.admin_headers).json
    assert (ended["status"], ended["errorClass"]) == ("Failed", "BlockError"), ended
    assert ended["error"] == ("the workflow changed after this run was queued: it has 1 block now, and the run was "
                              "to run blocks 2, 3; start the run again")
    assert ended["failedBlock"] == plan.get("runFromBlock", 1)
    again = run(client, org.admin_headers, flow_id)
    assert again.status_code == 202, again.json
    work_off(app)
    assert client.get(again.headers["Location"], headers=org.admin_headers).json["status"] == "Succeeded"


def test_an_ended_execution_keeps_its_steps_ids_when_the_graph_changes(app, client, org):
    v2 = V2(app, client, org)
    flow_id = _flow(v2)
    started = v2.call("POST", f"/v2/flows/{flow_id}/executions")
    work_off(app)
    path = f"/v2/executions/{started.json['data']['id']}"
    before = [step["step_id"] for step in v2.call("GET", path).json["data"]["attributes"]["steps"]]
    assert before == ["a", "b", "c"]
    inserted = [THREE_NODES[0], {"id": "x", "command": "jsonata.transform", "fields": {"expression": "$"}},
                *THREE_NODES[1:]]
    assert _patch_graph(v2, flow_id, inserted, [{"source": "a", "target": "x"}, {"source": "x", "target": "b"},
                                                CHAIN_EDGES[1]]).status_code == 200
    after = [step["step_id"] for step in v2.call("GET", path).json["data"]["attributes"]["steps"]]
    assert after == before
    assert _patch_graph(v2, flow_id, THREE_NODES[:1], []).status_code == 200
    assert [step["step_id"] for step in v2.call("GET", path).json["data"]["attributes"]["steps"]] == [
        "a", "step_2", "step_3"], "a step whose node is gone is named by its number"
