"""Which event a final run or a schedule occurrence raises, whom it is mailed to, and the RQ job that mails it.

Events: "failure" (a run Failed), "recovery" (a run Succeeded and the workflow's previous finished run had Failed),
"missed" (a scheduled occurrence missed or skipped: in the schedule ledger, or a scheduled run ended Missed by the
reaper). Dry runs tell nobody."""
from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable

import redis
from rq import Queue
from sqlalchemy import select
from sqlalchemy.orm import Session

from canvas.models import Account, Workflow, WorkflowRun
from canvas.models.base import utcnow
from canvas.notifications.settings import Audience, audience
from canvas.queueing.keys import RUN_QUEUE

log = logging.getLogger(__name__)
MAIL_JOB = "canvas.notifications.mail.send_notification"
MISSED_ERROR_CLASS = "Missed"  # a scheduled run the reaper ended Cancelled under misfire policy skip
MISSED_OUTCOMES = ("missed", "skipped")  # ledger outcomes that tell the workflow's people
MAIL_FAILURE_TTL_SECONDS = 24 * 3600


def run_event(session: Session, run: WorkflowRun) -> str | None:
    if run.dry_run:
        return None
    if run.status == "Failed":
        return "failure"
    if run.status == "Cancelled" and run.error_class == MISSED_ERROR_CLASS:
        return "missed"
    if run.status == "Succeeded" and previous_outcome(session, run) == "Failed":
        return "recovery"
    return None


def previous_outcome(session: Session, run: WorkflowRun) -> str | None:
    """How the workflow's finished run before this one ended (cancelled runs and dry runs do not count)."""
    return session.scalar(select(WorkflowRun.status)
                          .where(WorkflowRun.workflow_id == run.workflow_id, WorkflowRun.id != run.id,
                                 WorkflowRun.dry_run.is_(False), WorkflowRun.status.in_(("Succeeded", "Failed")),
                                 WorkflowRun.date_finished <= run.date_finished)
                          .order_by(WorkflowRun.date_finished.desc()).limit(1))


def workflow_audience(session: Session, workflow_id: uuid.UUID) -> Audience:
    row = session.execute(select(Workflow.notification_settings, Account.global_notifications,
                                 Account.default_notification_email)
                          .join(Account, Account.id == Workflow.account_id)
                          .where(Workflow.id == workflow_id)).first()
    if row is None:
        return audience(None, False, None)
    return audience(row.notification_settings, bool(row.global_notifications), row.default_notification_email)


def run_mail_jobs(session: Session, run: WorkflowRun) -> list[dict]:
    """The RQ job mailing the run's event, if it raises one that somebody wants (for `Queue.enqueue_call`)."""
    event = run_event(session, run)
    if event is None:
        return []
    people = workflow_audience(session, run.workflow_id)
    if not people.wants(event):
        return []
    return [mail_job({"event": event, "workflow_id": str(run.workflow_id), "run_id": str(run.id),
                      "emails": list(people.emails), "occurred_at": (run.date_finished or utcnow()).isoformat()})]


def mail_job(payload: dict) -> dict:
    return {"func": MAIL_JOB, "args": (payload,), "result_ttl": 0, "failure_ttl": MAIL_FAILURE_TTL_SECONDS}


def queue_missed_occurrences(session: Session, connection: redis.Redis, rows: Iterable[dict]) -> int:
    """After the scheduler committed its ledger rows: one mail job per workflow whose occurrences were missed or
    skipped, if the workflow wants them. Never raises into the scheduler: a notification lost while Redis is away is
    logged."""
    by_workflow: dict[uuid.UUID, list[dict]] = {}
    for row in rows:
        if row["outcome"] in MISSED_OUTCOMES:
            by_workflow.setdefault(row["workflow_id"], []).append(row)
    queued = 0
    try:
        queue = Queue(RUN_QUEUE, connection=connection)
        for workflow_id, missed in by_workflow.items():
            people = workflow_audience(session, workflow_id)
            if people.wants("missed"):
                queue.enqueue_call(**mail_job(_missed_payload(workflow_id, missed, people)))
                queued += 1
    except Exception:  # noqa: BLE001 - a notification problem must not stop the scheduler
        log.exception("could not queue the notifications of %d missed schedule occurrences",
                      sum(map(len, by_workflow.values())))
    return queued


def _missed_payload(workflow_id: uuid.UUID, missed: list[dict], people: Audience) -> dict:
    times = sorted(row["scheduled_time"] for row in missed)
    return {"event": "missed", "workflow_id": str(workflow_id), "run_id": None, "emails": list(people.emails),
            "occurred_at": utcnow().isoformat(), "scheduled_times": [time.isoformat() for time in times],
            "outcome": missed[-1]["outcome"], "reason": missed[-1]["reason"]}
