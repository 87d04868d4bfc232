"""Per-process collaborators of the app (database, Redis, secrets, catalogs), built once, reached through the app."""
from __future__ import annotations

import contextlib
import logging
import threading
from functools import cached_property
from pathlib import Path
from typing import Any

import redis
from flask import Flask, current_app, g
from sqlalchemy.orm import Session

from canvas.db import Database
from canvas.queueing.connections import redis_client
from canvas.settings import redis_url

EXTENSION_KEY = "canvas"
log = logging.getLogger(__name__)


class Services:
    """Everything a request, a worker job or a CLI command needs, built lazily from the settings.

    `waits_for_storage`: the object store's requests that cannot connect wait for it (CANVAS_BLOB_OUTAGE_SECONDS),
    as a worker's do, where a failed request fails a block whose side effects are done. The API's answer at once
    (503, Retry-After): a thread held for each request would leave none for the others during an outage."""

    def __init__(self, settings: dict[str, Any], waits_for_storage: bool = False):
        self.settings = settings
        self.waits_for_storage = waits_for_storage
        self._lock = threading.Lock()

    @cached_property
    def db(self) -> Database:
        return Database(self.settings["DATABASE_URL"], self.settings["LOST_RUN_GRACE_SECONDS"])

    @cached_property
    def redis(self) -> redis.Redis:
        return redis_client(redis_url(self.settings), socket_connect_timeout=2, socket_timeout=5,
                            health_check_interval=30)

    @cached_property
    def data_dir(self) -> Path:
        path = Path(self.settings["DATA_DIR"])
        path.mkdir(parents=True, exist_ok=True)
        return path

    @cached_property
    def blob_store(self):  # noqa: ANN201 - canvas.storage.BlobStore, chosen by CANVAS_BLOB_URL
        from canvas.storage.factory import blob_store_from_settings

        outage_seconds = self.settings["BLOB_OUTAGE_SECONDS"] if self.waits_for_storage else 0.0
        return blob_store_from_settings(self.settings, self.data_dir, fsync=blob_fsync(self.settings),
                                        outage_seconds=outage_seconds)

    @cached_property
    def secret_box(self):  # noqa: ANN201 - SecretBox, imported lazily
        from canvas.secrets import SecretBox

        return SecretBox.from_setting(self.settings.get("SECRET_KEYS"), self.data_dir)

    @cached_property
    def network_policy(self):  # noqa: ANN201 - NetworkPolicy
        from canvas.network.guard import NetworkPolicy

        return NetworkPolicy.from_setting(self.settings.get("ALLOW_PRIVATE_NETWORKS"), self.settings.get("TLS_CA_FILE"))

    @cached_property
    def application_catalog(self):  # noqa: ANN201 - ApplicationCatalog
        from canvas.applications.catalog import load_application_catalog

        return load_application_catalog(catalog_dir(self.settings) / "applications")

    def close(self) -> None:
        if "db" in self.__dict__:
            self.db.dispose()
        if "redis" in self.__dict__:
            self.redis.close()


def blob_fsync(settings: dict[str, Any]) -> bool:
    """Blobs are as durable as the database: fsync'd on PostgreSQL, not on SQLite in WAL/NORMAL mode."""
    if settings.get("BLOB_FSYNC") is not None:
        return str(settings["BLOB_FSYNC"]).lower() in ("1", "true", "yes", "on")
    return not settings["DATABASE_URL"].startswith("sqlite")


def catalog_dir(settings: dict[str, Any]) -> Path:
    if settings.get("CATALOG_DIR"):
        return Path(settings["CATALOG_DIR"])
    import templates_catalog

    return Path(templates_catalog.__file__).parent


def init_services(app: Flask, services: Services) -> None:
    app.extensions[EXTENSION_KEY] = services
    app.teardown_appcontext(_close_request_session)


def services() -> Services:
    return current_app.extensions[EXTENSION_KEY]


def db_session() -> Session:
    """The session of the current request (or app context), opened on first use and closed at teardown."""
    session = g.get("db_session")
    if session is None:
        session = g.db_session = services().db.sessions()
    return session


def _close_request_session(_exc: BaseException | None) -> None:
    session = g.pop("db_session", None)
    if session is None:
        return
    try:
        session.close()  # rolls back whatever a failed request left uncommitted
    except Exception as error:  # noqa: BLE001 - the answer is decided; a dead connection must not turn it into a 500
        log.warning("closing the request's database session failed (%s: %s); its connection is discarded",
                    type(error).__name__, error)
        with contextlib.suppress(Exception):
            session.invalidate()

