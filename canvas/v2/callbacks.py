"""Callbacks of a flow over HTTP (JSON:API): create, list, get and delete them, and see how their deliveries went.
Sending them when a run ends (signed summaries, retries) is the engine's: canvas.execution.run_callbacks."""
from __future__ import annotations

import secrets
import uuid

from flask.views import MethodView
from sqlalchemy import select
from sqlalchemy.orm import Session

from canvas.audit import service as audit
from canvas.auth import current_principal
from canvas.errors import BadRequestError, NotFoundError
from canvas.execution.run_callbacks import EVENTS, deliver  # noqa: F401 - re-exported, see below
from canvas.extensions import db_session
from canvas.models import CallbackDelivery, FlowCallback
from canvas.models.base import utcnow
from canvas.v2 import flow_service as flows
from canvas.v2 import jsonapi
from canvas.v2.schemas import doc
from canvas.web import Blueprint

# Re-exported: `deliver` for RQ jobs queued as "canvas.v2.callbacks.deliver" before delivery moved to the engine
# (canvas.execution.run_callbacks). A run's callbacks are queued by canvas.execution.run_endings, once.
blp = Blueprint("v2_callbacks", __name__, url_prefix="/v2", description="v2 (JSON:API): run callbacks")


# --- managing callbacks -----------------------------------------------------------------------------------------

def create_callback(session: Session, account_id: uuid.UUID, flow_id: str, attributes: dict,
                    box) -> tuple[FlowCallback, str]:  # noqa: ANN001 - SecretBox
    workflow = flows.get_flow(session, account_id, flow_id)
    url = attributes.get("url")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")) or len(url) > 2000:
        raise BadRequestError("url must be an http(s) URL", field="url")
    events = attributes.get("events", sorted(EVENTS.values()))
    if not isinstance(events, list) or not events or any(event not in EVENTS.values() for event in events):
        raise BadRequestError(f"events must be a non-empty list of {', '.join(sorted(EVENTS.values()))}",
                              field="events")
    attempts = attributes.get("max_attempts", 5)
    if not isinstance(attempts, int) or isinstance(attempts, bool) or not 1 <= attempts <= 10:
        raise BadRequestError("max_attempts must be an integer 1..10", field="max_attempts")
    secret = secrets.token_urlsafe(32)
    callback = FlowCallback(workflow_id=workflow.id, url=url, events=events, secret=box.encrypt(secret),
                            max_attempts=attempts, date_created=utcnow())
    session.add(callback)
    session.flush()
    audit.record_change(session, "callback.create", "callback", callback, {},
                        organization_id=workflow.organization_id)
    return callback, secret


def callback_to_resource(callback: FlowCallback, secret: str | None = None) -> dict:
    attributes = {"url": callback.url, "events": callback.events, "max_attempts": callback.max_attempts,
                  "created_at": jsonapi.iso_time(callback.date_created)}
    if secret is not None:
        attributes["secret"] = secret  # shown once: the receiver needs it to check signatures
    return jsonapi.resource("callback", callback.id, attributes,
                            self_link=f"/v2/flows/{callback.workflow_id}/callbacks/{callback.id}")


def delivery_to_resource(delivery: CallbackDelivery) -> dict:
    return jsonapi.resource("callback-delivery", delivery.id, {
        "run_id": str(delivery.run_id), "event": delivery.event, "status": delivery.status,
        "attempts": delivery.attempts, "last_status_code": delivery.last_status_code,
        "last_error": delivery.last_error, "created_at": jsonapi.iso_time(delivery.date_created),
        "delivered_at": jsonapi.iso_time(delivery.date_delivered)}, self_link=f"/v2/callback-deliveries/{delivery.id}")


# --- views ----------------------------------------------------------------------------------------------------------

@blp.route("/flows/<flow_id>/callbacks")
class FlowCallbacks(MethodView):
    @blp.doc(**doc(200, "The flow's callbacks (secrets are shown only when created)"))
    def get(self, flow_id):
        """List a flow's callbacks"""
        session = db_session()
        workflow = flows.get_flow(session, current_principal().account_id, flow_id)
        rows = session.scalars(select(FlowCallback).where(FlowCallback.workflow_id == workflow.id)
                               .order_by(FlowCallback.date_created))
        return jsonapi.document([callback_to_resource(row) for row in rows])

    @blp.doc(**doc(201, "The callback with its signing secret (shown once)", 415,
                   request_body="attributes {url, events: [run.succeeded, run.failed], max_attempts}"))
    def post(self, flow_id):
        """Add a callback to a flow"""
        from canvas.extensions import services

        attributes = jsonapi.attributes_of(jsonapi.request_data("callback", creates=True))
        session = db_session()
        callback, secret = create_callback(session, current_principal().account_id, flow_id, attributes,
                                           services().secret_box)
        session.commit()
        return jsonapi.document(callback_to_resource(callback, secret), status=201)


@blp.route("/flows/<flow_id>/callbacks/<callback_id>")
class FlowCallbackById(MethodView):
    @blp.doc(**doc(200, "The callback (its secret is shown only when created)"))
    def get(self, flow_id, callback_id):
        """Get a callback"""
        return jsonapi.document(callback_to_resource(_own_callback(db_session(), flow_id, callback_id)))

    @blp.doc(**doc(204, "Deleted"))
    def delete(self, flow_id, callback_id):
        """Delete a callback"""
        session = db_session()
        callback = _own_callback(session, flow_id, callback_id)
        audit.record_removal(session, "callback.delete", "callback", callback)
        session.delete(callback)
        session.commit()
        return jsonapi.no_content()


@blp.route("/flows/<flow_id>/callbacks/<callback_id>/deliveries")
class CallbackDeliveries(MethodView):
    @blp.doc(**doc(200, "The callback's deliveries, newest first"))
    def get(self, flow_id, callback_id):
        """List a callback's deliveries and how they went"""
        session = db_session()
        callback = _own_callback(session, flow_id, callback_id)
        rows = session.scalars(select(CallbackDelivery).where(CallbackDelivery.callback_id == callback.id)
                               .order_by(CallbackDelivery.date_created.desc()).limit(200))
        return jsonapi.document([delivery_to_resource(row) for row in rows])


@blp.route("/callback-deliveries/<delivery_id>")
class CallbackDeliveryById(MethodView):
    @blp.doc(**doc(200, "One delivery of a callback and how it went"))
    def get(self, delivery_id):
        """Get a callback delivery"""
        session = db_session()
        delivery = session.get(CallbackDelivery, flows.as_id(delivery_id, "callback delivery"))
        callback = session.get(FlowCallback, delivery.callback_id) if delivery is not None else None
        try:
            flows.get_flow(session, current_principal().account_id, str(callback.workflow_id) if callback else "-")
        except NotFoundError:
            raise NotFoundError(f"Unknown callback delivery {delivery_id}") from None
        return jsonapi.document(delivery_to_resource(delivery))


def _own_callback(session: Session, flow_id: str, callback_id: str) -> FlowCallback:
    return flows.get_flow_part(session, current_principal().account_id, flow_id, FlowCallback, callback_id,
                               "callback")
