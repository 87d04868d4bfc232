"""/v2/logs: the log lines of the account's runs, in the seed's `{total, hits}` shape."""
from __future__ import annotations

from datetime import datetime, timezone

from flask import request
from flask.views import MethodView
from flask_smorest import Blueprint
from sqlalchemy import case, func, select

from canvas.errors import BadRequestError
from canvas.extensions import db_session
from canvas.models import BlockRun, Workflow, WorkflowRun
from canvas.schema_fields import parse_id
from canvas.v2 import jsonapi
from canvas.v2.visibility import Viewer, check_workspace, current_viewer
from canvas.v2.graph import step_id
from canvas.openapi import may_answer
from canvas.v2.schemas import LOG_PARAMETERS, doc

blp = Blueprint("v2_logs", __name__, url_prefix="/v2", description="v2 (JSON:API): logs")
LEVELS = {"NOTSET": 1, "TRACE": 10, "DEBUG": 20, "INFO": 30, "WARNING": 40, "WARN": 40, "ERROR": 50,
          "CRITICAL": 60, "FATAL": 60}
DEFAULT_LIMIT, MAX_LIMIT = 100, 1000


def time_parameter(name: str) -> datetime | None:
    raw = (request.args.get(name) or "").strip()
    if not raw:
        return None
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequestError(f"{name} must be an ISO 8601 instant, got '{raw}'", parameter=name) from None
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def flow_ids_parameter() -> list:
    try:
        return [parse_id(value) for value in jsonapi.list_parameter("flow_ids")]
    except ValueError:
        raise BadRequestError("flow_ids[] must be flow ids", parameter="flow_ids[]") from None


def levels_parameter() -> set[int]:
    values = jsonapi.list_parameter("levels")
    if not all(value.isdigit() for value in values):
        raise BadRequestError("levels[] must be numbers: 10 trace ... 60 fatal", parameter="levels[]")
    return {int(value) for value in values}


BATCH_RUNS = 50  # runs read at a time, newest finished first; the next batch is twice as large


def log_page(viewer: Viewer, flow_ids: list, start: datetime | None, end: datetime | None, levels: set[int],
             search: str, offset: int, limit: int) -> tuple[int, list[dict]]:
    """The total of the matching hits and the page `offset:offset + limit` of them, newest first.

    The runs are read newest finished first (the unfinished ones, whose lines may be newer than anything, before
    them), a batch at a time, with their block runs: a hit's timestamp is at most its run's date_finished, so once
    `offset + limit` hits are newer (to the second) than the date_finished of the last run read, no later run can
    add to the page and the reading stops. The total comes from one aggregate query when no filter looks into the
    lines (levels, search, from, to); with such a filter the lines of every selected run are read to count them."""
    need = offset + limit
    line_filtered = bool(levels or search or start or end)

    def keep(hit: dict) -> bool:
        return (_within(hit, start, end) and (not levels or hit["level"] in levels)
                and (not search or search in hit["message"].lower()))

    hits: list[tuple[str, dict]] = []
    count = 0
    batch, bound, done = BATCH_RUNS, None, False
    runs = _runs_of(select(WorkflowRun), viewer, flow_ids, start, end)
    runs = runs.where((WorkflowRun.status == "Failed") | select(BlockRun.id).where(
        BlockRun.run_id == WorkflowRun.id).exists())
    for unfinished in (True, False):
        query = runs.where(WorkflowRun.date_finished.is_(None)) if unfinished else runs.where(
            WorkflowRun.date_finished.is_not(None)).order_by(WorkflowRun.date_finished.desc(), WorkflowRun.id.desc())
        while not done:
            page = query if unfinished else (query if bound is None else query.where(
                (WorkflowRun.date_finished < bound[0])
                | ((WorkflowRun.date_finished == bound[0]) & (WorkflowRun.id < bound[1])))).limit(batch)
            chunk = _batch(page)
            found = _hits_of(chunk)
            matched = [entry for entry in found if keep(entry[1])]
            count += len(matched)
            hits += matched
            hits.sort(key=lambda entry: entry[0], reverse=True)
            del hits[need:]  # a hit after the first `need` stays after them, whatever comes later
            if unfinished:
                break
            if len(chunk) < batch:
                done = True
                break
            last = chunk[-1]
            bound, batch = (last.date_finished, last.id), min(batch * 2, 1000)
            if not line_filtered and len(hits) >= need and (
                    _second(hits[-1][0]) > _second(jsonapi.iso_time(last.date_finished))):
                done = True  # every later run's hits are older than the page's last
    total = count if line_filtered else _total(viewer, flow_ids, start, end)
    return total, [hit for _key, hit in hits[offset:need]]


def _batch(query) -> list[WorkflowRun]:  # noqa: ANN001 - a Select of runs
    """The query's runs, their ids read first: ix_workflow_run_finished (and ix_workflow_run_workflow_finished) hold
    the status and the workflow, so the filter (failed, or with block runs), the viewer's condition and the order are
    answered from the index, and the rows of runs without lines, most runs but the failed ones in a deep page, are
    never read."""
    ids = db_session().scalars(query.with_only_columns(WorkflowRun.id)).all()
    runs = {run.id: run for run in db_session().scalars(select(WorkflowRun).where(WorkflowRun.id.in_(ids)))}
    return [runs[run_id] for run_id in ids if run_id in runs]


def _hits_of(chunk: list[WorkflowRun]) -> list[tuple[str, dict]]:
    """The hits of a batch of runs with their sort keys: each block's lines (a line without an ISO timestamp sorts
    as its block's, or its run's, end), then the run's failure line if it failed. Their workflows are read once
    each, not with every run: a workflow row decoded for each of 1,000 runs of one workflow (its chain JSON) was
    most of the Python time of a deep page."""
    if not chunk:
        return []
    blocks: dict = {}
    for block in db_session().scalars(select(BlockRun).where(BlockRun.run_id.in_([run.id for run in chunk]))
                                      .order_by(BlockRun.run_id, BlockRun.number)):
        blocks.setdefault(block.run_id, []).append(block)
    workflows = {workflow.id: workflow for workflow in db_session().scalars(
        select(Workflow).where(Workflow.id.in_({run.workflow_id for run in chunk})))}
    found = []
    for run in chunk:
        workflow = workflows[run.workflow_id]
        for block in blocks.get(run.id, []):
            fallback = jsonapi.iso_time(block.date_finished or run.date_finished or run.date_queued)
            for index, line in enumerate(block.log or []):
                hit = _hit(index, line, block, run, workflow)
                found.append((_key(hit["timestamp"], fallback), hit))
        if run.status == "Failed":
            hit = _failure_hit(run, workflow)
            found.append((str(hit["timestamp"]), hit))
    return found


def _key(timestamp: object, fallback: str) -> str:
    try:
        datetime.fromisoformat(str(timestamp))
    except ValueError:
        return fallback
    return str(timestamp)


def _second(stamp: str) -> str:
    """An ISO 8601 UTC instant to the second, "YYYY-MM-DDTHH:MM:SS": the prefix its string order follows whatever
    its fraction and offset notation."""
    return stamp[:19]


def _total(viewer: Viewer, flow_ids: list, start: datetime | None, end: datetime | None) -> int:
    """Every log line of the selected runs' blocks and a line per failed run, counted by the database."""
    if db_session().get_bind().dialect.name == "postgresql":
        lines = case((func.json_typeof(BlockRun.log) == "array", func.json_array_length(BlockRun.log)), else_=0)
    else:
        lines = case((func.json_type(BlockRun.log) == "array", func.json_array_length(BlockRun.log)), else_=0)
    block_lines = db_session().scalar(_runs_of(select(func.coalesce(func.sum(lines), 0)).select_from(BlockRun).join(
        WorkflowRun, BlockRun.run_id == WorkflowRun.id), viewer, flow_ids, start, end))
    failed = db_session().scalar(_runs_of(select(func.count()).select_from(WorkflowRun), viewer, flow_ids, start,
                                          end).where(WorkflowRun.status == "Failed"))
    return int(block_lines or 0) + int(failed or 0)


def _runs_of(statement, viewer: Viewer, flow_ids: list,  # noqa: ANN001, ANN202 - a Select
             start: datetime | None, end: datetime | None):
    statement = statement.join(Workflow, Workflow.id == WorkflowRun.workflow_id).where(
        viewer.condition(Workflow.account_id, Workflow.organization_id))
    if flow_ids:
        statement = statement.where(WorkflowRun.workflow_id.in_(flow_ids))
    if end is not None:
        statement = statement.where(WorkflowRun.date_queued <= end)
    if start is not None:
        statement = statement.where((WorkflowRun.date_finished.is_(None)) | (WorkflowRun.date_finished >= start))
    return statement


def _hit(index: int, line: dict, block: BlockRun, run: WorkflowRun, workflow: Workflow) -> dict:
    return {"id": f"{block.id}-{index}", "workspace_id": str(workflow.organization_id), "flow_id": str(workflow.id),
            "user_id": str(run.account_id), "step_id": step_id(workflow, block.number),
            "exec_id": str(run.id), "method": block.block_key, "component_name": block.block_name,
            "timestamp": line.get("time"), "level": LEVELS.get(str(line.get("level")).upper(), 30),
            "message": line.get("message") or ""}


def _failure_hit(run: WorkflowRun, workflow: Workflow) -> dict:
    failed_step = step_id(workflow, run.failed_block) if run.failed_block else None
    where = f" at step {failed_step}" if failed_step else ""
    return {"id": f"{run.id}-failed", "workspace_id": str(workflow.organization_id), "flow_id": str(workflow.id),
            "user_id": str(run.account_id), "step_id": failed_step, "exec_id": str(run.id), "method": None,
            "component_name": None, "timestamp": jsonapi.iso_time(run.date_finished or run.date_queued),
            "level": LEVELS["ERROR"], "message": f"Execution failed{where}: {run.error or 'no reason recorded'}"}


def _within(hit: dict, start: datetime | None, end: datetime | None) -> bool:
    try:
        stamp = datetime.fromisoformat(str(hit["timestamp"]))
    except ValueError:
        return start is None and end is None
    return (start is None or stamp >= start) and (end is None or stamp <= end)


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
