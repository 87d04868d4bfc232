"""/v2 executions: runs of a flow as `execution` resources with per-step status, started through the same
dispatch as RunWorkflow; each records the flow version it ran."""
from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import marshmallow as ma
from flask.views import MethodView
from sqlalchemy import select
from sqlalchemy.orm import Session

from canvas.auth import current_principal
from canvas.errors import BadRequestError, NotFoundError, ServiceUnavailableError, UnprocessableError
from canvas.execution.data import Records
from canvas.execution.serialization import store_output
from canvas.extensions import db_session, services
from canvas.models import Workflow, WorkflowRun
from canvas.runs import service as runs
from canvas.runs.schemas import RetryFailedRecordsSchema
from canvas.v2 import flow_service as flows
from canvas.v2 import jsonapi
from canvas.v2.graph import numbered_step, step_id
from canvas.v2.schemas import PAGE_PARAMETERS, doc, query
from canvas.v2.visibility import Viewer, current_viewer
from canvas.web import Blueprint, sent_a_document
from canvas.workflows.service import slice_of

blp = Blueprint("v2_executions", __name__, url_prefix="/v2", description="v2 (JSON:API): executions (runs)")


def start_execution(session: Session, account_id: uuid.UUID, flow_id: str, options: dict,
                    trigger: str = "api", input_records: list | None = None,
                    committed_with_run: Sequence[object] = ()) -> WorkflowRun:
    """A run of the flow's current version, recorded on the run. `input_records`: the first step's input, stored
    for the run (and removed again if no run starts). `committed_with_run`: rows written in the same transaction
    as the run's row, so that they exist if and only if the run was accepted."""
    workflow = flows.get_flow(session, account_id, flow_id)
    if not workflow.chain:
        raise UnprocessableError(f"Flow {workflow.id} has no steps: give it a graph (PATCH /v2/flows/{workflow.id}) "
                                 f"before starting it")
    options = {**options, **{name: step_number(workflow, options.get(name), name)
                             for name in STEP_OPTIONS if name in options}}
    version = flows.settle_version(session, workflow)
    input_key = store_input_records(workflow, input_records) if input_records is not None else None
    session.add_all(committed_with_run)
    data = {"workflowId": workflow.id, "runFromBlock": options.get("run_from_step"),
            "runTillBlock": options.get("run_till_step"), "dryRun": options.get("dry_run"),
            "inputBlobKey": input_key, "retryFailedRecords": options.get("retry_failed_records")}
    try:
        run = runs.start_run(session, services().redis, account_id, data, trigger=trigger,
                             blob_store=services().blob_store)
    except ServiceUnavailableError:
        raise  # the run's row (Failed) refers to its input: kept as the record of what was sent
    except Exception:
        if input_key is not None:
            services().blob_store.delete(input_key)
        raise
    run.flow_version = version.id  # the row is committed by dispatch; the version is written just after
    session.commit()
    return run


STEP_OPTIONS = ("run_from_step", "run_till_step")


def step_number(workflow: Workflow, value: Any, name: str) -> int | None:
    """A step as `run_from_step` / `run_till_step` name it: its number (from 1, as is: the run checks the range) or
    its id in the flow's graph (`step_3`), a 400 naming the attribute and the flow's step ids when it has no such
    step."""
    if not isinstance(value, str):
        return value
    ids = [step_id(workflow, number) for number in range(1, len(workflow.chain) + 1)]
    if value not in ids:
        raise BadRequestError(f"{name}: flow {workflow.id} has no step '{value}'; its steps are: {', '.join(ids)}",
                              field=name)
    return ids.index(value) + 1


def store_input_records(workflow: Workflow, value: Any) -> str:
    """Records for the first step, stored as a run's input: an object is one record, an array one per item (an
    item that is not an object becomes {"value": item})."""
    records = value if isinstance(value, list) else [value]
    records = [item if isinstance(item, dict) else {"value": item} for item in records]
    key = f"inputs/{workflow.id}/{uuid.uuid4()}.jsonl"
    store_output(services().blob_store, key, Records(records))
    return key


def execution_to_resource(session: Session, run: WorkflowRun) -> dict:
    answer = runs.run_to_api(session, run)
    workflow = session.get(Workflow, run.workflow_id)
    # a step is named by the node that holds its block now, found by the block's id: a graph edited since the run
    # (a node added before it) renamed an ended execution's steps by their numbers
    node_ids = {entry.get("uniqueBlockId"): entry.get("nodeId") for entry in (workflow.chain if workflow else [])}
    attributes = {
        "status": answer["status"].lower(), "trigger": run.trigger, "flow_version": run.flow_version,
        "run_from_step": run.run_from_block, "run_till_step": run.run_till_block, "dry_run": run.dry_run,
        "created_at": jsonapi.iso_time(run.date_queued), "started_at": jsonapi.iso_time(run.date_started),
        "finished_at": jsonapi.iso_time(run.date_finished), "error": run.error, "failed_step": run.failed_block,
        "records_failed": answer["recordsFailed"],
        "steps": [_step(block, node_ids) for block in answer["blocks"]],
        "retry_of": None if run.retry_of is None else {"execution_id": str(run.retry_of), "step": run.run_from_block,
                                                       "positions": run.retried_positions},
    }
    relationships = {"flow": jsonapi.to_one("flow", run.workflow_id, f"/v2/flows/{run.workflow_id}")}
    if run.flow_version:
        relationships["flow_version"] = jsonapi.to_one(
            "flow-version", run.flow_version, f"/v2/flows/{run.workflow_id}/versions/{run.flow_version}")
    return jsonapi.resource("execution", run.id, attributes, self_link=f"/v2/executions/{run.id}",
                            relationships=relationships)


def _step(block: dict, node_ids: dict) -> dict:
    number = block["number"]
    return {"number": number, "step_id": node_ids.get(block["uniqueBlockId"]) or numbered_step(number),
            "command": block["block"],
            "name": block["blockName"], "status": block["status"].lower(), "records_in": block["recordsIn"],
            "records_read": block["recordsRead"], "records_out": block["recordsOut"],
            "records_failed": block["recordsFailed"], "attempts": block["attempts"],
            "error": block["error"],
            "started_at": jsonapi.iso_time(block["dateStarted"]),
            "finished_at": jsonapi.iso_time(block["dateFinished"])}


def execution_options() -> dict:
    """Optional attributes of POST .../executions: run_from_step, run_till_step (a step number from 1, or a step
    id of the flow's graph), dry_run."""
    if not sent_a_document():
        return {}
    attributes = jsonapi.attributes_of(jsonapi.request_data("execution", creates=True))
    for name in STEP_OPTIONS:
        value = attributes.get(name)
        if value is not None and not (isinstance(value, int) and not isinstance(value, bool)) and not (
                isinstance(value, str) and value.strip()):
            raise BadRequestError(f"{name} must be a step number (from 1) or a step id", field=name)
    if attributes.get("dry_run") is not None and not isinstance(attributes["dry_run"], bool):
        raise BadRequestError("dry_run must be true or false", field="dry_run")
    if attributes.get("retry_failed_records") is not None:
        attributes["retry_failed_records"] = _retry_spec(attributes["retry_failed_records"])
        if attributes.get("input") is not None:
            raise BadRequestError("input: not with retry_failed_records, whose input is the retried records",
                                  field="input")
    return attributes


RETRY_FIELDS = {"execution_id": "runId", "step": "block", "records": "records"}  # v2 name -> RunWorkflow's


def _retry_spec(raw) -> dict:  # noqa: ANN001
    """`retry_failed_records: {execution_id, step, records?: [{position, record}]}`, checked as RunWorkflow's
    retryFailedRecords is."""
    if not isinstance(raw, dict):
        raise BadRequestError("retry_failed_records must be an object", field="retry_failed_records")
    try:
        return RetryFailedRecordsSchema().load({RETRY_FIELDS.get(name, name): value for name, value in raw.items()})
    except ma.ValidationError as error:
        canvas_name, messages = next(iter(error.messages.items()))
        v2_name = next((v2 for v2, canvas in RETRY_FIELDS.items() if canvas == canvas_name), canvas_name)
        field = f"retry_failed_records.{v2_name}"
        raise BadRequestError(f"{field}: {messages}", field=field) from None


def get_execution(session: Session, viewer: Viewer, execution_id: str) -> WorkflowRun:
    run = session.get(WorkflowRun, flows.as_id(execution_id, "execution"))  # no id at all: 404, as an unknown one
    workflow = session.get(Workflow, run.workflow_id) if run is not None else None
    if workflow is None or not viewer.sees(workflow.account_id, workflow.organization_id):
        raise NotFoundError(f"Unknown execution {execution_id}")
    return run


@blp.route("/flows/<flow_id>/executions")
class FlowExecutions(MethodView):
    @blp.doc(**doc(202, "The queued execution", 409, 503,
                   request_body="optional attributes run_from_step, run_till_step (a step number from 1 or a "
                                "step id), dry_run, input (an object: one "
                                "record, or an array of records, for the first step), retry_failed_records "
                                "{execution_id, step, records?: [{position, record}]}"))
    def post(self, flow_id):
        """Run a flow now (the same dispatch as RunWorkflow)"""
        options = execution_options()
        session = db_session()
        run = start_execution(session, current_principal().account_id, flow_id, options,
                              input_records=options.get("input"))
        return jsonapi.document(execution_to_resource(session, run), status=202,
                                headers={"Location": f"/v2/executions/{run.id}"})


@blp.route("/executions")
class Executions(MethodView):
    @blp.doc(**doc(200, "A page of executions, newest first", parameters=PAGE_PARAMETERS + [
        query("filter[flow]", "flow id"), query("filter[status]", "queued, running, succeeded, failed, cancelled")]))
    def get(self):
        """List executions of the account's flows"""
        page = jsonapi.page_parameters()
        flow = jsonapi.uuid_parameter("filter[flow]")
        status = jsonapi.choice_parameter("filter[status]", tuple(state.lower() for state in runs.RUN_STATES))
        viewer = current_viewer()
        statement = (select(WorkflowRun).join(Workflow, Workflow.id == WorkflowRun.workflow_id)
                     .where(viewer.condition(Workflow.account_id, Workflow.organization_id))
                     .options(runs.WITH_BLOCKS))
        if flow is not None:
            statement = statement.where(WorkflowRun.workflow_id == flow)
        if status is not None:
            statement = statement.where(WorkflowRun.status == status.capitalize())
        session = db_session()
        rows, total = slice_of(session, statement, runs.NEWEST_FIRST, page.offset, page.size)
        # Their workflows in one query, held while the page is built: execution_to_resource's session.get() finds
        # them in the session (which holds objects weakly) instead of loading one per run
        _held = session.scalars(select(Workflow).where(Workflow.id.in_({run.workflow_id for run in rows}))).all()
        return jsonapi.document([execution_to_resource(session, run) for run in rows],
                                meta=jsonapi.page_meta(page, total), links=jsonapi.page_links(page, total))


@blp.route("/executions/<execution_id>")
class ExecutionById(MethodView):
    @blp.doc(**doc(200, "The execution with its steps"))
    def get(self, execution_id):
        """Get an execution"""
        session = db_session()
        return jsonapi.document(execution_to_resource(session, get_execution(session, current_viewer(), execution_id)))
