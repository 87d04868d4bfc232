"""The v2 seed's own branching examples, end to end: accepted by POST /v2/flows, visible as workflows in the
Canvas dialect, executed by a real RQ worker, the fork's two mappers giving two different outputs."""
from __future__ import annotations

import json

import pytest

from tests.api.test_v2_graphs import seed_version_flow_body, seed_version_graph
from tests.api.test_v2_support import V2, seed_create_body
from tests.integration.run_helpers import work_off

pytestmark = pytest.mark.usefixtures("clean_run_queue")


@pytest.fixture()
def v2(app, client, org):
    return V2(app, client, org)


def execute(app, v2: V2, flow_id: str) -> tuple[str, dict]:
    started = v2.call("POST", f"/v2/flows/{flow_id}/executions")
    assert started.status_code in (201, 202), started.json
    run_id = started.json["data"]["id"]
    work_off(app)
    return run_id, v2.call("GET", f"/v2/executions/{run_id}").json["data"]["attributes"]


def block_file(v2: V2, run_id: str, number: int) -> list[dict]:
    output = v2.client.get(f"/api/WorkflowRun/{run_id}/Block/{number}/Output", headers=v2.org.admin_headers)
    assert output.status_code == 200, output.get_data(as_text=True)
    return [json.loads(line) for line in output.get_data(as_text=True).splitlines()]


def test_the_seeds_create_a_flow_example_runs_its_fork_into_two_different_files(app, v2):
    created = v2.call("POST", "/v2/flows", seed_create_body(v2.credential, v2.org.id))
    assert created.status_code == 201, created.json
    flow_id = created.json["data"]["id"]

    workflow = v2.client.get(f"/api/Workflow/{flow_id}", headers=v2.org.admin_headers)
    assert workflow.status_code == 200, workflow.json
    assert len(workflow.json["chain"]) == 4  # the same workflow, in the Canvas dialect

    run_id, execution = execute(app, v2, flow_id)
    assert execution["status"] == "succeeded", execution
    assert [step["status"] for step in execution["steps"]] == ["succeeded"] * 4
    sold, pending = block_file(v2, run_id, 3), block_file(v2, run_id, 4)
    assert sold == [{"status": "sold", "name": "Rex"}, {"status": "sold", "name": "Tom"}]
    assert pending == [{"status": "pending", "name": "Rex"}, {"status": "pending", "name": "Tom"}]


def test_the_seeds_flow_version_example_forking_at_step_1_runs_both_branches(app, v2):
    seed_graph = seed_version_graph()
    created = v2.call("POST", "/v2/flows", seed_version_flow_body(v2))
    assert created.status_code == 201, created.json
    run_id, execution = execute(app, v2, created.json["data"]["id"])
    assert execution["status"] == "succeeded", execution
    assert len(execution["steps"]) == len(seed_graph["nodes"]) >= 3
    assert all(step["status"] == "succeeded" for step in execution["steps"])
