"""v2 executions with a real RQ worker: a run started in one dialect is visible in the other, records its flow
version, and its log lines come back through /v2/logs."""
from __future__ import annotations

import json

import pytest

from tests.api.test_v2_support import V2
from tests.integration.run_helpers import run, work_off

pytestmark = pytest.mark.usefixtures("clean_run_queue")


@pytest.fixture()
def v2(app, client, org):
    return V2(app, client, org)


def test_a_v2_execution_is_a_canvas_run_and_records_its_version(app, v2):
    flow = v2.create()
    started = v2.call("POST", f"/v2/flows/{flow['id']}/executions")
    assert started.status_code == 202, started.json
    execution = started.json["data"]
    assert execution["type"] == "execution" and execution["attributes"]["status"] == "queued"
    version = flow["relationships"]["latest_version"]["data"]["id"]
    assert execution["attributes"]["flow_version"] == version
    assert execution["relationships"]["flow_version"]["data"]["id"] == version
    work_off(app)

    done = v2.call("GET", started.headers["Location"]).json["data"]["attributes"]
    assert done["status"] == "succeeded"
    assert [(step["step_id"], step["status"]) for step in done["steps"]] == [
        ("step_1", "succeeded"), ("step_2", "succeeded"), ("step_3", "succeeded")]
    canvas_run = v2.client.get(f"/api/WorkflowRun/{execution['id']}", headers=v2.org.admin_headers).json
    assert canvas_run["status"] == "Succeeded" and canvas_run["workflowId"] == flow["id"]


def test_a_canvas_run_is_a_v2_execution(app, v2):
    flow_id = v2.create()["id"]
    answer = run(v2.client, v2.org.admin_headers, flow_id)
    assert answer.status_code == 202, answer.json
    work_off(app)
    listed = v2.call("GET", "/v2/executions", **{"filter[flow]": flow_id}).json
    assert listed["meta"]["total"] == 1
    assert listed["data"][0]["attributes"]["trigger"] == "manual"
    assert listed["data"][0]["attributes"]["status"] == "succeeded"
    assert v2.call("GET", "/v2/executions", **{"filter[status]": "failed"}).json["data"] == []


def test_a_second_start_while_queued_is_409(v2):
    flow_id = v2.create()["id"]
    assert v2.call("POST", f"/v2/flows/{flow_id}/executions").status_code == 202
    second = v2.call("POST", f"/v2/flows/{flow_id}/executions")
    assert second.status_code == 409 and second.json["errors"][0]["status"] == "409"


def test_logs_of_runs_with_filters(app, v2):
    flow_id = v2.create()["id"]
    other_id = v2.create("Other")["id"]
    v2.call("POST", f"/v2/flows/{flow_id}/executions")
    work_off(app)
    logs = v2.call("GET", "/v2/logs", **{"flow_ids[]": flow_id}).json
    assert logs["total"] > 0
    hit = logs["hits"][0]
    assert {"id", "flow_id", "step_id", "exec_id", "timestamp", "level", "message"} <= set(hit)
    assert all(entry["flow_id"] == flow_id for entry in logs["hits"])
    assert v2.call("GET", "/v2/logs", **{"flow_ids[]": other_id}).json == {"total": 0, "hits": []}
    assert v2.call("GET", "/v2/logs", **{"levels[]": "60"}).json["total"] == 0
    limited = v2.call("GET", "/v2/logs", limit="1", offset="0").json
    assert len(limited["hits"]) == 1 and limited["total"] == logs["total"]
    future = v2.call("GET", "/v2/logs", **{"from": "2999-01-01T00:00:00.000Z"}).json
    assert future["total"] == 0


@pytest.mark.parametrize("parameter, value", [("from", "yesterday"), ("limit", "0"), ("offset", "-1"),
                                              ("levels[]", "info"), ("flow_ids[]", "nope")])
def test_bad_log_parameters_are_400_naming_them(v2, parameter, value):
    answer = v2.call("GET", "/v2/logs", **{parameter: value})
    assert answer.status_code == 400 and answer.json["errors"][0]["source"] == {"parameter": parameter}


def test_edge_condition_and_mapper_transform_the_records_between_blocks(app, v2):
    graph = {"nodes": [{"id": "a", "command": "records.from_variable",
                        "fields": {"records": [{"result": "Rex", "keep": True}, {"result": "Tom", "keep": False}]}},
                       {"id": "b", "command": "jsonata.transform", "fields": {"expression": "$"}}],
             "edges": [{"source": "a", "target": "b", "config": {
                 "mapper_type": "jsonata", "mapper": {"status": "\"sold\"", "name": "result"},
                 "condition": "keep = true"}}]}
    created = v2.call("POST", "/v2/flows", {"data": {"type": "flow", "attributes": {"name": "Edges", "graph": graph}}})
    assert created.status_code == 201, created.json
    flow_id = created.json["data"]["id"]
    run_id = v2.call("POST", f"/v2/flows/{flow_id}/executions").json["data"]["id"]
    work_off(app)
    steps = v2.call("GET", f"/v2/executions/{run_id}").json["data"]["attributes"]["steps"]
    assert steps[1]["status"] == "succeeded" and steps[1]["records_out"] == 1
    output = v2.client.get(f"/api/WorkflowRun/{run_id}/Block/2/Output", headers=v2.org.admin_headers)
    assert [json.loads(line) for line in output.get_data(as_text=True).splitlines()] == [
        {"status": "sold", "name": "Rex"}]


def test_a_failed_run_has_its_error_in_the_logs_even_before_any_step_ran(app, make_app, tmp_path, v2):
    flow_id = v2.create()["id"]
    broken = V2(app, make_app(REDIS_URL=f"unix://{tmp_path}/no-redis.sock").test_client(), v2.org)
    assert broken.call("POST", f"/v2/flows/{flow_id}/executions").status_code == 503
    failed = v2.call("GET", "/v2/executions", **{"filter[flow]": flow_id}).json["data"][0]
    assert failed["attributes"]["status"] == "failed"

    logs = v2.call("GET", "/v2/logs", **{"flow_ids[]": flow_id}).json
    assert logs["total"] == 1
    hit = logs["hits"][0]
    assert hit["exec_id"] == failed["id"] and hit["level"] == 50
    assert "could not be queued" in hit["message"]
    assert v2.call("GET", "/v2/logs", **{"flow_ids[]": flow_id, "levels[]": "50"}).json["total"] == 1


def test_a_manual_execution_can_carry_input_records_for_the_first_step(app, v2):
    graph = {"nodes": [{"id": "in", "command": "jsonata.transform", "fields": {"expression": "$"}},
                       {"id": "out", "command": "filehub.write", "credentials_id": v2.credential,
                        "fields": {"filename": "manual_{runId}.jsonl"}}],
             "edges": [{"source": "in", "target": "out"}]}
    created = v2.call("POST", "/v2/flows", {"data": {"type": "flow", "attributes": {
        "name": "Fed by hand", "type": "ordinary", "graph": graph}}})
    assert created.status_code == 201, created.json
    flow_id = created.json["data"]["id"]
    started = v2.call("POST", f"/v2/flows/{flow_id}/executions",
                      {"data": {"type": "execution", "attributes": {"input": [{"id": 1}, {"id": 2}]}}})
    assert started.status_code == 202, started.json
    work_off(app)
    done = v2.call("GET", started.headers["Location"]).json["data"]["attributes"]
    assert done["status"] == "succeeded" and done["steps"][0]["records_out"] == 2
    mixed = v2.call("POST", f"/v2/flows/{flow_id}/executions", {"data": {"type": "execution", "attributes": {
        "input": {"id": 3}, "retry_failed_records": {"execution_id": started.json["data"]["id"], "step": 1}}}})
    assert mixed.status_code == 400
    assert mixed.json["errors"][0]["source"] == {"pointer": "/data/attributes/input"}


def test_renaming_a_node_of_a_template_workflow_keeps_its_stored_outputs(app, v2):
    from tests.integration.run_helpers import make_workflow, run_and_work

    workflow_id = make_workflow(v2.client, v2.org.admin_headers)  # a template's workflow: the template's block ids
    assert run_and_work(v2.client, app, v2.org.admin_headers, workflow_id)["status"] == "Succeeded"
    flow = v2.call("GET", f"/v2/flows/{workflow_id}").json["data"]
    graph = flow["attributes"]["graph"]
    graph["nodes"][0]["name"] = "Renamed in v2"
    patched = v2.call("PATCH", f"/v2/flows/{workflow_id}",
                      {"data": {"type": "flow", "id": workflow_id, "attributes": {"graph": graph}}})
    assert patched.status_code == 200, patched.json
    resumed = run_and_work(v2.client, app, v2.org.admin_headers, workflow_id, runFromBlock=2)
    assert resumed["status"] == "Succeeded", resumed


def test_every_line_a_run_records_is_indexed_for_the_logs(app, v2):
    """The runner indexes a block's lines (log_line) in the write that records the block: its end (on PostgreSQL
    in the one statement of a step or of the run's end) or its failure; each row is the line the block run keeps."""
    import uuid

    from sqlalchemy import select

    from canvas.models import BlockRun, LogLine

    ok_flow = v2.create()["id"]
    graph = {"nodes": [{"id": "a", "command": "records.from_variable", "fields": {"records": [{"n": 1}]}},
                       {"id": "b", "command": "jsonata.transform", "fields": {"expression": "$error('no luck')"}}],
             "edges": [{"source": "a", "target": "b"}]}
    created = v2.call("POST", "/v2/flows", {"data": {"type": "flow", "attributes": {"name": "Fails", "graph": graph}}})
    assert created.status_code == 201, created.json
    runs = [uuid.UUID(v2.call("POST", f"/v2/flows/{flow}/executions").json["data"]["id"])
            for flow in (ok_flow, created.json["data"]["id"])]
    work_off(app)

    with app.extensions["canvas"].db.transaction() as session:
        blocks = session.scalars(select(BlockRun).where(BlockRun.run_id.in_(runs))).all()
        statuses = {block.status for block in blocks}
        kept = sorted((str(block.id), index, line["message"]) for block in blocks for index, line in enumerate(block.log))
        indexed = sorted((str(line.block_run_id), line.position, line.message)
                         for line in session.scalars(select(LogLine).where(LogLine.run_id.in_(runs))))
    assert statuses == {"Succeeded", "Failed"} and len(blocks) == 5
    assert kept and indexed == kept
    served = v2.call("GET", "/v2/logs", **{"flow_ids[]": created.json["data"]["id"]}).json
    assert served["hits"][0]["exec_id"] == str(runs[1]) and "no luck" in served["hits"][0]["message"]
    assert served["total"] == 1 + sum(1 for block_id, _index, _message in kept
                                      if block_id in {str(block.id) for block in blocks if block.run_id != runs[0]})


def test_the_lines_of_a_failed_or_skipped_block_are_indexed_too(app, v2):
    """A block's failure and a skip record its lines (run_records.fail_block_run, skip_block_run) and index them in
    the same transaction: the logs show them, a line without a time at its block's end."""
    import uuid
    from datetime import datetime, timedelta, timezone

    from canvas.execution import run_records

    flow_id = v2.create()["id"]
    run_id = uuid.UUID(v2.call("POST", f"/v2/flows/{flow_id}/executions").json["data"]["id"])
    ended = datetime(2026, 5, 1, 12, 0, tzinfo=timezone.utc)
    failed_id, skipped_id = uuid.uuid4(), uuid.uuid4()
    with app.extensions["canvas"].db.engine.begin() as connection:
        for block_id, number in ((failed_id, 1), (skipped_id, 2)):
            run_records.insert_block_run(connection, uuid.UUID(flow_id), {
                "id": block_id, "run_id": run_id, "number": number, "unique_block_id": str(uuid.uuid4()),
                "block_name": f"Block {number}", "block_key": "noop", "status": "Running", "attempts": 0, "log": []})
        run_records.fail_block_run(connection, failed_id, {
            "status": "Failed", "now": ended, "error": "no luck", "error_class": "BlockError", "attempts": 2,
            "records_read": None, "records_failed": None, "errors_blob_key": None,
            "lines": [{"time": (ended - timedelta(seconds=5)).isoformat(), "level": "WARNING",
                       "message": "attempt 1 failed (no luck); retrying in 1.0 s"},
                      {"time": None, "level": "ERROR", "message": "gave up"}]})
        run_records.skip_block_run(connection, skipped_id, "its condition was false",
                                   [{"time": ended.isoformat(), "level": "INFO", "message": "skipped"}],
                                   ended + timedelta(seconds=1))

    hits = v2.call("GET", "/v2/logs", **{"flow_ids[]": flow_id}).json["hits"]
    assert [(hit["message"], hit["level"], hit["timestamp"], hit["id"]) for hit in hits] == [
        ("skipped", 30, ended.isoformat(), f"{skipped_id}-0"),
        ("gave up", 50, None, f"{failed_id}-1"),  # at its block's end, after the skip's line by id
        ("attempt 1 failed (no luck); retrying in 1.0 s", 40, (ended - timedelta(seconds=5)).isoformat(),
         f"{failed_id}-0")]
    since = v2.call("GET", "/v2/logs", **{"flow_ids[]": flow_id, "from": "2026-05-01T11:59:59Z"}).json
    assert [hit["message"] for hit in since["hits"]] == ["skipped", "gave up"]
