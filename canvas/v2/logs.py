"""/v2/logs: the log lines of the account's runs, in the seed's `{total, hits}` shape."""
from __future__ import annotations

from datetime import datetime

from flask import request
from flask.views import MethodView
from sqlalchemy import Select, String, case, cast, func, literal, literal_column, null, select, union_all

from canvas.errors import BadRequestError
from canvas.execution.run_log import LEVEL_NUMBERS
from canvas.extensions import db_session
from canvas.models import BlockRun, LogLine, Workflow, WorkflowRun
from canvas.openapi import may_answer
from canvas.schema_fields import parse_id, parse_instant_text, parse_int_text
from canvas.v2 import jsonapi
from canvas.v2.graph import step_id
from canvas.v2.schemas import LOG_PARAMETERS, doc
from canvas.v2.visibility import Viewer, check_workspace, current_viewer
from canvas.web import Blueprint
from canvas.workflows.service import nearer_end

blp = Blueprint("v2_logs", __name__, url_prefix="/v2", description="v2 (JSON:API): logs")
DEFAULT_LIMIT, MAX_LIMIT = 100, 1000


def time_parameter(name: str) -> datetime | None:
    raw = (request.args.get(name) or "").strip()
    if not raw:
        return None
    try:
        return parse_instant_text(raw)
    except ValueError:
        raise BadRequestError(f"{name} must be an ISO 8601 instant, got '{raw}'", parameter=name) from None


def flow_ids_parameter() -> list:
    try:
        return [parse_id(value) for value in jsonapi.list_parameter("flow_ids")]
    except ValueError:
        raise BadRequestError("flow_ids[] must be flow ids", parameter="flow_ids[]") from None


MAX_LEVEL = 100  # 60 fatal is the highest; beyond an integer column's range the database failed, a 500


def levels_parameter() -> set[int]:
    values = jsonapi.list_parameter("levels")
    try:
        return {parse_int_text(value, 0, MAX_LEVEL) for value in values}
    except ValueError:
        raise BadRequestError("levels[] must be numbers: 10 trace ... 60 fatal", parameter="levels[]") from None


def log_page(viewer: Viewer, flow_ids: list, start: datetime | None, end: datetime | None, levels: set[int],
             search: str, offset: int, limit: int) -> tuple[int, list[dict]]:
    """The total of the matching hits and the page `offset:offset + limit` of them, newest first: the blocks' lines
    (log_line, a row each, in an index per way of asking) and a line per failed run (from the run), merged by time.

    The page's keys are read first, from the indexes alone: the first `offset + limit` of each kind in its index's
    order, merged by the database (PostgreSQL merges such limited parts as they come; it would not merge the bare
    index scans, whose filter on their index's first column it does not see as making them ordered by time); only
    the page's hits are then read whole. A page in the second half is read from the oldest end, as slice_of reads a
    list's pages (canvas.workflows.service.nearer_end): the last page costs what the first does."""
    parts = [(_line_keys(viewer, flow_ids, start, end, levels, search), (LogLine.logged_at, LogLine.id))]
    if not levels or LEVEL_NUMBERS["ERROR"] in levels:
        failure_order = (WorkflowRun.date_finished, WorkflowRun.id)
        parts.append((_failure_keys(viewer, flow_ids, start, end, search), failure_order))
    total = sum(db_session().scalar(select(func.count()).select_from(part.subquery())) for part, _ in parts)
    oldest_first, skip, take = nearer_end(total, offset, limit)
    if take <= 0:
        return total, []
    heads = [select(part.order_by(*(column.asc() if oldest_first else column.desc() for column in order))
                    .limit(skip + take).subquery()) for part, order in parts]
    keys = union_all(*heads) if len(heads) > 1 else heads[0]
    columns = keys.selected_columns
    # Lines by time and id; a run's failure before the lines of its instant, failures of one instant in their part's
    # order (by run id): merging sorted parts keeps each part's order, and a third key would make PostgreSQL sort
    # every key read again. From the oldest end, all of it reversed.
    order = ((columns.at.asc(), columns.line_id.asc().nulls_last()) if oldest_first
             else (columns.at.desc(), columns.line_id.desc().nulls_first()))
    page = db_session().execute(keys.order_by(*order).offset(skip).limit(take)).all()
    return total, _hits(page[::-1] if oldest_first else page)


def _line_keys(viewer: Viewer, flow_ids: list, start: datetime | None, end: datetime | None, levels: set[int],
               search: str) -> Select:
    statement = select(LogLine.logged_at.label("at"), LogLine.id.label("line_id"),
                       cast(null(), LogLine.run_id.type).label("run_id")  # read with the line: the keys from the index
                       ).where(viewer.condition(LogLine.account_id, LogLine.organization_id))
    if flow_ids:
        statement = statement.where(LogLine.workflow_id.in_(flow_ids))
    if start is not None:
        statement = statement.where(LogLine.logged_at >= start)
    if end is not None:
        statement = statement.where(LogLine.logged_at <= end)
    if levels:
        statement = statement.where(LogLine.level.in_(levels))
    if search:
        statement = statement.where(func.lower(LogLine.message).contains(search, autoescape=True))
    return statement


def _failure_keys(viewer: Viewer, flow_ids: list, start: datetime | None, end: datetime | None,
                  search: str) -> Select:
    at = WorkflowRun.date_finished  # a final run's, always set
    statement = (select(at.label("at"), cast(null(), LogLine.id.type).label("line_id"), WorkflowRun.id.label("run_id"))
                 .join(Workflow, Workflow.id == WorkflowRun.workflow_id)
                 .where(WorkflowRun.status == literal_column("'Failed'"),  # as ix_workflow_run_failed says it
                        viewer.condition(Workflow.account_id, Workflow.organization_id)))
    if flow_ids:
        statement = statement.where(WorkflowRun.workflow_id.in_(flow_ids))
    if start is not None:
        statement = statement.where(at >= start)
    if end is not None:
        statement = statement.where(at <= end)
    if search:
        statement = statement.where(func.lower(_failure_message()).contains(search, autoescape=True))
    return statement


def _failure_message():  # noqa: ANN202 - a SQL expression
    """A failed run's line, "Execution failed at step <node id>: <error>", in SQL, so that a search finds it as it
    reads: its step is named as step_id names it (the chain entry's nodeId, else step_<number>)."""
    number = WorkflowRun.failed_block
    if db_session().get_bind().dialect.name == "postgresql":
        node_id = Workflow.chain.op("->")(number - 1).op("->>")(literal("nodeId"))
    else:
        node_id = func.json_extract(Workflow.chain, literal("$[") + cast(number - 1, String) + literal("].nodeId"))
    step = func.coalesce(node_id, literal("step_") + cast(number, String))
    where = case((number > 0, literal(" at step ") + step), else_=literal(""))
    return (literal("Execution failed") + where + literal(": ")
            + func.coalesce(WorkflowRun.error, literal("no reason recorded")))


def _hits(page: list) -> list[dict]:
    """The page's hits, in its order, read whole: its lines with their blocks and runs, its failed runs with the
    line the database composed, and the workflows whose steps they name."""
    line_ids = [key.line_id for key in page if key.line_id is not None]
    failed_ids = [key.run_id for key in page if key.line_id is None]
    lines = {row.LogLine.id: row for row in db_session().execute(
        select(LogLine, BlockRun.number, BlockRun.block_key, BlockRun.block_name, WorkflowRun.account_id.label("user"))
        .join(BlockRun, BlockRun.id == LogLine.block_run_id).join(WorkflowRun, WorkflowRun.id == LogLine.run_id)
        .where(LogLine.id.in_(line_ids)))} if line_ids else {}
    failures = {row.id: row for row in db_session().execute(
        select(WorkflowRun.id, WorkflowRun.account_id, WorkflowRun.workflow_id, WorkflowRun.failed_block,
               WorkflowRun.date_finished.label("at"), _failure_message().label("message"))
        .join(Workflow, Workflow.id == WorkflowRun.workflow_id).where(WorkflowRun.id.in_(failed_ids)))
    } if failed_ids else {}
    workflow_ids = {row.LogLine.workflow_id for row in lines.values()} | {row.workflow_id for row in failures.values()}
    workflows = {workflow.id: workflow for workflow in db_session().scalars(
        select(Workflow).where(Workflow.id.in_(workflow_ids)))} if workflow_ids else {}
    return [_line_hit(lines[key.line_id], workflows) if key.line_id is not None
            else _failure_hit(failures[key.run_id], workflows) for key in page]


def _line_hit(row, workflows: dict) -> dict:  # noqa: ANN001 - a Row
    line = row.LogLine
    return {"id": f"{line.block_run_id}-{line.position}", "workspace_id": str(line.organization_id),
            "flow_id": str(line.workflow_id), "user_id": str(row.user),
            "step_id": step_id(workflows[line.workflow_id], row.number), "exec_id": str(line.run_id),
            "method": row.block_key, "component_name": row.block_name, "timestamp": line.stated_time,
            "level": line.level, "message": line.message}


def _failure_hit(row, workflows: dict) -> dict:  # noqa: ANN001 - a Row
    workflow = workflows[row.workflow_id]
    failed_step = step_id(workflow, row.failed_block) if row.failed_block else None
    return {"id": f"{row.id}-failed", "workspace_id": str(workflow.organization_id), "flow_id": str(workflow.id),
            "user_id": str(row.account_id), "step_id": failed_step,
            "exec_id": str(row.id), "method": None, "component_name": None, "timestamp": jsonapi.iso_time(row.at),
            "level": LEVEL_NUMBERS["ERROR"], "message": row.message}


@blp.route("/logs")
class Logs(MethodView):
    @blp.doc(**doc(200, "{total, hits[]} newest first", parameters=LOG_PARAMETERS))
    @may_answer(404)  # a workspace_id other than the caller's
    def get(self):
        """Log lines of the account's runs"""
        check_workspace()
        start, end = time_parameter("from"), time_parameter("to")
        if start and end and start > end:
            raise BadRequestError("from must not be after to", parameter="from")
        offset = jsonapi.int_parameter("offset", 0, minimum=0)
        limit = jsonapi.int_parameter("limit", DEFAULT_LIMIT, minimum=1, maximum=MAX_LIMIT)
        levels, search = levels_parameter(), (request.args.get("search") or "").strip().lower()
        total, hits = log_page(current_viewer(), flow_ids_parameter(), start, end, levels, search, offset, limit)
        return jsonapi.raw_json({"total": total, "hits": hits})
