"""Shared pieces of the benchmarks: a `canvas` process on a temp data dir, and an HTTP load generator."""
from __future__ import annotations

import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.process_tools import canvas_env, free_port, run_canvas, start_canvas, wait_for_http  # noqa: E402


@dataclass
class LoadResult:
    label: str
    requests: int
    errors: int
    seconds: float
    latencies_ms: list[float]

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    def percentile(self, fraction: float) -> float:
        return percentile(self.latencies_ms, fraction)

    def line(self) -> str:
        return (f"{self.label:<22} {self.rate:8.0f} req/s   p50 {self.percentile(0.5):6.1f} ms   "
                f"p99 {self.percentile(0.99):6.1f} ms   errors {self.errors}")


def load(port: int, path: str, headers: dict, seconds: float, concurrency: int, label: str) -> LoadResult:
    """Closed-loop load: `concurrency` threads, each sending one request after the other."""
    latencies: list[float] = []
    errors = [0]
    stop_at = time.perf_counter() + seconds
    lock = threading.Lock()

    def client() -> None:
        mine, failed = [], 0
        while time.perf_counter() < stop_at:
            started = time.perf_counter()
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            try:
                connection.request("GET", path, headers=headers)
                response = connection.getresponse()
                response.read()
                ok = response.status == 200
            except OSError:
                ok = False
            finally:
                connection.close()
            if ok:
                mine.append((time.perf_counter() - started) * 1000)
            else:
                failed += 1
        with lock:
            latencies.extend(mine)
            errors[0] += failed

    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return LoadResult(label, len(latencies), errors[0], time.perf_counter() - began, latencies)


def median(values: list[float]) -> float:
    return statistics.median(values)


class CanvasProcess:
    """`canvas <command>` on a fresh temp data dir (embedded defaults unless env overrides)."""

    def __init__(self, command: str, extra_env: dict | None = None):
        self.tmp = tempfile.TemporaryDirectory(prefix="canvas-bench-")
        self.data_dir = Path(self.tmp.name)
        self.port = free_port()
        self.env = canvas_env(self.data_dir, **(extra_env or {}))
        self.command = command
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> "CanvasProcess":
        args = [self.command, "--port", str(self.port)] if self.command in ("api", "up") else [self.command]
        self.process = start_canvas(*args, env=self.env, log_path=self.data_dir / f"{self.command}.log")
        if self.command in ("api", "up"):
            wait_for_http(f"http://127.0.0.1:{self.port}/healthz", self.process)
        return self

    def create_org(self) -> dict:
        created = run_canvas("org", "create", "--name", "Bench", "--admin-email", "bench@bench.test", "--json",
                             env=self.env)
        return json.loads(created.stdout)

    def __exit__(self, *_exc) -> None:
        self.process.terminate()
        self.process.wait(60)
        self.tmp.cleanup()


class InProcessPlatform:
    """The platform in this process, for benchmarks that drive it through its services: a temp data dir with a
    migrated database and the catalog, an embedded Redis (unless CANVAS_REDIS_URL is set), and an environment for
    the worker processes they start. `env` sets CANVAS_ variables for this process and its children alike."""

    def __init__(self, prefix: str, **env: str):
        from canvas.queueing.embedded import ensure_redis
        from canvas.settings import load_settings

        self.tmp = tempfile.TemporaryDirectory(prefix=prefix)
        self.shared_env = {"CANVAS_DATA_DIR": self.tmp.name, **env}
        os.environ.update(self.shared_env)
        self.embedded = ensure_redis(load_settings())
        self.settings = load_settings()  # again: with the embedded Redis's address
        from canvas import create_app, migrate
        from canvas.catalog.loader import sync_catalog_files

        self.app = create_app()
        self.services = self.app.extensions["canvas"]
        migrate.upgrade(self.services.db.engine)
        sync_catalog_files(self.services.db, self.settings)

    def create_organization(self):  # noqa: ANN201 - canvas.accounts.service's CreatedOrganization
        from canvas.accounts import service

        with self.services.db.transaction() as session:
            return service.create_organization(session, "Bench", f"{uuid.uuid4().hex[:8]}@bench.test")

    def child_env(self, **extra: str) -> dict:
        """The environment of a worker process: this platform's data dir, database and Redis, nothing else of
        this shell's CANVAS_ settings."""
        from canvas.settings import redis_url

        env = {name: value for name, value in os.environ.items() if not name.startswith("CANVAS_")}
        env.update({**self.shared_env, "CANVAS_DATABASE_URL": self.settings["DATABASE_URL"],
                    "CANVAS_REDIS_URL": redis_url(self.settings), **extra})
        return env

    def close(self) -> None:
        self.services.close()
        if self.embedded is not None:
            self.embedded.stop()
        self.tmp.cleanup()


def percentile(values: list[float], fraction: float) -> float:
    """The value below which `fraction` of them lie (nearest rank); NaN for none."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else float("nan")


def proc_status_kb(pid: int, field: str) -> int | None:
    """A memory figure of /proc/<pid>/status in kB: VmRSS, or its high-water mark VmHWM; None when not there."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return None


def cpu_note() -> str:
    return f"{os.cpu_count()} cores, python {sys.version.split()[0]}"
