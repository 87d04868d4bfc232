"""Workflows that branch, run by real RQ workers: forks with their own mappers, routers whose conditions skip a
branch, joins, diamonds with every block range, failure policies, and branches that run in parallel on two workers."""
from __future__ import annotations

import json
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select

from canvas.execution.blocks.noop import NoOperation
from canvas.models import BlockOutput, BlockRun
from tests.integration.run_helpers import RECORDS, graph_workflow, kill_worker, make_workflow, node, run, \
    run_and_work, start_worker, stop_worker, wait_for, work_off

pytestmark = pytest.mark.usefixtures("clean_run_queue")
NOOP = ("noop", {})


def output_records(client, headers, location: str, number: int) -> list[dict]:
    answer = client.get(f"{location}/Block/{number}/Output", headers=headers)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    return [json.loads(line) for line in answer.get_data(as_text=True).splitlines()]


def statuses(history: dict) -> dict[int, str]:
    return {block["number"]: block["status"] for block in history["blocks"]}


def run_graph(client, app, headers, workflow_id: str, **extra) -> tuple[dict, str]:
    answer = run(client, headers, workflow_id, **extra)
    assert answer.status_code == 202, answer.json
    work_off(app)
    location = answer.headers["Location"]
    return client.get(location, headers=headers).json, location


SOURCE = node("People", "records.from_variable", {"records": RECORDS}, inputs=[])


def test_a_fork_gives_each_branch_its_own_mapper(client, app, org):
    workflow_id = graph_workflow(client, app, org.admin_headers, [
        SOURCE,
        node("Sold", "noop", inputs=[(1, {"inputMapper": '{"id": id, "status": "sold"}'})]),
        node("Pending", "noop", inputs=[(1, {"inputMapper": '{"id": id, "status": "pending"}'})]),
    ])
    history, location = run_graph(client, app, org.admin_headers, workflow_id)
    assert history["status"] == "Succeeded", history
    assert statuses(history) == {1: "Succeeded", 2: "Succeeded", 3: "Succeeded"}
    assert output_records(client, org.admin_headers, location, 2) == [{"id": n, "status": "sold"} for n in (1, 2, 3)]
    assert output_records(client, org.admin_headers, location, 3) == [{"id": n, "status": "pending"}
                                                                      for n in (1, 2, 3)]


def test_a_router_splits_records_by_condition_and_skips_a_branch_that_gets_none(client, app, org):
    workflow_id = graph_workflow(client, app, org.admin_headers, [
        SOURCE,
        node("Oslo", "noop", inputs=[(1, {"inputCondition": "city = 'Oslo'"})]),
        node("Bergen", "noop", inputs=[(1, {"inputCondition": "city = 'Bergen'"})]),
        node("Paris", "noop", inputs=[(1, {"inputCondition": "city = 'Paris'"})]),
        node("After Paris", "noop", inputs=[(4, {})]),
    ])
    history, location = run_graph(client, app, org.admin_headers, workflow_id)
    assert history["status"] == "Succeeded", history
    assert statuses(history) == {1: "Succeeded", 2: "Succeeded", 3: "Succeeded", 4: "Skipped", 5: "Skipped"}
    assert [record["name"] for record in output_records(client, org.admin_headers, location, 2)] == ["Ann", "Cy"]
    assert [record["name"] for record in output_records(client, org.admin_headers, location, 3)] == ["Bo"]
    skipped = history["blocks"][3]
    assert skipped["recordsOut"] is None and "condition kept no record" in skipped["error"]
    assert client.get(f"{location}/Block/4/Output", headers=org.admin_headers).status_code == 404


def test_a_join_concatenates_its_parents_records_in_block_order(client, app, org):
    workflow_id = graph_workflow(client, app, org.admin_headers, [
        node("Second list", "records.from_variable", {"records": [{"n": "b1"}, {"n": "b2"}]}, inputs=[]),
        node("First list", "records.from_variable", {"records": [{"n": "a1"}]}, inputs=[]),
        node("Both", "noop", inputs=[(2, {}), (1, {"inputMapper": '{"n": n & "!"}'})]),
    ])
    history, location = run_graph(client, app, org.admin_headers, workflow_id)
    assert history["status"] == "Succeeded", history
    assert output_records(client, org.admin_headers, location, 3) == [{"n": "b1!"}, {"n": "b2!"}, {"n": "a1"}]
    assert history["blocks"][2]["recordsIn"] == 3


def diamond(client, app, headers, policy: str = "failFast") -> str:
    """1 -> 2 (adds via 2), 1 -> 3 (adds via 3), 2 + 3 -> 4 (join)."""
    return graph_workflow(client, app, headers, [
        SOURCE,
        node("Left", "jsonata.transform", {"expression": '{"id": id, "via": "left"}'}, inputs=[(1, {})]),
        node("Right", "jsonata.transform", {"expression": '{"id": id, "via": "right"}'},
             inputs=[(1, {"inputCondition": "id > 1"})]),
        node("Join", "noop", inputs=[(2, {}), (3, {})]),
    ], policy)


def fed_by(app, run_id: str, number: int) -> tuple[int, list]:
    """The run's block `number`: its records in, and the runs whose outputs of its parents exist."""
    with app.extensions["canvas"].db.sessions() as session:
        row = session.scalars(select(BlockRun).where(BlockRun.run_id == uuid.UUID(run_id),
                                                     BlockRun.number == number)).one()
        return row.records_in, row.status


def test_a_diamond_runs_whole_and_by_every_range_form(client, app, org):
    headers = org.admin_headers
    workflow_id = diamond(client, app, headers)
    full, location = run_graph(client, app, headers, workflow_id)
    assert full["status"] == "Succeeded" and statuses(full) == dict.fromkeys((1, 2, 3, 4), "Succeeded")
    joined = output_records(client, headers, location, 4)
    assert joined == [{"id": 1, "via": "left"}, {"id": 2, "via": "left"}, {"id": 3, "via": "left"},
                      {"id": 2, "via": "right"}, {"id": 3, "via": "right"}]

    # From 2: block 2 and what is downstream of it; the join also reads block 3's stored output from the full run.
    from_left, location = run_graph(client, app, headers, workflow_id, runFromBlock=2)
    assert from_left["status"] == "Succeeded" and statuses(from_left) == {2: "Succeeded", 4: "Succeeded"}
    assert (from_left["runFromBlock"], from_left["runTillBlock"]) == (2, 4)
    assert fed_by(app, from_left["id"], 4) == (5, "Succeeded")  # 3 records from block 2, 2 stored from block 3
    assert output_records(client, headers, location, 4) == joined

    # Till 3: block 3 and everything it depends on.
    till_right, _ = run_graph(client, app, headers, workflow_id, runTillBlock=3)
    assert statuses(till_right) == {1: "Succeeded", 3: "Succeeded"}

    # Both: the blocks downstream of 2 and upstream of 4.
    between, _ = run_graph(client, app, headers, workflow_id, runFromBlock=2, runTillBlock=4)
    assert statuses(between) == {2: "Succeeded", 4: "Succeeded"}

    # A single block in the middle, fed by its stored parent.
    only_right, location = run_graph(client, app, headers, workflow_id, runFromBlock=3, runTillBlock=3)
    assert statuses(only_right) == {3: "Succeeded"}
    assert output_records(client, headers, location, 3) == [{"id": 2, "via": "right"}, {"id": 3, "via": "right"}]

    # 3 is not downstream of 2.
    refused = run(client, headers, workflow_id, runFromBlock=2, runTillBlock=3)
    assert refused.status_code == 400 and "not downstream of runFromBlock 2" in refused.json["Msg"], refused.json


def test_a_range_whose_stored_input_is_missing_is_409_naming_the_block(client, app, org):
    workflow_id = diamond(client, app, org.admin_headers)
    run_graph(client, app, org.admin_headers, workflow_id, runTillBlock=2)  # 1 and 2 stored; 3 never ran
    refused = run(client, org.admin_headers, workflow_id, runFromBlock=2)
    assert refused.status_code == 409, refused.json
    assert "Block 3 (Right) has no stored output yet, and block 4 (Join) reads it" in refused.json["Msg"]


FAILING = node("Breaks", "jsonata.transform", {"expression": '$error("the partner API said no")'},
               inputs=[(1, {})])


def failing_graph(client, app, headers, policy: str, second_failure: bool = False) -> str:
    """1 -> 2 (fails), 1 -> 3 -> 4, and 2 -> 5: a branch that fails and one that could go on."""
    third = FAILING if second_failure else node("Other branch", "noop", inputs=[(1, {})])
    return graph_workflow(client, app, headers, [
        SOURCE, FAILING, {**third, "blockName": "Other branch"},
        node("After other", "noop", inputs=[(3, {})]), node("After breaks", "noop", inputs=[(2, {})]),
    ], policy)


def test_fail_fast_starts_no_further_block_and_continue_runs_every_other_branch(client, app, org):
    fast, _ = run_graph(client, app, org.admin_headers, failing_graph(client, app, org.admin_headers, "failFast"))
    assert fast["status"] == "Failed" and fast["failedBlock"] == 2
    assert "the partner API said no" in fast["error"]
    assert statuses(fast)[2] == "Failed" and statuses(fast)[4] == "Pending" and statuses(fast)[5] == "Pending"
    assert statuses(fast)[3] in ("Pending", "Cancelled")  # queued for another worker, never started

    going_on, location = run_graph(client, app, org.admin_headers,
                                   failing_graph(client, app, org.admin_headers, "continue"))
    assert going_on["status"] == "Failed" and going_on["failedBlock"] == 2
    assert statuses(going_on) == {1: "Succeeded", 2: "Failed", 3: "Succeeded", 4: "Succeeded", 5: "Pending"}
    assert len(output_records(client, org.admin_headers, location, 4)) == 3


def test_continue_names_every_failed_block(client, app, org):
    history, _ = run_graph(client, app, org.admin_headers,
                           failing_graph(client, app, org.admin_headers, "continue", second_failure=True))
    assert history["status"] == "Failed" and history["failedBlock"] == 2
    assert history["error"].startswith("2 blocks failed: block 2 (Breaks): "), history["error"]
    assert "block 3 (Other branch): " in history["error"]


def test_a_platform_error_after_a_failed_block_fails_the_run_at_that_block_naming_both(client, app, org,
                                                                                       monkeypatch):
    """Policy continue: block 2 failed, then block 3 met an error that is not a block's failure (here a bug) and
    stopped the run. The run fails at block 2, as it would have at its end, and says what happened in order."""
    def broken(self, context, data):  # noqa: ANN001, ANN202
        raise KeyError("no such field")

    monkeypatch.setattr(NoOperation, "run", broken)
    history, _ = run_graph(client, app, org.admin_headers, failing_graph(client, app, org.admin_headers, "continue"))
    assert (history["status"], history["failedBlock"]) == ("Failed", 2)
    assert history["error"].startswith("block 2 (Breaks) failed: "), history["error"]
    assert history["error"].endswith("; then KeyError: 'no such field'"), history["error"]
    assert "the partner API said no" in history["error"]
    assert statuses(history)[3] == "Failed"


def test_a_chain_stored_before_graphs_runs_and_ranges_as_before(client, app, org):
    workflow_id = make_workflow(client, org.admin_headers)
    till, _ = run_graph(client, app, org.admin_headers, workflow_id, runTillBlock=2)
    later = run_and_work(client, app, org.admin_headers, workflow_id, runFromBlock=3)
    assert till["status"] == later["status"] == "Succeeded"
    assert statuses(later) == {3: "Succeeded"} and later["blocks"][0]["recordsIn"] == 2
    with app.extensions["canvas"].db.sessions() as session:
        assert session.scalar(select(BlockOutput.id).where(BlockOutput.run_id == uuid.UUID(later["id"])))


# --- parallel branches on real worker processes ------------------------------------------------------------------

def two_waits(client, app, headers) -> str:
    return graph_workflow(client, app, headers, [
        node("Start", "noop", inputs=[]),
        node("Wait A", "delay", {"seconds": 2}, inputs=[(1, {})]),
        node("Wait B", "delay", {"seconds": 2}, inputs=[(1, {})]),
    ])


def finished_history(client, headers, location: str) -> dict:
    return wait_for(lambda: (history := client.get(location, headers=headers).json)["status"] in
                    ("Succeeded", "Failed", "Cancelled") and history, timeout=90, what="the run's end")


def block_spans(app, run_id: str) -> dict[int, tuple]:
    with app.extensions["canvas"].db.sessions() as session:
        rows = session.scalars(select(BlockRun).where(BlockRun.run_id == uuid.UUID(run_id)))
        return {row.number: (row.date_started, row.date_finished) for row in rows}


def overlap(first: tuple, second: tuple) -> timedelta:
    return min(first[1], second[1]) - max(first[0], second[0])


def start_workers(app, logs: list) -> list:
    """Worker processes, each listening before the run starts (else the first would take every branch back)."""
    processes = [start_worker(app.config["CANVAS_SETTINGS"], log_path) for log_path in logs]
    for log_path in logs:
        wait_for(lambda log_path=log_path: log_path.exists() and "Listening on" in log_path.read_text(errors="replace"),
                 timeout=60, what=f"{log_path.name} listening")
    return processes


@pytest.mark.parametrize("workers", [2, 1])
def test_independent_branches_run_at_once_on_two_workers_and_one_after_the_other_on_one(client, app, org, tmp_path,
                                                                                        workers):
    workflow_id = two_waits(client, app, org.admin_headers)
    processes = start_workers(app, [tmp_path / f"worker-{n}.log" for n in range(workers)])
    try:
        answer = run(client, org.admin_headers, workflow_id)
        history = finished_history(client, org.admin_headers, answer.headers["Location"])
    finally:
        for process in processes:
            stop_worker(process)
    assert history["status"] == "Succeeded", history
    spans = block_spans(app, history["id"])
    waited = overlap(spans[2], spans[3]).total_seconds()
    started = min(span[0] for span in spans.values())
    took = (max(span[1] for span in spans.values()) - started).total_seconds()
    print(f"{workers} worker(s): run of two 2 s branches took {took:.2f} s, branches overlapped {waited:.2f} s")
    if workers == 2:
        # both branches were waiting at the same time (one after the other gives <= 0; the second worker may pick its
        # branch up a second late on a loaded machine: 0.8 s of a 2 s overlap was seen with load 13 on 2 cores)
        assert waited > 0.25, spans
    else:
        assert waited <= 0, spans  # one after the other
        assert took >= 4.0


def worker_named(name: str, processes: list, logs: list) -> int:
    for process, log_path in zip(processes, logs):
        if f"Worker {name}" in log_path.read_text(errors="replace"):
            return processes.index(process)
    raise AssertionError(f"no worker log names {name}")


def test_a_branch_whose_worker_dies_fails_as_lost_once_and_strands_nothing(client, app, org, tmp_path):
    """kill -9 of the worker running a queued branch: the run's worker declares that block lost after the grace
    period (never runs it again, its outcome is unknown) and ends the run Failed; nothing is left Running."""
    workflow_id = graph_workflow(client, app, org.admin_headers, [
        node("Start", "noop", inputs=[]),
        node("Here", "delay", {"seconds": 3}, inputs=[(1, {})]),
        node("There", "delay", {"seconds": 30}, inputs=[(1, {})]),
    ])
    logs = [tmp_path / f"worker-{n}.log" for n in range(2)]
    processes = start_workers(app, logs)
    try:
        location = run(client, org.admin_headers, workflow_id).headers["Location"]
        run_id = uuid.UUID(location.rsplit("/", 1)[-1])

        def branch_worker() -> str | None:
            with app.extensions["canvas"].db.sessions() as session:
                row = session.scalars(select(BlockRun).where(BlockRun.run_id == run_id, BlockRun.number == 3)).first()
                return row.worker_name if row is not None and row.status == "Running" else None

        name = wait_for(branch_worker, timeout=60, what="block 3 running on a worker")
        victim = worker_named(name, processes, logs)
        kill_worker(processes[victim])
        history = finished_history(client, org.admin_headers, location)
    finally:
        for process in processes:
            stop_worker(process)
    assert history["status"] == "Failed" and history["failedBlock"] == 3, history
    assert statuses(history) == {1: "Succeeded", 2: "Succeeded", 3: "Failed"}
    assert "worker lost while running block 3" in history["blocks"][2]["error"]
    with app.extensions["canvas"].db.sessions() as session:
        rows = session.scalars(select(BlockRun).where(BlockRun.run_id == run_id)).all()
    assert sorted(row.number for row in rows) == [1, 2, 3]  # block 3 was not run a second time
    assert not [row for row in rows if row.status in ("Running", "Queued")]
