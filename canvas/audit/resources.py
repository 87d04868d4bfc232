"""GET AuditLog: the organization's audit log, for its Admins and SuperPartners."""
from __future__ import annotations

from flask.views import MethodView

from canvas.audit import service
from canvas.audit.schemas import AuditEntrySchema, AuditLogArgsSchema
from canvas.auth import account_managers, current_principal
from canvas.endpoint import canvas_endpoint
from canvas.extensions import db_session
from canvas.models import AuditEntry
from canvas.openapi_schemas import TOTAL_COUNT_HEADER
from canvas.web import Blueprint
from canvas.workflows.service import page_of

blp = Blueprint("audit", __name__, url_prefix="/api", description="The audit log")


@blp.route("/AuditLog")
class AuditLog(MethodView):
    @canvas_endpoint("AuditLog", returns="JSON array", extension=True,
                     role=account_managers("read the audit log"))
    @blp.arguments(AuditLogArgsSchema, location="query")
    @blp.response(200, AuditEntrySchema(many=True), headers=TOTAL_COUNT_HEADER)
    def get(self, args):
        """Returns the organization's audit log, newest first (total in X-Total-Count)"""
        filters = service.AuditFilters(action=args.get("action"), object_type=args.get("objectType"),
                                       object_id=args.get("objectId"), actor_id=args.get("actorId"),
                                       since=args.get("since"), until=args.get("until"))
        query = service.entries_query(current_principal().organization_id, filters)
        rows, total = page_of(db_session(), query, service.NEWEST_FIRST, args["page"], args["pageSize"])
        return [entry_to_api(row) for row in rows], 200, {"X-Total-Count": str(total)}


def entry_to_api(entry: AuditEntry) -> dict:
    return {"id": entry.id, "organizationId": entry.organization_id, "actorId": entry.actor_id,
            "actorKind": entry.actor_kind, "actingAsId": entry.acting_as_id, "time": entry.occurred_at,
            "action": entry.action, "objectType": entry.object_type, "objectId": entry.object_id,
            "changes": entry.changes, "requestId": entry.request_id}
