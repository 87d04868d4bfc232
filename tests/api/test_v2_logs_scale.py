"""/v2/logs reads a bounded number of runs: the statements it runs and the rows it loads do not grow with the
number of runs once the page is full, and it answers what reading every line and sorting them all answers."""
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
    with app.extensions["canvas"].db.engine.begin() as connection:
        connection.execute(insert(WorkflowRun), runs)
        connection.execute(insert(BlockRun), blocks)


def every_hit(app, flow_ids: list[str], args: dict) -> dict:
    """The answer the endpoint gave when it read every line: all hits, filtered and sorted in Python (a line
    without an ISO time sorting as its block's end)."""
    from canvas.models import BlockRun, Workflow, WorkflowRun
    from canvas.v2 import jsonapi
    from canvas.v2.logs import _failure_hit, _hit, _within

    start = datetime.fromisoformat(args["from"].replace("Z", "+00:00")) if "from" in args else None
    end = datetime.fromisoformat(args["to"].replace("Z", "+00:00")) if "to" in args else None
    levels = {int(args["levels[]"])} if "levels[]" in args else set()
    search = args.get("search", "").lower()
    hits = []
    with app.extensions["canvas"].db.transaction() as session:
        for run in session.query(WorkflowRun).filter(WorkflowRun.workflow_id.in_([uuid.UUID(i) for i in flow_ids])):
            workflow = session.get(Workflow, run.workflow_id)
            if end is not None and run.date_queued > end:
                continue
            if start is not None and run.date_finished is not None and run.date_finished < start:
                continue
            for block in session.query(BlockRun).filter(BlockRun.run_id == run.id):
                for index, line in enumerate(block.log or []):
                    hit = _hit(index, line, block, run, workflow)
                    key = hit["timestamp"] or jsonapi.iso_time(block.date_finished or run.date_finished
                                                               or run.date_queued)
                    hits.append((key, hit))
            if run.status == "Failed":
                hit = _failure_hit(run, workflow)
                hits.append((hit["timestamp"], hit))
    hits = [(key, hit) for key, hit in hits if _within(hit, start, end) and (not levels or hit["level"] in levels)
            and (not search or search in hit["message"].lower())]
    hits.sort(key=lambda entry: entry[0], reverse=True)
    offset, limit = int(args.get("offset", 0)), int(args.get("limit", 100))
    return {"total": len(hits), "hits": [hit for _key, hit in hits[offset:offset + limit]]}


def served(app, v2, **args) -> tuple[dict, int, int]:
    """The answer, the statements run and the runs and block runs loaded while serving it."""
    from canvas.models import BlockRun, WorkflowRun

    engine = app.extensions["canvas"].db.engine
    statements, loaded = [], []

    def record(_connection, _cursor, statement, *_args) -> None:  # noqa: ANN001
        statements.append(statement)

    def count(target, _context) -> None:  # noqa: ANN001
        loaded.append(target)

    event.listen(engine, "before_cursor_execute", record)
    event.listen(WorkflowRun, "load", count)
    event.listen(BlockRun, "load", count)
    try:
        answer = v2.call("GET", "/v2/logs", **args)
    finally:
        event.remove(engine, "before_cursor_execute", record)
        event.remove(WorkflowRun, "load", count)
        event.remove(BlockRun, "load", count)
    assert answer.status_code == 200, answer.json
    return answer.json, statements, len(loaded)


def test_the_work_of_a_page_does_not_grow_with_the_runs(app, v2):
    from canvas.v2.logs import BATCH_RUNS

    small, large = v2.create("Small")["id"], v2.create("Large")["id"]
    add_runs(app, v2.org.admin_id, small, 20)
    add_runs(app, v2.org.admin_id, large, 200)
    args = {"limit": "5"}
    served(app, v2, **args)  # a first request: what signing in once costs is not the list's
    few = served(app, v2, **{"flow_ids[]": small}, **args)
    many = served(app, v2, **{"flow_ids[]": large}, **args)
    assert few[0] == every_hit(app, [small], args) and many[0] == every_hit(app, [large], args)
    assert len(few[1]) == len(many[1])  # as many statements
    bound = 2 * (BATCH_RUNS + 1)  # the running run, a batch of finished ones, and their blocks
    assert few[2] <= 2 * 20 and many[2] <= bound

    add_runs(app, v2.org.admin_id, large, 800, first=200, still_running=False)
    more = served(app, v2, **{"flow_ids[]": large}, **args)
    assert more[0] == every_hit(app, [large], args)
    assert len(more[1]) == len(many[1]) and more[2] <= bound  # five times the runs: the same work


@pytest.mark.parametrize("args", [
    {}, {"limit": "7"}, {"limit": "30", "offset": "45"}, {"limit": "1", "offset": "399"}, {"offset": "1000"},
    {"levels[]": "40", "limit": "10"}, {"levels[]": "50"}, {"search": "records", "limit": "9", "offset": "3"},
    {"from": "2026-01-01T01:00:15Z", "to": "2026-01-01T01:40:00Z", "limit": "20"},
    {"from": "2026-01-01T02:00:00Z"}, {"to": "2026-01-01T00:10:00Z"},
], ids=lambda args: "&".join(f"{key}={value}" for key, value in args.items()) or "default")
def test_a_page_is_what_reading_every_line_gives(app, v2, args):
    flows = [v2.create("One")["id"], v2.create("Two")["id"]]
    add_runs(app, v2.org.admin_id, flows[0], 150)
    add_runs(app, v2.org.admin_id, flows[1], 60, first=75, shift=3)  # interleaved with the first flow's runs
    assert served(app, v2, **args)[0] == every_hit(app, flows, args)
    assert served(app, v2, **{"flow_ids[]": flows[1]}, **args)[0] == every_hit(app, flows[1:], args)
