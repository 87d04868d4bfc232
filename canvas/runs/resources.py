"""RunWorkflow, run history, a block's stored output, cancelling and comparing runs."""
from __future__ import annotations

from flask import Response, jsonify, send_file
from flask.views import MethodView

from canvas.auth import current_principal
from canvas.db import end_reading
from canvas.endpoint import canvas_endpoint
from canvas.errors import BadRequestError
from canvas.execution.record_errors import ERRORS_CONTENT_TYPE
from canvas.extensions import db_session, services
from canvas.models import WorkflowRun as WorkflowRunRow
from canvas.openapi import may_answer
from canvas.openapi_schemas import (
    ANY_CONTENT,
    ANY_OBJECT,
    BYTES_ANSWER,
    LOCATION_HEADER,
    RUN_ACCEPTED_ANSWER,
    TOTAL_COUNT_HEADER,
)
from canvas.runs import service
from canvas.runs.compare import compare_outputs
from canvas.runs.downloads import output_download
from canvas.runs.retry_records import with_original_positions
from canvas.runs.schemas import (
    CancelRunSchema,
    CompareOutputsSchema,
    RunIdArgsSchema,
    RunListArgsSchema,
    RunMetadataSchema,
    RunSchema,
)
from canvas.storage.blob import FileSystemBlobStore
from canvas.web import Blueprint

blp = Blueprint("runs", __name__, url_prefix="/api", description="Running workflows and their history")
RUN_ACCEPTED = "Workflow will now run"


def blob_store() -> FileSystemBlobStore:
    return services().blob_store


@blp.route("/RunWorkflow")
class RunWorkflow(MethodView):
    @canvas_endpoint("RunWorkflow", parameters="[FromBody]RunMetadataApiDto metadata", returns="Guid")
    @blp.arguments(RunMetadataSchema)
    @may_answer(404, 409, 503)  # already running, or an earlier block must run first; Redis is down
    @blp.response(202, RUN_ACCEPTED_ANSWER, headers=LOCATION_HEADER)
    def post(self, data):
        """Runs workflow"""
        run = service.start_run(db_session(), services().redis, current_principal().account_id, data,
                                blob_store=blob_store())
        response = jsonify(RUN_ACCEPTED)
        response.status_code = 202
        response.headers["Location"] = f"/api/WorkflowRun/{run.id}"
        return response


@blp.route("/WorkflowRuns")
class WorkflowRuns(MethodView):
    @canvas_endpoint("WorkflowRuns", parameters="Guid workflowId", returns="JSON array", extension=True)
    @blp.arguments(RunListArgsSchema, location="query")
    @blp.response(200, RunSchema(many=True), headers=TOTAL_COUNT_HEADER)
    @may_answer(404)
    def get(self, args):
        """Returns a workflow's runs, newest first (total in X-Total-Count)"""
        session = db_session()
        runs, total = service.list_runs(session, current_principal().account_id, args)
        workflows: dict = {}
        return [service.run_to_api(session, run, workflows) for run in runs], 200, {"X-Total-Count": str(total)}


@blp.route("/WorkflowRun", endpoint="WorkflowRun")  # a Guid parameter is taken in the path and as ?runId=
@blp.route("/WorkflowRun/<id:run_id>", endpoint="WorkflowRunById")
class WorkflowRun(MethodView):
    @canvas_endpoint("WorkflowRun", parameters="Guid runId", returns="JSON", extension=True)
    @blp.arguments(RunIdArgsSchema, location="query")
    @blp.response(200, RunSchema)
    @may_answer(404)
    def get(self, args, run_id=None):
        """Returns one run with every block's status, timings, records and log lines"""
        run_id = run_id or args.get("runId")
        if not run_id:
            raise BadRequestError("runId: a Guid runId is required, in the path or as ?runId=", parameter="runId")
        session = db_session()
        return service.run_to_api(session, service.get_run(session, current_principal().account_id, run_id))


@blp.route("/WorkflowRun/<id:run_id>/Block/<position:number>/Output")
class BlockOutput(MethodView):
    @canvas_endpoint("WorkflowRunBlockOutput", parameters="Guid runId, int number", returns="bytes",
                     extension=True)
    @blp.response(200, BYTES_ANSWER, content_type=ANY_CONTENT)
    @blp.alt_response(204, description="The block gave no output")
    def get(self, run_id, number):
        """Returns a block's stored output: records as JSON lines, files as themselves (204 when it gave none)"""
        session = db_session()
        output = service.block_output(session, current_principal().account_id, run_id, number)
        if output.kind == "none":
            return Response(b"", status=204)
        end_reading(session)  # the store may answer slower than PostgreSQL lets a transaction idle
        return output_download(blob_store(), output, output.file_name)


@blp.route("/WorkflowRun/<id:run_id>/Block/<position:number>/Errors")
class BlockErrors(MethodView):
    @canvas_endpoint("WorkflowRunBlockErrors", parameters="Guid runId, int number", returns="bytes",
                     extension=True)
    @blp.response(200, BYTES_ANSWER, content_type=ERRORS_CONTENT_TYPE)
    @blp.alt_response(204, description="The block set no record aside")
    def get(self, run_id, number):
        """Returns the records a block set aside (onRecordError continue) as JSON lines: position, record, error"""
        session = db_session()
        block_run = service.block_errors(session, current_principal().account_id, run_id, number)
        if not block_run.errors_blob_key:
            return Response(b"", status=204)
        run = session.get(WorkflowRunRow, block_run.run_id)
        end_reading(session)
        stream = blob_store().open(block_run.errors_blob_key)
        if run.retried_positions and number == run.run_from_block:  # name each record's place in the retried run
            response = Response(with_original_positions(stream, run.retried_positions), mimetype=ERRORS_CONTENT_TYPE)
            response.call_on_close(stream.close)  # a generator that never starts (a HEAD) never closes it itself
        else:
            response = send_file(stream, mimetype=ERRORS_CONTENT_TYPE, conditional=False)
        response.headers.set("Content-Disposition", "attachment",
                             filename=f"run-{block_run.run_id}-block-{number}-errors.jsonl")
        return response


@blp.route("/CancelRun")
class CancelRun(MethodView):
    @canvas_endpoint("CancelRun", parameters="[FromBody]CancelRunApiDto cancel", returns="JSON", extension=True)
    @blp.arguments(CancelRunSchema)
    @blp.response(200, RunSchema)
    @may_answer(404, 409)  # the run has already ended
    def post(self, data):
        """Cancels a run: a queued one leaves the queue, a running one stops after the block in flight"""
        session = db_session()
        run = service.cancel_run(session, services().redis, services().settings.get("REDIS_PREFIX"),
                                 current_principal().account_id, data["runId"], data["force"])
        return service.run_to_api(session, run)


@blp.route("/CompareBlockOutputs")
class CompareBlockOutputs(MethodView):
    @canvas_endpoint("CompareBlockOutputs", parameters="[FromBody]CompareBlockOutputsApiDto compare",
                     returns="JSON", extension=True)
    @blp.arguments(CompareOutputsSchema)
    @may_answer(404)
    @blp.response(200, ANY_OBJECT)
    def post(self, data):
        """Compares one block's stored outputs of two runs (records by a key, files by bytes)"""
        session = db_session()
        account_id = current_principal().account_id
        left = service.block_output(session, account_id, data["runId"], data["block"])
        right = service.block_output(session, account_id, data["otherRunId"], data["block"])
        end_reading(session)
        return jsonify(compare_outputs(blob_store(), left, right, data.get("key")))
