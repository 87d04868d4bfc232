"""Telling schedulers that schedules changed (a hint: they also reconcile with the database periodically)."""
from __future__ import annotations

import logging

import redis

from canvas.extensions import services
from canvas.queueing.keys import schedule_changes_channel

log = logging.getLogger(__name__)


def announce_schedule_change() -> None:
    settings = services().settings
    try:
        services().redis.publish(schedule_changes_channel(settings.get("REDIS_PREFIX")), "changed")
    except redis.RedisError as exc:  # the periodic reconcile heals a lost notification
        log.warning("could not announce a schedule change: %s", exc.__class__.__name__)
