"""Shared pieces of the benchmarks: a `canvas` process on a temp data dir, an HTTP load generator, and the child
processes of a benchmark, each in a process group of its own that is killed on every way out (an exception, Ctrl-C,
SIGTERM, the end of the script)."""
from __future__ import annotations

import atexit
import ctypes
import http.client
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.process_tools import canvas_env, descendants, free_port, run_canvas  # noqa: E402

# --- child processes that never outlive the benchmark -----------------------------------------------------------

_PR_SET_PDEATHSIG, _SIGTERM = 1, int(signal.SIGTERM)
try:
    _PRCTL = ctypes.CDLL(None).prctl if sys.platform == "linux" else None
except (OSError, AttributeError):
    _PRCTL = None
_children: dict[int, subprocess.Popen] = {}
_children_lock = threading.Lock()
_cleanup_installed = False


def spawn(command: list[str], env: dict, log_path: Path | None = None) -> subprocess.Popen:
    """Start `command` as the leader of a new session (so of a process group of its own: Ctrl-C in the terminal
    reaches only this script, which stops it), tracked until `stop_processes` ends it, or the script ends."""
    install_cleanup()
    log = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115 - the child's for its lifetime
    try:
        process = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True,
                                   preexec_fn=_term_when_parent_dies)  # noqa: PLW1509 - one prepared C call
    finally:
        if log_path:
            log.close()  # the child holds its own descriptor
    process.log_path = log_path  # for error messages: log_tail(process)
    with _children_lock:
        _children[process.pid] = process
    return process


def _term_when_parent_dies() -> None:
    """In the child, before exec: SIGTERM when this script dies, even of SIGKILL, which no handler sees (Linux)."""
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, _SIGTERM)


def stop_processes(processes: list[subprocess.Popen], grace: float = 30.0) -> None:
    """SIGTERM to each one's process group, up to `grace` seconds for them to exit, then SIGKILL to the groups and to
    every process found below them before (a child that made a session of its own, like the embedded Redis)."""
    below = {process.pid: {pid: _started_at(pid) for pid in descendants(process.pid)}
             for process in processes if process.poll() is None}
    for process in processes:
        _signal_group(process, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for process in processes:
        try:
            process.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
    for process in processes:
        _signal_group(process, signal.SIGKILL)
        for pid, started_at in below.get(process.pid, {}).items():
            if started_at is not None and _started_at(pid) == started_at:  # still that process, not a reused id
                with suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
        with suppress(subprocess.TimeoutExpired):
            process.wait(5)
        with _children_lock:
            _children.pop(process.pid, None)


def _started_at(pid: int) -> str | None:
    """The start time of process `pid` (field 22 of /proc/<pid>/stat): with the id, it names one process."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _signal_group(process: subprocess.Popen, signum: int) -> None:
    """Signal the group `process` leads; its leader may be gone while the group's members are not."""
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signum)


def stop_all_children(grace: float = 10.0) -> None:
    with _children_lock:
        processes = list(_children.values())
    if processes:
        stop_processes(processes, grace)


def install_cleanup() -> None:
    """Once: kill the tracked children at exit, and turn SIGTERM (and SIGINT) into an exit that runs every `finally`
    on the way. Only the main thread may install signal handlers; elsewhere atexit alone is set."""
    global _cleanup_installed
    if _cleanup_installed:
        return
    _cleanup_installed = True
    atexit.register(stop_all_children)
    if threading.current_thread() is not threading.main_thread():
        return

    def leave(signum, _frame):  # noqa: ANN001
        signal.signal(signum, signal.SIG_IGN)  # a second Ctrl-C must not cut the cleanup short
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, leave)
    signal.signal(signal.SIGINT, leave)


_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # a local server: no proxy of the environment


def wait_until_ready(url: str, process: subprocess.Popen, timeout: float = 120.0, log_path: Path | None = None,
                     ready=lambda body: True, attempt_timeout: float = 5.0) -> dict | str:  # noqa: ANN001
    """GET `url` until it answers 200 and `ready(body)` holds. Any failure on the way (refused or reset connections,
    timeouts while gunicorn's workers boot, 5xx) is retried until the deadline; then a RuntimeError says what the
    last attempt saw, with the end of the process's log. Fails at once if the process exits."""
    deadline = time.monotonic() + timeout
    last = "no attempt"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{' '.join(map(str, process.args[-4:]))} exited with {process.returncode} before "
                               f"{url} was ready (last attempt: {last}){_log_tail(log_path)}")
        try:
            with _DIRECT.open(url, timeout=attempt_timeout) as response:
                raw = response.read().decode()
            body = json.loads(raw) if raw.startswith(("{", "[")) else raw
            if ready(body):
                return body
            last = f"200 but not ready yet: {raw[:200]}"
        except Exception as error:  # noqa: BLE001 - every kind of failure is retried until the deadline
            last = f"{error.__class__.__name__}: {error}"
        time.sleep(min(0.25, max(0.0, deadline - time.monotonic())))
    raise RuntimeError(f"{url} was not ready within {timeout:.0f} s (last attempt: {last}){_log_tail(log_path)}")


def log_tail(process: subprocess.Popen, chars: int = 2000) -> str:
    """The end of the output of a process `spawn` started (empty when it had no log file)."""
    return _log_tail(getattr(process, "log_path", None), chars)


def _log_tail(log_path: Path | None, chars: int = 2000) -> str:
    if not log_path or not Path(log_path).exists():
        return ""
    return f"\n--- end of {log_path} ---\n{Path(log_path).read_text(errors='replace')[-chars:]}"


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

    threads = [threading.Thread(target=client, daemon=True) for _ in range(concurrency)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return LoadResult(label, len(latencies), errors[0], time.perf_counter() - began, latencies)


def median(values: list[float]) -> float:
    return statistics.median(values)


class CanvasProcess:
    """`canvas <command>` on a fresh temp data dir (embedded defaults unless env overrides), in a process group of
    its own; its whole tree is killed on leaving the `with`, however it is left (see `spawn`)."""

    def __init__(self, command: str, extra_env: dict | None = None, ready_timeout: float = 120.0):
        self.tmp = tempfile.TemporaryDirectory(prefix="canvas-bench-")
        self.data_dir = Path(self.tmp.name)
        self.port = free_port()
        self.env = canvas_env(self.data_dir, **(extra_env or {}))
        self.command = command
        self.ready_timeout = ready_timeout
        self.process: subprocess.Popen | None = None

    @property
    def log_path(self) -> Path:
        return self.data_dir / f"{self.command}.log"

    def __enter__(self) -> "CanvasProcess":
        args = [self.command, "--port", str(self.port)] if self.command in ("api", "up") else [self.command]
        self.process = spawn([sys.executable, "-m", "canvas", *args], self.env, self.log_path)
        try:
            if self.command in ("api", "up"):
                wait_until_ready(f"http://127.0.0.1:{self.port}/healthz", self.process, self.ready_timeout,
                                 self.log_path)
        except BaseException:
            self.__exit__()
            raise
        return self

    def create_org(self) -> dict:
        created = run_canvas("org", "create", "--name", "Bench", "--admin-email", "bench@bench.test", "--json",
                             env=self.env)
        return json.loads(created.stdout)

    def __exit__(self, *_exc) -> None:
        try:
            if self.process is not None:
                stop_processes([self.process], grace=60)
        finally:
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
