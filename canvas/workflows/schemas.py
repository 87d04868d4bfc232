"""Schemas of the workflow endpoints."""
from __future__ import annotations

import marshmallow as ma

from canvas.endpoint import dto
from canvas.schema_fields import CanvasSchema, Id, Int, StrictBoolean
from canvas.workflows.block_settings import on_record_error_field, retries_field, timeout_seconds_field


@dto("ChainApiDto")
class ChainOverrideSchema(CanvasSchema):
    uniqueBlockId = Id(required=True)
    variables = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.Raw(allow_none=True), allow_none=True)
    retries = retries_field(description="further attempts after an error that is safe to retry (default: "
                                        "CANVAS_BLOCK_RETRIES; a block with side effects is only retried when it "
                                        "sent nothing)")
    timeoutSeconds = timeout_seconds_field(description="time limit of the block (default: "
                                                       "CANVAS_BLOCK_TIMEOUT_SECONDS)")
    onRecordError = on_record_error_field(description="fail (default): a record the block cannot process fails "
                                                      "the block; continue: it goes to the block's error output "
                                                      "(GET WorkflowRun/<id>/Block/<n>/Errors) and the block goes on")


def _applications_field(**kwargs) -> ma.fields.Dict:
    return ma.fields.Dict(keys=ma.fields.String(), values=Id(), **kwargs)


@dto("AddWorkflowApiDto")
class AddWorkflowSchema(CanvasSchema):
    workflowTemplateId = Id(required=True)
    name = ma.fields.String(allow_none=True, validate=ma.validate.Length(max=200))
    description = ma.fields.String(allow_none=True, validate=ma.validate.Length(max=4000))
    applications = _applications_field(required=True)
    chain = ma.fields.List(ma.fields.Nested(ChainOverrideSchema), allow_none=True,
                           validate=ma.validate.Length(max=500))


@dto("UpdateWorkflowApiDto")
class UpdateWorkflowSchema(CanvasSchema):
    id = Id(required=True)
    name = ma.fields.String(allow_none=True, validate=ma.validate.Length(min=1, max=200))
    description = ma.fields.String(allow_none=True, validate=ma.validate.Length(max=4000))
    applications = _applications_field(allow_none=True)
    chain = ma.fields.List(ma.fields.Nested(ChainOverrideSchema), allow_none=True,
                           validate=ma.validate.Length(max=500), metadata={
                               "description": "a listed block gets exactly the variables given (none: the template's); "
                                              "blocks not listed keep their overrides"})


@dto("UpgradeWorkflowApiDto")
class UpgradeWorkflowSchema(CanvasSchema):
    id = Id(required=True)
    version = ma.fields.String(allow_none=True)
    applications = _applications_field(allow_none=True)


class WorkflowSchema(CanvasSchema):
    id = Id()
    name = ma.fields.String()
    description = ma.fields.String()
    status = ma.fields.String()
    isScheduled = StrictBoolean()
    schedulerFrequency = ma.fields.String(allow_none=True)
    workflowTemplateId = Id(allow_none=True)
    isCustomizedStructure = StrictBoolean()
    accountId = Id()
    organizationId = Id()
    dateCreated = ma.fields.DateTime()
    dateModified = ma.fields.DateTime()
    dateLastRun = ma.fields.DateTime(allow_none=True)
    dateNextSchedule = ma.fields.DateTime(allow_none=True)
    regApplicationIds = ma.fields.List(Id())
    currentBlock = Int()


class WorkflowDetailSchema(WorkflowSchema):
    templateVersion = ma.fields.String(allow_none=True)
    chain = ma.fields.List(ma.fields.Dict())


class UpgradePlanSchema(CanvasSchema):
    workflowId = ma.fields.String()
    fromVersion = ma.fields.String()
    toVersion = ma.fields.String()
    canUpgrade = StrictBoolean()
    conflicts = ma.fields.List(ma.fields.String())
    newApplications = ma.fields.List(ma.fields.String())
    removedApplications = ma.fields.List(ma.fields.String())
    blocks = ma.fields.List(ma.fields.Dict())
