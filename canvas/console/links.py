"""Console addresses other packages put in e-mails and command output (kept apart from the views: importing it
loads nothing of the console)."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

CONSOLE_PATH = "/console"
CONSOLE_ACTIVATION_PATH = CONSOLE_PATH + "/activate"


def console_url(settings: Mapping[str, Any], token: str) -> str:
    """The single-use link where an account sets its console password (and becomes active)."""
    return f"{settings['PUBLIC_URL'].rstrip('/')}{CONSOLE_ACTIVATION_PATH}?token={token}"
