"""/v2/logs reads a page of keys from its indexes and then only the page's hits: the statements it runs and the
rows it loads do not grow with the number of runs, and it answers what reading every line of every block run and
sorting them all answers."""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import event, insert

from tests.api.test_v2_support import V2

START = datetime(2026, 1, 1, tzinfo=timezone.utc)


@pytest.fixture()
def v2(app, client, org):
    return V2(app, client, org)


def add_runs(app, account_id: str, workflow_id: str, count: int, first: int = 0, shift: int = 0,
             still_running: bool = True) -> None:
    """`count` runs a minute apart (`shift` seconds later): each with a block of two lines (the seventh ones without a block, and every
    seventh one Failed), every eleventh with a line without a time; the newest one still running unless not
    `still_running`."""
    from canvas.models import BlockRun, WorkflowRun

    runs, blocks = [], []
    for n in range(first, first + count):
        queued = START + timedelta(minutes=n, seconds=shift)
        running = still_running and n == first + count - 1
        run = {"id": uuid.uuid4(), "workflow_id": uuid.UUID(workflow_id), "account_id": uuid.UUID(account_id),
               "status": "Running" if running else "Failed" if n % 7 == 3 else "Succeeded", "trigger": "manual",
               "run_from_block": 1, "run_till_block": 1, "dry_run": False, "cancel_requested": False,
               "lease_token": 0, "dispatch_count": 1, "error": "boom" if n % 7 == 3 else None,
               "date_queued": queued, "date_started": queued,
               "date_finished": None if running else queued + timedelta(seconds=30)}
        runs.append(run)
        if n % 7 == 3 and n % 2 and not running:
            continue
        log = [{"time": (queued + timedelta(seconds=10)).isoformat(), "level": "INFO", "message": f"read {n}"},
               {"time": (queued + timedelta(seconds=20)).isoformat(), "level": "WARNING" if n % 3 else "DEBUG",
                "message": f"wrote {n} Records"}]
        if n % 11 == 5:
            log.append({"time": None, "level": "WARNING", "message": "3 more lines (DEBUG first) were not kept"})
        blocks.append({"id": uuid.uuid4(), "run_id": run["id"], "number": 1,
                       "unique_block_id": str(uuid.UUID(int=0xA1)), "block_name": "Records",
                       "block_key": "records.from_variable", "status": "Succeeded", "attempts": 1, "log": log,
                       "date_started": queued, "date_finished": None if running else queued + timedelta(seconds=25)})
    from canvas.execution import run_records
    from canvas.execution.run_log import line_rows

    with app.extensions["canvas"].db.engine.begin() as connection:
        connection.execute(insert(WorkflowRun), runs)
        connection.execute(insert(BlockRun), blocks)
        for block in blocks:  # indexed as the runner indexes them when it records a block
            end = block["date_finished"] or block["date_started"]
            run_records.insert_lines(connection, block["id"], line_rows(block["log"], end))


LEVELS = {"DEBUG": 20, "INFO": 30, "WARNING": 40}


def every_hit(app, flow_ids: list[str], args: dict) -> dict:
    """The answer the endpoint gives when it reads every line: all hits, filtered and sorted in Python (a line
    without an ISO time as of its block's end)."""
    from canvas.models import BlockRun, Workflow, WorkflowRun
    from canvas.v2 import jsonapi
    from canvas.v2.graph import step_id

    start = datetime.fromisoformat(args["from"].replace("Z", "+00:00")) if "from" in args else None
    end = datetime.fromisoformat(args["to"].replace("Z", "+00:00")) if "to" in args else None
    levels = {int(args["levels[]"])} if "levels[]" in args else set()
    search = args.get("search", "").lower()
    hits = []
    with app.extensions["canvas"].db.transaction() as session:
        for run in session.query(WorkflowRun).filter(WorkflowRun.workflow_id.in_([uuid.UUID(i) for i in flow_ids])):
            workflow = session.get(Workflow, run.workflow_id)
            common = {"workspace_id": str(workflow.organization_id), "flow_id": str(run.workflow_id),
                      "user_id": str(run.account_id), "exec_id": str(run.id)}
            for block in session.query(BlockRun).filter(BlockRun.run_id == run.id):
                for index, line in enumerate(block.log or []):
                    at = (datetime.fromisoformat(line["time"]) if line["time"]
                          else block.date_finished or block.date_started)
                    hits.append(((at, 1, index, block.id), {
                        "id": f"{block.id}-{index}", **common, "step_id": step_id(workflow, block.number), "method": block.block_key,
                        "component_name": block.block_name, "timestamp": line["time"], "level": LEVELS[line["level"]],
                        "message": line["message"]}))
            if run.status == "Failed":
                hits.append(((run.date_finished, 2, 0, run.id), {
                    "id": f"{run.id}-failed", **common, "step_id": None, "method": None, "component_name": None,
                    "timestamp": jsonapi.iso_time(run.date_finished), "level": 50,
                    "message": f"Execution failed: {run.error}"}))
    hits = [(key, hit) for key, hit in hits if (start is None or key[0] >= start) and (end is None or key[0] <= end)
            and (not levels or hit["level"] in levels) and (not search or search in hit["message"].lower())]
    hits.sort(key=lambda entry: entry[0][:2], reverse=True)  # newest first; at the same instant a run's failure first
    offset, limit = int(args.get("offset", 0)), int(args.get("limit", 100))
    return {"total": len(hits), "hits": [hit for _key, hit in hits[offset:offset + limit]]}


def served(app, v2, **args) -> tuple[dict, int, int]:
    """The answer, the statements run and the rows of runs, block runs and lines loaded whole while serving it."""
    from canvas.models import BlockRun, LogLine, WorkflowRun

    engine = app.extensions["canvas"].db.engine
    statements, loaded = [], []

    def record(_connection, _cursor, statement, *_args) -> None:  # noqa: ANN001
        statements.append(statement)

    def count(target, _context) -> None:  # noqa: ANN001
        loaded.append(target)

    event.listen(engine, "before_cursor_execute", record)
    event.listen(WorkflowRun, "load", count)
    event.listen(BlockRun, "load", count)
    event.listen(LogLine, "load", count)
    try:
        answer = v2.call("GET", "/v2/logs", **args)
    finally:
        event.remove(engine, "before_cursor_execute", record)
        event.remove(WorkflowRun, "load", count)
        event.remove(BlockRun, "load", count)
        event.remove(LogLine, "load", count)
    assert answer.status_code == 200, answer.json
    return answer.json, statements, len(loaded)


def test_the_work_of_a_page_does_not_grow_with_the_runs(app, v2):
    small, large = v2.create("Small")["id"], v2.create("Large")["id"]
    add_runs(app, v2.org.admin_id, small, 20)
    add_runs(app, v2.org.admin_id, large, 200)
    args = {"limit": "5"}
    served(app, v2, **args)  # a first request: what signing in once costs is not the list's
    few = served(app, v2, **{"flow_ids[]": small}, **args)
    many = served(app, v2, **{"flow_ids[]": large}, **args)
    assert few[0] == every_hit(app, [small], args) and many[0] == every_hit(app, [large], args)
    # as many statements, but one: a page with a failed run's line reads the failure in a statement of its own
    assert abs(len(few[1]) - len(many[1])) <= 1
    assert few[2] <= 5 and many[2] <= 5  # only the page's lines are read whole

    add_runs(app, v2.org.admin_id, large, 800, first=200, still_running=False)
    deep = {"limit": "5", "offset": "1500"}
    more = served(app, v2, **{"flow_ids[]": large}, **deep)
    assert more[0] == every_hit(app, [large], deep) and len(more[0]["hits"]) == 5
    assert abs(len(more[1]) - len(many[1])) <= 1 and more[2] <= 5  # five times the runs, a deep page: the same


@pytest.mark.parametrize("args", [
    {}, {"limit": "7"}, {"limit": "30", "offset": "45"}, {"limit": "1", "offset": "399"}, {"offset": "1000"},
    {"levels[]": "40", "limit": "10"}, {"levels[]": "50"}, {"search": "records", "limit": "9", "offset": "3"},
    {"from": "2026-01-01T01:00:15Z", "to": "2026-01-01T01:40:00Z", "limit": "20"},
    {"from": "2026-01-01T02:00:00Z"}, {"to": "2026-01-01T00:10:00Z"},
    # pages in the second half, read from the oldest end: whole, cut short by the end, filtered
    {"limit": "40", "offset": "300"}, {"limit": "50", "offset": "400"},
    {"levels[]": "40", "limit": "15", "offset": "100"}, {"levels[]": "50", "limit": "7", "offset": "20"},
    {"search": "records", "limit": "50", "offset": "120"},
], ids=lambda args: "&".join(f"{key}={value}" for key, value in args.items()) or "default")
def test_a_page_is_what_reading_every_line_gives(app, v2, args):
    flows = [v2.create("One")["id"], v2.create("Two")["id"]]
    add_runs(app, v2.org.admin_id, flows[0], 150)
    add_runs(app, v2.org.admin_id, flows[1], 60, first=75, shift=3)  # interleaved with the first flow's runs
    assert served(app, v2, **args)[0] == every_hit(app, flows, args)
    assert served(app, v2, **{"flow_ids[]": flows[1]}, **args)[0] == every_hit(app, flows[1:], args)


def test_the_migration_indexes_the_lines_block_runs_already_kept(app, v2, monkeypatch):
    """Migration 0018 copies the lines of the block runs already recorded into log_line: the logs then read as
    they did before it (the same answer as reading every block run's lines)."""
    import importlib

    from sqlalchemy import delete, func, select

    from canvas.models import LogLine

    copy = importlib.import_module("canvas.migrations.versions.0018_log_lines")
    flows = [v2.create("One")["id"], v2.create("Two")["id"]]
    add_runs(app, v2.org.admin_id, flows[0], 40)
    add_runs(app, v2.org.admin_id, flows[1], 30, first=20, shift=3)
    monkeypatch.setattr(copy, "BATCH", 7)  # several batches, the last one partial
    engine = app.extensions["canvas"].db.engine
    with engine.begin() as connection:
        indexed = connection.scalar(select(func.count()).select_from(LogLine))
        connection.execute(delete(LogLine))
        copy._copy_lines(connection, LogLine.__table__)
        assert connection.scalar(select(func.count()).select_from(LogLine)) == indexed > 0
    for args in ({}, {"limit": "10", "offset": "25"}, {"levels[]": "40"}):
        assert served(app, v2, **args)[0] == every_hit(app, flows, args)
