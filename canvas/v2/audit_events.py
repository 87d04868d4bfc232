"""/v2 audit-events: the workspace's audit log as JSON:API resources, for its Admins and SuperPartners."""
from __future__ import annotations

from flask import request
from flask.views import MethodView

from canvas.audit import service as audit
from canvas.auth import account_managers, current_principal
from canvas.errors import BadRequestError, NotFoundError
from canvas.extensions import db_session
from canvas.models import AuditEntry
from canvas.v2 import jsonapi
from canvas.v2.flow_service import as_id
from canvas.v2.logs import time_parameter
from canvas.v2.schemas import PAGE_PARAMETERS, doc, query
from canvas.web import Blueprint
from canvas.workflows.service import slice_of

blp = Blueprint("v2_audit_events", __name__, url_prefix="/v2", description="v2 (JSON:API): the audit log")
MAX_TEXT_FILTER = 64
AUDIT_EVENT_PARAMETERS = PAGE_PARAMETERS + [
    query("filter[action]", "e.g. flow.update, account.keys.rotate"),
    query("filter[object_type]", "flow, workflow, account, organization, application, "
                                 "template, webhook or callback"),
    query("filter[object_id]", "the changed object's id"),
    query("filter[actor]", "id of the user (account) whose API key made the change"),
    query("filter[from]", "ISO 8601: events at or after this instant"),
    query("filter[to]", "ISO 8601: events before this instant"),
]


def text_parameter(name: str) -> str | None:
    raw = (request.args.get(name) or "").strip()
    if len(raw) > MAX_TEXT_FILTER:
        raise BadRequestError(f"{name} must be at most {MAX_TEXT_FILTER} characters", parameter=name)
    return raw or None


def audit_filters() -> audit.AuditFilters:
    return audit.AuditFilters(action=text_parameter("filter[action]"),
                              object_type=text_parameter("filter[object_type]"),
                              object_id=text_parameter("filter[object_id]"),
                              actor_id=jsonapi.uuid_parameter("filter[actor]"),
                              since=time_parameter("filter[from]"), until=time_parameter("filter[to]"))


def audit_event_to_resource(entry: AuditEntry) -> dict:
    attributes = {"occurred_at": jsonapi.iso_time(entry.occurred_at), "action": entry.action,
                  "object_type": entry.object_type, "object_id": entry.object_id,
                  "actor_id": _text(entry.actor_id), "actor_kind": entry.actor_kind,
                  "acting_as_id": _text(entry.acting_as_id), "workspace_id": _text(entry.organization_id),
                  "changes": entry.changes, "request_id": entry.request_id}
    return jsonapi.resource("audit-event", entry.id, attributes, self_link=f"/v2/audit-events/{entry.id}")


def _text(value: object) -> str | None:
    return str(value) if value is not None else None


@blp.route("/audit-events")
class AuditEvents(MethodView):
    @blp.doc(**doc(200, "A page of audit events, newest first", parameters=AUDIT_EVENT_PARAMETERS))
    def get(self):
        """List the workspace's audit events (Admin and SuperPartner only)"""
        principal = current_principal()
        principal.require(account_managers("read the audit log"))
        page = jsonapi.page_parameters()
        statement = audit.entries_query(principal.organization_id, audit_filters())
        rows, total = slice_of(db_session(), statement, audit.NEWEST_FIRST, page.offset, page.size)
        return jsonapi.document([audit_event_to_resource(row) for row in rows],
                                meta=jsonapi.page_meta(page, total), links=jsonapi.page_links(page, total))


@blp.route("/audit-events/<event_id>")
class AuditEventById(MethodView):
    @blp.doc(**doc(200, "One audit event"))
    def get(self, event_id):
        """Get an audit event of the workspace (Admin and SuperPartner only)"""
        principal = current_principal()
        principal.require(account_managers("read the audit log"))
        entry = db_session().get(AuditEntry, as_id(event_id, "audit event"))
        if entry is None or entry.organization_id != principal.organization_id:
            raise NotFoundError(f"Unknown audit event {event_id}")
        return jsonapi.document(audit_event_to_resource(entry))
