"""Schemas of the run endpoints."""
from __future__ import annotations

import marshmallow as ma

from canvas.endpoint import dto
from canvas.runs.service import RUN_STATES, TRIGGERS


class EditedRecordSchema(ma.Schema):
    position = ma.fields.Integer(required=True, strict=True, validate=ma.validate.Range(min=1),
                                 metadata={"description": "the failed record's position (see .../Errors)"})
    record = ma.fields.Dict(required=True, metadata={"description": "the record to send instead"})


class RetryFailedRecordsSchema(ma.Schema):
    runId = ma.fields.UUID(required=True, metadata={"description": "the run whose failed records are retried"})
    block = ma.fields.Integer(required=True, strict=True, validate=ma.validate.Range(min=1),
                              metadata={"description": "the block that set them aside; the new run starts there"})
    records = ma.fields.List(ma.fields.Nested(EditedRecordSchema), allow_none=True,
                             validate=ma.validate.Length(max=10_000),
                             metadata={"description": "edited records replacing failed ones, by position"})


@dto("RunMetadataApiDto")
class RunMetadataSchema(ma.Schema):
    workflowId = ma.fields.UUID(required=True)
    runFromBlock = ma.fields.Integer(allow_none=True, strict=True)
    runTillBlock = ma.fields.Integer(allow_none=True, strict=True)
    dryRun = ma.fields.Boolean(load_default=False, metadata={"description": "extension: side effects recorded, "
                                                                          "not performed"})
    retryFailedRecords = ma.fields.Nested(RetryFailedRecordsSchema, allow_none=True, metadata={
        "description": "extension: run from one block of an earlier run on just the records it set aside "
                       "(onRecordError continue), some replaced by edited ones; the following blocks go on with what "
                       "succeeds"})


class RunListArgsSchema(ma.Schema):
    workflowId = ma.fields.UUID(required=True)
    status = ma.fields.String(validate=ma.validate.OneOf(RUN_STATES))
    trigger = ma.fields.String(validate=ma.validate.OneOf(TRIGGERS))
    page = ma.fields.Integer(load_default=1, validate=ma.validate.Range(min=1))
    pageSize = ma.fields.Integer(load_default=50, validate=ma.validate.Range(min=1, max=500))


@dto("CancelRunApiDto")
class CancelRunSchema(ma.Schema):
    runId = ma.fields.UUID(required=True)
    force = ma.fields.Boolean(load_default=False, metadata={"description": "stop the block in flight at once "
                                                                           "(forking workers only)"})


@dto("CompareBlockOutputsApiDto")
class CompareOutputsSchema(ma.Schema):
    runId = ma.fields.UUID(required=True)
    otherRunId = ma.fields.UUID(required=True)
    block = ma.fields.Integer(required=True, strict=True, validate=ma.validate.Range(min=1))
    key = ma.fields.String(allow_none=True, metadata={"description": "record field identifying a record"})


class BlockRunSchema(ma.Schema):
    number = ma.fields.Integer()
    uniqueBlockId = ma.fields.String()
    blockName = ma.fields.String()
    block = ma.fields.String()
    status = ma.fields.String()
    dateStarted = ma.fields.DateTime(allow_none=True)
    dateFinished = ma.fields.DateTime(allow_none=True)
    recordsIn = ma.fields.Integer(allow_none=True)
    recordsOut = ma.fields.Integer(allow_none=True, metadata={
        "description": "records in the block's output; while it runs, those stored so far"})
    recordsRead = ma.fields.Integer(allow_none=True, metadata={
        "description": "input records the block has read (so far, while it runs); null when its input is not records"})
    recordsFailed = ma.fields.Integer(metadata={
        "description": "input records set aside in the block's error output (onRecordError continue); see "
                       "WorkflowRun/<id>/Block/<n>/Errors"})
    attempts = ma.fields.Integer()
    error = ma.fields.String(allow_none=True)
    errorClass = ma.fields.String(allow_none=True)
    output = ma.fields.Dict(allow_none=True)
    log = ma.fields.List(ma.fields.Dict())


class RunSchema(ma.Schema):
    id = ma.fields.UUID()
    workflowId = ma.fields.UUID()
    status = ma.fields.String()
    trigger = ma.fields.String()
    runFromBlock = ma.fields.Integer()
    runTillBlock = ma.fields.Integer()
    dryRun = ma.fields.Boolean()
    templateVersion = ma.fields.String(allow_none=True)
    dateQueued = ma.fields.DateTime()
    dateStarted = ma.fields.DateTime(allow_none=True)
    dateFinished = ma.fields.DateTime(allow_none=True)
    error = ma.fields.String(allow_none=True)
    errorClass = ma.fields.String(allow_none=True)
    failedBlock = ma.fields.Integer(allow_none=True)
    retryOf = ma.fields.Dict(allow_none=True, metadata={
        "description": "a retry of failed records: {runId, block, positions} — its input record k was the failed "
                       "record at positions[k-1] of that block in run runId"})
    recordsFailed = ma.fields.Integer(metadata={
        "description": "records its blocks set aside (onRecordError continue): a Succeeded run with recordsFailed "
                       "above 0 succeeded with record errors"})
    scheduledTimes = ma.fields.List(ma.fields.String(), allow_none=True)
    blocks = ma.fields.List(ma.fields.Nested(BlockRunSchema))
