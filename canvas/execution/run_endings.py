"""The follow-up of every final state: a run that ended (Succeeded, Failed, Cancelled), whoever recorded it (the
runner, the reaper, dispatch when Redis refused the enqueue, a cancel), gets its callbacks and its notification
queued exactly once.

Whoever commits a final state calls `follow_up` afterwards. It claims the run (`followed_up_at`, set only while it is
null) with the callback delivery rows, then queues the RQ jobs all at once; a Redis that refuses them undoes the claim;
`follow_up_missing`, run by the reaper every round, follows up what a recorder could not (it crashed, or Redis was
away): a run failed because Redis refused its enqueue gets its callback once Redis is back. The runner, which knows
at a run's start whether its workflow has callbacks or notifications, marks a run with nothing to send followed up
in its final write, so most runs cost no follow-up at all."""
from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable

import redis
from rq import Queue
from sqlalchemy import delete, select, update

from canvas.db import Database
from canvas.execution import run_callbacks
from canvas.models import FINAL_RUN_STATES, CallbackDelivery, WorkflowRun
from canvas.models.base import utcnow
from canvas.notifications.events import run_mail_jobs
from canvas.queueing.keys import RUN_QUEUE

log = logging.getLogger(__name__)
SWEEP_BATCH = 200  # final runs followed up per reaper round, the longest waiting first


def follow_up(database: Database, connection: redis.Redis, run_ids: Iterable[uuid.UUID]) -> int:
    """Queue the callbacks and notification of each final run not yet followed up. Never raises into the recorder:
    what could not be queued is left to the sweep."""
    done = 0
    for run_id in run_ids:
        try:
            done += _follow_up_one(database, connection, run_id)
        except redis.RedisError as error:  # the others would meet the same Redis
            log.warning("run %s: callbacks and notifications not queued yet (Redis: %s); the reaper tries again",
                        run_id, type(error).__name__)
            break
        except Exception as error:  # noqa: BLE001 - a run's outcome is recorded; its follow-up can wait
            log.warning("run %s: callbacks and notifications not queued yet (%s); the reaper tries again", run_id,
                        type(error).__name__)
    return done


def follow_up_missing(database: Database, connection: redis.Redis, limit: int = SWEEP_BATCH) -> int:
    """The sweep: final runs whose follow-up is missing."""
    with database.sessions() as session:
        # Every final state has its date_finished, no active run has one: a range over the partial index.
        waiting = list(session.scalars(select(WorkflowRun.id)
                                       .where(WorkflowRun.followed_up_at.is_(None),
                                              WorkflowRun.date_finished.is_not(None))
                                       .order_by(WorkflowRun.date_finished).limit(limit)))
    if not waiting:
        return 0
    done = follow_up(database, connection, waiting)
    if done:
        log.info("followed up %d finished runs whose callbacks and notifications were not queued", done)
    return done


def _follow_up_one(database: Database, connection: redis.Redis, run_id: uuid.UUID) -> bool:
    """Claim, write the delivery rows and commit; then queue every job in one MULTI/EXEC (a worker must find the
    rows its job names, so they are committed first). If Redis refuses, the claim is undone for the sweep."""
    with database.transaction() as session:
        claimed = session.execute(update(WorkflowRun)
                                  .where(WorkflowRun.id == run_id, WorkflowRun.followed_up_at.is_(None),
                                         WorkflowRun.status.in_(FINAL_RUN_STATES))
                                  .values(followed_up_at=utcnow()))
        if not claimed.rowcount:
            return False  # followed up by someone else, or not final
        run = session.get(WorkflowRun, run_id)
        jobs = run_mail_jobs(session, run)
        event = run_callbacks.EVENTS.get(run.status)
        if event is not None:
            jobs += run_callbacks.add_deliveries(session, run.id, run.workflow_id, event)
    if not jobs:
        return True
    try:
        Queue(RUN_QUEUE, connection=connection).enqueue_many([Queue.prepare_data(**job) for job in jobs])
    except redis.RedisError:
        _undo_claim(database, run_id)
        raise
    return True


def _undo_claim(database: Database, run_id: uuid.UUID) -> None:
    """None of the jobs was queued: the run waits for the sweep again, without the delivery rows it will write anew.
    (If the database fails too, the run keeps its claim and its callbacks are not sent: logged by the caller.)"""
    with database.transaction() as session:
        session.execute(delete(CallbackDelivery).where(CallbackDelivery.run_id == run_id))
        session.execute(update(WorkflowRun).where(WorkflowRun.id == run_id).values(followed_up_at=None))
