"""Settings of the production WSGI server that `canvas api` runs (gunicorn, threaded workers).

Concurrency comes from threads rather than processes: the API mostly waits (database, Redis, a credential check
against a remote server), and gunicorn recommends its threaded worker for such apps. A few processes of
CANVAS_API_THREADS threads each serve as many requests at once as many more sync processes would, each of which
holds ~85 MB resident. With CANVAS_API_THREADS=1 the workers are gunicorn's sync workers (one request at a time,
and one stuck past ``timeout`` is killed with its process)."""
from __future__ import annotations

import gc
import os
from pathlib import Path

from config.default import API_THREADS

THREADED_WORKER = "canvas.wsgi_server.JsonErrorThreadWorker"  # gunicorn's gthread worker, its own errors in JSON
SYNC_WORKER = "canvas.wsgi_server.JsonErrorSyncWorker"  # gunicorn's sync worker, likewise
worker_class = THREADED_WORKER  # CanvasServer picks SYNC_WORKER for one thread per worker (worker_class_for)
# `canvas api` sets CANVAS_API_THREADS (and the workers); this default serves `gunicorn -c config/gunicorn.py app:app`.
threads = API_THREADS
# A sync worker busy with one request for this long is killed; a threaded worker only when its main loop (accepting
# connections, handing them to threads) stalls that long: a slow request holds one thread, not the process.
timeout = 60
graceful_timeout = 20
keepalive = 5  # seconds a threaded worker keeps an idle connection open (sync workers close after each answer)
# The app writes the access lines itself (canvas.observability.access_log: route, request id, text or JSON), so
# gunicorn's own access log is off; its other lines go through the process's handler (CANVAS_LOG_FORMAT) too.
accesslog = None
logger_class = "canvas.wsgi_server.ProcessLogger"
# Several `canvas api` processes may run on one machine; gunicorn's control socket would make them collide.
control_socket_disable = True
# The longest request line gunicorn allows (a long search or filter); longer ones get a JSON 414.
limit_request_line = 8190
# The app is built once, in the master, and its workers share it copy-on-write: each costs ~15 MB of its own
# instead of ~70 (PSS, benchmarks/footprint.py). Building it opens no connection and starts no thread; the database
# engine and Redis clients are created on first use, in each worker (post_worker_init makes sure of it).
preload_app = True

# For sizing the default count: what one API worker may come to hold of its own over a long life (it shows ~85 MB
# resident from the start, most of it shared with the master: ~17 MB of its own idle, ~30 MB after some requests;
# its threads share all of it, each adding a stack and what its request holds while it is served).
API_WORKER_MB = 100
API_MEMORY_SHARE = 0.5  # the default count of API workers takes at most this share of the available memory
MB = 1024 * 1024


def worker_class_for(threads: int) -> str:
    """gunicorn's sync worker when each process serves one request at a time: no thread pool, and its timeout."""
    return THREADED_WORKER if threads > 1 else SYNC_WORKER


def when_ready(_server) -> None:  # noqa: ANN001 - gunicorn's Arbiter
    """Before the first fork: the preloaded app's objects are moved out of the cyclic collector's reach, whose passes
    would otherwise write to (and so copy) every page they are on in every worker."""
    gc.collect()
    gc.freeze()


def post_worker_init(worker) -> None:  # noqa: ANN001 - gunicorn's Worker
    """A database engine built before the fork would share its pooled connections with the master: drop them. Then
    the engine and the Redis client (no connection yet) are built before the worker's threads serve a request:
    Services' cached_property does not lock from Python 3.12 on, and two first requests at once would each build
    one, a pool each."""
    services = getattr(worker.wsgi, "extensions", {}).get("canvas")
    if services is None:
        return
    if "db" in services.__dict__:
        services.db.after_fork()
    services.db, services.redis  # noqa: B018 - built here, once


def child_exit(_server, worker) -> None:  # noqa: ANN001 - gunicorn's Arbiter and Worker
    """prometheus_client's bookkeeping for a worker that is gone (its live gauges); its counts stay in the metrics
    directory, so totals never go down when a worker is replaced."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)


def default_workers(cores: int, available_bytes: int | None, threads: int) -> int:
    """gunicorn's advice for the worker class: threaded workers, one per core (the threads give the concurrency, the
    processes the cores); sync workers (one thread each), 2 x cores + 1. As many as fit in API_MEMORY_SHARE of the
    memory available at start at API_WORKER_MB each (``None``: unknown, no bound), and at least 2: one slow or dying
    worker must not leave the API without another."""
    cores = max(1, cores)
    count = cores if threads > 1 else 2 * cores + 1
    if available_bytes is not None:
        count = min(count, int(available_bytes * API_MEMORY_SHARE // (API_WORKER_MB * MB)))
    return max(2, count)


def machine_default_workers(threads: int) -> int:
    """``default_workers`` for this machine (or container), now."""
    return default_workers(usable_cores(), available_memory(), threads)


def usable_cores() -> int:
    """The cores this process may run on (a container's CPU set), not the machine's."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def available_memory() -> int | None:
    """Bytes available to new processes: the kernel's MemAvailable, less when a cgroup (v2) limit leaves less;
    None where neither can be read."""
    found = []
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                found.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError):
        pass
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit != "max":
            found.append(int(limit) - int(Path("/sys/fs/cgroup/memory.current").read_text()))
    except (OSError, ValueError):
        pass
    return min(found) if found else None
