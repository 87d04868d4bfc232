"""Every list of both dialects reads its table through an index: the statements each list endpoint really executes
(caught with a SQLAlchemy event listener while the request is served) are explained on the suite's database, and
a plan that reads a whole table fails the test.

On PostgreSQL, `enable_seqscan = off` for the EXPLAIN: with the few rows of a test the planner would rightly scan
them, so a Seq Scan left in the plan means no index can serve the query. On SQLite (no PostgreSQL configured),
EXPLAIN QUERY PLAN's `SCAN <table>` without an index is the same finding.

The page queries of the lists whose order an index serves are also held to that: no sort of all the rows the
filter selects (PostgreSQL with enable_sort off: a Sort node; SQLite: USE TEMP B-TREE FOR ORDER BY). A sort of
the tie-breaker within equal leading keys (Incremental Sort, TEMP B-TREE FOR RIGHT PART OF ORDER BY) is fine.

A page reads its ids first, from the end of the list nearer to it (canvas.workflows.service.slice_of): each list has
a case of a first page and one of a last page, so that both the forward and the reverse id query are explained.
"""
from __future__ import annotations

import json
import re
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import event, insert

from tests.api.test_v2_support import basic_headers
from tests.api.workflow_helpers import file_hub_app, new_workflow, published_template

SQLITE_SCAN = re.compile(r"^SCAN (\w+)(?: AS (\w+))?"
                         r"(?P<index> USING (?:COVERING )?INDEX .*| USING INTEGER PRIMARY KEY.*)?$")


@pytest.fixture()
def listed(app, client, org, make_org):
    """An organization with an admin and a User, each with two registered applications, workflows (one deleted),
    runs, schedule occurrences and block runs with log lines; and another organization with a workflow. Its "places"
    fill the paths: each user's first workflow, and the last page (of 1) of the lists whose length is not set here."""
    users = {"admin": (org.admin_id, org.admin_headers)}
    user_id, user_headers = org.add_account("User")
    users["user"] = (user_id, user_headers)
    workflow_ids = {}
    template_id = published_template(client, org.admin_headers)
    for name, (account_id, headers) in users.items():
        registered = file_hub_app(client, headers)
        file_hub_app(client, headers)
        ids = [new_workflow(client, headers, template_id, registered, name=f"{name} {n}") for n in range(3)]
        assert client.get(f"/api/DeleteWorkflow/{ids[-1]}", headers=headers).status_code == 200
        workflow_ids[name] = ids[0]
        _add_history(app, account_id, ids[0])
    other = make_org("Other")
    other_template = published_template(client, other.admin_headers)
    new_workflow(client, other.admin_headers, other_template, file_hub_app(client, other.admin_headers))
    basic = {name: basic_headers(app, account_id, headers) for name, (account_id, headers) in users.items()}
    lengths = {"templates_last": _length(client, "/api/WorkflowTemplates?pageSize=1", org.admin_headers),
               "audit_last": _length(client, "/api/AuditLog?pageSize=1", org.admin_headers),
               "events_last": _length(client, "/v2/audit-events?page[size]=1", basic["admin"])}
    return {"users": users, "places": {**workflow_ids, **lengths}, "basic": basic}


def _length(client, path: str, headers: dict) -> int:  # noqa: ANN001
    answer = client.get(path, headers=headers)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    return int(answer.headers["X-Total-Count"]) if "X-Total-Count" in answer.headers else answer.json["meta"]["total"]


def _add_history(app, account_id: str, workflow_id: str) -> None:
    from canvas.models import BlockRun, ScheduleOccurrence, WorkflowRun

    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    runs = [{"id": uuid.uuid4(), "workflow_id": uuid.UUID(workflow_id), "account_id": uuid.UUID(account_id),
             "status": status, "trigger": "manual", "run_from_block": 1, "run_till_block": 3, "dry_run": False,
             "cancel_requested": False, "lease_token": 0, "dispatch_count": 1, "error": "boom" if status == "Failed"
             else None, "date_queued": start + timedelta(minutes=n), "date_finished": start + timedelta(minutes=n)}
            for n, status in enumerate(["Succeeded", "Failed", "Succeeded", "Cancelled"])]
    blocks = [{"id": uuid.uuid4(), "run_id": run["id"], "number": 1, "unique_block_id": str(uuid.UUID(int=0xA1)),
               "block_name": "Records", "block_key": "records.from_variable", "status": "Succeeded", "attempts": 1,
               "log": [{"time": run["date_queued"].isoformat(), "level": "INFO", "message": "read 1 record"}]}
              for run in runs]
    occurrences = [{"workflow_id": uuid.UUID(workflow_id), "scheduled_time": start + timedelta(hours=n),
                    "outcome": "fired", "scheduler": "test", "date_recorded": start} for n in range(3)]
    with app.extensions["canvas"].db.engine.begin() as connection:
        connection.execute(insert(WorkflowRun), runs)
        connection.execute(insert(BlockRun), blocks)
        connection.execute(insert(ScheduleOccurrence), occurrences)


# (id, who, path, whether the page query's order must come from an index)
LISTS = [
    ("workflows", "admin", "/api/Workflows", True),
    ("workflows-page", "user", "/api/Workflows?page=1&pageSize=1", True),
    ("workflows-last-page", "user", "/api/Workflows?page=2&pageSize=1", True),
    ("accounts", "admin", "/api/Accounts", True),
    ("accounts-page", "admin", "/api/Accounts?page=1&pageSize=1", True),
    ("accounts-last-page", "admin", "/api/Accounts?page=2&pageSize=1", True),
    ("reg-applications", "user", "/api/RegApplications", True),
    ("reg-applications-page", "user", "/api/RegApplications?pageSize=1", True),
    ("reg-applications-last-page", "user", "/api/RegApplications?page=2&pageSize=1", True),
    # global templates or the organization's: one index scan per term of the OR, the visible ones sorted by name (on
    # a large table, a page's ids are read in name order from ix_workflow_template_listed, which holds the
    # organization)
    ("workflow-templates", "admin", "/api/WorkflowTemplates", False),
    ("workflow-templates-page", "admin", "/api/WorkflowTemplates?page=1&pageSize=2", False),
    ("workflow-templates-last-page", "admin", "/api/WorkflowTemplates?page={templates_last}&pageSize=1", False),
    ("workflow-runs", "user", "/api/WorkflowRuns?workflowId={user}&page=1&pageSize=2", True),
    ("workflow-runs-last-page", "user", "/api/WorkflowRuns?workflowId={user}&page=2&pageSize=2", True),
    ("workflow-runs-status", "user", "/api/WorkflowRuns?workflowId={user}&status=Succeeded", True),
    ("schedule-occurrences", "user", "/api/ScheduleOccurrences?workflowId={user}&pageSize=2", True),
    ("audit-log", "admin", "/api/AuditLog?pageSize=2", True),
    ("audit-log-last-page", "admin", "/api/AuditLog?page={audit_last}&pageSize=1", True),
    ("v2-flows-of-a-user", "user", "/v2/flows?page[size]=1", True),
    ("v2-flows-of-a-user-last-page", "user", "/v2/flows?page[size]=1&page[number]=2", True),
    ("v2-flows-of-a-workspace", "admin", "/v2/flows?page[size]=2&page[number]=2", True),
    ("v2-credentials", "user", "/v2/credentials?page[size]=1", True),
    ("v2-credentials-last-page", "user", "/v2/credentials?page[size]=1&page[number]=2", True),
    ("v2-audit-events", "admin", "/v2/audit-events?page[size]=2", True),
    ("v2-audit-events-last-page", "admin", "/v2/audit-events?page[size]=1&page[number]={events_last}", True),
    # runs of the viewer's workflows, newest first: the runs are found through each workflow's index, then sorted
    ("v2-executions", "admin", "/v2/executions?page[size]=2", False),
    ("v2-executions-last-page", "admin", "/v2/executions?page[size]=2&page[number]=4", False),
    ("v2-executions-of-a-flow", "user", "/v2/executions?filter[flow]={user}&page[size]=2", True),
    ("v2-executions-of-a-flow-last-page", "user", "/v2/executions?filter[flow]={user}&page[size]=2&page[number]=2",
     True),
    # the viewer's log lines (log_line) and failed runs: the first offset + limit of each through an index, then
    # merged by a sort of those (PostgreSQL does not merge-append them: canvas.v2.logs.log_page)
    ("v2-logs", "user", "/v2/logs?limit=2", False),
    ("v2-logs-of-a-workspace", "admin", "/v2/logs?limit=2", False),
    ("v2-logs-of-a-flow", "user", "/v2/logs?limit=2&flow_ids[]={user}", False),
    # a page in the first half is read from the newest end, one in the second half from the oldest (the two failed
    # runs the admin sees: pages of one)
    ("v2-logs-newest-end", "admin", "/v2/logs?limit=1", False),
    ("v2-logs-oldest-end", "admin", "/v2/logs?limit=1&offset=1", False),
]


@pytest.mark.parametrize(("who", "path", "ordered"), [case[1:] for case in LISTS], ids=[case[0] for case in LISTS])
def test_a_list_reads_its_tables_through_indexes(app, client, listed, who, path, ordered):
    headers = listed["basic"][who] if path.startswith("/v2/") else listed["users"][who][1]
    statements = _statements_of(app, lambda: client.get(path.format(**listed["places"]), headers=headers))
    selects = [(statement, parameters) for statement, parameters in statements
               if statement.lstrip().upper().startswith("SELECT")]
    assert selects, "the endpoint ran no query"
    problems = []
    for statement, parameters in selects:
        plan, found = _plan_problems(app, statement, parameters, check_order=ordered and " LIMIT " in statement)
        problems += [f"{problem}\n  in: {statement}\n  plan: {plan}" for problem in found]
    assert not problems, "\n\n".join(problems)


def _statements_of(app, request) -> list[tuple[str, object]]:  # noqa: ANN001
    engine = app.extensions["canvas"].db.engine
    caught = []

    def record(_connection, _cursor, statement, parameters, _context, executemany):  # noqa: ANN001
        if not executemany:
            caught.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", record)
    try:
        answer = request()
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    return caught


def _plan_problems(app, statement: str, parameters, check_order: bool) -> tuple[str, list[str]]:  # noqa: ANN001
    from canvas.models import Base

    tables = set(Base.metadata.tables)
    engine = app.extensions["canvas"].db.engine
    with engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            connection.exec_driver_sql("SET LOCAL enable_seqscan = off")
            if check_order:
                connection.exec_driver_sql("SET LOCAL enable_sort = off")
            plan = connection.exec_driver_sql("EXPLAIN (FORMAT JSON) " + statement, parameters).scalar()
            plan = json.loads(plan) if isinstance(plan, str) else plan
            nodes = list(_nodes(plan[0]["Plan"]))
            problems = [f"Seq Scan on {node['Relation Name']}" for node in nodes
                        if node["Node Type"] == "Seq Scan" and node.get("Relation Name") in tables]
            if check_order:
                problems += ["a Sort of every row the filter selects: no index serves the order"
                             for node in nodes if node["Node Type"] == "Sort"]
            shown = " / ".join(f"{node['Node Type']} {node.get('Relation Name', '')} {node.get('Index Name', '')}"
                               .strip() for node in nodes)
        else:
            details = [row[-1] for row in connection.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)]
            problems = [f"{detail}: the whole table is read" for detail in details
                        if (match := SQLITE_SCAN.match(detail)) and not match["index"]
                        and re.sub(r"_\d+$", "", match[1]) in tables]
            if check_order:
                problems += [f"{detail}: no index serves the order" for detail in details
                             if detail == "USE TEMP B-TREE FOR ORDER BY"]
            shown = " / ".join(details)
        connection.rollback()
    return shown, problems


def _nodes(node: dict):  # noqa: ANN202
    yield node
    for child in node.get("Plans", []):
        yield from _nodes(child)
