"""Serving the metrics: the API's `/metrics` (with its request timing), and the `--metrics-port` server of a worker
or scheduler.

In multi-process mode (PROMETHEUS_MULTIPROC_DIR) a scrape reads every process's files in the directory: under
`canvas up`, the API's gunicorn workers, the worker, the runs it forked and the scheduler. How many runs wait, and
for how long the oldest has, is read at scrape time (one indexed query and one Redis LLEN), not kept up to date by
every process.
"""
from __future__ import annotations

import logging
import time

from flask import Blueprint, Flask, Response, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    generate_latest,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector

from canvas.observability import metrics, metrics_setup

blp = Blueprint("metrics", __name__)
log = logging.getLogger(__name__)


@blp.get("/metrics")
def scrape():  # noqa: ANN201
    from canvas.extensions import services

    return Response(exposition(services()), content_type=CONTENT_TYPE_LATEST)


def exposition(services=None) -> bytes:  # noqa: ANN001 - canvas.extensions.Services, for the queue gauges
    """The text format of every metric this process can see (in multi-process mode: the directory's)."""
    registry = CollectorRegistry(auto_describe=False)
    if metrics_setup.multiprocess_dir():
        MultiProcessCollector(registry)
    else:
        registry.register(_ThisProcess())
    if services is not None:
        registry.register(QueueCollector(services))
    return generate_latest(registry)


class _ThisProcess:
    """The default registry's metrics (this process's values and its process_* metrics), read at each scrape."""

    def collect(self):  # noqa: ANN201
        return REGISTRY.collect()


class QueueCollector:
    """The runs waiting for a worker and the age of the oldest, from the database (the truth, whatever Redis holds),
    and the jobs in the RQ run queue and its workers (as /healthz counts them). A store that does not answer leaves
    its gauges out of this scrape."""

    def __init__(self, services) -> None:  # noqa: ANN001 - canvas.extensions.Services
        self.services = services

    def collect(self):  # noqa: ANN201
        yield from self._queued_runs()
        yield from self._queue_jobs()

    def _queued_runs(self):  # noqa: ANN202
        from sqlalchemy import func, select

        from canvas.models import WorkflowRun
        from canvas.models.base import utcnow
        from canvas.scheduling.store import as_utc

        query = select(func.count(), func.min(WorkflowRun.date_queued)).where(WorkflowRun.status == "Queued")
        try:
            with self.services.db.engine.connect() as connection:
                count, oldest = connection.execute(query).one()
        except Exception as error:  # noqa: BLE001 - a scrape during an outage shows what it can
            log.warning("metrics: queued runs not read (%s)", error.__class__.__name__)
            return
        age = max(0.0, (utcnow() - as_utc(oldest)).total_seconds()) if oldest is not None else 0.0
        yield GaugeMetricFamily("canvas_queued_runs", "Runs waiting for a worker (status Queued)", value=count)
        yield GaugeMetricFamily("canvas_oldest_queued_run_age_seconds", "How long the oldest Queued run has waited "
                                "(0 when none waits)", value=age)

    def _queue_jobs(self):  # noqa: ANN202
        from rq import Queue

        from canvas.health import live_workers
        from canvas.queueing.keys import RUN_QUEUE

        try:
            queue = Queue(RUN_QUEUE, connection=self.services.redis)
            jobs = queue.count
            workers, waiting = live_workers(queue)
        except Exception as error:  # noqa: BLE001 - as above
            log.warning("metrics: the run queue's length not read (%s)", error.__class__.__name__)
            return
        yield GaugeMetricFamily("canvas_run_queue_jobs", "Jobs in the RQ run queue (runs, blocks of parallel "
                                "branches, callback deliveries)", value=jobs)
        yield GaugeMetricFamily("canvas_workers", "Live workers of the run queue", value=workers)
        yield GaugeMetricFamily("canvas_workers_waiting_for_database", "Live workers taking no run because they "
                                "cannot reach the database", value=waiting)


# --- the API's request timing ----------------------------------------------------------------------------------------

def instrument(app: Flask) -> None:
    """Every request is counted and timed by its route template (`/api/Workflow/<uuid:workflow_id>`), whatever
    answered it: a view, an error handler, a hook that refused it. The start is the one the access log's first hook
    takes (canvas.observability.access_log), so both say the same duration."""
    app.after_request(_record_request)


def _record_request(response: Response) -> Response:
    started = g.get("request_started")
    if started is not None:
        rule = request.url_rule
        metrics.http_request(rule.rule if rule is not None else None, request.method, response.status_code,
                             time.perf_counter() - started)
    return response


# --- workers and schedulers ------------------------------------------------------------------------------------------

def serve_on_port(port: int, host: str = "") -> None:
    """A worker's or scheduler's metrics over HTTP, in a thread of its own (prometheus_client's server): every
    process writing to this process's directory (the runs a fork worker forks) is included."""
    registry = CollectorRegistry(auto_describe=False)
    if metrics_setup.multiprocess_dir():
        MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    start_http_server(port, addr=host or "0.0.0.0", registry=registry)  # noqa: S104 - scraped from elsewhere
    log.info("metrics served on port %d (/metrics)", port)
