"""Every Redis key and queue name the service uses, in one place (a test checks the prefix appears nowhere else)."""
from __future__ import annotations

from canvas.defaults import DEFAULT_REDIS_PREFIX

RUN_QUEUE = "canvas-runs"


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
