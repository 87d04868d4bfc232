"""Graphs in the Canvas dialect: an organization template that forks and joins, its workflow's blocks with their
inputs by block number, an upgrade that rewires edges and keeps overrides, and the workflow's failure policy."""
from __future__ import annotations

import uuid

from tests.api.workflow_helpers import file_hub_app, new_workflow, published_template, template_body

RECORDS, UPPER, LOWER, JOIN = (str(uuid.UUID(int=n)) for n in (0xE1, 0xE2, 0xE3, 0xE4))
LOWER_MAPPER = "{'id': id, 'name': $lowercase(name)}"


def graph_body(*, join_condition: str | None = "name != 'skip'", lower_from: str = RECORDS,
               failure_policy: str | None = "continue") -> dict:
    """Records feeding two transforms that a join takes together; given join first (stored in topological order)."""
    second = {"from": LOWER}
    if join_condition:
        second["inputCondition"] = join_condition
    body = {
        "name": "Fork and join",
        "description": "two transforms of the same records, joined",
        "applications": [],
        "chain": [
            {"uniqueBlockId": JOIN, "blockName": "Join", "block": "noop", "inputs": [{"from": UPPER}, second]},
            {"uniqueBlockId": RECORDS, "blockName": "Records", "block": "records.from_variable", "inputs": [],
             "variables": {"records": [{"id": 1, "name": "Ada"}]}},
            {"uniqueBlockId": UPPER, "blockName": "Upper", "block": "jsonata.transform",
             "inputs": [{"from": RECORDS}], "variables": {"expression": "{'name': $uppercase(name)}"}},
            {"uniqueBlockId": LOWER, "blockName": "Lower", "block": "jsonata.transform",
             "inputs": [{"from": lower_from, "inputMapper": LOWER_MAPPER}], "variables": {"expression": "$"}},
        ],
    }
    if failure_policy:
        body["failurePolicy"] = failure_policy
    return body


def graph_workflow(client, headers, **overrides) -> tuple[str, str]:
    template_id = published_template(client, headers, graph_body())
    body = {"workflowTemplateId": template_id, "applications": {}, **overrides}
    created = client.post("/api/Workflow", json=body, headers=headers)
    assert created.status_code == 200, created.json
    return template_id, created.json


def workflow(client, headers, workflow_id: str) -> dict:
    answer = client.get(f"/api/Workflow/{workflow_id}", headers=headers)
    assert answer.status_code == 200, answer.json
    return answer.json


def test_a_graph_template_shows_its_blocks_inputs_by_block_number(client, org):
    template_id = published_template(client, org.admin_headers, graph_body())
    [template] = [t for t in client.get("/api/WorkflowTemplates", headers=org.admin_headers).json
                  if t["id"] == template_id]
    assert [entry["blockName"] for entry in template["chain"]] == ["Records", "Upper", "Lower", "Join"]
    assert [entry["inputs"] for entry in template["chain"]] == [
        [], [{"fromBlock": 1}], [{"fromBlock": 1, "inputMapper": LOWER_MAPPER}],
        [{"fromBlock": 2}, {"fromBlock": 3, "inputCondition": "name != 'skip'"}]]
    assert template["failurePolicy"] == "continue"


def test_a_graph_workflow_shows_inputs_next_to_each_block(client, org):
    headers = org.admin_headers
    _template_id, workflow_id = graph_workflow(client, headers, chain=[
        {"uniqueBlockId": LOWER, "variables": {"expression": "{'lower': name}"}}])
    shown = workflow(client, headers, workflow_id)
    assert shown["failurePolicy"] == "continue"  # the template's
    assert [(block["number"], block["blockName"], block["inputs"]) for block in shown["chain"]] == [
        (1, "Records", []), (2, "Upper", [{"fromBlock": 1}]),
        (3, "Lower", [{"fromBlock": 1, "inputMapper": LOWER_MAPPER}]),
        (4, "Join", [{"fromBlock": 2}, {"fromBlock": 3, "inputCondition": "name != 'skip'"}])]
    assert shown["chain"][2]["variables"] == {"expression": "{'lower': name}"}
    assert list(shown["chain"][3]) == ["number", "uniqueBlockId", "blockName", "block", "application", "variables",
                                       "inputs"]
    [listed] = [w for w in client.get("/api/Workflows", headers=headers).json if w["id"] == workflow_id]
    assert "chain" not in listed and "failurePolicy" not in listed  # the documented list shape


def test_a_chain_workflow_shows_no_inputs_and_the_default_failure_policy(client, org):
    headers = org.admin_headers
    template_id = published_template(client, headers, template_body())
    workflow_id = new_workflow(client, headers, template_id, file_hub_app(client, headers))
    shown = workflow(client, headers, workflow_id)
    assert shown["failurePolicy"] == "failFast"
    assert all("inputs" not in block for block in shown["chain"])
    [template] = [t for t in client.get("/api/WorkflowTemplates", headers=headers).json if t["id"] == template_id]
    assert "failurePolicy" not in template and all(list(entry) == ["uniqueBlockId", "blockName", "variables"]
                                                   for entry in template["chain"])


def test_a_chain_upgrade_preview_keeps_its_shape(client, org):
    headers = org.admin_headers
    template_id = published_template(client, headers, template_body())
    workflow_id = new_workflow(client, headers, template_id, file_hub_app(client, headers))
    changed = template_body(expression="$$")
    assert client.post("/api/UpdateWorkflowTemplate", json={"id": template_id, "chain": changed["chain"]},
                       headers=headers).status_code == 200
    assert client.post("/api/PublishWorkflowTemplate", json={"id": template_id}, headers=headers).status_code == 200
    plan = client.post("/api/WorkflowUpgradePreview", json={"id": workflow_id}, headers=headers).json
    assert list(plan) == ["workflowId", "fromVersion", "toVersion", "canUpgrade", "conflicts", "newApplications",
                          "removedApplications", "blocks"]
    assert all(list(block) == ["uniqueBlockId", "blockName", "change", "newDefaults", "keptOverrides", "conflicts"]
               for block in plan["blocks"])


def test_a_bad_graph_template_is_refused_naming_the_entry(client, org):
    cycle = graph_body()
    cycle["chain"][1]["inputs"] = [{"from": JOIN}]
    answer = client.post("/api/WorkflowTemplate", json=cycle, headers=org.admin_headers)
    assert answer.status_code == 400
    assert answer.json["Msg"].startswith("chain: the graph has a cycle: ")
    stranger = str(uuid.UUID(int=0xEE))
    unknown = graph_body()
    unknown["chain"][0]["inputs"][0]["from"] = stranger
    answer = client.post("/api/WorkflowTemplate", json=unknown, headers=org.admin_headers)
    assert answer.status_code == 400
    assert answer.json["Msg"].startswith("chain[0].inputs[0].from: unknown block") and stranger in answer.json["Msg"]
    joined_file = graph_body()
    joined_file["chain"][2]["block"] = "csv.from_records"
    joined_file["chain"][2]["variables"] = {}
    answer = client.post("/api/WorkflowTemplate", json=joined_file, headers=org.admin_headers)
    assert answer.status_code == 400 and answer.json["Msg"].startswith("chain[0].inputs: 'Join' joins the outputs")


def test_upgrade_rewires_edges_from_the_new_version_and_keeps_overrides(client, org):
    headers = org.admin_headers
    template_id, workflow_id = graph_workflow(client, headers, chain=[
        {"uniqueBlockId": LOWER, "variables": {"expression": "{'lower': name}"}}])
    # 1.1.0: Lower is fed by Upper instead of Records, the join takes all of Lower, the policy goes back to default
    updated = client.post("/api/UpdateWorkflowTemplate", headers=headers, json={
        "id": template_id, **graph_body(join_condition=None, lower_from=UPPER, failure_policy=None),
        "failurePolicy": None})
    assert updated.status_code == 200, updated.json
    assert [entry["inputs"] for entry in updated.json["chain"]][2:] == [
        [{"fromBlock": 2, "inputMapper": LOWER_MAPPER}], [{"fromBlock": 2}, {"fromBlock": 3}]]
    published = client.post("/api/PublishWorkflowTemplate", json={"id": template_id, "version": "1.1.0"},
                            headers=headers)
    assert published.status_code == 200, published.json

    preview = client.post("/api/WorkflowUpgradePreview", json={"id": workflow_id}, headers=headers)
    assert preview.status_code == 200, preview.json
    plan = preview.json
    assert (plan["fromVersion"], plan["toVersion"], plan["canUpgrade"]) == ("1.0.0", "1.1.0", True)
    assert plan["failurePolicy"] == "failFast"  # the workflow followed its template's policy
    blocks = {block["blockName"]: block for block in plan["blocks"]}
    assert {name: (block["change"], block["inputsChanged"]) for name, block in blocks.items()} == {
        "Records": ("kept", False), "Upper": ("kept", False), "Lower": ("kept", True), "Join": ("kept", True)}
    assert blocks["Lower"]["inputs"] == [{"fromBlock": 2, "inputMapper": LOWER_MAPPER}]
    assert blocks["Lower"]["keptOverrides"] == {"expression": "{'lower': name}"}

    upgraded = client.post("/api/UpgradeWorkflow", json={"id": workflow_id}, headers=headers)
    assert upgraded.status_code == 200, upgraded.json
    shown = workflow(client, headers, workflow_id)
    assert shown["templateVersion"] == "1.1.0" and shown["failurePolicy"] == "failFast"
    assert [block["inputs"] for block in shown["chain"]] == [
        [], [{"fromBlock": 1}], [{"fromBlock": 2, "inputMapper": LOWER_MAPPER}], [{"fromBlock": 2}, {"fromBlock": 3}]]
    assert shown["chain"][2]["variables"] == {"expression": "{'lower': name}"}
    assert shown["isCustomizedStructure"] is True


def test_an_override_of_a_block_the_new_graph_drops_is_a_conflict(client, org):
    headers = org.admin_headers
    template_id, workflow_id = graph_workflow(client, headers, chain=[
        {"uniqueBlockId": LOWER, "variables": {"expression": "{'lower': name}"}}])
    body = graph_body()
    body["chain"] = [entry for entry in body["chain"] if entry["uniqueBlockId"] != LOWER]
    body["chain"][0]["inputs"] = [{"from": UPPER}, {"from": RECORDS}]
    assert client.post("/api/UpdateWorkflowTemplate", json={"id": template_id, **body},
                       headers=headers).status_code == 200
    assert client.post("/api/PublishWorkflowTemplate", json={"id": template_id}, headers=headers).status_code == 200
    plan = client.post("/api/WorkflowUpgradePreview", json={"id": workflow_id}, headers=headers).json
    assert plan["canUpgrade"] is False
    removed = next(block for block in plan["blocks"] if block["uniqueBlockId"] == LOWER)
    assert removed["change"] == "removed" and removed["inputsChanged"] is True and "inputs" not in removed
    assert any("Lower" in conflict and "removed" in conflict for conflict in plan["conflicts"])
    refused = client.post("/api/UpgradeWorkflow", json={"id": workflow_id}, headers=headers)
    assert refused.status_code == 409
    assert workflow(client, headers, workflow_id)["templateVersion"] == "1.0.0"


def test_a_workflow_that_chose_its_failure_policy_keeps_it_through_an_upgrade(client, org):
    headers = org.admin_headers
    template_id, workflow_id = graph_workflow(client, headers)
    assert client.post("/api/UpdateWorkflow", json={"id": workflow_id, "failurePolicy": "failFast"},
                       headers=headers).status_code == 200  # the template says continue
    assert client.post("/api/UpdateWorkflowTemplate", headers=headers, json={
        "id": template_id, **graph_body(join_condition=None)}).status_code == 200  # same policy, other edges
    assert client.post("/api/PublishWorkflowTemplate", json={"id": template_id}, headers=headers).status_code == 200
    plan = client.post("/api/UpgradeWorkflow", json={"id": workflow_id}, headers=headers).json
    assert "failurePolicy" not in plan  # the new version does not change the template's policy
    assert workflow(client, headers, workflow_id)["failurePolicy"] == "failFast"


def test_failure_policy_round_trip_and_refusal(client, org):
    headers = org.admin_headers
    _template_id, workflow_id = graph_workflow(client, headers)
    changed = client.post("/api/UpdateWorkflow", json={"id": workflow_id, "failurePolicy": "failFast"},
                          headers=headers)
    assert changed.status_code == 200, changed.json
    assert changed.json["failurePolicy"] == "failFast"
    assert workflow(client, headers, workflow_id)["failurePolicy"] == "failFast"
    renamed = client.post("/api/UpdateWorkflow", json={"id": workflow_id, "name": "Renamed"}, headers=headers)
    assert renamed.json["failurePolicy"] == "failFast"  # not given: unchanged
    refused = client.post("/api/UpdateWorkflow", json={"id": workflow_id, "failurePolicy": "retry"}, headers=headers)
    assert refused.status_code == 400
    assert set(refused.json) == {"State", "Msg"} and refused.json["State"] == 400
    assert "failurePolicy" in refused.json["Msg"]
    assert "failFast" in refused.json["Msg"] and "continue" in refused.json["Msg"]
    assert workflow(client, headers, workflow_id)["failurePolicy"] == "failFast"
