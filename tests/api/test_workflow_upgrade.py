"""Upgrading a workflow to a newer template version: preview, three-way merge, conflicts."""
from __future__ import annotations

from tests.api.workflow_helpers import (
    BLOCK_MAP,
    BLOCK_RECORDS,
    BLOCK_STORE,
    file_hub_app,
    new_workflow,
    published_template,
    template_body,
)

NEW_BLOCK = "00000000-0000-0000-0000-0000000000d4"


def publish_new_version(client, headers, template_id: str, body: dict, version: str) -> None:
    updated = client.post("/api/UpdateWorkflowTemplate", json={"id": template_id, **body}, headers=headers)
    assert updated.status_code == 200, updated.json
    published = client.post("/api/PublishWorkflowTemplate", json={"id": template_id, "version": version},
                            headers=headers)
    assert published.status_code == 200, published.json


def version_two(filename: str, expression: str = "$") -> dict:
    body = template_body(filename=filename, expression=expression)
    body["chain"].insert(2, {"uniqueBlockId": NEW_BLOCK, "blockName": "Filter", "block": "jsonata.filter",
                             "variables": {"condition": "id > 0"}})
    return {"applications": body["applications"], "chain": body["chain"]}


def setup_workflow(client, headers, overrides: list[dict]) -> tuple[str, str]:
    template_id = published_template(client, headers)
    workflow_id = new_workflow(client, headers, template_id, file_hub_app(client, headers), chain=overrides)
    return template_id, workflow_id


def test_preview_shows_changes_per_block_and_upgrade_keeps_overrides(client, org):
    headers = org.admin_headers
    template_id, workflow_id = setup_workflow(client, headers, [
        {"uniqueBlockId": BLOCK_STORE, "variables": {"filename": "mine_{runId}.jsonl"}}])
    publish_new_version(client, headers, template_id, version_two("out_{date:yyyy-MM-dd}.jsonl", expression="$$"),
                        "1.1.0")
    preview = client.post("/api/WorkflowUpgradePreview", json={"id": workflow_id}, headers=headers).json
    assert (preview["fromVersion"], preview["toVersion"], preview["canUpgrade"]) == ("1.0.0", "1.1.0", True)
    changes = {block["uniqueBlockId"]: block for block in preview["blocks"]}
    assert changes[NEW_BLOCK]["change"] == "added"
    assert changes[BLOCK_MAP]["newDefaults"] == {"expression": "$$"}
    assert changes[BLOCK_STORE]["keptOverrides"] == {"filename": "mine_{runId}.jsonl"}
    upgraded = client.post("/api/UpgradeWorkflow", json={"id": workflow_id}, headers=headers)
    assert upgraded.status_code == 200, upgraded.json
    workflow = client.get(f"/api/Workflow/{workflow_id}", headers=headers).json
    assert workflow["templateVersion"] == "1.1.0"
    assert [entry["uniqueBlockId"] for entry in workflow["chain"]] == [BLOCK_RECORDS, BLOCK_MAP, NEW_BLOCK,
                                                                         BLOCK_STORE]
    assert workflow["chain"][3]["variables"]["filename"] == "mine_{runId}.jsonl"
    assert workflow["chain"][1]["variables"]["expression"] == "$$"


def test_an_override_of_a_changed_default_is_a_conflict(client, org):
    headers = org.admin_headers
    template_id, workflow_id = setup_workflow(client, headers, [
        {"uniqueBlockId": BLOCK_STORE, "variables": {"filename": "mine.jsonl"}}])
    publish_new_version(client, headers, template_id, version_two("renamed_by_vendor.jsonl"), "2.0.0")
    preview = client.post("/api/WorkflowUpgradePreview", json={"id": workflow_id}, headers=headers).json
    assert preview["canUpgrade"] is False
    assert any("filename" in conflict and "changed its default" in conflict for conflict in preview["conflicts"])
    refused = client.post("/api/UpgradeWorkflow", json={"id": workflow_id}, headers=headers)
    assert refused.status_code == 409 and "filename" in refused.json["Msg"]
    workflow = client.get(f"/api/Workflow/{workflow_id}", headers=headers).json
    assert workflow["templateVersion"] == "1.0.0"


def test_override_of_a_removed_block_is_a_conflict(client, org):
    headers = org.admin_headers
    template_id, workflow_id = setup_workflow(client, headers, [
        {"uniqueBlockId": BLOCK_MAP, "variables": {"expression": "{'x': id}"}}])
    body = template_body()
    body["chain"] = [entry for entry in body["chain"] if entry["uniqueBlockId"] != BLOCK_MAP]
    publish_new_version(client, headers, template_id, {"applications": ["CMAF"], "chain": body["chain"]}, "1.0.1")
    preview = client.post("/api/WorkflowUpgradePreview", json={"id": workflow_id}, headers=headers).json
    removed = next(block for block in preview["blocks"] if block["uniqueBlockId"] == BLOCK_MAP)
    assert removed["change"] == "removed" and removed["conflicts"]


def test_upgrading_to_the_same_version_is_refused(client, org):
    template_id, workflow_id = setup_workflow(client, org.admin_headers, [])
    answer = client.post("/api/WorkflowUpgradePreview", json={"id": workflow_id, "version": "1.0.0"},
                         headers=org.admin_headers)
    assert answer.status_code == 400 and "not newer" in answer.json["Msg"]
