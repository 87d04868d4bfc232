"""`canvas scheduler`: the process that fires workflow schedules (see canvas/scheduling/scheduler.py).

Run two or more for availability: each occurrence is claimed in the database, so every one fires exactly once.
It also hosts RQ's scheduler, which queues delayed RQ jobs (callback retries), in a thread: one process holds RQ's
lock at a time and queues them, the others stand by (canvas.queueing.worker.PatientScheduler.serve).
It does not exit when its database or Redis goes away: it logs the outage once, retries with backoff (up to
RECONNECT_MAX_SECONDS) and carries on when they are back.
"""
from __future__ import annotations

import logging
import signal
import threading

from canvas.db import name_sessions
from canvas.hangup import stop_on_hangup
from canvas.long_lived import freeze_long_lived
from canvas.outages import OutageLog
from canvas.queueing.keys import RUN_QUEUE
from canvas.queueing.worker import PatientScheduler
from canvas.scheduling.scheduler import SchedulerConfig, SchedulerEngine, scheduler_name
from canvas.schema_version import wait_for_schema
from workers import process_app

log = logging.getLogger("canvas.scheduler")


def run_scheduler() -> int:
    name_sessions(f"canvas scheduler {scheduler_name()}")
    app = process_app()
    services = app.extensions["canvas"]
    stop = threading.Event()

    def request_stop(signum, _frame):  # noqa: ANN001
        log.info("received %s; scheduler stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    stop_on_hangup(request_stop)
    with app.app_context():
        if wait_for_schema(services.db.engine, "scheduler", stop):
            _schedule_until_stopped(services, stop)
    services.close()
    return 0


def _schedule_until_stopped(services, stop: threading.Event) -> None:  # noqa: ANN001 - canvas.extensions.Services
    engine = SchedulerEngine(services.db, services.redis, SchedulerConfig.from_settings(services.settings))
    engine.start()
    services.db.checkpoint_in_background()
    delayed_jobs = _start_rq_scheduler(services, engine.outages, stop)
    # The loaded schedules are long-lived: keep them out of the cyclic collector, whose full passes over them
    # would otherwise stall a burst of dispatches by ~100 ms.
    freeze_long_lived()
    try:
        stop.wait()
    finally:
        engine.shutdown()
        delayed_jobs.join(10)


def _start_rq_scheduler(services, outages: OutageLog, stop: threading.Event) -> threading.Thread:  # noqa: ANN001
    """RQ's scheduler in a thread of this process, until ``stop``: workers no longer fork one each. An outage of
    Redis is logged once for the whole process (``outages``), not once more by this thread."""
    settings = services.settings
    scheduler = PatientScheduler([RUN_QUEUE], connection=services.redis, name=f"rq:{scheduler_name()}",
                                 logging_level=settings["LOG_LEVEL"], reconnect_max=settings["RECONNECT_MAX_SECONDS"],
                                 outages=outages)
    thread = threading.Thread(target=scheduler.serve, args=(stop,), name="rq-scheduler", daemon=True)
    thread.start()
    return thread
