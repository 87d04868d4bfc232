"""Building blocks for workflow tests: an organization template made through the API, and its workflow."""
from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta

FILE_HUB_APP = "9b6a04b3-c91f-4255-9033-6ac7b7a6f935"
BLOCK_RECORDS, BLOCK_MAP, BLOCK_STORE = (str(uuid.UUID(int=n)) for n in (0xA1, 0xB2, 0xC3))


def template_body(records=None, filename: str = "out_{date:yyyy-MM-dd}.jsonl", expression: str = "$") -> dict:
    return {
        "name": "Records to File Hub",
        "description": "test template",
        "applications": ["CMAF"],
        "chain": [
            {"uniqueBlockId": BLOCK_RECORDS, "blockName": "Records", "block": "records.from_variable",
             "variables": {"records": records if records is not None else [{"id": 1, "name": "Ann"}]}},
            {"uniqueBlockId": BLOCK_MAP, "blockName": "Map", "block": "jsonata.transform",
             "variables": {"expression": expression}},
            {"uniqueBlockId": BLOCK_STORE, "blockName": "Store", "block": "filehub.write", "application": "CMAF",
             "variables": {"filename": filename}},
        ],
    }


def published_template(client, headers, body: dict | None = None, version: str | None = None) -> str:
    created = client.post("/api/WorkflowTemplate", json=body or template_body(), headers=headers)
    assert created.status_code == 200, created.json
    published = client.post("/api/PublishWorkflowTemplate", json={"id": created.json, "version": version},
                            headers=headers)
    assert published.status_code == 200, published.json
    return created.json


def file_hub_app(client, headers) -> str:
    answer = client.post("/api/RegApplication", json={"applicationId": FILE_HUB_APP, "credentialsJson": "{}"},
                         headers=headers)
    assert answer.status_code == 200, answer.json
    return answer.json


def new_workflow(client, headers, template_id: str, registered_id: str, **extra) -> str:
    body = {"workflowTemplateId": template_id, "applications": {"CMAF": registered_id}, **extra}
    answer = client.post("/api/Workflow", json=body, headers=headers)
    assert answer.status_code == 200, answer.json
    return answer.json


def dumps(value) -> str:
    return json.dumps(value)


def record_occurrences(services, workflow_id: str, count: int, run_id: uuid.UUID, start: datetime) -> list[datetime]:  # noqa: ANN001
    """Ledger rows as a scheduler writes them, a day apart from `start`: the first fired (starting `run_id`), the
    rest skipped because that run was still going."""
    from canvas.models import ScheduleOccurrence

    times = [start + timedelta(days=index) for index in range(count)]
    with services.db.transaction() as session:
        for index, time in enumerate(times):
            fired = index == 0
            session.add(ScheduleOccurrence(
                workflow_id=uuid.UUID(workflow_id), scheduled_time=time, outcome="fired" if fired else "skipped",
                reason=None if fired else f"previous run {run_id} still Running", run_id=run_id if fired else None,
                dispatch_time=time + timedelta(milliseconds=40) if fired else None, scheduler="host:1"))
    return times
