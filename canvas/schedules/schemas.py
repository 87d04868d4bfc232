"""Schemas of the schedule endpoints."""
from __future__ import annotations

import marshmallow as ma

from canvas.endpoint import dto
from canvas.models.schedule import MISFIRE_POLICIES, OUTCOMES, OVERLAP_POLICIES
from canvas.schema_fields import (
    CanvasSchema,
    Id,
    Int,
    StrictBoolean,
    check_embedded_json,
    page_number_field,
    page_size_field,
)

FREQUENCY_DESCRIPTION = ('a JSON string: {"cronSchedule": "<Quartz cron, 6 or 7 fields>", '
                         '"timeZone": "<IANA name, optional; default the account\'s, else UTC>"}')


class FrequencyField(ma.fields.String):
    """A string, documented as one; any other JSON value is passed through so that the service can answer it with
    a message showing the expected form, instead of a bare "Not a valid string."."""

    def _deserialize(self, value, attr, data, **kwargs):  # noqa: ANN001, ANN202
        if isinstance(value, str):
            check_embedded_json(value)  # the service decodes it: the body's rules (nesting, storable text) hold
        return value


@dto("UpdateWorkfowSchedulerApiDto")  # sic: the Canvas document's spelling
class UpdateWorkflowSchedulerSchema(CanvasSchema):
    workflowId = Id(required=True)
    isScheduled = StrictBoolean(required=True)
    scheduleFrequency = FrequencyField(allow_none=True, metadata={"description": FREQUENCY_DESCRIPTION})


@dto("SchedulePreviewApiDto")
class SchedulePreviewSchema(CanvasSchema):
    scheduleFrequency = FrequencyField(required=True, metadata={"description": FREQUENCY_DESCRIPTION})
    after = ma.fields.String(allow_none=True, metadata={"description": "ISO 8601 instant (no offset: UTC); "
                                                                       "default now"})
    count = Int(load_default=5, minimum=1, maximum=100)


@dto("AccountTimeZoneApiDto")
class AccountTimeZoneSchema(CanvasSchema):
    timeZone = ma.fields.String(required=True, allow_none=True,
                                metadata={"description": "IANA name, or null to clear (schedules then use UTC)"})


class AccountTimeZoneAnswerSchema(CanvasSchema):
    accountId = Id()
    timeZone = ma.fields.String(allow_none=True)


@dto("WorkflowSchedulePolicyApiDto")
class SchedulePolicySchema(CanvasSchema):
    workflowId = Id(required=True)
    overlapPolicy = ma.fields.String(allow_none=True, validate=ma.validate.OneOf(OVERLAP_POLICIES), metadata={
        "description": "skip (default): an occurrence due while a run is active is skipped; queue: one waits"})
    misfirePolicy = ma.fields.String(allow_none=True, validate=ma.validate.OneOf(MISFIRE_POLICIES), metadata={
        "description": "coalesce (default): missed occurrences become one run; skip: recorded missed; "
                       "run_each: one run each, newest first up to a limit"})


class WorkflowIdArgsSchema(CanvasSchema):
    workflowId = Id(required=True)


class WorkflowScheduleSchema(CanvasSchema):
    workflowId = Id()
    isScheduled = StrictBoolean()
    scheduleFrequency = ma.fields.String(allow_none=True)
    cronSchedule = ma.fields.String(allow_none=True)
    timeZone = ma.fields.String(allow_none=True)
    overlapPolicy = ma.fields.String()
    misfirePolicy = ma.fields.String()
    dateNextSchedule = ma.fields.DateTime(allow_none=True)


class OccurrenceListArgsSchema(CanvasSchema):
    workflowId = Id(required=True)
    outcome = ma.fields.String(validate=ma.validate.OneOf(OUTCOMES))
    page = page_number_field()
    pageSize = page_size_field()


class OccurrenceSchema(CanvasSchema):
    workflowId = Id()
    scheduledTime = ma.fields.DateTime()
    dispatchTime = ma.fields.DateTime(allow_none=True)
    outcome = ma.fields.String()
    reason = ma.fields.String(allow_none=True)
    runId = Id(allow_none=True)
    scheduler = ma.fields.String()
