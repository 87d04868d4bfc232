"""Process entry points: each builds the app explicitly and runs one long-lived loop."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask


def process_app(config: Mapping[str, Any] | None = None) -> Flask:
    """The app of a worker or scheduler process: its settings and services, reached through an app context as in a
    request (``current_app.extensions["canvas"]``), without the HTTP API. The API's blueprints, schemas and OpenAPI
    document (canvas.create_app) cost such a process memory and start-up time and serve it nothing. Its requests
    to the object store wait for a store they cannot reach (canvas.extensions.Services)."""
    from canvas.extensions import Services, init_services
    from canvas.settings import load_settings

    settings = load_settings(config)
    app = Flask("canvas")
    app.config["CANVAS_SETTINGS"] = settings
    init_services(app, Services(settings, waits_for_storage=True))
    return app
