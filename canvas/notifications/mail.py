"""The RQ jobs that mail notifications through the platform relay (CANVAS_SMTP_URL), at most one mail per workflow
per CANVAS_NOTIFICATION_INTERVAL_SECONDS (0: every event is mailed).

An event inside the interval is held: counted in Redis (canvas.queueing.keys.notification_held_key), and told by
the workflow's next mail ("3 more failures since …"), or, if nothing else happens, by a digest mailed when the
interval is over (an RQ job scheduled for then, run by RQ's scheduler that `canvas scheduler` hosts). Redis losing
that state costs at most one extra mail or one untold count. A mail that cannot be sent is logged, not retried."""
from __future__ import annotations

import json
import logging
import math
import smtplib
import uuid
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.policy import default as DEFAULT_EMAIL_POLICY

import redis
from rq import Queue
from sqlalchemy import select
from sqlalchemy.orm import Session

from canvas.accounts.mail import send_message
from canvas.defaults import DEFAULT_NOTIFICATION_INTERVAL_SECONDS
from canvas.header_text import one_line
from canvas.models import BlockRun, Workflow, WorkflowRun
from canvas.models.base import utcnow
from canvas.observability import metrics
from canvas.queueing.keys import RUN_QUEUE, notification_held_key, notification_window_key

log = logging.getLogger(__name__)
DIGEST_JOB = "canvas.notifications.mail.send_digest"
HELD_TTL_SECONDS = 7 * 24 * 3600  # an untold count older than this is forgotten
HELD_FIELDS = ("since", "emails")  # the held hash's other fields are event names and their counts
SUBJECTS = {"failure": "Run failed", "recovery": "Run succeeded again", "missed": "Scheduled run missed"}
NOUNS = {"failure": ("failure", "failures"), "recovery": ("recovery", "recoveries"),
         "missed": ("missed or skipped schedule occurrence", "missed or skipped schedule occurrences")}


def send_notification(payload: dict) -> str:
    """The RQ job of one event. The worker process has pushed an app context; only its services are read."""
    from flask import current_app

    services = current_app.extensions["canvas"]
    window = Window(services.redis, services.settings, payload["workflow_id"])
    held = window.take(payload["event"], payload["emails"])
    if held is None:
        _count("held")
        return "held"
    with services.db.sessions() as session:
        message = compose(session, services.settings, payload, held)
    return _send(services.settings, message, payload["event"], payload["workflow_id"])


def send_digest(workflow_id: str) -> str:
    """The RQ job at the end of an interval in which events were held: one mail with their counts, unless a mail of
    the workflow told them meanwhile."""
    from flask import current_app

    services = current_app.extensions["canvas"]
    held = Window(services.redis, services.settings, workflow_id).take_for_digest()
    if not held:
        return "nothing held"
    with services.db.sessions() as session:
        message = compose_digest(session, services.settings, workflow_id, held)
    return _send(services.settings, message, "digest", workflow_id)


class Window:
    """One workflow's mail interval in Redis: SET NX with an expiry is the mail slot; the held hash counts the rest."""

    def __init__(self, connection: redis.Redis, settings: dict, workflow_id: str):
        self.connection = connection
        self.seconds = float(settings.get("NOTIFICATION_INTERVAL_SECONDS", DEFAULT_NOTIFICATION_INTERVAL_SECONDS))
        prefix = settings.get("REDIS_PREFIX")
        self.workflow_id = workflow_id
        self.window_key = notification_window_key(prefix, workflow_id)
        self.held_key = notification_held_key(prefix, workflow_id)

    def take(self, event: str, emails: list[str]) -> dict | None:
        """The held counts to tell (maybe none) if this event may be mailed now; None if it is held."""
        if self.seconds <= 0:
            return {}
        if self._open():
            return self._drain()
        self._hold(event, emails)
        return None

    def take_for_digest(self) -> dict:
        if not self.connection.exists(self.held_key) or not self._open():
            return {}
        held = self._drain()
        if not held:  # told meanwhile: the slot taken for nothing is given back
            self.connection.delete(self.window_key)
        return held

    def _open(self) -> bool:
        return bool(self.connection.set(self.window_key, utcnow().isoformat(), nx=True,
                                        ex=max(1, math.ceil(self.seconds))))

    def _drain(self) -> dict:
        with self.connection.pipeline(transaction=True) as pipeline:
            pipeline.hgetall(self.held_key)
            pipeline.delete(self.held_key)
            raw, _deleted = pipeline.execute()
        held = {_text(key): _text(value) for key, value in raw.items()}
        counts = {key: int(value) for key, value in held.items() if key not in HELD_FIELDS}
        if not counts:
            return {}
        return {"counts": counts, "since": held.get("since"), "emails": json.loads(held.get("emails") or "[]")}

    def _hold(self, event: str, emails: list[str]) -> None:
        with self.connection.pipeline(transaction=True) as pipeline:
            pipeline.hincrby(self.held_key, event, 1)
            pipeline.hsetnx(self.held_key, "since", utcnow().isoformat())
            pipeline.hset(self.held_key, "emails", json.dumps(emails))
            pipeline.expire(self.held_key, HELD_TTL_SECONDS)
            pipeline.ttl(self.window_key)
            count, first, *_rest, window_left = pipeline.execute()
        if first:  # the first event held in this interval: a digest when the interval is over
            Queue(RUN_QUEUE, connection=self.connection).enqueue_in(
                timedelta(seconds=max(1, window_left) + 1), DIGEST_JOB, self.workflow_id, result_ttl=0,
                failure_ttl=24 * 3600)
        log.info("notification (%s) of workflow %s held: %d in this interval", event, self.workflow_id, count)


# --- the mail --------------------------------------------------------------------------------------------------------

def compose(session: Session, settings: dict, payload: dict, held: dict) -> EmailMessage:
    workflow = session.get(Workflow, uuid.UUID(payload["workflow_id"]))
    name = workflow.name if workflow is not None else payload["workflow_id"]
    lines = [f"Workflow: {name} ({payload['workflow_id']})"]
    if payload.get("run_id"):
        lines += _run_lines(session, settings, uuid.UUID(payload["run_id"]))
    else:
        lines += [f"Scheduled time(s): {', '.join(payload.get('scheduled_times') or [])}",
                  f"Outcome: {payload.get('outcome')}", f"Reason: {payload.get('reason') or 'not given'}"]
    digest = digest_line(held)
    if digest:
        lines += ["", digest]
    return _message(settings, payload["emails"], f"{SUBJECTS[payload['event']]}: {name}", lines)


def compose_digest(session: Session, settings: dict, workflow_id: str, held: dict) -> EmailMessage:
    workflow = session.get(Workflow, uuid.UUID(workflow_id))
    name = workflow.name if workflow is not None else workflow_id
    lines = [f"Workflow: {name} ({workflow_id})", "", digest_line(held),
             f"At most one notification per workflow is mailed every {_seconds(settings)}."]
    return _message(settings, held["emails"], f"Notification digest: {name}", lines)


def digest_line(held: dict) -> str:
    """'3 more failures and 1 more missed or skipped schedule occurrence since 2026-12-02 17:00:00 UTC (not mailed
    one by one).'"""
    counts = held.get("counts") or {}
    if not counts:
        return ""
    parts = [f"{count} more {NOUNS.get(event, (event, event))[count != 1]}" for event, count in sorted(counts.items())]
    since = _when(held.get("since"))
    return f"{' and '.join(parts)} since {since} (not mailed one by one)."


def _run_lines(session: Session, settings: dict, run_id: uuid.UUID) -> list[str]:
    run = session.get(WorkflowRun, run_id)
    if run is None:
        return [f"Run: {run_id} (no longer recorded)"]
    lines = [f"Run: {run.id}", f"Status: {run.status}", f"Trigger: {run.trigger}",
             f"Finished: {_when(run.date_finished.isoformat()) if run.date_finished else 'not recorded'}"]
    if run.failed_block is not None:
        block = session.scalars(select(BlockRun).where(BlockRun.run_id == run.id,
                                                       BlockRun.number == run.failed_block)).first()
        lines.append(f"Failed block: {run.failed_block}" + (f" ({block.block_name})" if block else ""))
    if run.error:
        lines.append(f"Error: {run.error_class + ': ' if run.error_class else ''}{run.error[:2000]}")
    public_url = (settings.get("PUBLIC_URL") or "").rstrip("/")
    if public_url:
        lines.append(f"Details: {public_url}/api/WorkflowRun/{run.id}")
    return lines


def _message(settings: dict, emails: list[str], subject: str, lines: list[str]) -> EmailMessage:
    message = EmailMessage(policy=DEFAULT_EMAIL_POLICY)  # its default, imported now rather than by each forked child
    message["Subject"] = one_line(f"[Canvas] {subject}")  # a workflow's name may hold a line break
    message["From"] = settings["SMTP_FROM"]
    message["To"] = ", ".join(emails)
    message.set_content("\n".join(lines) + "\n")
    return message


def _send(settings: dict, message: EmailMessage, kind: str, workflow_id: str) -> str:
    smtp_url = settings.get("SMTP_URL")
    if not smtp_url:
        log.warning("CANVAS_SMTP_URL is not set; notification (%s) of workflow %s not mailed", kind, workflow_id)
        _count("unconfigured")
        return "no relay"
    try:
        send_message(smtp_url, message)
    except (OSError, smtplib.SMTPException) as error:  # logged, not retried: the next event mails again
        log.warning("notification (%s) of workflow %s could not be mailed: %s", kind, workflow_id,
                    type(error).__name__)
        _count("failed")
        return "failed"
    log.info("notification (%s) of workflow %s mailed to %d address(es)", kind, workflow_id,
             len(message["To"].split(",")))
    _count("sent")
    return "sent"


def _count(outcome: str) -> None:
    metrics.notification_sent("email", outcome)


def _when(iso: str | None) -> str:
    if not iso:
        return "the start of the interval"
    return f"{datetime.fromisoformat(iso):%Y-%m-%d %H:%M:%S} UTC"


def _seconds(settings: dict) -> str:
    return f"{float(settings.get('NOTIFICATION_INTERVAL_SECONDS', DEFAULT_NOTIFICATION_INTERVAL_SECONDS)):g} s"


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
