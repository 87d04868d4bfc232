"""/v2/flows: list, get, create, PATCH, delete, start, stop; /v2/flows/<id>/versions; drafts and copy."""
from __future__ import annotations

from flask import request
from flask.views import MethodView
from sqlalchemy.orm import Session

from canvas.auth import current_principal
from canvas.errors import BadRequestError
from canvas.extensions import db_session, services
from canvas.models import Workflow
from canvas.openapi import may_answer
from canvas.schedules.notify import announce_schedule_change
from canvas.v2 import flow_drafts as drafts
from canvas.v2 import flow_service as flows
from canvas.v2 import jsonapi, resources
from canvas.v2.resources import draft_to_resource, version_to_resource
from canvas.v2.schemas import FLOW_LIST_PARAMETERS, PAGE_PARAMETERS, doc
from canvas.v2.visibility import check_workspace, current_viewer
from canvas.web import Blueprint
from canvas.workflows.service import Actor

blp = Blueprint("v2_flows", __name__, url_prefix="/v2", description="v2 (JSON:API): flows and their versions")


def flow_to_resource(session: Session, workflow: Workflow, page: flows.FlowPage | None = None) -> dict:
    """The flow resource, with `failure_policy` (failFast | continue) and `notification_settings` among its
    attributes."""
    flow = resources.flow_to_resource(session, workflow, page)
    flow["attributes"]["failure_policy"] = flows.failure_policy_of(workflow)
    flow["attributes"]["notification_settings"] = flows.notification_settings_of(workflow)
    return flow


def actor() -> Actor:
    principal = current_principal()
    return Actor(principal.account_id, principal.organization_id)


def flow_filters() -> flows.FlowFilters:
    has_draft = jsonapi.choice_parameter("filter[has_draft]", ("true", "false"))
    sort = jsonapi.choice_parameter("sort", tuple(f"{sign}{name}" for name in flows.SORT_COLUMNS for sign in ("", "-")))
    search = (request.args.get("search") or "").strip()
    return flows.FlowFilters(status=jsonapi.choice_parameter("filter[status]", flows.FLOW_STATUSES),
                             flow_type=jsonapi.choice_parameter("filter[type]", flows.FLOW_TYPES),
                             user=jsonapi.uuid_parameter("filter[user]"),
                             has_draft=None if has_draft is None else has_draft == "true",
                             search=search or None, sort=sort)


@blp.route("/flows")
class Flows(MethodView):
    @blp.doc(**doc(200, "A page of flows", parameters=FLOW_LIST_PARAMETERS))
    @may_answer(404)  # a workspace_id other than the caller's
    def get(self):
        """List flows (paging, filters, sort, search)"""
        check_workspace()
        page, filters = jsonapi.page_parameters(), flow_filters()
        session = db_session()
        rows, total = flows.list_flows(session, current_viewer(), filters, page.offset, page.size)
        loaded = flows.load_flow_page(session, rows)
        return jsonapi.document([flow_to_resource(session, row, loaded) for row in rows],
                                meta=jsonapi.page_meta(page, total), links=jsonapi.page_links(page, total))

    @blp.doc(**doc(201, "The created flow", 409, 415, 422,
                   request_body="A flow: name, type, graph, cron, failure_policy (failFast | continue), "
                                "notification_settings..."))
    def post(self):
        """Create a flow (its graph becomes the workflow's chain)"""
        data = jsonapi.request_data("flow", creates=True)
        session = db_session()
        workflow = flows.create_flow(session, services().application_catalog, actor(), jsonapi.attributes_of(data))
        session.commit()
        return jsonapi.document(flow_to_resource(session, workflow), status=201,
                                headers={"Location": f"/v2/flows/{workflow.id}"})


@blp.route("/flows/<flow_id>")
class FlowById(MethodView):
    @blp.doc(**doc(200, "The flow"))
    def get(self, flow_id):
        """Get a flow"""
        session = db_session()
        return jsonapi.document(flow_to_resource(session, flows.visible_flow(session, current_viewer(), flow_id)))

    @blp.doc(**doc(200, "The updated flow", 409, 415, 422, request_body="Attributes to change"))
    def patch(self, flow_id):
        """Update a flow; a changed graph makes a new version"""
        data = jsonapi.request_data("flow", resource_id=flow_id)
        session = db_session()
        workflow = flows.update_flow(session, services().application_catalog, actor(), flow_id,
                                     jsonapi.attributes_of(data))
        session.commit()
        announce_schedule_change()
        return jsonapi.document(flow_to_resource(session, workflow))

    @blp.doc(**doc(204, "Deleted", 409))
    def delete(self, flow_id):
        """Delete a flow (its run history stays)"""
        session = db_session()
        flows.delete_flow(session, current_principal().account_id, flow_id)
        session.commit()
        announce_schedule_change()
        return jsonapi.no_content()


@blp.route("/flows/<flow_id>/start")
class FlowStart(MethodView):
    @blp.doc(**doc(202, "The flow, now active on its cron", 422))
    def post(self, flow_id):
        """Start a flow: its schedule goes on with the flow's cron"""
        session = db_session()
        workflow = flows.start_flow(session, current_principal().account_id, flow_id)
        session.commit()
        announce_schedule_change()
        return jsonapi.document(flow_to_resource(session, workflow), status=202)


@blp.route("/flows/<flow_id>/stop")
class FlowStop(MethodView):
    @blp.doc(**doc(202, "Empty document"))
    def post(self, flow_id):
        """Stop a flow: its schedule goes off"""
        session = db_session()
        flows.stop_flow(session, current_principal().account_id, flow_id)
        session.commit()
        announce_schedule_change()
        return jsonapi.document({}, status=202)


@blp.route("/flows/<flow_id>/versions")
class FlowVersions(MethodView):
    @blp.doc(**doc(200, "A page of versions, newest first", parameters=PAGE_PARAMETERS))
    def get(self, flow_id):
        """List a flow's versions"""
        page = jsonapi.page_parameters()
        session = db_session()
        _, rows, total = flows.list_versions(session, current_viewer(), flow_id, page.offset,
                                             page.size)
        session.commit()  # a version first seen now is kept
        return jsonapi.document([version_to_resource(row) for row in rows], meta=jsonapi.page_meta(page, total),
                                links=jsonapi.page_links(page, total))


@blp.route("/flows/<flow_id>/versions/<version_id>")
class FlowVersionById(MethodView):
    @blp.doc(**doc(200, "The version"))
    def get(self, flow_id, version_id):
        """Get a flow version by its content hash"""
        session = db_session()
        version = flows.get_version(session, current_viewer(), flow_id, version_id)
        session.commit()
        return jsonapi.document(version_to_resource(version))


@blp.route("/flows/<flow_id>/draft")
class FlowDraftById(MethodView):
    @blp.doc(**doc(200, "The flow's draft"))
    def get(self, flow_id):
        """Get a flow's draft (404 when it has none)"""
        session = db_session()
        _, draft = drafts.get_draft(session, current_principal().account_id, flow_id)
        return jsonapi.document(draft_to_resource(draft))

    @blp.doc(**doc(200, "The created or updated draft", 409, 415, 422, request_body="A flow-draft: name, "
                   "description, cron, graph, nodes_config"))
    def put(self, flow_id):
        """Create or update a flow's draft; the running flow is not changed"""
        data = jsonapi.request_data("flow-draft")
        session = db_session()
        _, draft = drafts.save_draft(session, services().application_catalog, actor(), flow_id,
                                    jsonapi.attributes_of(data))
        session.commit()
        return jsonapi.document(draft_to_resource(draft))

    @blp.doc(**doc(204, "Deleted"))
    def delete(self, flow_id):
        """Delete a flow's draft"""
        session = db_session()
        drafts.delete_draft(session, current_principal().account_id, flow_id)
        session.commit()
        return jsonapi.no_content()


@blp.route("/flows/<flow_id>/draft/publish")
class FlowDraftPublish(MethodView):
    @blp.doc(**doc(200, "The flow, changed as the draft says", 422))
    def post(self, flow_id):
        """Publish a flow's draft: applied as a PATCH would be (a new version), then the draft is deleted"""
        session = db_session()
        workflow = drafts.publish_draft(session, services().application_catalog, actor(), flow_id)
        session.commit()
        announce_schedule_change()
        return jsonapi.document(flow_to_resource(session, workflow))


@blp.route("/flows/<flow_id>/copy")
class FlowCopy(MethodView):
    @blp.doc(**doc(201, "The destination flow, the copy in its draft", 409, 415, 422,
                   request_body="A flow-copy: attributes.name, attributes.dest_flow_id or relationships.dest_workspace"))
    def post(self, flow_id):
        """Copy a flow into the draft of a new flow (dest_workspace) or of an existing flow (dest_flow_id)"""
        data = jsonapi.request_data("flow-copy", creates=True)
        attributes = jsonapi.attributes_of(data)
        session = db_session()
        workflow = drafts.copy_flow(session, services().application_catalog, actor(), flow_id, attributes,
                                   _dest_workspace(data))
        session.commit()
        return jsonapi.document(flow_to_resource(session, workflow), status=201,
                                headers={"Location": f"/v2/flows/{workflow.id}"})


def _dest_workspace(data: dict) -> str | None:
    relationships = data.get("relationships") or {}
    relation = relationships.get("dest_workspace") if isinstance(relationships, dict) else None
    if relation is None:
        return None
    target = relation.get("data") if isinstance(relation, dict) else None
    if not isinstance(target, dict) or target.get("type") not in (None, "workspace") or \
            not isinstance(target.get("id"), str):
        raise BadRequestError("relationships.dest_workspace.data must be {\"type\": \"workspace\", \"id\": ...}")
    return target["id"]
