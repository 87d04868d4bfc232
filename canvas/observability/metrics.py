"""The service's Prometheus metrics, and one small function per thing worth counting.

Callers (the runner, the reaper, dispatch, the scheduler, callbacks, notifications) call these functions and never
touch prometheus_client: the names, labels and buckets are decided here, once. Labels take values from small, fixed
sets (a route template, a run status, a trigger, a block key, an outcome): never a run, workflow or account id.

Storage: in-memory values, or, when PROMETHEUS_MULTIPROC_DIR is set (canvas.observability.metrics_setup), files
in that directory that every process on the machine writes and the one serving `/metrics` reads. An increment is
then a write to a memory-mapped file: cheap enough for every request. Exposition: canvas.observability.metrics_web.
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone

from prometheus_client import Counter, Histogram, values

from canvas.observability import metrics_setup

KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED_ROUTE = "unmatched"  # a 404 or 405 matched no route: its path is not a label (anyone can make up paths)
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
RUN_BUCKETS = (0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 4 * 3600.0, 24 * 3600.0)
LATENESS_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0)


# --- storage -------------------------------------------------------------------------------------------------------

_identity: tuple[int, str] = (os.getpid(), str(os.getpid()))  # (pid, the name of its files)


def _process_identity() -> str:
    """Names the files a process writes; called on every write, so it must stay a getpid and a compare."""
    pid = os.getpid()
    return _identity[1] if _identity[0] == pid else str(pid)


def _forked_by_a_worker() -> None:
    """RQ's fork worker class runs one job at a time, each in a child: the children take turns on one set of files
    instead of leaving a set each (prometheus_client keeps every dead process's files, and reads them all at each
    scrape)."""
    global _identity
    if metrics_setup.forked_children_share_files:
        _identity = (os.getpid(), f"{os.getppid()}-child")


def _value_class():  # noqa: ANN202 - one of prometheus_client's value classes
    if metrics_setup.multiprocess_dir():
        return values.MultiProcessValue(_process_identity)
    return values.MutexValue


values.ValueClass = _value_class()  # read by prometheus_client when each labelled value is first made
os.register_at_fork(after_in_child=_forked_by_a_worker)


# --- the metrics -----------------------------------------------------------------------------------------------------

HTTP_REQUESTS = Counter("canvas_http_requests", "HTTP requests answered by the API, by route template, method and "
                        "status", ["route", "method", "status"])
HTTP_DURATION = Histogram("canvas_http_request_duration_seconds", "Time the API took to answer, by route template "
                          "and method", ["route", "method"], buckets=HTTP_BUCKETS)
RUNS_STARTED = Counter("canvas_runs_started", "Runs a trigger started (queued), by trigger", ["trigger"])
RUNS_FINISHED = Counter("canvas_runs_finished", "Runs that reached a final state, whoever recorded it (worker, "
                        "reaper, API cancel, failed enqueue), by status and trigger", ["status", "trigger"])
RUN_DURATION = Histogram("canvas_run_duration_seconds", "Time a worker spent on a run, from its claim to its end, "
                         "by final status", ["status"], buckets=RUN_BUCKETS)
BLOCK_DURATION = Histogram("canvas_block_duration_seconds", "Time a block took (every attempt, and storing its "
                           "output), by block key and outcome", ["block", "outcome"], buckets=RUN_BUCKETS)
RECORDS_READ = Counter("canvas_block_records_read", "Input records blocks read, by block key", ["block"])
RECORDS_WRITTEN = Counter("canvas_block_records_written", "Output records blocks wrote, by block key", ["block"])
SCHEDULE_OCCURRENCES = Counter("canvas_schedule_occurrences", "Schedule occurrences claimed by a scheduler, by "
                               "outcome (fired, skipped, missed, waiting, ...)", ["outcome"])
SCHEDULE_LATENESS = Histogram("canvas_schedule_lateness_seconds", "Time from an occurrence's scheduled time to its "
                              "run's dispatch", buckets=LATENESS_BUCKETS)
CALLBACK_DELIVERIES = Counter("canvas_callback_deliveries", "Run callback delivery attempts, by outcome (delivered, "
                              "retrying, failed)", ["outcome"])
NOTIFICATION_DELIVERIES = Counter("canvas_notification_deliveries", "Notifications sent, by channel and outcome",
                                  ["channel", "outcome"])
RUNS_REQUEUED = Counter("canvas_runs_requeued", "Queued runs a reaper queued again because their job would not reach a "
                        "worker, by reason (job_missing: gone from Redis; job_stuck: taken or started by a worker "
                        "that never claimed the run; job_ended: failed in RQ before its claim)", ["reason"])
LEASE_FAILURES = Counter("canvas_run_lease_failures", "Run lease renewals that failed, by reason (unreachable: the "
                         "database did not answer; revoked: the run was declared lost elsewhere)", ["reason"])


# --- what callers record ---------------------------------------------------------------------------------------------

def http_request(route: str | None, method: str, status: int, seconds: float) -> None:
    route = route or UNMATCHED_ROUTE
    method = method if method in KNOWN_METHODS else "other"
    HTTP_REQUESTS.labels(route, method, str(status)).inc()
    HTTP_DURATION.labels(route, method).observe(seconds)


def runs_started(trigger: str, count: int = 1) -> None:
    if count:
        RUNS_STARTED.labels(trigger or "unknown").inc(count)


def run_finished(status: str, trigger: str | None, seconds: float | None = None) -> None:
    """``seconds``: only for a run a worker ran (a run ended by the reaper or before it started has no duration)."""
    RUNS_FINISHED.labels(status, trigger or "unknown").inc()
    if seconds is not None:
        RUN_DURATION.labels(status).observe(seconds)


def block_finished(block: str, outcome: str, seconds: float, records_read: int | None = None,
                   records_written: int | None = None) -> None:
    BLOCK_DURATION.labels(block, outcome).observe(seconds)
    if records_read:
        RECORDS_READ.labels(block).inc(records_read)
    if records_written:
        RECORDS_WRITTEN.labels(block).inc(records_written)


def occurrences_claimed(ledger_rows: Iterable[Mapping]) -> None:
    """Ledger rows a scheduler claimed (canvas.scheduling.claims): each counts by outcome, a fired one's lateness
    (its dispatch time less its scheduled time) is observed."""
    for row in ledger_rows:
        SCHEDULE_OCCURRENCES.labels(row["outcome"]).inc()
        dispatched, scheduled = row.get("dispatch_time"), row.get("scheduled_time")
        if isinstance(dispatched, datetime) and isinstance(scheduled, datetime):
            SCHEDULE_LATENESS.observe(max(0.0, (_utc(dispatched) - _utc(scheduled)).total_seconds()))


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)  # naive: a UTC column


def callback_delivered(outcome: str) -> None:
    CALLBACK_DELIVERIES.labels(outcome).inc()


def notification_sent(channel: str, outcome: str) -> None:
    """For notification senders (e-mail, ...): ``channel`` e.g. "email", ``outcome`` e.g. "sent" or "failed"."""
    NOTIFICATION_DELIVERIES.labels(channel, outcome).inc()


def run_requeued(reason: str) -> None:
    RUNS_REQUEUED.labels(reason).inc()


def lease_failed(reason: str) -> None:
    LEASE_FAILURES.labels(reason).inc()
