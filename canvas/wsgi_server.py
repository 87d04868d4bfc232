"""`canvas api`: the app on gunicorn (sync workers), configured from config/gunicorn.py."""
from __future__ import annotations

from gunicorn.app.base import BaseApplication

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

    def load(self):  # noqa: ANN201 - each gunicorn worker builds its own app (and database engine) after the fork
        from canvas import create_app

        return create_app(self.app_config)
