"""Marshmallow fields shared by several capabilities."""
from __future__ import annotations

import marshmallow as ma


class JsonString(ma.fields.Raw):
    """A JSON document carried inside a string (Canvas's `credentialsJson`, `scheduleFrequency`).

    Accepts any JSON value so that the service can say exactly what is wrong with a non-string."""

    describe_as = "string"

    def __init__(self, **kwargs):
        kwargs.setdefault("allow_none", True)
        kwargs.setdefault("metadata", {"type": "string", "description": "a JSON document inside a string"})
        super().__init__(**kwargs)
