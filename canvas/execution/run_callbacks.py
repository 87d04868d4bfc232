"""Run callbacks, the engine side: when a run succeeds or fails, POST a signed JSON summary to each of its flow's
callback URLs that wants the event, retried with exponential backoff. Deliveries are RQ jobs on the run queue; a
retry is scheduled with RQ's own scheduler, which `canvas scheduler` hosts (or a worker started with
--with-rq-scheduler). Callbacks are created, listed and deleted through a dialect (canvas.v2.callbacks); nothing
here knows about one.

Signature (Stripe-style, so receivers can reuse their verifiers): header `X-Canvas-Signature: t=<unix seconds>,
v1=<hex HMAC-SHA256 of "<t>.<body>">`, plus `X-Canvas-Event` and `X-Canvas-Delivery`."""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from rq import Queue
from sqlalchemy import select
from sqlalchemy.orm import Session

from canvas.clock import now_seconds
from canvas.models import CallbackDelivery, FlowCallback, Workflow, WorkflowRun
from canvas.models.base import utcnow
from canvas.observability import metrics
from canvas.queueing.keys import RUN_QUEUE

log = logging.getLogger(__name__)
EVENTS = {"Succeeded": "run.succeeded", "Failed": "run.failed"}  # a run's final status: the event it raises
# The RQ job function. Jobs queued before it moved name "canvas.v2.callbacks.deliver", which re-exports it.
DELIVERY_JOB = "canvas.execution.run_callbacks.deliver"
DELIVERY_TIMEOUT_SECONDS = 10
MAX_BACKOFF_SECONDS = 3600


def add_deliveries(session: Session, run_id: uuid.UUID, workflow_id: uuid.UUID, event: str) -> list[dict]:
    """One delivery row per callback of the workflow that wants the event (flushed), and the RQ job of each (for
    `Queue.enqueue_call`): canvas.execution.run_endings queues them once its transaction has committed."""
    callbacks = [callback for callback in session.scalars(
        select(FlowCallback).where(FlowCallback.workflow_id == workflow_id)) if event in callback.events]
    deliveries = [CallbackDelivery(id=uuid.uuid4(), callback_id=callback.id, run_id=run_id, event=event,
                                   date_created=utcnow()) for callback in callbacks]
    session.add_all(deliveries)
    session.flush()
    return [{"func": DELIVERY_JOB, "args": (str(delivery.id),), "result_ttl": 0, "failure_ttl": 24 * 3600}
            for delivery in deliveries]


def deliver(delivery_id: str) -> str:
    """The RQ job: one attempt; on failure a later attempt is scheduled until max_attempts. The worker process has
    pushed an app context; only its services are read. The POST happens between two transactions, not inside one:
    a transaction left idle while the receiver takes its time is ended by PostgreSQL (canvas.db), and an outcome
    that could not be recorded would have the delivery sent again."""
    from flask import current_app

    services = current_app.extensions["canvas"]
    with services.db.transaction() as session:
        delivery = session.get(CallbackDelivery, uuid.UUID(delivery_id))
        callback = session.get(FlowCallback, delivery.callback_id) if delivery else None
        if delivery is None or callback is None or delivery.status != "Pending":
            return "nothing to deliver"
        body = json.dumps(run_summary(session, delivery), sort_keys=True).encode()
        secret = services.secret_box.decrypt(callback.secret)
    answer = _post(services, callback.url, delivery, body, secret)
    with services.db.transaction() as session:
        delivery = session.get(CallbackDelivery, delivery.id, with_for_update=True)
        if delivery.status != "Pending":  # another attempt's outcome landed meanwhile: a final state stays
            return delivery.status
        delivery.attempts += 1
        delivery.last_status_code, delivery.last_error = answer.status_code, answer.error
        if answer.ok:
            delivery.status, delivery.date_delivered = "Delivered", utcnow()
        elif delivery.attempts >= callback.max_attempts:
            delivery.status = "Failed"
        retry_in = None if answer.ok or delivery.status == "Failed" else backoff(services.settings, delivery.attempts)
    metrics.callback_delivered("delivered" if answer.ok else "retrying" if retry_in is not None else "failed")
    if retry_in is not None:
        _schedule_retry(services, delivery_id, retry_in)
    return delivery.status


def run_summary(session: Session, delivery: CallbackDelivery) -> dict:
    """The body POSTed: the run and one entry per block of its range, read from the run's rows."""
    run = session.get(WorkflowRun, delivery.run_id)
    workflow = session.get(Workflow, run.workflow_id)
    chain = workflow.chain if workflow is not None else []
    rows = {block.number: block for block in run.blocks}
    steps = [_step(number, chain[number - 1] if number <= len(chain) else {}, rows.get(number))
             for number in run.block_plan]
    return {"event": delivery.event, "delivery_id": str(delivery.id), "run_id": str(run.id),
            "flow_id": str(run.workflow_id), "status": run.status, "trigger": run.trigger, "error": run.error,
            "started_at": iso_time(run.date_started), "finished_at": iso_time(run.date_finished), "steps": steps}


def _step(number: int, entry: dict, row) -> dict:  # noqa: ANN001 - a BlockRun, or None when the block did not run
    return {"number": number,
            "blockName": row.block_name if row else entry.get("blockName"),
            "status": row.status if row else "Pending",
            "recordsIn": row.records_in if row else None,
            "recordsOut": row.records_out if row else None,
            "error": row.error if row else None}


def iso_time(value: datetime | None) -> str | None:
    """ISO 8601 in UTC with milliseconds and a Z."""
    if value is None:
        return None
    return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def signature(secret: bytes, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


@dataclass(frozen=True)
class Answer:
    """What a callback's receiver made of one POST: ok is a 2xx; error, why there was no answer."""
    ok: bool
    status_code: int | None = None
    error: str | None = None


def _post(services, url: str, delivery: CallbackDelivery, body: bytes, secret: bytes) -> Answer:  # noqa: ANN001
    from canvas.network.guard import guarded_session

    headers = {"Content-Type": "application/json", "X-Canvas-Event": delivery.event,
               "X-Canvas-Delivery": str(delivery.id), "X-Canvas-Signature": signature(secret, int(now_seconds()), body)}
    try:
        with guarded_session(services.network_policy, default_timeout=DELIVERY_TIMEOUT_SECONDS) as session:
            response = session.post(url, data=body, headers=headers, timeout=DELIVERY_TIMEOUT_SECONDS,
                                    allow_redirects=False)
        return Answer(200 <= response.status_code < 300, response.status_code)
    except Exception as error:  # noqa: BLE001 - refused by the guard, connection errors, timeouts: all retried
        return Answer(False, error=f"{type(error).__name__}: {str(error)[:300]}")


def backoff(settings: dict, attempts: int) -> float:
    base = float(settings.get("CALLBACK_RETRY_BASE_SECONDS", 10.0))
    return min(MAX_BACKOFF_SECONDS, base * 2 ** (attempts - 1))


def _schedule_retry(services, delivery_id: str, seconds: float) -> None:  # noqa: ANN001
    queue = Queue(RUN_QUEUE, connection=services.redis)
    if seconds <= 0:
        queue.enqueue_call(DELIVERY_JOB, args=(delivery_id,), result_ttl=0)
        return
    queue.enqueue_in(timedelta(seconds=seconds), DELIVERY_JOB, delivery_id, result_ttl=0)
