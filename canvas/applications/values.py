"""Reading individual credential values the same way wherever they are used (verification and blocks).

Each caller raises its own error class with its own wording; these functions only say what the value is."""
from __future__ import annotations

from collections.abc import Mapping

TRUE_WORDS = frozenset({"true", "1", "yes", "on"})


def text_value(credentials: Mapping, field: str) -> str:
    """The field as stripped text; "" when absent or empty."""
    return str(credentials.get(field) or "").strip()


def port_value(credentials: Mapping, default: int) -> int | None:
    """The `port` field as a TCP port, `default` when unset, None when it is not a valid port."""
    value = credentials.get("port")
    if value in (None, ""):
        return default
    try:
        port = int(str(value).strip())
    except ValueError:
        return None
    return port if 0 < port < 65536 else None


def flag_value(value: object) -> bool:
    return value if isinstance(value, bool) else str(value or "").strip().lower() in TRUE_WORDS
