"""`canvas scheduler`: the process that fires workflow schedules."""
from __future__ import annotations

import logging
import signal
import threading

from canvas import create_app

log = logging.getLogger("canvas.scheduler")


def run_scheduler() -> int:
    app = create_app()
    stop = threading.Event()

    def request_stop(signum, _frame):  # noqa: ANN001
        log.info("received %s; scheduler stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    with app.app_context():
        log.info("scheduler started")
        while not stop.wait(1.0):
            pass
    log.info("scheduler stopped")
    return 0
