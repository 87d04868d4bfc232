"""`canvas api`: the app on gunicorn (sync workers), configured from config/gunicorn.py."""
from __future__ import annotations

import json

from gunicorn import glogging
from gunicorn import util as gunicorn_util
from gunicorn.app.base import BaseApplication
from gunicorn.workers.sync import SyncWorker

from config import gunicorn as gunicorn_defaults


class CanvasServer(BaseApplication):
    def __init__(self, bind: str, workers: int, app_config: dict | None = None):
        self.bind = bind
        self.workers = workers
        self.app_config = app_config
        super().__init__()

    def load_config(self) -> None:
        for name in dir(gunicorn_defaults):
            if not name.startswith("_") and name in self.cfg.settings:
                self.cfg.set(name, getattr(gunicorn_defaults, name))
        self.cfg.set("bind", self.bind)
        self.cfg.set("workers", self.workers)
        self.cfg.set("proc_name", "canvas-api")

    def load(self):  # noqa: ANN201 - built once in the master (preload_app); engines connect after the fork
        from canvas import create_app

        return create_app(self.app_config)


class JsonErrorSyncWorker(SyncWorker):
    """gunicorn's sync worker whose own answers (a request line or headers too long, a malformed request, an error
    outside the app) are JSON like every other answer, not gunicorn's HTML page.

    gunicorn writes them through `gunicorn.util.write_error` and offers no hook; the worker process is ours alone,
    so that function is replaced in it. Such an answer comes before the request's path is known, so it has the
    Canvas dialect's shape."""

    def init_process(self) -> None:
        gunicorn_util.write_error = write_json_error
        super().init_process()


def write_json_error(sock, status: int, reason: str, message: str) -> None:  # noqa: ANN001 - a socket
    text = f"{reason}: {message}" if message else f"{reason}; see the service log"
    body = json.dumps({"State": status, "Msg": text}).encode()
    head = (f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode("latin-1")
    gunicorn_util.write_nonblock(sock, head + body)


class ProcessLogger(glogging.Logger):
    """gunicorn's error log (workers booting, timing out) without gunicorn's own handler and format: its lines reach
    the handler config/logging.py set up, in CANVAS_LOG_FORMAT like every other line of the process."""

    def setup(self, cfg) -> None:  # noqa: ANN001 - gunicorn's Config
        super().setup(cfg)
        for handler in list(self.error_log.handlers):
            self.error_log.removeHandler(handler)
        self.error_log.propagate = True
