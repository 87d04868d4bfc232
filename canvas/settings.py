"""Settings: defaults from config/default.py, then `CANVAS_*` environment variables, then an explicit mapping."""
from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from config import default as default_config

ENV_PREFIX = "CANVAS_"
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class SettingsError(ValueError):
    """A setting has a value that cannot be used; the message names the variable."""


def default_settings() -> dict[str, Any]:
    return {name: getattr(default_config, name) for name in dir(default_config) if name.isupper()}


def _parse_env_value(name: str, raw: str, default: Any) -> Any:
    if isinstance(default, bool):
        lowered = raw.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise SettingsError(f"{ENV_PREFIX}{name} must be true or false, got {raw!r}")
    if isinstance(default, (int, float)):
        try:
            return type(default)(raw)
        except ValueError:
            raise SettingsError(f"{ENV_PREFIX}{name} must be a {type(default).__name__}, got {raw!r}") from None
    return raw if raw != "" else None


def load_settings(overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The effective settings. Derived values (data dir resolved, database URL) are filled in here, once."""
    environ = os.environ if environ is None else environ
    settings = default_settings()
    for name, default in list(settings.items()):
        raw = environ.get(ENV_PREFIX + name)
        if raw is not None:
            settings[name] = _parse_env_value(name, raw, default)
    settings.update(overrides or {})
    return _derive(settings)


def _derive(settings: dict[str, Any]) -> dict[str, Any]:
    data_dir = Path(settings["DATA_DIR"]).expanduser().resolve()
    settings["DATA_DIR"] = str(data_dir)
    if not settings.get("DATABASE_URL"):
        settings["DATABASE_URL"] = f"sqlite:///{data_dir / 'canvas.db'}"
    settings["DATABASE_URL"] = normalise_database_url(settings["DATABASE_URL"])
    if settings["TRUSTED_PROXY_COUNT"] < 0:
        raise SettingsError(f"{ENV_PREFIX}TRUSTED_PROXY_COUNT must be 0 or more")
    _check_lease_timing(settings)
    return settings


def _check_lease_timing(settings: Mapping[str, Any]) -> None:
    """A worker stops its run itself one renewal interval before the grace ends (see canvas.execution.lease): with
    fewer than three renewals per grace, one slow write would make it give up a healthy run."""
    grace, renew = settings["LOST_RUN_GRACE_SECONDS"], settings["LEASE_RENEW_SECONDS"]
    if renew <= 0 or grace < 3 * renew:
        raise SettingsError(f"{ENV_PREFIX}LEASE_RENEW_SECONDS ({renew:g}) must be above 0 and at most a third of "
                            f"{ENV_PREFIX}LOST_RUN_GRACE_SECONDS ({grace:g})")
    for name in ("REAPER_INTERVAL_SECONDS", "RECONNECT_MAX_SECONDS"):
        if settings[name] <= 0:
            raise SettingsError(f"{ENV_PREFIX}{name} must be above 0")
    if settings["REQUEUE_LIMIT"] < 0:
        raise SettingsError(f"{ENV_PREFIX}REQUEUE_LIMIT must be 0 or more")


def normalise_database_url(url: str) -> str:
    """PostgreSQL URLs without a driver get psycopg 3, the driver we ship."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def embedded_redis_dir(settings: Mapping[str, Any]) -> Path:
    return Path(settings["DATA_DIR"]) / "redis"


UNIX_SOCKET_PATH_LIMIT = 100  # sun_path holds 108 bytes on Linux


def embedded_redis_socket(settings: Mapping[str, Any]) -> Path:
    """The embedded Redis socket; a short path in the temp dir when the data dir is too deep for a unix socket."""
    socket_path = embedded_redis_dir(settings) / "redis.sock"
    if len(str(socket_path)) <= UNIX_SOCKET_PATH_LIMIT:
        return socket_path
    digest = hashlib.sha1(str(socket_path).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"canvas-redis-{digest}.sock"


def redis_url(settings: Mapping[str, Any]) -> str:
    """The configured Redis, or the unix socket of the embedded one under the data dir."""
    if settings.get("REDIS_URL"):
        return settings["REDIS_URL"]
    return f"unix://{embedded_redis_socket(settings)}"
