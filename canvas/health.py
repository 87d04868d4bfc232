"""`/healthz`: does the database answer, does Redis answer."""
from __future__ import annotations

import logging

from flask import Blueprint, jsonify
from sqlalchemy import text

from canvas.extensions import services

blp = Blueprint("health", __name__)
log = logging.getLogger(__name__)


@blp.get("/healthz")
def healthz():  # noqa: ANN201
    checks = {"database": _check(_ping_database), "redis": _check(_ping_redis)}
    healthy = all(state == "ok" for state in checks.values())
    response = jsonify({"status": "ok" if healthy else "unavailable", **checks})
    response.status_code = 200 if healthy else 503
    return response


def _ping_database() -> None:
    with services().db.engine.connect() as connection:
        connection.execute(text("SELECT 1"))


def _ping_redis() -> None:
    services().redis.ping()


def _check(probe) -> str:  # noqa: ANN001
    try:
        probe()
    except Exception as exc:  # noqa: BLE001 - any failure means "not healthy", reported by class only
        log.warning("health check %s failed: %s", probe.__name__, exc.__class__.__name__)
        return f"error: {exc.__class__.__name__}"
    return "ok"
