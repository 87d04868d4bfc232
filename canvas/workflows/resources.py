"""Workflows, Workflow (GET/POST), DeleteWorkflow, and the update and upgrade extensions."""
from __future__ import annotations

from flask import jsonify
from flask.views import MethodView

from canvas.applications.schemas import OptionalIdArgsSchema
from canvas.auth import current_principal
from canvas.endpoint import canvas_endpoint, id_argument, route_with_optional_id
from canvas.extensions import db_session
from canvas.openapi import may_answer
from canvas.openapi_schemas import GUID_ANSWER, TOTAL_COUNT_HEADER, TRUE_ANSWER
from canvas.web import Blueprint
from canvas.workflows import service, upgrade
from canvas.workflows.schemas import (
    AddWorkflowSchema,
    PageArgsSchema,
    UpdateWorkflowSchema,
    UpgradePlanSchema,
    UpgradeWorkflowSchema,
    WorkflowDetailSchema,
    WorkflowSchema,
)

blp = Blueprint("workflows", __name__, url_prefix="/api", description="Workflows")


def actor() -> service.Actor:
    principal = current_principal()
    return service.Actor(principal.account_id, principal.organization_id)


@blp.route("/Workflows")
class Workflows(MethodView):
    @canvas_endpoint("Workflows", returns="JSON array")
    @blp.arguments(PageArgsSchema, location="query")
    @blp.response(200, WorkflowSchema(many=True), headers=TOTAL_COUNT_HEADER)
    def get(self, args):
        """Returns list of registered workflows"""
        workflows, total = service.list_workflows(db_session(), current_principal().account_id, args)
        # Already as WorkflowSchema dumps them (see list_workflows): a Response, which flask-smorest sends as it is
        return jsonify(workflows), 200, {"X-Total-Count": str(total)}


@route_with_optional_id(blp, "/Workflow")
class Workflow(MethodView):
    @canvas_endpoint("Workflow", parameters="Guid id", returns="JSON")
    @blp.arguments(OptionalIdArgsSchema, location="query")
    @blp.response(200, WorkflowDetailSchema)
    @may_answer(404)
    def get(self, args, path_id=None):
        """Returns registered workflow by id"""
        workflow = service.get_workflow(db_session(), current_principal().account_id, id_argument(path_id, args))
        return service.workflow_to_api(workflow, with_chain=True)

    @canvas_endpoint("Workflow", parameters="[FromBody]AddWorkflowApiDto workflow", returns="Guid")
    @blp.arguments(AddWorkflowSchema)
    @blp.response(200, GUID_ANSWER)
    def post(self, data):
        """Registers a new workflow based on template and returns Id"""
        session = db_session()
        workflow = service.instantiate(session, actor(), data)
        session.commit()
        return jsonify(str(workflow.id))


@route_with_optional_id(blp, "/DeleteWorkflow")
class DeleteWorkflow(MethodView):
    @canvas_endpoint("DeleteWorkflow", parameters="Guid id", returns="Guid")
    @blp.arguments(OptionalIdArgsSchema, location="query")
    @may_answer(404, 409)  # a run is active
    @blp.response(200, TRUE_ANSWER)
    def get(self, args, path_id=None):
        """Deletes workflow by Id"""
        session = db_session()
        service.delete_workflow(session, current_principal().account_id, id_argument(path_id, args))
        session.commit()
        _announce_schedule_change()
        return jsonify(True)


@blp.route("/UpdateWorkflow")
class UpdateWorkflow(MethodView):
    @canvas_endpoint("UpdateWorkflow", parameters="[FromBody]UpdateWorkflowApiDto workflow", returns="JSON",
                     extension=True)
    @blp.arguments(UpdateWorkflowSchema)
    @blp.response(200, WorkflowDetailSchema)
    @may_answer(404, 409)
    def post(self, data):
        """Renames a workflow, changes its variable overrides or rebinds its applications"""
        session = db_session()
        workflow = service.update_workflow(session, actor(), data)
        session.commit()
        return service.workflow_to_api(workflow, with_chain=True)


@blp.route("/WorkflowUpgradePreview")
class WorkflowUpgradePreview(MethodView):
    @canvas_endpoint("WorkflowUpgradePreview", parameters="[FromBody]UpgradeWorkflowApiDto upgrade", returns="JSON",
                     extension=True)
    @blp.arguments(UpgradeWorkflowSchema)
    @blp.response(200, UpgradePlanSchema)
    @may_answer(404)
    def post(self, data):
        """Shows, block by block, what upgrading to a newer template version would change, and any conflicts"""
        session = db_session()
        workflow = service.get_workflow(session, current_principal().account_id, data["id"])
        return upgrade.plan_upgrade(session, workflow, data.get("version")).to_api()


@blp.route("/UpgradeWorkflow")
class UpgradeWorkflow(MethodView):
    @canvas_endpoint("UpgradeWorkflow", parameters="[FromBody]UpgradeWorkflowApiDto upgrade", returns="JSON",
                     extension=True)
    @blp.arguments(UpgradeWorkflowSchema)
    @blp.response(200, UpgradePlanSchema)
    @may_answer(404, 409)  # a run is active; the upgrade conflicts
    def post(self, data):
        """Upgrades a workflow to a newer template version, keeping its overrides; 409 with a report on conflicts"""
        session = db_session()
        _workflow, plan = upgrade.apply_upgrade(session, actor(), data["id"], data.get("version"),
                                                {key: str(value) for key, value in (data.get("applications") or {}).items()})
        session.commit()
        return plan.to_api()


def _announce_schedule_change() -> None:
    """Schedulers pick up schedule changes at once (they also reconcile periodically)."""
    from canvas.schedules.notify import announce_schedule_change

    announce_schedule_change()
