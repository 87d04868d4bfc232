"""/v2/logs: the log lines of the account's runs, in the seed's `{total, hits}` shape."""
from __future__ import annotations

from datetime import datetime, timezone

from flask import request
from flask.views import MethodView
from flask_smorest import Blueprint
from sqlalchemy import select

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


def log_hits(viewer: Viewer, flow_ids: list, start: datetime | None, end: datetime | None) -> list[dict]:
    """Every block's log lines, and for each failed run a line of its own with the error: a run that failed
    before a block logged anything (lost worker, queue unavailable, a refused binding) shows up too."""
    hits = []
    for block, run, workflow in db_session().execute(_runs_of(select(BlockRun, WorkflowRun, Workflow).join(
            WorkflowRun, BlockRun.run_id == WorkflowRun.id), viewer, flow_ids, start, end)):
        hits += [_hit(index, line, block, run, workflow) for index, line in enumerate(block.log or [])]
    failed = _runs_of(select(WorkflowRun, Workflow), viewer, flow_ids, start, end).where(
        WorkflowRun.status == "Failed")
    hits += [_failure_hit(run, workflow) for run, workflow in db_session().execute(failed)]
    return hits


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
        hits = [hit for hit in log_hits(current_viewer(), flow_ids_parameter(), start, end)
                if _within(hit, start, end) and (not levels or hit["level"] in levels)
                and (not search or search in hit["message"].lower())]
        hits.sort(key=lambda hit: str(hit["timestamp"]), reverse=True)
        return jsonapi.raw_json({"total": len(hits), "hits": hits[offset:offset + limit]})
