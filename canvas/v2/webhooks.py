"""Webhooks of a flow: a secret URL that starts a run with the request body as the first block's input, with
optional HMAC verification (algorithm, secret, signature/timestamp/nonce headers, timestamp tolerance, replay
protection by nonce). The URL's token is shown once and stored hashed; the HMAC secret is stored encrypted."""
from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import uuid
from datetime import timedelta

from flask import request
from flask.views import MethodView
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from canvas.audit import service as audit
from canvas.auth import current_principal
from canvas.clock import now_seconds
from canvas.errors import (
    AuthenticationError,
    BadRequestError,
    ConflictError,
    NotFoundError,
    ServiceUnavailableError,
)
from canvas.extensions import db_session, services
from canvas.models import FlowWebhook, WebhookNonce, Workflow
from canvas.models.base import utcnow
from canvas.ratelimits import limit_webhook_calls
from canvas.v2 import flow_service as flows
from canvas.v2 import jsonapi
from canvas.v2.executions import execution_to_resource, start_execution
from canvas.v2.schemas import doc
from canvas.web import Blueprint, sent_a_document

blp = Blueprint("v2_webhooks", __name__, url_prefix="/v2", description="v2 (JSON:API): webhooks")
ALGORITHMS = {"sha256": hashlib.sha256, "sha512": hashlib.sha512}
BAD_SIGNATURE = "The webhook signature is missing or invalid"
HOOK_PATH = "/v2/hooks/"
REPLAYED = "This webhook call was already received (nonce replayed)"
ACTIVE_RUN_RETRY_AFTER_SECONDS = 30
HEADER_NAME_MAX_LENGTH = 100  # flow_webhook.*_header
HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1," + str(HEADER_NAME_MAX_LENGTH) + "}")  # RFC 9110's token
DEFAULT_HEADERS = {"signature_header": "X-Signature", "timestamp_header": "X-Timestamp", "nonce_header": "X-Nonce"}


# --- managing webhooks -------------------------------------------------------------------------------------------

def create_webhook(session: Session, account_id: uuid.UUID, flow_id: str, attributes: dict) -> tuple[FlowWebhook, str]:
    workflow = flows.get_flow(session, account_id, flow_id)
    token = secrets.token_urlsafe(32)
    webhook = FlowWebhook(workflow_id=workflow.id, token_hash=token_hash(token), date_created=utcnow())
    _apply_hmac(webhook, attributes.get("hmac"))
    session.add(webhook)
    session.flush()
    audit.record_change(session, "webhook.create", "webhook", webhook, {}, organization_id=workflow.organization_id)
    return webhook, token


def _apply_hmac(webhook: FlowWebhook, settings) -> None:  # noqa: ANN001
    webhook.hmac_algorithm = None
    if settings is None:
        return
    if not isinstance(settings, dict):
        raise BadRequestError("hmac must be an object or null", field="hmac")
    algorithm = settings.get("algorithm", "sha256")
    if not isinstance(algorithm, str) or algorithm not in ALGORITHMS:  # a list or an object is unhashable
        raise BadRequestError(f"hmac.algorithm must be one of {', '.join(ALGORITHMS)}", field="hmac.algorithm")
    secret = settings.get("secret")
    if not isinstance(secret, str) or len(secret) < 16:
        raise BadRequestError("hmac.secret must be a string of at least 16 characters", field="hmac.secret")
    tolerance = settings.get("tolerance_seconds", 300)
    if not isinstance(tolerance, int) or isinstance(tolerance, bool) or not 1 <= tolerance <= 86400:
        raise BadRequestError("hmac.tolerance_seconds must be an integer 1..86400", field="hmac.tolerance_seconds")
    webhook.hmac_algorithm, webhook.hmac_secret = algorithm, services().secret_box.encrypt(secret)
    webhook.tolerance_seconds = tolerance
    for name, default in DEFAULT_HEADERS.items():
        value = settings.get(name)
        if value is not None and (not isinstance(value, str) or not HEADER_NAME.fullmatch(value.strip())):
            raise BadRequestError(f"hmac.{name} must be a header name (letters, digits and -, at most "
                                  f"{HEADER_NAME_MAX_LENGTH} characters)", field=f"hmac.{name}")
        setattr(webhook, name, (value or default).strip())


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def webhook_to_resource(webhook: FlowWebhook, token: str | None = None) -> dict:
    public_url = services().settings["PUBLIC_URL"].rstrip("/")  # never the request's Host header: a caller sets it
    attributes = {"url": f"{public_url}{HOOK_PATH}{token}" if token else None,
                  "hmac": None if webhook.hmac_algorithm is None else {
                      "algorithm": webhook.hmac_algorithm, "secret": "********",
                      "signature_header": webhook.signature_header, "timestamp_header": webhook.timestamp_header,
                      "nonce_header": webhook.nonce_header, "tolerance_seconds": webhook.tolerance_seconds},
                  "created_at": jsonapi.iso_time(webhook.date_created)}
    return jsonapi.resource("webhook", webhook.id, attributes,
                            self_link=f"/v2/flows/{webhook.workflow_id}/webhooks/{webhook.id}",
                            relationships={"flow": jsonapi.to_one("flow", webhook.workflow_id)})


# --- receiving a call --------------------------------------------------------------------------------------------

def find_webhook(session: Session, token: str) -> tuple[FlowWebhook, Workflow]:
    webhook = session.scalar(select(FlowWebhook).where(FlowWebhook.token_hash == token_hash(token)))
    workflow = session.get(Workflow, webhook.workflow_id) if webhook else None
    if workflow is None or workflow.date_deleted is not None:
        raise NotFoundError("Unknown webhook")
    return webhook, workflow


def verify_signature(session: Session, webhook: FlowWebhook, body: bytes,
                     now: float | None = None) -> WebhookNonce | None:
    """HMAC over `<timestamp>.<nonce>.<body>`; a stale timestamp or a nonce seen before is refused. The nonce comes
    back as a row to commit with the run it starts: a call refused after this point (a run is active, the queue is
    down) leaves its nonce unspent, so the sender's retry of the same call is accepted."""
    if webhook.hmac_algorithm is None:
        return None
    signature = (request.headers.get(webhook.signature_header) or "").strip()
    timestamp = (request.headers.get(webhook.timestamp_header) or "").strip()
    nonce = (request.headers.get(webhook.nonce_header) or "").strip()
    if not (signature and timestamp.isascii() and timestamp.isdigit() and nonce) or len(nonce) > 200:
        raise AuthenticationError(BAD_SIGNATURE)
    secret = services().secret_box.decrypt(webhook.hmac_secret)
    expected = sign(webhook.hmac_algorithm, secret, f"{timestamp}.{nonce}.".encode() + body)
    if not hmac.compare_digest(signature.removeprefix(webhook.hmac_algorithm + "="), expected):
        raise AuthenticationError(BAD_SIGNATURE)
    if abs((now or now_seconds()) - int(timestamp)) > webhook.tolerance_seconds:
        raise AuthenticationError(f"The webhook timestamp is outside the tolerance of {webhook.tolerance_seconds} s")
    return _unseen_nonce(session, webhook, nonce)


def sign(algorithm: str, secret: bytes, payload: bytes) -> str:
    return hmac.new(secret, payload, ALGORITHMS[algorithm]).hexdigest()


def _unseen_nonce(session: Session, webhook: FlowWebhook, nonce: str) -> WebhookNonce:
    """A nonce is accepted once; rows older than the tolerance can go (their timestamps would be refused anyway)."""
    horizon = utcnow() - timedelta(seconds=webhook.tolerance_seconds * 2)
    session.execute(delete(WebhookNonce).where(WebhookNonce.webhook_id == webhook.id,
                                               WebhookNonce.date_seen < horizon))
    if session.get(WebhookNonce, (webhook.id, nonce)) is not None:
        raise ConflictError(REPLAYED)
    return WebhookNonce(webhook_id=webhook.id, nonce=nonce, date_seen=utcnow())


# --- views ----------------------------------------------------------------------------------------------------------

@blp.route("/flows/<flow_id>/webhooks")
class FlowWebhooks(MethodView):
    @blp.doc(**doc(200, "The flow's webhooks (URLs are shown only when created)"))
    def get(self, flow_id):
        """List a flow's webhooks"""
        session = db_session()
        workflow = flows.get_flow(session, current_principal().account_id, flow_id)
        rows = session.scalars(select(FlowWebhook).where(FlowWebhook.workflow_id == workflow.id)
                               .order_by(FlowWebhook.date_created))
        return jsonapi.document([webhook_to_resource(row) for row in rows])

    @blp.doc(**doc(201, "The webhook with its secret URL (shown once)", 415,
                   request_body="optional attributes.hmac {algorithm, secret, signature_header, timestamp_header, "
                                "nonce_header, tolerance_seconds}"))
    def post(self, flow_id):
        """Add a webhook to a flow"""
        attributes = {}
        if sent_a_document():
            attributes = jsonapi.attributes_of(jsonapi.request_data("webhook", creates=True))
        session = db_session()
        webhook, token = create_webhook(session, current_principal().account_id, flow_id, attributes)
        session.commit()
        return jsonapi.document(webhook_to_resource(webhook, token), status=201)


@blp.route("/flows/<flow_id>/webhooks/<webhook_id>")
class FlowWebhookById(MethodView):
    @blp.doc(**doc(200, "The webhook (its URL is shown only when created)"))
    def get(self, flow_id, webhook_id):
        """Get a webhook"""
        return jsonapi.document(webhook_to_resource(_own_webhook(db_session(), flow_id, webhook_id)))

    @blp.doc(**doc(204, "Deleted"))
    def delete(self, flow_id, webhook_id):
        """Delete a webhook"""
        session = db_session()
        webhook = _own_webhook(session, flow_id, webhook_id)
        audit.record_removal(session, "webhook.delete", "webhook", webhook)
        session.delete(webhook)
        session.commit()
        return jsonapi.no_content()


def _own_webhook(session: Session, flow_id: str, webhook_id: str) -> FlowWebhook:
    return flows.get_flow_part(session, current_principal().account_id, flow_id, FlowWebhook, webhook_id, "webhook")


@blp.route("/hooks/<token>")
class WebhookCall(MethodView):
    @blp.doc(**doc(202, "The started execution", 409, 429, security=[],
                   request_body="JSON: an object (one record) or an array of records"))
    def post(self, token):
        """Start a run of the webhook's flow with the body as the first block's input"""
        session = db_session()
        webhook, workflow = find_webhook(session, token)
        limit_webhook_calls(workflow.id)  # before the signature is checked: a flood costs little
        flows.refuse_if_stopped(session, workflow)
        body = request.get_data(cache=True)
        nonce = verify_signature(session, webhook, body)
        run = receive_call(session, workflow, body, nonce)
        return jsonapi.document(execution_to_resource(session, run), status=202,
                                headers={"Location": f"/v2/executions/{run.id}"})


def receive_call(session: Session, workflow: Workflow, body: bytes, nonce: WebhookNonce | None):  # noqa: ANN201
    """The run the call starts, its nonce committed with the run row. A call that starts nothing leaves neither its
    nonce nor its stored body behind, and says when to send it again."""
    records = json.loads(body) if body.strip() else None  # the body is JSON: checked before any view
    try:
        return start_execution(session, workflow.account_id, str(workflow.id), {}, "webhook", records,
                               committed_with_run=[nonce] if nonce else [])
    except IntegrityError:  # the same signed call arrived twice at once: the nonce's key lets one through
        session.rollback()
        raise ConflictError(REPLAYED) from None
    except ConflictError as refusal:
        raise ConflictError(f"{refusal.message}; the call was not accepted, send it again once the run has "
                            f"finished", retry_after=ACTIVE_RUN_RETRY_AFTER_SECONDS) from None
    except ServiceUnavailableError:  # the run row (Failed, with its input) stays as a record; the call may come again
        _forget_nonce(session, nonce)
        raise


def _forget_nonce(session: Session, nonce: WebhookNonce | None) -> None:
    if nonce is not None:
        session.rollback()
        session.execute(delete(WebhookNonce).where(WebhookNonce.webhook_id == nonce.webhook_id,
                                                   WebhookNonce.nonce == nonce.nonce))
        session.commit()

