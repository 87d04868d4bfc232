"""Callbacks of a flow: when a run succeeds or fails, POST a signed JSON summary to a configured URL, retried with
exponential backoff. Deliveries are RQ jobs on the run queue; a retry is scheduled with RQ's own scheduler, which
every `canvas worker` runs.

Signature (Stripe-style, so receivers can reuse their verifiers): header `X-Canvas-Signature: t=<unix seconds>,
v1=<hex HMAC-SHA256 of "<t>.<body>">`, plus `X-Canvas-Event` and `X-Canvas-Delivery`."""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import time
import uuid
from datetime import timedelta

from flask.views import MethodView
from flask_smorest import Blueprint
from rq import Queue
from sqlalchemy import select
from sqlalchemy.orm import Session

from canvas.auth import current_principal
from canvas.errors import BadRequestError, NotFoundError
from canvas.extensions import db_session
from canvas.models import CallbackDelivery, FlowCallback, WorkflowRun
from canvas.models.base import utcnow
from canvas.queueing.keys import RUN_QUEUE
from canvas.v2 import flow_service as flows
from canvas.v2 import jsonapi
from canvas.v2.schemas import doc

log = logging.getLogger(__name__)
blp = Blueprint("v2_callbacks", __name__, url_prefix="/v2", description="v2 (JSON:API): run callbacks")
EVENTS = {"Succeeded": "run.succeeded", "Failed": "run.failed"}
DELIVERY_JOB = "canvas.v2.callbacks.deliver"
DELIVERY_TIMEOUT_SECONDS = 10
MAX_BACKOFF_SECONDS = 3600


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


# --- after a run --------------------------------------------------------------------------------------------------

def run_finished(services, run_id: uuid.UUID, workflow_id: uuid.UUID, status: str) -> int:  # noqa: ANN001
    """Queue one delivery per matching callback. Called by the runner; never raises into it."""
    event = EVENTS.get(status)
    if event is None:
        return 0
    try:
        return _queue_deliveries(services, run_id, workflow_id, event)
    except Exception:  # noqa: BLE001 - a callback problem must not change the run's outcome
        log.exception("could not queue the callbacks of run %s", run_id)
        return 0


def _queue_deliveries(services, run_id: uuid.UUID, workflow_id: uuid.UUID, event: str) -> int:  # noqa: ANN001
    with services.db.transaction() as session:
        callbacks = [callback for callback in session.scalars(
            select(FlowCallback).where(FlowCallback.workflow_id == workflow_id)) if event in callback.events]
        deliveries = [CallbackDelivery(callback_id=callback.id, run_id=run_id, event=event, date_created=utcnow())
                      for callback in callbacks]
        session.add_all(deliveries)
    queue = Queue(RUN_QUEUE, connection=services.redis)
    for delivery in deliveries:
        queue.enqueue_call(DELIVERY_JOB, args=(str(delivery.id),), result_ttl=0, failure_ttl=24 * 3600)
    return len(deliveries)


def deliver(delivery_id: str) -> str:
    """The RQ job: one attempt; on failure a later attempt is scheduled until max_attempts."""
    from flask import current_app

    services = current_app.extensions["canvas"]
    with services.db.transaction() as session:
        delivery = session.get(CallbackDelivery, uuid.UUID(delivery_id))
        callback = session.get(FlowCallback, delivery.callback_id) if delivery else None
        if delivery is None or callback is None or delivery.status != "Pending":
            return "nothing to deliver"
        body = json.dumps(run_summary(session, delivery), sort_keys=True).encode()
        secret = services.secret_box.decrypt(callback.secret)
        delivery.attempts += 1
        ok = _post(services, callback, delivery, body, secret)
        if ok:
            delivery.status, delivery.date_delivered = "Delivered", utcnow()
        elif delivery.attempts >= callback.max_attempts:
            delivery.status = "Failed"
        retry_in = None if ok or delivery.status == "Failed" else backoff(services.settings, delivery.attempts)
    if retry_in is not None:
        _schedule_retry(services, delivery_id, retry_in)
    return delivery.status


def run_summary(session: Session, delivery: CallbackDelivery) -> dict:
    from canvas.runs.service import run_to_api

    run = run_to_api(session, session.get(WorkflowRun, delivery.run_id))
    blocks = [{key: block[key] for key in ("number", "blockName", "status", "recordsIn", "recordsOut", "error")}
              for block in run["blocks"]]
    return {"event": delivery.event, "delivery_id": str(delivery.id), "run_id": str(run["id"]),
            "flow_id": str(run["workflowId"]), "status": run["status"], "trigger": run["trigger"],
            "error": run["error"], "started_at": jsonapi.iso_time(run["dateStarted"]),
            "finished_at": jsonapi.iso_time(run["dateFinished"]), "steps": blocks}


def signature(secret: bytes, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def _post(services, callback: FlowCallback, delivery: CallbackDelivery, body: bytes,  # noqa: ANN001
          secret: bytes) -> bool:
    from canvas.network.guard import guarded_session

    headers = {"Content-Type": "application/json", "X-Canvas-Event": delivery.event,
               "X-Canvas-Delivery": str(delivery.id), "X-Canvas-Signature": signature(secret, int(time.time()), body)}
    try:
        with guarded_session(services.network_policy, default_timeout=DELIVERY_TIMEOUT_SECONDS) as session:
            response = session.post(callback.url, data=body, headers=headers, timeout=DELIVERY_TIMEOUT_SECONDS,
                                    allow_redirects=False)
        delivery.last_status_code, delivery.last_error = response.status_code, None
        return 200 <= response.status_code < 300
    except Exception as error:  # noqa: BLE001 - refused by the guard, connection errors, timeouts: all retried
        delivery.last_status_code = None
        delivery.last_error = f"{type(error).__name__}: {str(error)[:300]}"
        return False


def backoff(settings: dict, attempts: int) -> float:
    base = float(settings.get("CALLBACK_RETRY_BASE_SECONDS", 10.0))
    return min(MAX_BACKOFF_SECONDS, base * 2 ** (attempts - 1))


def _schedule_retry(services, delivery_id: str, seconds: float) -> None:  # noqa: ANN001
    queue = Queue(RUN_QUEUE, connection=services.redis)
    if seconds <= 0:
        queue.enqueue_call(DELIVERY_JOB, args=(delivery_id,), result_ttl=0)
        return
    queue.enqueue_in(timedelta(seconds=seconds), DELIVERY_JOB, delivery_id, result_ttl=0)


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

        attributes = jsonapi.attributes_of(jsonapi.request_data("callback"))
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
        session.delete(_own_callback(session, flow_id, callback_id))
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
