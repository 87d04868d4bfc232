"""A flow whose graph loses blocks while a run of it waits in the queue: the run fails at once, saying why, and the
worker goes on (it crashed on the missing block, and the run ended "worker lost" a grace period later)."""
from __future__ import annotations

import pytest

from tests.api.test_v2_graphs import flow_body
from tests.api.test_v2_support import V2
from tests.integration.run_helpers import run, work_off

pytestmark = pytest.mark.usefixtures("clean_run_queue")

THREE_NODES = [{"id": "a", "command": "records.from_variable", "fields": {"records": [{"n": 1}]}},
               {"id": "b", "command": "jsonata.transform", "fields": {"expression": "$"}},
               {"id": "c", "command": "jsonata.transform", "fields": {"expression": "$"}}]
CHAIN_EDGES = [{"source": "a", "target": "b"}, {"source": "b", "target": "c"}]


@pytest.mark.parametrize("plan", [{}, {"runFromBlock": 2, "runTillBlock": 3}], ids=["every block", "blocks 2-3"])
def test_a_run_whose_blocks_left_the_flow_while_it_was_queued_fails_saying_so(app, client, org, plan):
    v2 = V2(app, client, org)
    created = v2.call("POST", "/v2/flows", flow_body(v2, THREE_NODES, CHAIN_EDGES))
    assert created.status_code == 201, created.json
    flow_id = created.json["data"]["id"]
    if plan:  # blocks 2-3 read block 1's stored output
        run(client, org.admin_headers, flow_id, runTillBlock=1)
        work_off(app)
    queued = run(client, org.admin_headers, flow_id, **plan)
    assert queued.status_code == 202, queued.json
    cut = v2.call("PATCH", f"/v2/flows/{flow_id}", {"data": {"type": "flow", "id": flow_id, "attributes": {
        "graph": {"nodes": THREE_NODES[:1], "edges": []}}}})
    assert cut.status_code == 200, cut.json

    work_off(app)

    ended = client.get(queued.headers["Location"], headers=org.admin_headers).json
    assert (ended["status"], ended["errorClass"]) == ("Failed", "BlockError"), ended
    first = plan.get("runFromBlock", 1)
    assert ended["error"] == ("the workflow changed after this run was queued: it has 1 block now, and the run was "
                              "to run blocks 2, 3; start the run again")
    assert ended["failedBlock"] == first
    again = run(client, org.admin_headers, flow_id)
    assert again.status_code == 202, again.json
    work_off(app)
    assert client.get(again.headers["Location"], headers=org.admin_headers).json["status"] == "Succeeded"
