"""WorkflowScheduler, and the extensions: SchedulePreview, WorkflowSchedule, WorkflowSchedulePolicy,
ScheduleOccurrences and AccountTimeZone."""
from __future__ import annotations

from flask import jsonify
from flask.views import MethodView

from canvas.auth import current_principal
from canvas.endpoint import canvas_endpoint
from canvas.extensions import db_session
from canvas.openapi import may_answer
from canvas.openapi_schemas import INSTANTS_ANSWER, SCHEDULER_ANSWER, TOTAL_COUNT_HEADER
from canvas.schedules import service
from canvas.schedules.notify import announce_schedule_change
from canvas.schedules.schemas import (
    AccountTimeZoneAnswerSchema,
    AccountTimeZoneSchema,
    OccurrenceListArgsSchema,
    OccurrenceSchema,
    SchedulePolicySchema,
    SchedulePreviewSchema,
    UpdateWorkflowSchedulerSchema,
    WorkflowIdArgsSchema,
    WorkflowScheduleSchema,
)
from canvas.web import Blueprint

blp = Blueprint("schedules", __name__, url_prefix="/api", description="Workflow schedules")


@blp.route("/WorkflowScheduler")
class WorkflowScheduler(MethodView):
    # returns "": as the document says
    @canvas_endpoint("WorkflowScheduler", parameters="[FromBody]UpdateWorkfowSchedulerApiDto scheduler")
    @blp.arguments(UpdateWorkflowSchedulerSchema)
    @may_answer(404)
    @blp.response(200, SCHEDULER_ANSWER)
    def post(self, data):
        """Updates the workflow scheduler"""
        session = db_session()
        answer = service.set_workflow_scheduler(session, current_principal().account_id, data)
        session.commit()
        announce_schedule_change()
        return jsonify(answer)


@blp.route("/SchedulePreview")
class SchedulePreview(MethodView):
    @canvas_endpoint("SchedulePreview", parameters="[FromBody]SchedulePreviewApiDto preview", returns="JSON array",
                     extension=True)
    @blp.arguments(SchedulePreviewSchema)
    @blp.response(200, INSTANTS_ANSWER)
    def post(self, data):
        """Returns the next fire times of a schedule (ISO 8601 with the schedule's offset), strictly after `after`"""
        return jsonify(service.preview(db_session(), current_principal().account_id, data))


@blp.route("/WorkflowSchedule")
class WorkflowSchedule(MethodView):
    @canvas_endpoint("WorkflowSchedule", parameters="Guid workflowId", returns="JSON", extension=True)
    @blp.arguments(WorkflowIdArgsSchema, location="query")
    @blp.response(200, WorkflowScheduleSchema)
    @may_answer(404)
    def get(self, args):
        """Returns a workflow's schedule: expression, effective time zone, policies and next fire time"""
        return service.get_schedule(db_session(), current_principal().account_id, args["workflowId"])


@blp.route("/WorkflowSchedulePolicy")
class WorkflowSchedulePolicy(MethodView):
    @canvas_endpoint("WorkflowSchedulePolicy", parameters="[FromBody]WorkflowSchedulePolicyApiDto policy",
                     returns="JSON", extension=True)
    @blp.arguments(SchedulePolicySchema)
    @blp.response(200, WorkflowScheduleSchema)
    @may_answer(404)
    def post(self, data):
        """Sets what happens to an occurrence due while a run is active (overlap) or missed (misfire)"""
        session = db_session()
        answer = service.set_policy(session, current_principal().account_id, data)
        session.commit()
        announce_schedule_change()
        return answer


@blp.route("/ScheduleOccurrences")
class ScheduleOccurrences(MethodView):
    @canvas_endpoint("ScheduleOccurrences", parameters="Guid workflowId", returns="JSON array", extension=True)
    @blp.arguments(OccurrenceListArgsSchema, location="query")
    @blp.response(200, OccurrenceSchema(many=True), headers=TOTAL_COUNT_HEADER)
    @may_answer(404)
    def get(self, args):
        """Returns a workflow's schedule occurrences, newest first: fired, skipped, missed, queued or failed, and why"""
        rows, total = service.list_occurrences(db_session(), current_principal().account_id, args)
        return [service.occurrence_to_api(row) for row in rows], 200, {"X-Total-Count": str(total)}


@blp.route("/AccountTimeZone")
class AccountTimeZone(MethodView):
    @canvas_endpoint("AccountTimeZone", returns="JSON", extension=True)
    @blp.response(200, AccountTimeZoneAnswerSchema)
    def get(self):
        """Returns the acting account's default time zone for schedules (null: UTC)"""
        return service.get_account_time_zone(db_session(), current_principal().account_id)

    @canvas_endpoint("AccountTimeZone", parameters="[FromBody]AccountTimeZoneApiDto zone", returns="JSON",
                     extension=True)
    @blp.arguments(AccountTimeZoneSchema)
    @blp.response(200, AccountTimeZoneAnswerSchema)
    def post(self, data):
        """Sets the acting account's default time zone; its schedules that name no zone follow it"""
        session = db_session()
        answer = service.set_account_time_zone(session, current_principal().account_id, data["timeZone"])
        session.commit()
        announce_schedule_change()
        return answer
