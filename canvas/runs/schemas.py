"""Schemas of the run endpoints."""
from __future__ import annotations

import marshmallow as ma

from canvas.endpoint import dto
from canvas.runs.service import RUN_STATES, TRIGGERS
from canvas.schema_fields import CanvasSchema, Id, Int, StrictBoolean, page_number_field, page_size_field


class EditedRecordSchema(CanvasSchema):
    position = Int(required=True, minimum=1,
                                 metadata={"description": "the failed record's position (see .../Errors)"})
    record = ma.fields.Dict(required=True, metadata={"description": "the record to send instead"})


class RetryFailedRecordsSchema(CanvasSchema):
    runId = Id(required=True, metadata={"description": "the run whose failed records are retried"})
    block = Int(required=True, minimum=1,
                              metadata={"description": "the block that set them aside; the new run starts there"})
    records = ma.fields.List(ma.fields.Nested(EditedRecordSchema), allow_none=True,
                             validate=ma.validate.Length(max=10_000),
                             metadata={"description": "edited records replacing failed ones, by position"})


@dto("RunMetadataApiDto")
class RunMetadataSchema(CanvasSchema):
    workflowId = Id(required=True)
    runFromBlock = Int(allow_none=True)
    runTillBlock = Int(allow_none=True)
    dryRun = StrictBoolean(load_default=False, metadata={"description": "extension: side effects recorded, "
                                                                          "not performed"})
    retryFailedRecords = ma.fields.Nested(RetryFailedRecordsSchema, allow_none=True, metadata={
        "description": "extension: run from one block of an earlier run on just the records it set aside "
                       "(onRecordError continue), some replaced by edited ones; the following blocks go on with what "
                       "succeeds"})


class RunListArgsSchema(CanvasSchema):
    workflowId = Id(required=True)
    status = ma.fields.String(validate=ma.validate.OneOf(RUN_STATES))
    trigger = ma.fields.String(validate=ma.validate.OneOf(TRIGGERS))
    page = page_number_field()
    pageSize = page_size_field()


@dto("CancelRunApiDto")
class CancelRunSchema(CanvasSchema):
    runId = Id(required=True)
    force = StrictBoolean(load_default=False, metadata={"description": "stop the block in flight at once "
                                                                           "(forking workers only)"})


@dto("CompareBlockOutputsApiDto")
class CompareOutputsSchema(CanvasSchema):
    runId = Id(required=True)
    otherRunId = Id(required=True)
    block = Int(required=True, minimum=1)
    key = ma.fields.String(allow_none=True, metadata={"description": "record field identifying a record"})


class BlockRunSchema(CanvasSchema):
    number = Int()
    uniqueBlockId = ma.fields.String()
    blockName = ma.fields.String()
    block = ma.fields.String()
    status = ma.fields.String()
    dateStarted = ma.fields.DateTime(allow_none=True)
    dateFinished = ma.fields.DateTime(allow_none=True)
    recordsIn = Int(allow_none=True)
    recordsOut = Int(allow_none=True, metadata={
        "description": "records in the block's output; while it runs, those stored so far"})
    recordsRead = Int(allow_none=True, metadata={
        "description": "input records the block has read (so far, while it runs); null when its input is not records"})
    recordsFailed = Int(metadata={
        "description": "input records set aside in the block's error output (onRecordError continue); see "
                       "WorkflowRun/<id>/Block/<n>/Errors"})
    attempts = Int()
    error = ma.fields.String(allow_none=True)
    errorClass = ma.fields.String(allow_none=True)
    output = ma.fields.Dict(allow_none=True)
    log = ma.fields.List(ma.fields.Dict())


class RunSchema(CanvasSchema):
    id = Id()
    workflowId = Id()
    status = ma.fields.String()
    trigger = ma.fields.String()
    runFromBlock = Int()
    runTillBlock = Int()
    dryRun = StrictBoolean()
    templateVersion = ma.fields.String(allow_none=True)
    dateQueued = ma.fields.DateTime()
    dateStarted = ma.fields.DateTime(allow_none=True)
    dateFinished = ma.fields.DateTime(allow_none=True)
    error = ma.fields.String(allow_none=True)
    errorClass = ma.fields.String(allow_none=True)
    failedBlock = Int(allow_none=True)
    retryOf = ma.fields.Dict(allow_none=True, metadata={
        "description": "a retry of failed records: {runId, block, positions} — its input record k was the failed "
                       "record at positions[k-1] of that block in run runId"})
    recordsFailed = Int(metadata={
        "description": "records its blocks set aside (onRecordError continue): a Succeeded run with recordsFailed "
                       "above 0 succeeded with record errors"})
    scheduledTimes = ma.fields.List(ma.fields.String(), allow_none=True)
    blocks = ma.fields.List(ma.fields.Nested(BlockRunSchema))


class RunIdArgsSchema(CanvasSchema):
    runId = ma.fields.String(metadata={"description": "The run's id, when it is not given in the path"})
