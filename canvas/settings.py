"""Settings: defaults from config/default.py, then `CANVAS_*` environment variables, then an explicit mapping."""
from __future__ import annotations

import difflib
import hashlib
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from config import default as default_config

ENV_PREFIX = "CANVAS_"
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class SettingsError(ValueError):
    """Settings with values that cannot be used: one line per problem in ``problems``, each naming its variable."""

    def __init__(self, *problems: str) -> None:
        super().__init__("\n".join(problems))
        self.problems = list(problems)


def default_settings() -> dict[str, Any]:
    return {name: getattr(default_config, name) for name in dir(default_config) if name.isupper()}


# Booleans whose default is None ("decide for me"): a value, when given, is still true or false.
OPTIONAL_BOOLEANS = frozenset({"BLOB_FSYNC"})
_INTEGER = re.compile(r"[+-]?[0-9]+")
_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")  # no inf, nan or 1_000


def _parse_env_value(name: str, raw: str, default: Any) -> Any:
    """An empty variable stands for the default, as an unset one does (not for "no value": an empty
    CANVAS_PUBLIC_URL broke the mails of a new organization, an empty CANVAS_METRICS_HOST listened on every
    address); for a boolean it is false."""
    if isinstance(default, bool) or (name in OPTIONAL_BOOLEANS and raw.strip()):
        lowered = raw.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise SettingsError(f"{ENV_PREFIX}{name} must be true or false, got {raw!r}")
    if isinstance(default, (int, float)):
        text = raw.strip()
        if isinstance(default, int) and _INTEGER.fullmatch(text):
            return int(text)
        if isinstance(default, float) and _NUMBER.fullmatch(text):
            return float(text)
        kind = "a whole number" if isinstance(default, int) else "a number"
        raise SettingsError(f"{ENV_PREFIX}{name} must be {kind}, got {raw!r}")
    return raw if raw.strip() != "" else default


def load_settings(overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The effective settings. Derived values (data dir resolved, database URL) are filled in here, once. Every
    unusable value is reported at once (SettingsError.problems), not only the first."""
    environ = os.environ if environ is None else environ
    settings = default_settings()
    problems = []
    for name, default in list(settings.items()):
        raw = environ.get(ENV_PREFIX + name)
        if raw is not None:
            try:
                settings[name] = _parse_env_value(name, raw, default)
            except SettingsError as error:
                problems.extend(error.problems)
    settings.update(overrides or {})
    if problems:  # a value of the wrong type would only add confusing lines below
        raise SettingsError(*problems)
    settings = _derive(settings)
    problems = problems_with(settings)
    if problems:
        raise SettingsError(*problems)
    return settings


def _derive(settings: dict[str, Any]) -> dict[str, Any]:
    data_dir = Path(settings["DATA_DIR"]).expanduser().resolve()
    settings["DATA_DIR"] = str(data_dir)
    if not settings.get("DATABASE_URL"):
        settings["DATABASE_URL"] = sqlite_url(data_dir / "canvas.db")
    settings["DATABASE_URL"] = normalise_database_url(settings["DATABASE_URL"])
    return settings


# --- validation: one table, checked in one place ------------------------------------------------------------------

# No number a setting holds is sensibly larger: seconds beyond 31 years, counts beyond a billion. Larger ones failed
# far from the setting (a timestamp out of range in the reaper, a C int in APScheduler, Redis refusing an expiry).
NUMBER_MAX = 10**9


@dataclass(frozen=True)
class Bound:
    """A number at least ``low`` (or above it, when ``exclusive``) and at most ``high``."""
    low: float
    exclusive: bool = False
    high: float = NUMBER_MAX

    def problem(self, value: float) -> str | None:
        if value > self.high:
            return f"must be at most {self.high:g}"
        if value > self.low or (value == self.low and not self.exclusive):
            return None
        return f"must be {'above' if self.exclusive else 'at least'} {self.low:g}"


AT_LEAST_0, AT_LEAST_1, ABOVE_0 = Bound(0), Bound(1), Bound(0, exclusive=True)
DAYS = Bound(0, high=36500)  # a hundred years: further back than a date can be computed from today
# Half the grace, in milliseconds, is a PostgreSQL session's idle_in_transaction_session_timeout and its socket's
# tcp_user_timeout, both 32-bit integers
GRACE = Bound(0, exclusive=True, high=10**6)

# Settings with a fixed set of values (compared without regard to case where the setting is, LOG_LEVEL).
CHOICES: dict[str, tuple[str, ...]] = {
    "LOG_LEVEL": ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"),
    "WORKER_CLASS": ("simple", "fork"),
    "LOG_FORMAT": ("text", "json"),
}
CASE_INSENSITIVE = {"LOG_LEVEL"}

# Numbers and their lower bounds; a setting absent from config/default.py is skipped (added by another part).
RANGES: dict[str, Bound] = {
    "TRUSTED_PROXY_COUNT": AT_LEAST_0, "MAX_REQUEST_BYTES": AT_LEAST_1, "ACTIVATION_TTL_HOURS": ABOVE_0,
    "VERIFY_TIMEOUT_SECONDS": ABOVE_0, "BLOCK_TIMEOUT_SECONDS": ABOVE_0, "BLOCK_RETRIES": AT_LEAST_0,
    "BLOCK_RETRY_BASE_SECONDS": AT_LEAST_0, "PROGRESS_INTERVAL_SECONDS": ABOVE_0,
    "OUTPUT_RETENTION_DAYS": DAYS, "OUTPUT_RETENTION_RUNS": AT_LEAST_0, "LOST_RUN_GRACE_SECONDS": GRACE,
    "BLOB_OUTAGE_SECONDS": AT_LEAST_0,
    "LEASE_RENEW_SECONDS": ABOVE_0, "REAPER_INTERVAL_SECONDS": ABOVE_0, "REQUEUE_LIMIT": AT_LEAST_0,
    "RECONNECT_MAX_SECONDS": ABOVE_0, "API_WORKERS": AT_LEAST_0, "API_THREADS": AT_LEAST_1,
    "WORKER_RUNS_PER_CHILD": AT_LEAST_1,
    "SCHEDULER_RECONCILE_SECONDS": ABOVE_0,
    "SCHEDULER_MISFIRE_GRACE_SECONDS": AT_LEAST_0, "SCHEDULER_RUN_EACH_LIMIT": AT_LEAST_0,
    "CALLBACK_RETRY_BASE_SECONDS": AT_LEAST_0, "SHUTDOWN_GRACE_SECONDS": ABOVE_0,
    "AUDIT_RETENTION_DAYS": DAYS, "AUDIT_PRUNE_INTERVAL_SECONDS": ABOVE_0,
    "NOTIFICATION_INTERVAL_SECONDS": AT_LEAST_0, "RATE_LIMIT_WINDOW_SECONDS": AT_LEAST_1,
    "RATE_LIMIT_PER_KEY": AT_LEAST_0, "RATE_LIMIT_PER_ORGANIZATION": AT_LEAST_0,
    "WEBHOOK_RATE_LIMIT_PER_FLOW": AT_LEAST_0, "AUTH_FAILURE_LIMIT": AT_LEAST_0,
    "AUTH_FAILURE_WINDOW_SECONDS": AT_LEAST_1,
    "CONSOLE_SESSION_HOURS": ABOVE_0, "CONSOLE_RESET_TTL_HOURS": ABOVE_0, "CONSOLE_SIGN_IN_FAILURE_LIMIT": AT_LEAST_0,
    "CONSOLE_SIGN_IN_FAILURE_WINDOW_SECONDS": AT_LEAST_1,
}

# URLs and the schemes each accepts (CANVAS_BLOB_URL has its own, finer check: canvas.storage.factory).
URL_SCHEMES: dict[str, tuple[str, ...]] = {
    "PUBLIC_URL": ("http", "https"),
    "SMTP_URL": ("smtp", "smtps"),
    "REDIS_URL": ("redis", "rediss", "unix"),
    "DATABASE_URL": ("sqlite", "postgresql+psycopg"),
    "S3_ENDPOINT_URL": ("http", "https"),
}


def problems_with(settings: Mapping[str, Any]) -> list[str]:
    """Every problem of the settings, one line each, naming the variable: choices, ranges, URLs, then the rules
    that tie settings together."""
    problems = [*_choice_problems(settings), *_range_problems(settings), *_url_problems(settings),
                *_network_problems(settings)]
    if not problems:  # the cross-setting rules assume each value is sound on its own
        problems.extend(_lease_timing_problems(settings))
    return problems


def _choice_problems(settings: Mapping[str, Any]) -> list[str]:
    problems = []
    for name, choices in CHOICES.items():
        value = settings.get(name)
        if value is None or name not in settings:
            continue
        shown = str(value).upper() if name in CASE_INSENSITIVE else str(value)
        if shown not in choices:
            problems.append(f"{ENV_PREFIX}{name} must be one of {', '.join(choices)}; got {value!r}")
    return problems


def _range_problems(settings: Mapping[str, Any]) -> list[str]:
    problems = []
    for name, bound in RANGES.items():
        value = settings.get(name)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        problem = bound.problem(value)
        if problem:
            problems.append(f"{ENV_PREFIX}{name} {problem}; got {value:g}")
    return problems


def _url_problems(settings: Mapping[str, Any]) -> list[str]:
    problems = []
    for name, schemes in URL_SCHEMES.items():
        value = settings.get(name)
        if not value:
            continue
        problem = _url_problem(str(value), schemes)
        if problem:
            problems.append(f"{ENV_PREFIX}{name} {problem}; got {without_password(str(value))!r}")
    return problems


def _network_problems(settings: Mapping[str, Any]) -> list[str]:
    """CANVAS_ALLOW_PRIVATE_NETWORKS and CANVAS_TLS_CA_FILE, which were read only when the first connection needed
    them: every registration then answered 500."""
    from canvas.network.guard import NetworkPolicy

    problems = []
    try:
        NetworkPolicy.from_setting(settings.get("ALLOW_PRIVATE_NETWORKS"))
    except ValueError as error:
        problems.append(str(error))
    ca_file = settings.get("TLS_CA_FILE")
    if ca_file and not os.access(ca_file, os.R_OK):
        problems.append(f"{ENV_PREFIX}TLS_CA_FILE names no file this process can read; got {ca_file!r}")
    return problems


def _url_problem(url: str, schemes: tuple[str, ...]) -> str | None:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        return "is not a valid URL"
    scheme = parts.scheme.lower()
    if scheme not in schemes and not (scheme.startswith("sqlite") and "sqlite" in schemes):
        return f"must be a URL starting with {' or '.join(f'{each}://' for each in schemes)}"
    if scheme in ("http", "https", "smtp", "smtps", "redis", "rediss") and not parts.hostname:
        return "must name a host"
    if scheme in ("redis", "rediss") and not re.fullmatch(r"/?[0-9]*", parts.path):
        return "must end with a database number (redis://host:6379/0), if any"  # redis-py took /abc for 0
    return None


def without_password(url: str) -> str:
    """A URL as it may be shown in an error line: a password in it is replaced (secrets never reach a log)."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
    except ValueError:
        return "<unparsable URL>"
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


def _lease_timing_problems(settings: Mapping[str, Any]) -> list[str]:
    """A worker stops its run itself one renewal interval before the grace ends (see canvas.execution.lease): with
    fewer than three renewals per grace, one slow write would make it give up a healthy run."""
    grace, renew = settings["LOST_RUN_GRACE_SECONDS"], settings["LEASE_RENEW_SECONDS"]
    if grace < 3 * renew:
        return [f"{ENV_PREFIX}LEASE_RENEW_SECONDS ({renew:g}) must be above 0 and at most a third of "
                f"{ENV_PREFIX}LOST_RUN_GRACE_SECONDS ({grace:g})"]
    return []


# --- CANVAS_* variables that are not settings ------------------------------------------------------------------

# Read by the code that needs them, not settings (config/default.py); CANVAS_TEST_* are the test suite's own.
NOT_SETTINGS = frozenset({
    "CANVAS_ALLOW_SQLITE_APPLICATIONS",  # canvas.applications.values
    "CANVAS_SSH_KNOWN_HOSTS_FILE",  # canvas.execution.blocks.sftp
    "CANVAS_STARTED_BY",  # set by `canvas up` for its children: they need not warn again
})
NOT_SETTINGS_PREFIXES = ("CANVAS_TEST_",)


def unknown_variable_warnings(environ: Mapping[str, str] | None = None) -> list[str]:
    """One line per CANVAS_* variable that names no setting (a misspelling is otherwise silently ignored), with the
    closest setting's name when there is one."""
    environ = os.environ if environ is None else environ
    known = [ENV_PREFIX + name for name in default_settings()]
    warnings = []
    for variable in sorted(environ):
        if (not variable.startswith(ENV_PREFIX) or variable in known or variable in NOT_SETTINGS
                or variable.startswith(NOT_SETTINGS_PREFIXES)):
            continue
        close = difflib.get_close_matches(variable, known, n=1, cutoff=0.75)
        hint = f" (did you mean {close[0]}?)" if close else ""
        warnings.append(f"{variable} is not a Canvas setting and is ignored{hint}")
    return warnings


def normalise_database_url(url: str) -> str:
    """PostgreSQL URLs without a driver get psycopg 3, the driver we ship."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def sqlite_url(path: Path) -> str:
    """The URL of a SQLite file at any path: a data dir named with `?`, `#` or `%` would otherwise be read as the
    URL's query, fragment or an escape. Quoted as SQLAlchemy renders a URL (which this module does not import: the
    supervisor of `canvas up` reads settings and needs no database layer)."""
    return "sqlite:///" + quote(str(path), safe="/ ")


def unix_socket_url(path: Path) -> str:
    """redis-py's URL of a unix socket at any path (it unquotes the path; `#` or `?` would end it)."""
    return "unix://" + quote(str(path))


def embedded_redis_dir(settings: Mapping[str, Any]) -> Path:
    return Path(settings["DATA_DIR"]) / "redis"


UNIX_SOCKET_PATH_LIMIT = 100  # bytes: sun_path holds 108 on Linux


def embedded_redis_socket(settings: Mapping[str, Any]) -> Path:
    """The embedded Redis socket; a short path in the temp dir when the data dir is too deep for a unix socket."""
    socket_path = embedded_redis_dir(settings) / "redis.sock"
    if len(os.fsencode(socket_path)) <= UNIX_SOCKET_PATH_LIMIT:
        return socket_path
    digest = hashlib.sha1(str(socket_path).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"canvas-redis-{digest}.sock"


def redis_url(settings: Mapping[str, Any]) -> str:
    """The configured Redis, or the unix socket of the embedded one under the data dir."""
    if settings.get("REDIS_URL"):
        return settings["REDIS_URL"]
    return unix_socket_url(embedded_redis_socket(settings))
