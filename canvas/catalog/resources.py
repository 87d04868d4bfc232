"""WorkflowTemplates, and the organization-template and block-type extensions."""
from __future__ import annotations

from flask import jsonify
from flask.views import MethodView

from canvas.applications.schemas import OptionalIdArgsSchema
from canvas.auth import account_managers, current_principal
from canvas.catalog import service
from canvas.catalog.schemas import (
    AddWorkflowTemplateSchema,
    BlockTypeSchema,
    PublishWorkflowTemplateSchema,
    TemplateVersionSchema,
    UpdateWorkflowTemplateSchema,
    WorkflowTemplateSchema,
)
from canvas.endpoint import canvas_endpoint, id_argument, route_with_optional_id
from canvas.extensions import db_session, services
from canvas.openapi import may_answer
from canvas.openapi_schemas import GUID_ANSWER, TOTAL_COUNT_HEADER
from canvas.web import Blueprint
from canvas.workflows.schemas import PageArgsSchema

blp = Blueprint("templates", __name__, url_prefix="/api", description="Workflow templates")


@blp.route("/WorkflowTemplates")
class WorkflowTemplates(MethodView):
    @canvas_endpoint("WorkflowTemplates", returns="JSON array")
    @blp.arguments(PageArgsSchema, location="query")
    @blp.response(200, WorkflowTemplateSchema(many=True), headers=TOTAL_COUNT_HEADER)
    def get(self, args):
        """Returns list of workflow templates"""
        rows, total = service.visible_templates(db_session(), current_principal().organization_id, args)
        return [service.template_to_api(row) for row in rows], 200, {"X-Total-Count": str(total)}


@blp.route("/WorkflowTemplate")
class WorkflowTemplateDrafts(MethodView):
    @canvas_endpoint("WorkflowTemplate", parameters="[FromBody]AddWorkflowTemplateApiDto template", returns="Guid",
                     extension=True, role=account_managers("create workflow templates"))
    @blp.arguments(AddWorkflowTemplateSchema)
    @blp.response(200, GUID_ANSWER)
    def post(self, data):
        """Creates a Draft template of the organization (Admin or SuperPartner) and returns Id"""
        principal = current_principal()
        session = db_session()
        row = service.create_org_template(session, services().application_catalog, principal.organization_id, data)
        session.commit()
        return jsonify(str(row.id))


@blp.route("/UpdateWorkflowTemplate")
class UpdateWorkflowTemplate(MethodView):
    @canvas_endpoint("UpdateWorkflowTemplate", parameters="[FromBody]UpdateWorkflowTemplateApiDto template",
                     returns="JSON", extension=True, role=account_managers("edit workflow templates"))
    @blp.arguments(UpdateWorkflowTemplateSchema)
    @blp.response(200, WorkflowTemplateSchema)
    @may_answer(404)
    def post(self, data):
        """Edits the draft of an organization template; publishing makes it a new version"""
        principal = current_principal()
        session = db_session()
        row = service.update_org_template(session, services().application_catalog, principal.organization_id, data)
        session.commit()
        return service.template_to_api(row)


@blp.route("/PublishWorkflowTemplate")
class PublishWorkflowTemplate(MethodView):
    @canvas_endpoint("PublishWorkflowTemplate", parameters="[FromBody]PublishWorkflowTemplateApiDto template",
                     returns="JSON", extension=True, role=account_managers("publish workflow templates"))
    @blp.arguments(PublishWorkflowTemplateSchema)
    @blp.response(200, WorkflowTemplateSchema)
    @may_answer(404, 409)  # nothing new to publish
    def post(self, data):
        """Publishes the draft as a new version (default: the next patch version)"""
        principal = current_principal()
        session = db_session()
        row = service.publish_org_template(session, principal.organization_id, data["id"], data.get("version"))
        session.commit()
        return service.template_to_api(row)


@route_with_optional_id(blp, "/WorkflowTemplateVersions")
class WorkflowTemplateVersions(MethodView):
    @canvas_endpoint("WorkflowTemplateVersions", parameters="Guid id", returns="JSON array", extension=True)
    @blp.arguments(OptionalIdArgsSchema, location="query")
    @blp.response(200, TemplateVersionSchema(many=True))
    @may_answer(404)
    def get(self, args, path_id=None):
        """Returns the published versions of a visible template, oldest first"""
        session = db_session()
        row = service.find_visible_template(session, current_principal().organization_id, id_argument(path_id, args))
        return [{"version": version.version, "name": version.name, "dateCreated": version.date_created,
                 "contentHash": version.content_hash} for version in service.list_versions(session, row.id)]


@blp.route("/BlockTypes")
class BlockTypes(MethodView):
    @canvas_endpoint("BlockTypes", returns="JSON array", extension=True)
    @blp.response(200, BlockTypeSchema(many=True))
    def get(self):
        """Returns the block implementations templates can use, with their variables"""
        from canvas.execution.registry import all_blocks

        return [{"key": block.key, "title": block.title, "applicationKind": block.application_kind,
                 "sideEffects": block.side_effects,
                 "variables": {name: {"type": spec.type, "default": spec.default, "required": spec.required,
                                      "description": spec.description} for name, spec in block.variables.items()}}
                for block in all_blocks()]
