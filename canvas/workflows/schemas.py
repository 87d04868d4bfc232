"""Schemas of the workflow endpoints."""
from __future__ import annotations

import marshmallow as ma

from canvas.catalog.schemas import FAILURE_POLICY_DESCRIPTION
from canvas.endpoint import dto
from canvas.execution.graph import FAILURE_POLICIES
from canvas.schema_fields import CanvasSchema, Id, Int, StrictBoolean, page_number_field, page_size_field
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


@dto("NotificationSettingsApiDto")
class NotificationSettingsSchema(CanvasSchema):
    """Who is mailed about the workflow's runs (docs/notifications.md)."""

    onFailure = StrictBoolean(metadata={"description": "mail when a run fails (absent: true)"})
    onRecovery = StrictBoolean(metadata={"description": "mail when a run succeeds right after a failed one (absent: "
                                                        "true)"})
    onMissedSchedule = StrictBoolean(metadata={"description": "mail when a scheduled occurrence is missed or skipped "
                                                              "(absent: true)"})
    emails = ma.fields.List(ma.fields.Email(validate=ma.validate.Length(max=320)), validate=ma.validate.Length(max=20),
                            metadata={"description": "to these addresses (none: the account's "
                                                     "defaultNotificationEmail)"})


NOTIFICATION_SETTINGS_DESCRIPTION = ("notification e-mails of the workflow's runs; null: the account's "
                                     "globalNotifications to its defaultNotificationEmail")


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
    failurePolicy = ma.fields.String(allow_none=True, validate=ma.validate.OneOf(FAILURE_POLICIES),
                                     metadata={"description": FAILURE_POLICY_DESCRIPTION + " (none: unchanged)"})
    notificationSettings = ma.fields.Nested(NotificationSettingsSchema, allow_none=True, metadata={
        "description": NOTIFICATION_SETTINGS_DESCRIPTION + " (absent: unchanged; null: back to the account's)"})


@dto("UpgradeWorkflowApiDto")
class UpgradeWorkflowSchema(CanvasSchema):
    id = Id(required=True)
    version = ma.fields.String(allow_none=True)
    applications = _applications_field(allow_none=True)


def _described(field: ma.fields.Field, description: str) -> ma.fields.Field:
    field.metadata = {**field.metadata, "description": description}
    return field


class PageArgsSchema(CanvasSchema):
    """Optional paging of a Canvas list (Workflows, Accounts, RegApplications, WorkflowTemplates): without page and
    pageSize the answer is the whole list, as Canvas gives it; with either, one page (the other taking its
    default). The total is in X-Total-Count either way. Loads as {page, pageSize, paged}."""

    page = _described(page_number_field(), "extension: the page, from 1; without page and pageSize, the whole list")
    pageSize = _described(page_size_field(), "extension: items per page; without page and pageSize, the whole list")

    @ma.post_load(pass_original=True)
    def note_whether_paged(self, data: dict, original_data, **kwargs) -> dict:  # noqa: ANN001 - the query's mapping
        asked = {str(key).lower() for key in original_data} & {"page", "pagesize"}
        return {**data, "paged": bool(asked)}


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


# A block of a workflow's chain as GET Workflow shows it. Dumped as stored (a workflow made through v2 carries its
# node's fields too: nodeId, description, edge, inputMapper, inputCondition), so described here rather than by a schema
# that would drop what it does not declare.
WORKFLOW_BLOCK = {
    "type": "object",
    "additionalProperties": True,
    "required": ["number", "uniqueBlockId", "blockName", "block", "application", "variables"],
    "properties": {
        "number": {"type": "integer", "description": "1-based; on a graph a stable topological order"},
        "uniqueBlockId": {"type": "string", "format": "uuid"},
        "blockName": {"type": "string"},
        "block": {"type": "string", "description": "block implementation key, see BlockTypes"},
        "application": {"type": "string", "nullable": True},
        "variables": {"type": "object", "description": "the template's variables with the workflow's overrides"},
        "inputs": {"type": "array", "description": "only on a graph's blocks: the blocks whose outputs feed this one "
                                                   "([]: it starts the graph); a block without inputs is fed by the "
                                                   "block before it",
                   "items": {"type": "object", "required": ["fromBlock"], "properties": {
                       "fromBlock": {"type": "integer", "description": "the number of the block whose output "
                                                                      "comes in"},
                       "inputMapper": {"type": "string", "description": "JSONata applied to each record on the way "
                                                                        "in"},
                       "inputCondition": {"type": "string", "description": "JSONata; only records for which it "
                                                                           "holds come in"}}}},
        "retries": {"type": "integer", "description": "only when the workflow sets it"},
        "timeoutSeconds": {"type": "number", "description": "only when the workflow sets it"},
        "onRecordError": {"type": "string", "description": "only when the workflow sets it"},
    },
}


class WorkflowDetailSchema(WorkflowSchema):
    templateVersion = ma.fields.String(allow_none=True)
    failurePolicy = ma.fields.String(validate=ma.validate.OneOf(FAILURE_POLICIES),
                                     metadata={"description": FAILURE_POLICY_DESCRIPTION})
    chain = ma.fields.List(ma.fields.Dict(metadata=WORKFLOW_BLOCK))
    notificationSettings = ma.fields.Nested(NotificationSettingsSchema, allow_none=True,
                                            metadata={"description": NOTIFICATION_SETTINGS_DESCRIPTION})


UPGRADE_BLOCK = {
    "type": "object",
    "required": ["uniqueBlockId", "blockName", "change", "newDefaults", "keptOverrides", "conflicts"],
    "properties": {
        "uniqueBlockId": {"type": "string", "format": "uuid"},
        "blockName": {"type": "string"},
        "change": {"type": "string", "enum": ["kept", "added", "removed", "replaced"],
                   "description": "replaced: the block keeps its uniqueBlockId but uses another implementation"},
        "newDefaults": {"type": "object", "description": "variables whose template default changes and that the "
                                                        "workflow does not override"},
        "keptOverrides": {"type": "object", "description": "the workflow's overrides that carry over"},
        "conflicts": {"type": "array", "items": {"type": "string"}},
        "inputsChanged": {"type": "boolean", "description": "only when either version is a graph: whether the "
                                                            "blocks, mappers or conditions feeding the block change "
                                                            "(edges come from the new version)"},
        "inputs": {**WORKFLOW_BLOCK["properties"]["inputs"],
                   "description": "only when either version is a graph, not on a removed block: what feeds the "
                                  "block in the new version, by its block numbers ([]: it starts the graph)"},
    },
}


class UpgradePlanSchema(CanvasSchema):
    workflowId = ma.fields.String()
    fromVersion = ma.fields.String()
    toVersion = ma.fields.String()
    canUpgrade = StrictBoolean()
    conflicts = ma.fields.List(ma.fields.String())
    newApplications = ma.fields.List(ma.fields.String())
    removedApplications = ma.fields.List(ma.fields.String())
    blocks = ma.fields.List(ma.fields.Dict(metadata=UPGRADE_BLOCK))
    failurePolicy = ma.fields.String(validate=ma.validate.OneOf(FAILURE_POLICIES), metadata={
        "description": "only when the new version changes the template's failure policy: the workflow's policy "
                       "after the upgrade (the new template's, unless the workflow chose its own)"})
