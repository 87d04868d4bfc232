"""Baseline endpoint for benchmarks/api_auth.py: one ORM primary-key read, no auth. Only with BENCHMARK_ENDPOINTS."""
from __future__ import annotations

import uuid

from flask import Blueprint, jsonify, request

from canvas.extensions import db_session
from canvas.models import Organization

blp = Blueprint("bench", __name__)


@blp.get("/bench/baseline")
def baseline():  # noqa: ANN201
    organization = db_session().get(Organization, uuid.UUID(request.args["id"]))
    return jsonify(organization is not None)
