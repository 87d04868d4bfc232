"""Every Redis key and queue name the service uses, in one place (a test checks the prefix appears nowhere else)."""
from __future__ import annotations

from canvas.defaults import DEFAULT_REDIS_PREFIX

RUN_QUEUE = "canvas-runs"
# The state a worker writes in RQ's record of it (its hash's "state") while it takes no run for want of the database
# (canvas.queueing.worker); /healthz counts such workers apart.
WORKER_WAITING_FOR_DATABASE = "waiting for the database"


def prefixed(prefix: str | None, *parts: str) -> str:
    return (prefix or DEFAULT_REDIS_PREFIX) + ":".join(parts)


def schedule_changes_channel(prefix: str | None = None) -> str:
    """Pub/sub channel on which the API announces schedule changes to the schedulers."""
    return prefixed(prefix, "schedule-changes")


def run_cancel_key(prefix: str | None, run_id: str) -> str:
    """Set when a run is cancelled, so a running block notices without asking the database."""
    return prefixed(prefix, "run-cancel", run_id)


def schedulers_key(prefix: str | None) -> str:
    """Sorted set: each scheduler process and when it last said it was alive (Unix time)."""
    return prefixed(prefix, "schedulers")


def notification_window_key(prefix: str | None, workflow_id: str) -> str:
    """Set, expiring after CANVAS_NOTIFICATION_INTERVAL_SECONDS, when a notification of the workflow was mailed."""
    return prefixed(prefix, "notification-window", workflow_id)


def notification_held_key(prefix: str | None, workflow_id: str) -> str:
    """Hash: the workflow's events not mailed within the interval (count per event, since when, to whom), for the
    next mail or the digest."""
    return prefixed(prefix, "notification-held", workflow_id)


def rate_limit_key(prefix: str | None, kind: str, subject: str, window_number: int) -> str:
    """Counter of one fixed rate-limit window: requests per key or organization, webhook calls per flow, failed
    authentications per address (kind); expires with its window."""
    return prefixed(prefix, "ratelimit", kind, subject, str(window_number))


def rate_limit_pattern(prefix: str | None) -> str:
    """Every rate-limit counter of this prefix (for SCAN), so tests can start each with fresh counts."""
    return prefixed(prefix, "ratelimit", "*")
