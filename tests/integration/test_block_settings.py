"""Per-block run settings `retries` and `timeoutSeconds`: set through Workflow POST and UpdateWorkflow next to
`variables`, refused with a 400 naming the field when they make no sense, and obeyed by the runner; a block with side
effects is re-run only after an error raised before it sent anything."""
from __future__ import annotations

import pytest

from canvas.execution.blocks.base import _BLOCKS, Block, VariableSpec
from canvas.execution.context import BlockContext, TransientBlockError
from tests.integration.run_helpers import B1, B2, THREE_BLOCKS, make_workflow, run_and_work

pytestmark = pytest.mark.usefixtures("clean_run_queue")
ATTEMPTS: dict[str, list[int]] = {}


class FlakyWrite(Block):
    """A block with side effects that fails transiently on its first attempt, after (or before) sending."""

    key = "test.flaky_write"
    title = "Flaky write (tests)"
    side_effects = True
    input_kind = "any"
    output_kind = "any"
    variables = {"sentNothing": VariableSpec("boolean", default=False, description="The failure came before any send.")}

    def run(self, context: BlockContext, data):  # noqa: ANN001, ANN201
        attempts = ATTEMPTS.setdefault(context.run_id, [])
        attempts.append(len(attempts) + 1)
        if len(attempts) == 1:
            error = TransientBlockError("the target went away")
            error.retry_safe = context.variables.get("sentNothing") is True
            raise error
        return data


@pytest.fixture
def flaky_write():
    """Registered for the test only: the registry is what the docs and the API list."""
    _BLOCKS[FlakyWrite.key] = FlakyWrite
    yield FlakyWrite
    del _BLOCKS[FlakyWrite.key]


def workflow_detail(client, headers, workflow_id: str) -> dict:
    return client.get(f"/api/Workflow/{workflow_id}", headers=headers).json


def test_settings_are_kept_with_the_chain_and_changed_like_variables(client, org):
    workflow_id = make_workflow(client, org.admin_headers)
    answer = client.post("/api/UpdateWorkflow", headers=org.admin_headers, json={"id": workflow_id, "chain": [
        {"uniqueBlockId": B1, "retries": 0, "timeoutSeconds": 5},
        {"uniqueBlockId": B2, "variables": {"condition": "city = 'Bergen'"}, "retries": 4}]})
    assert answer.status_code == 200, answer.json
    chain = workflow_detail(client, org.admin_headers, workflow_id)["chain"]
    assert (chain[0]["retries"], chain[0]["timeoutSeconds"], chain[1]["retries"]) == (0, 5.0, 4)
    assert "retries" not in chain[2] and chain[1]["variables"]["condition"] == "city = 'Bergen'"
    # A listed block gets exactly what is given (block 2: its settings go back to the defaults); others keep theirs.
    client.post("/api/UpdateWorkflow", headers=org.admin_headers, json={"id": workflow_id, "chain": [
        {"uniqueBlockId": B2, "variables": {"condition": "city = 'Oslo'"}}]})
    chain = workflow_detail(client, org.admin_headers, workflow_id)["chain"]
    assert (chain[0]["retries"], chain[0]["timeoutSeconds"]) == (0, 5.0) and "retries" not in chain[1]


@pytest.mark.parametrize("setting, value, expected", [
    ("retries", -1, "chain.0.retries"), ("retries", 11, "chain.0.retries"), ("retries", "2", "chain.0.retries"),
    ("retries", True, "chain.0.retries"), ("retries", 1.5, "chain.0.retries"),
    ("timeoutSeconds", 0, "chain.0.timeoutSeconds"), ("timeoutSeconds", 10 ** 9, "chain.0.timeoutSeconds"),
    ("timeoutSeconds", "soon", "chain.0.timeoutSeconds"), ("timeoutSeconds", "5", "chain.0.timeoutSeconds"),
    ("timeoutSeconds", True, "chain.0.timeoutSeconds"),
])
def test_settings_that_make_no_sense_are_refused_naming_the_field(client, org, setting, value, expected):
    workflow_id = make_workflow(client, org.admin_headers)
    answer = client.post("/api/UpdateWorkflow", headers=org.admin_headers,
                         json={"id": workflow_id, "chain": [{"uniqueBlockId": B1, setting: value}]})
    assert answer.status_code == 400 and answer.json["State"] == 400, answer.json
    assert expected in answer.json["Msg"]
    assert "retries" not in workflow_detail(client, org.admin_headers, workflow_id)["chain"][0]


def test_the_runner_obeys_a_blocks_time_limit(client, app, org):
    workflow_id = make_workflow(client, org.admin_headers, [THREE_BLOCKS[0], ("Wait", "delay", {"seconds": 5})])
    client.post("/api/UpdateWorkflow", headers=org.admin_headers, json={"id": workflow_id, "chain": [
        {"uniqueBlockId": B2, "variables": {"seconds": 5}, "timeoutSeconds": 1, "retries": 0}]})
    finished = run_and_work(client, app, org.admin_headers, workflow_id)
    assert finished["status"] == "Failed" and "did not finish within 1 s" in finished["error"]
    assert finished["blocks"][1]["status"] == "Failed"


@pytest.mark.parametrize("sent_nothing, expected_attempts, status", [(True, [1, 2], "Succeeded"),
                                                                     (False, [1], "Failed")])
def test_a_block_with_side_effects_is_retried_only_when_it_sent_nothing(client, app, org, flaky_write, sent_nothing,
                                                                       expected_attempts, status):
    workflow_id = make_workflow(client, org.admin_headers, [
        THREE_BLOCKS[0], ("Write", "test.flaky_write", {})])
    answer = client.post("/api/UpdateWorkflow", headers=org.admin_headers, json={"id": workflow_id, "chain": [
        {"uniqueBlockId": B2, "retries": 3, "variables": {"sentNothing": sent_nothing}}]})
    assert answer.status_code == 200, answer.json
    finished = run_and_work(client, app, org.admin_headers, workflow_id)
    assert finished["status"] == status, finished
    assert ATTEMPTS[finished["id"]] == expected_attempts


def test_v2_nodes_carry_the_same_settings_under_their_names(app, client, org):
    from tests.api.test_v2_support import V2, linear_body

    v2 = V2(app, client, org)
    body = linear_body(v2.credential, v2.org.id)
    body["data"]["attributes"]["graph"]["nodes"][1].update(retries=1, timeout_seconds=30)
    created = v2.call("POST", "/v2/flows", body)
    assert created.status_code == 201, created.json
    node = created.json["data"]["attributes"]["graph"]["nodes"][1]
    assert (node["retries"], node["timeout_seconds"]) == (1, 30.0)
    chain = workflow_detail(client, org.admin_headers, created.json["data"]["id"])["chain"]
    assert (chain[1]["retries"], chain[1]["timeoutSeconds"]) == (1, 30.0)
    for name, value in (("retries", -2), ("timeout_seconds", "later")):
        bad = linear_body(v2.credential, v2.org.id)
        bad["data"]["attributes"]["graph"]["nodes"][2][name] = value
        answer = v2.call("POST", "/v2/flows", bad)
        assert answer.status_code == 400, answer.json
        assert answer.json["errors"][0]["source"]["pointer"] == f"/data/attributes/graph/nodes/2/{name}"
