"""`canvas api`: the app on gunicorn (threaded workers), configured from config/gunicorn.py."""
from __future__ import annotations

import json

from gunicorn import glogging
from gunicorn import util as gunicorn_util
from gunicorn.app.base import BaseApplication
from gunicorn.workers.gthread import ThreadWorker
from gunicorn.workers.sync import SyncWorker

from canvas.long_lived import freeze_long_lived
from config import gunicorn as gunicorn_defaults


class CanvasServer(BaseApplication):
    def __init__(self, bind: str, workers: int, threads: int, app_config: dict | None = None):
        self.bind = bind
        self.workers = workers
        self.threads = threads
        self.app_config = app_config
        super().__init__()

    def load_config(self) -> None:
        for name in dir(gunicorn_defaults):
            if not name.startswith("_") and name in self.cfg.settings:
                self.cfg.set(name, getattr(gunicorn_defaults, name))
        self.cfg.set("bind", self.bind)
        self.cfg.set("workers", self.workers)
        self.cfg.set("threads", self.threads)
        self.cfg.set("worker_class", gunicorn_defaults.worker_class_for(self.threads))
        self.cfg.set("proc_name", "canvas-api")

    def load(self):  # noqa: ANN201 - built once in the master (preload_app); engines connect after the fork
        from canvas import create_app

        app = create_app(self.app_config)
        freeze_long_lived()  # in the master: every worker's collections then leave the app's objects alone
        return app


class JsonErrors:
    """For a gunicorn worker class: its own answers (a request line or headers too long, a malformed request, an
    error outside the app) are JSON like every other answer, not gunicorn's HTML page.

    gunicorn writes them through `gunicorn.util.write_error` and offers no hook; the worker process is ours alone,
    so that function is replaced in it (before any of its threads serves). Such an answer comes before the
    request's path is known, so it has the Canvas dialect's shape."""

    def init_process(self) -> None:
        gunicorn_util.write_error = write_json_error
        super().init_process()


class JsonErrorThreadWorker(JsonErrors, ThreadWorker):
    """gunicorn's threaded worker (the default): `threads` requests at a time per process, and a new connection
    accepted only while one of its threads is free.

    gunicorn's own keeps accepting while every thread is busy, and queues the connection behind the slow requests
    although another worker may be idle: the kernel hands a shared socket's connections to whichever worker asks
    first, often the same one. A connection this worker leaves waits in the socket's backlog for another, or for a
    thread of this one. Written against gunicorn 27's ThreadWorker (its main loop calls enqueue_req, finish_request
    and set_accept_enabled, all in the main thread, so the count needs no lock)."""

    def __init__(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003 - gunicorn's
        super().__init__(*args, **kwargs)
        self.requests_in_threads = 0  # handed to the thread pool and not finished: running or queued

    def enqueue_req(self, conn) -> None:  # noqa: ANN001 - gunicorn's TConn
        self.requests_in_threads += 1
        super().enqueue_req(conn)
        self._accept_while_a_thread_is_free()

    def finish_request(self, conn, fs) -> None:  # noqa: ANN001 - gunicorn's TConn and the thread's Future
        self.requests_in_threads -= 1
        super().finish_request(conn, fs)
        self._accept_while_a_thread_is_free()

    def set_accept_enabled(self, enabled: bool) -> None:
        super().set_accept_enabled(enabled and self.requests_in_threads < self.cfg.threads)

    def _accept_while_a_thread_is_free(self) -> None:
        if self.alive:  # a stopping worker accepts nothing more (its main loop turned accepting off)
            self.set_accept_enabled(self.nr_conns < self.worker_connections)


class JsonErrorSyncWorker(JsonErrors, SyncWorker):
    """gunicorn's sync worker, one request at a time per process: `canvas api` with CANVAS_API_THREADS=1."""


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
