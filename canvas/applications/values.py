"""Reading individual credential values the same way wherever they are used (verification and blocks).

Each caller raises its own error class with its own wording; these functions only say what the value is."""
from __future__ import annotations

import os
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


# --- SMTP ------------------------------------------------------------------------------------------------------

SMTP_DEFAULT_PORTS = {"starttls": 587, "ssl": 465, "none": 25}
_SMTP_SECURITY_ALIASES = {"tls": "ssl", "smtps": "ssl", "implicit": "ssl", "plain": "none", "": "starttls"}


def smtp_security_value(credentials: Mapping) -> str | None:
    """The `security` field as starttls, ssl or none (unset: starttls); None when it is none of them."""
    security = text_value(credentials, "security").lower()
    security = _SMTP_SECURITY_ALIASES.get(security, security)
    return security if security in SMTP_DEFAULT_PORTS else None


def smtp_reply_text(reply: object) -> str:
    """A server's reply on one line."""
    text = reply.decode(errors="replace") if isinstance(reply, bytes) else str(reply)
    return " ".join(text.split())


# --- SQL -------------------------------------------------------------------------------------------------------

SQL_DEFAULT_PORTS = {"postgresql": 5432, "mysql": 3306, "mariadb": 3306, "mssql": 1433, "oracle": 1521}
SQL_HOST_QUERY_KEYS = frozenset({"host", "hostaddr", "unix_socket", "service", "server", "dsn"})  # host elsewhere
DEFAULT_SQL_DRIVER = "mssql+pymssql"  # the server/port/database/username/password form (MS SQL applications)
# SQLite URLs open files on the worker (and, during verification, on the API host): off unless the operator turns
# them on. Read from the environment, as the SQL blocks read it on the worker.
ALLOW_SQLITE_SETTING = "CANVAS_ALLOW_SQLITE_APPLICATIONS"


def sqlite_allowed() -> bool:
    return flag_value(os.environ.get(ALLOW_SQLITE_SETTING))
