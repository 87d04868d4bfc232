"""Canvas: a self-hosted workflow-template orchestrator with a Canvas-compatible API."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def create_app(config: Mapping[str, Any] | None = None):
    """Build the Flask application. `config` overrides defaults and `CANVAS_*` environment variables."""
    from canvas.app_factory import build_app  # imported here so `import canvas.<pkg>` stays light for workers

    return build_app(config)
