"""`canvas scheduler`: the process that fires workflow schedules (see canvas/scheduling/scheduler.py).

Run two or more for availability: each occurrence is claimed in the database, so every one fires exactly once.
It does not exit when its database or Redis goes away: it logs the outage once, retries with backoff (up to
RECONNECT_MAX_SECONDS) and carries on when they are back.
"""
from __future__ import annotations

import gc
import logging
import signal
import threading

from canvas import create_app
from canvas.scheduling.scheduler import SchedulerConfig, SchedulerEngine

log = logging.getLogger("canvas.scheduler")


def run_scheduler() -> int:
    app = create_app()
    services = app.extensions["canvas"]
    stop = threading.Event()

    def request_stop(signum, _frame):  # noqa: ANN001
        log.info("received %s; scheduler stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    with app.app_context():
        engine = SchedulerEngine(services.db, services.redis, SchedulerConfig.from_settings(services.settings))
        engine.start()
        # The loaded schedules are long-lived: keep them out of the cyclic collector, whose full passes over them
        # would otherwise stall a burst of dispatches by ~100 ms.
        gc.collect()
        gc.freeze()
        try:
            stop.wait()
        finally:
            engine.shutdown()
    services.close()
    return 0
