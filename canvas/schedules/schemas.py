"""Schemas of the schedule endpoints."""
from __future__ import annotations

import marshmallow as ma

from canvas.endpoint import dto
from canvas.models.schedule import MISFIRE_POLICIES, OUTCOMES, OVERLAP_POLICIES

FREQUENCY_DESCRIPTION = ('a JSON string: {"cronSchedule": "<Quartz cron, 6 or 7 fields>", '
                         '"timeZone": "<IANA name, optional; default the account\'s, else UTC>"}')


class FrequencyField(ma.fields.String):
    """A string, documented as one; any other JSON value is passed through so that the service can answer it with
    a message showing the expected form, instead of a bare "Not a valid string."."""

    def _deserialize(self, value, attr, data, **kwargs):  # noqa: ANN001, ANN202
        return value


@dto("UpdateWorkfowSchedulerApiDto")  # sic: the Canvas document's spelling
class UpdateWorkflowSchedulerSchema(ma.Schema):
    workflowId = ma.fields.UUID(required=True)
    isScheduled = ma.fields.Boolean(required=True)
    scheduleFrequency = FrequencyField(allow_none=True, metadata={"description": FREQUENCY_DESCRIPTION})


@dto("SchedulePreviewApiDto")
class SchedulePreviewSchema(ma.Schema):
    scheduleFrequency = FrequencyField(required=True, metadata={"description": FREQUENCY_DESCRIPTION})
    after = ma.fields.String(allow_none=True, metadata={"description": "ISO 8601 instant (no offset: UTC); "
                                                                       "default now"})
    count = ma.fields.Integer(load_default=5, strict=True, validate=ma.validate.Range(min=1, max=100))


@dto("AccountTimeZoneApiDto")
class AccountTimeZoneSchema(ma.Schema):
    timeZone = ma.fields.String(required=True, allow_none=True,
                                metadata={"description": "IANA name, or null to clear (schedules then use UTC)"})


class AccountTimeZoneAnswerSchema(ma.Schema):
    accountId = ma.fields.UUID()
    timeZone = ma.fields.String(allow_none=True)


@dto("WorkflowSchedulePolicyApiDto")
class SchedulePolicySchema(ma.Schema):
    workflowId = ma.fields.UUID(required=True)
    overlapPolicy = ma.fields.String(allow_none=True, validate=ma.validate.OneOf(OVERLAP_POLICIES), metadata={
        "description": "skip (default): an occurrence due while a run is active is skipped; queue: one waits"})
    misfirePolicy = ma.fields.String(allow_none=True, validate=ma.validate.OneOf(MISFIRE_POLICIES), metadata={
        "description": "coalesce (default): missed occurrences become one run; skip: recorded missed; "
                       "run_each: one run each, newest first up to a limit"})


class WorkflowIdArgsSchema(ma.Schema):
    workflowId = ma.fields.UUID(required=True)


class WorkflowScheduleSchema(ma.Schema):
    workflowId = ma.fields.UUID()
    isScheduled = ma.fields.Boolean()
    scheduleFrequency = ma.fields.String(allow_none=True)
    cronSchedule = ma.fields.String(allow_none=True)
    timeZone = ma.fields.String(allow_none=True)
    overlapPolicy = ma.fields.String()
    misfirePolicy = ma.fields.String()
    dateNextSchedule = ma.fields.DateTime(allow_none=True)


class OccurrenceListArgsSchema(ma.Schema):
    workflowId = ma.fields.UUID(required=True)
    outcome = ma.fields.String(validate=ma.validate.OneOf(OUTCOMES))
    page = ma.fields.Integer(load_default=1, validate=ma.validate.Range(min=1))
    pageSize = ma.fields.Integer(load_default=50, validate=ma.validate.Range(min=1, max=500))


class OccurrenceSchema(ma.Schema):
    workflowId = ma.fields.UUID()
    scheduledTime = ma.fields.DateTime()
    dispatchTime = ma.fields.DateTime(allow_none=True)
    outcome = ma.fields.String()
    reason = ma.fields.String(allow_none=True)
    runId = ma.fields.UUID(allow_none=True)
    scheduler = ma.fields.String()
