"""GET /api/ScheduleOccurrences: the ledger, newest first, paged, with the total in X-Total-Count."""
from __future__ import annotations

import uuid
from datetime import datetime, timezone

import pytest

from tests.api.workflow_helpers import file_hub_app, new_workflow, published_template, record_occurrences

RUN_ID = uuid.uuid4()


@pytest.fixture()
def workflow_id(client, org) -> str:
    return new_workflow(client, org.admin_headers, published_template(client, org.admin_headers),
                        file_hub_app(client, org.admin_headers))


def record(services, workflow_id: str, count: int) -> list[datetime]:  # noqa: ANN001
    return record_occurrences(services, workflow_id, count, RUN_ID, datetime(2026, 5, 1, 2, 0, tzinfo=timezone.utc))


def occurrences(client, headers, workflow_id: str, **args):
    query = "&".join(f"{key}={value}" for key, value in {"workflowId": workflow_id, **args}.items())
    return client.get(f"/api/ScheduleOccurrences?{query}", headers=headers)


def test_the_ledger_is_newest_first_with_a_total(client, org, services, workflow_id):
    times = record(services, workflow_id, 5)
    answer = occurrences(client, org.admin_headers, workflow_id, page=1, pageSize=2)
    assert answer.status_code == 200 and answer.headers["X-Total-Count"] == "5"
    assert [row["scheduledTime"] for row in answer.json] == [time.isoformat() for time in times[::-1][:2]]
    last_page = occurrences(client, org.admin_headers, workflow_id, page=3, pageSize=2).json
    assert last_page == [{"workflowId": workflow_id, "scheduledTime": "2026-05-01T02:00:00+00:00",
                          "dispatchTime": "2026-05-01T02:00:00.040000+00:00", "outcome": "fired", "reason": None,
                          "runId": str(RUN_ID), "scheduler": "host:1"}]


def test_the_ledger_filters_by_outcome_and_says_why(client, org, services, workflow_id):
    record(services, workflow_id, 3)
    skipped = occurrences(client, org.admin_headers, workflow_id, outcome="skipped")
    assert skipped.headers["X-Total-Count"] == "2"
    assert {row["reason"] for row in skipped.json} == {f"previous run {RUN_ID} still Running"}
    assert {row["runId"] for row in skipped.json} == {None}


def test_the_ledger_is_only_the_accounts_own(client, org, services, workflow_id):
    record(services, workflow_id, 1)
    _other_id, other_headers = org.add_account("User")
    answer = occurrences(client, other_headers, workflow_id)
    assert answer.status_code == 404 and answer.json["Msg"] == f"Unknown workflow {workflow_id}"


def test_bad_arguments_are_400s(client, org, workflow_id):
    assert occurrences(client, org.admin_headers, workflow_id, outcome="exploded").status_code == 400
    assert occurrences(client, org.admin_headers, workflow_id, pageSize=501).status_code == 400
    missing = client.get("/api/ScheduleOccurrences", headers=org.admin_headers)
    assert missing.status_code == 400 and missing.json["Msg"] == "workflowId: Missing data for required field."
