"""APScheduler with OccurrenceExecutor never drops an occurrence: 1,000 jobs due in the same second all arrive,
where its default thread pool with a 1 s misfire grace time drops some."""
from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone

from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.schedulers.background import BackgroundScheduler

from canvas.scheduling.scheduler import OccurrenceExecutor
from canvas.scheduling.trigger import QuartzTrigger

JOBS = 1000


def test_every_job_due_in_the_same_second_is_handed_over_once():
    arrived: dict[str, list[datetime]] = {}
    lock = threading.Lock()

    def on_due(job_id: str, run_times: list[datetime], _version: int | None) -> None:
        time.sleep(0.002)  # a slow consumer: 1,000 x 2 ms is past APScheduler's default grace of 1 s
        with lock:
            arrived.setdefault(job_id, []).extend(run_times)

    # Far enough ahead that adding 1,000 jobs on a loaded machine ends before it (a job added after its only
    # occurrence would never fire).
    due = (datetime.now(timezone.utc) + timedelta(seconds=4)).replace(microsecond=0)
    cron = f"{due.second} {due.minute} {due.hour} {due.day} {due.month} ? {due.year}"
    scheduler = BackgroundScheduler(jobstores={"default": MemoryJobStore()},
                                    executors={"default": OccurrenceExecutor(on_due)},
                                    job_defaults={"misfire_grace_time": None, "coalesce": False},
                                    timezone=timezone.utc)
    for number in range(JOBS):
        scheduler.add_job(print, QuartzTrigger(cron), id=str(number))
    scheduler.start()
    try:
        deadline = time.monotonic() + 10
        while len(arrived) < JOBS and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        scheduler.shutdown(wait=False)
    assert len(arrived) == JOBS
    assert all(times == [due] for times in arrived.values())
