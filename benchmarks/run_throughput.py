"""Worker throughput and start latency of one-block no-op workflow runs, next to raw RQ no-op jobs, with the same
worker class and worker count, in the same run.

    .venv/bin/python benchmarks/run_throughput.py [--runs 300] [--raw-runs 1500] [--probes 200] [--rounds 2]
        [--worker-class simple|fork] [--runs-per-child 1] [--workers 1 2] [--dispatchers 4]
        [--dispatch-mode threads|processes]
    .venv/bin/python benchmarks/run_throughput.py --through-api [--runs 200] [--workers 1 2] [--api-workers 2]
    .venv/bin/python benchmarks/run_throughput.py --operations [--workers 1 2] [--rounds 4]

Embedded defaults (SQLite + embedded Redis) unless CANVAS_DATABASE_URL / CANVAS_REDIS_URL are set.

For each worker count and round, for raw RQ and for the platform alike (their order alternating between rounds):

* pre-filled: every run is dispatched (by `--dispatchers` threads or processes) BEFORE the workers start; then the
  workers start and empty the queue. "dispatch rate" = runs / time the dispatchers took; "execution rate" = runs /
  (first run's start -> LAST run's finish): what the workers can execute, whatever the dispatch costs. With
  `--pre-filled-release ready` (the default) the queue's jobs are set aside while the workers boot, and put back in
  one step (a RENAME, which wakes every worker waiting on the queue) once each worker waits on it idle, as a
  backlog meets long-running workers (a scheduler's batch, Redis back after an outage); with `boot` the workers
  boot onto the backlog, and their boot times' spread (tens to hundreds of ms apart for the platform's workers, on
  a burst of about a second) counts against their rate.
* concurrent: with the workers running, `--dispatchers` threads (or processes) dispatch the runs; the same two rates.
  An execution rate close to the dispatch rate means the dispatch, not the workers, set the pace.
* start latency: `--probes` runs one at a time, each dispatched when the previous one has finished:
  enqueue -> (first block) start without a backlog, p50 and p99.
* CPU per run, over the concurrent burst: the workers' (from /proc, with a forking worker's reaped children) and the
  dispatchers' (this process's CPU time while its threads dispatch; not measured with `--dispatch-mode processes`).
  Their sum is what a run costs the machine's cores, Redis and the database aside: when the workers and the
  dispatchers share the cores, its ratio to raw RQ's bounds the concurrent execution rate's ratio.

A platform run is dispatched as the API does it (`canvas.queueing.dispatch.dispatch`: the run row, then the RQ job),
one workflow per run (two runs of one workflow cannot be active at once). A raw-RQ job records its start and finish
over one Redis connection per worker process (benchmarks/rq_noop.py); RQ keeps it when it is done as long as a run's
job (canvas.queueing.dispatch.JOB_RESULT_TTL_SECONDS), which decides RQ's work after a job. The table gives min /
median over the rounds of every figure and of every ratio (ratios are taken within a round). "spread" is the time
between the first starts of the first and of the last worker in a pre-filled burst: how far apart the workers took
to the released backlog (`ready`), or how far apart they finished booting (`boot`).

--operations measures the platform alone, its workers with metrics off and text lines, then with metrics on and
JSON lines, at CANVAS_LOG_LEVEL (INFO unless set): what the operating features cost (issue 19's goal: 0.9 or more).

--through-api starts a real `canvas up` (its API, one worker, the scheduler) plus `--workers - 1` more
`canvas worker`s on this platform's database and Redis, and sends `POST /api/RunWorkflow` from `--dispatchers` client
threads (runs/s the API accepted; execution rate first start -> last finish), then `--probes` runs one at a time:
request sent -> first block start, and creation (date_queued) -> start. The workflows are written to the database
directly, as the other modes do; the org and its keys are made as the harness does.

Every process this starts leads a process group of its own, killed on every way out (benchmarks/_harness.spawn).
Goals (issue 5): runs/s >= 0.5 of raw RQ's; enqueue->block-start p50 and p99 within 2x raw RQ's.
"""
from __future__ import annotations

import argparse
import http.client
import itertools
import json
import math
import multiprocessing
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parent))  # _harness: it puts the project on the path too

import rq_noop  # noqa: E402
from _harness import (  # noqa: E402
    ROOT,
    InProcessPlatform,
    cpu_note,
    free_port,
    log_tail,
    percentile,
    spawn,
    stop_processes,
    wait_until_ready,
)
from redis import Redis  # noqa: E402
from rq import Queue, Worker  # noqa: E402
from rq.worker import WorkerStatus  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

from canvas.queueing.dispatch import JOB_RESULT_TTL_SECONDS  # noqa: E402 - raw jobs are kept as long as a run's
from canvas.queueing.keys import RUN_QUEUE  # noqa: E402
from canvas.settings import redis_url  # noqa: E402

RQ_WORKER_CLASSES = {"simple": "rq.worker.SimpleWorker", "fork": "rq.worker.Worker"}
BASELINE_QUEUE = "bench-raw-rq"
BURST_TIMEOUT_SECONDS = 900
T = TypeVar("T")


class Environment(InProcessPlatform):
    """The platform (embedded defaults unless configured) with one account to run workflows as."""

    def __init__(self):
        super().__init__("canvas-bench-runs-", CANVAS_LOG_LEVEL=os.environ.get("CANVAS_LOG_LEVEL", "WARNING"))
        self.organization = self.create_organization()
        self.account_id = self.organization.account_id
        self.log_dir = Path(self.tmp.name) / "bench-logs"
        self.log_dir.mkdir(exist_ok=True)

    def workflows(self, count: int) -> list:
        from canvas.models import Account, Workflow

        chain = [{"uniqueBlockId": str(uuid.uuid4()), "blockName": "No-op", "block": "noop", "application": None,
                  "variables": {}}]
        with self.services.db.transaction() as session:
            account = session.get(Account, self.account_id)
            rows = [Workflow(account_id=account.id, organization_id=account.organization_id, name=f"bench {n}",
                             chain=chain, chain_overrides=[]) for n in range(count)]
            session.add_all(rows)
        return rows

    def env(self, **extra: str) -> dict:
        # CANVAS_LOG_LEVEL=INFO CANVAS_LOG_FORMAT=json measures the cost of JSON run lines (docs/logging.md);
        # CANVAS_METRICS_ENABLED=false the cost of metrics (docs/metrics.md).
        settings = {"CANVAS_LOG_LEVEL": os.environ.get("CANVAS_LOG_LEVEL", "WARNING"),
                    "CANVAS_LOG_FORMAT": os.environ.get("CANVAS_LOG_FORMAT", "text"),
                    "CANVAS_METRICS_ENABLED": os.environ.get("CANVAS_METRICS_ENABLED", "true")}
        return self.child_env(**{**settings, **extra}, BENCH_REDIS_URL=redis_url(self.settings),
                              PYTHONPATH=str(ROOT / "benchmarks"))

    @property
    def database(self) -> str:
        return "PostgreSQL" if "postgresql" in self.settings["DATABASE_URL"] else "SQLite (WAL)"


# --- processes ---------------------------------------------------------------------------------------------------

_log_numbers = itertools.count(1)


def start(command: list[str], env: dict, count: int, log_dir: Path | None = None) -> list[subprocess.Popen]:
    """`count` processes of `command`, each in a process group of its own (killed however the benchmark ends); their
    output goes to numbered files under `log_dir`, if given."""
    name = "rq-worker" if "rq.cli" in command else f"canvas-{command[3]}"
    return [spawn(command, env, log_dir / f"{name}-{next(_log_numbers)}.log" if log_dir else None)
            for _ in range(count)]


def start_on_backlog(connection: Redis, queue_name: str, release: str, command: list[str], env: dict, count: int,
                     log_dir: Path | None = None) -> list[subprocess.Popen]:
    """The workers of a pre-filled burst (see the module's doc): with release "ready", the queue's jobs are set
    aside until every worker waits on the queue idle (RQ's own registry says so), then put back at once."""
    if release == "boot":
        return start(command, env, count, log_dir)
    queue_key = Queue(queue_name, connection=connection).key
    held_key = held_aside(queue_key)
    connection.rename(queue_key, held_key)
    processes = start(command, env, count, log_dir)
    try:
        pids = {process.pid for process in processes}
        _wait(lambda: pids <= idle_workers(connection, queue_name), processes, 0.02, f"{count} workers idle", 120)
    except BaseException:
        stop(processes)
        raise
    finally:
        connection.rename(held_key, queue_key)
    return processes


def held_aside(queue_key: str) -> str:
    """Where a pre-filled queue's jobs wait while the workers boot."""
    return f"{queue_key}:held"


def idle_workers(connection: Redis, queue_name: str) -> set[int]:
    """The pids of the workers RQ has registered on the queue that wait on it for a job."""
    return {worker.pid for worker in Worker.all(connection=connection, queue=Queue(queue_name, connection=connection))
            if worker.get_state() == WorkerStatus.IDLE}


def stop(processes: list[subprocess.Popen]) -> None:
    stop_processes(processes, grace=30)


def worker_cpu_seconds(processes: Sequence[subprocess.Popen]) -> float:
    """The CPU time (user + system, with reaped children: a fork worker's work horses) the processes have used, from
    /proc; NaN where there is none. Unlike a rate, it hardly moves with what else the machine is doing, so it shows
    what a setting costs the workers (metrics, JSON log lines) through the noise of a shared machine."""
    total = 0.0
    for process in processes:
        try:
            fields = Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return math.nan
        total += sum(int(value) for value in fields[11:15]) / os.sysconf("SC_CLK_TCK")  # utime stime cutime cstime
    return total


def with_cpu(call: Callable[[], T]) -> tuple[T, float]:
    """What `call` returns, and the CPU time this process (all its threads) spent meanwhile."""
    began = time.process_time()
    result = call()
    return result, time.process_time() - began


def _check_alive(processes: Sequence[subprocess.Popen]) -> None:
    for process in processes:
        if process.poll() is not None:
            raise RuntimeError(f"{' '.join(map(str, process.args[2:]))} exited with {process.returncode} during "
                               f"the measurement{log_tail(process)}")


def _wait(done: Callable[[], bool], processes: Sequence[subprocess.Popen], poll: float,
          what: str, timeout: float = BURST_TIMEOUT_SECONDS) -> None:
    deadline = time.time() + timeout
    while not done():
        if time.time() > deadline:
            raise RuntimeError(f"{what} not done within {timeout:.0f} s")
        _check_alive(processes)
        time.sleep(poll)


# --- figures -----------------------------------------------------------------------------------------------------

@dataclass
class Burst:
    """One burst of runs: when they were dispatched, started and finished (epoch seconds), and by which worker."""

    dispatched: int
    dispatch_seconds: float
    starts: list[float]
    finishes: list[float]
    workers: list[str]
    succeeded: int
    worker_cpu_seconds: float = math.nan  # the workers' CPU time over the burst (concurrent bursts, Linux)
    dispatch_cpu_seconds: float = math.nan  # the dispatcher threads' CPU time (concurrent bursts, threads)

    @property
    def dispatch_rate(self) -> float:
        return self.dispatched / self.dispatch_seconds

    @property
    def execution_rate(self) -> float:
        """Runs finished per second from the first start to the LAST FINISH."""
        return len(self.finishes) / (max(self.finishes) - min(self.starts))

    @property
    def spread(self) -> float:
        """Seconds between the first start of the first worker and that of the last worker that ran any."""
        first: dict[str, float] = {}
        for worker, started in zip(self.workers, self.starts):
            first[worker] = min(started, first.get(worker, started))
        return max(first.values()) - min(first.values())

    @property
    def active_workers(self) -> int:
        return len(set(self.workers))


@dataclass
class Figures:
    prefilled: Burst
    concurrent: Burst
    latencies_ms: list[float]
    values: dict[str, float] = field(init=False)

    def __post_init__(self) -> None:
        self.values = {"prefilled_dispatch": self.prefilled.dispatch_rate,
                       "prefilled_execution": self.prefilled.execution_rate,
                       "concurrent_dispatch": self.concurrent.dispatch_rate,
                       "concurrent_execution": self.concurrent.execution_rate,
                       "p50": percentile(self.latencies_ms, 0.5), "p99": percentile(self.latencies_ms, 0.99),
                       "cpu_ms_per_run": self.concurrent.worker_cpu_seconds * 1000 / self.concurrent.dispatched,
                       "dispatch_cpu_ms_per_run": (self.concurrent.dispatch_cpu_seconds * 1000
                                                   / self.concurrent.dispatched)}
        self.values["total_cpu_ms_per_run"] = self.values["cpu_ms_per_run"] + self.values["dispatch_cpu_ms_per_run"]

    def line(self, label: str, unit: str) -> str:
        v, pre, con = self.values, self.prefilled, self.concurrent
        return (f"  {label:<7} pre-filled: dispatch {v['prefilled_dispatch']:7.1f}/s, execution "
                f"{v['prefilled_execution']:7.1f} {unit}/s (spread {pre.spread * 1000:4.0f} ms, "
                f"{pre.active_workers} workers ran)  concurrent: dispatch {v['concurrent_dispatch']:7.1f}/s, "
                f"execution {v['concurrent_execution']:7.1f}/s  latency p50 {v['p50']:6.1f} ms p99 {v['p99']:6.1f} ms"
                f"  ({pre.succeeded + con.succeeded}/{pre.dispatched + con.dispatched} ok)")


# --- raw RQ --------------------------------------------------------------------------------------------------------

def measure_raw_rq(environment: Environment, runs: int, probes: int, worker_class: str, workers: int,
                   dispatchers: int, release: str = "ready") -> Figures:
    url = redis_url(environment.settings)
    connection = Redis.from_url(url)
    queue = Queue(BASELINE_QUEUE, connection=connection)
    queue.empty()
    connection.delete(rq_noop.RESULTS_KEY)
    command = [sys.executable, "-m", "rq.cli", "worker", "-w", RQ_WORKER_CLASSES[worker_class], "--url", url,
               "--quiet", BASELINE_QUEUE]
    dispatch_seconds = _enqueue_raw(url, runs, dispatchers)  # (a) pre-filled: before any worker starts
    processes = start_on_backlog(connection, BASELINE_QUEUE, release, command, environment.env(), workers,
                                 environment.log_dir)
    try:
        prefilled = _raw_burst(connection, processes, runs, dispatch_seconds)
        cpu_before = worker_cpu_seconds(processes)
        dispatch_seconds, dispatch_cpu = with_cpu(lambda: _enqueue_raw(url, runs, dispatchers))  # (b) concurrent
        concurrent = _raw_burst(connection, processes, runs, dispatch_seconds)
        concurrent.worker_cpu_seconds = worker_cpu_seconds(processes) - cpu_before
        concurrent.dispatch_cpu_seconds = dispatch_cpu
        latencies = _raw_latencies(connection, queue, processes, probes)
    finally:
        stop(processes)
    return Figures(prefilled, concurrent, latencies)


def _enqueue_raw(url: str, jobs: int, dispatchers: int) -> float:
    """`jobs` no-op jobs enqueued by `dispatchers` threads, each with a connection of its own: the seconds taken."""
    def enqueue(count: int) -> Callable[[], None]:
        queue = Queue(BASELINE_QUEUE, connection=Redis.from_url(url))
        return lambda: [queue.enqueue(rq_noop.record_start, time.time(), result_ttl=JOB_RESULT_TTL_SECONDS)
                        for _ in range(count)]

    return _concurrently([enqueue(len(range(n, jobs, dispatchers))) for n in range(dispatchers)])[0]


def _raw_burst(connection: Redis, processes: list, jobs: int, dispatch_seconds: float) -> Burst:
    _wait(lambda: connection.llen(rq_noop.RESULTS_KEY) >= jobs, processes, 0.02, f"{jobs} raw RQ jobs")
    records = _raw_records(connection)
    connection.delete(rq_noop.RESULTS_KEY)
    return Burst(jobs, dispatch_seconds, [started for _, started, _, _ in records],
                 [finished for *_, finished, _ in records], [worker for *_, worker in records], len(records))


def _raw_latencies(connection: Redis, queue: Queue, processes: list, probes: int) -> list[float]:
    """One job at a time, each enqueued when the previous has started: latency without a backlog."""
    for number in range(1, probes + 1):
        queue.enqueue(rq_noop.record_start, time.time(), result_ttl=JOB_RESULT_TTL_SECONDS)
        _wait(lambda: connection.llen(rq_noop.RESULTS_KEY) >= number, processes, 0.002, "a raw RQ probe", 60)  # noqa: B023
    latencies = [(started - enqueued) * 1000 for enqueued, started, _, _ in _raw_records(connection)]
    connection.delete(rq_noop.RESULTS_KEY)
    return latencies


def _raw_records(connection: Redis) -> list[tuple[float, float, float, str]]:
    records = []
    for item in connection.lrange(rq_noop.RESULTS_KEY, 0, -1):
        enqueued, started, finished, worker = item.decode().split(",", 3)
        records.append((float(enqueued), float(started), float(finished), worker))
    return records


# --- the platform ------------------------------------------------------------------------------------------------

def measure_canvas(environment: Environment, runs: int, probes: int, worker_class: str, workers: int,
                   dispatchers: int, dispatch_mode: str = "threads", settings: dict | None = None,
                   release: str = "ready") -> Figures:
    """``settings``: CANVAS_* variables of the workers (over the benchmark's own)."""
    command = [sys.executable, "-m", "canvas", "worker", "--worker-class", worker_class]
    rows = environment.workflows(runs)
    dispatch_seconds, run_ids = dispatch_all(environment, rows, dispatchers, dispatch_mode)  # (a) pre-filled
    processes = start_on_backlog(environment.services.redis, RUN_QUEUE, release, command,
                                 environment.env(**(settings or {})), workers, environment.log_dir)
    try:
        prefilled = _canvas_burst(environment, processes, run_ids, dispatch_seconds)
        rows = environment.workflows(runs)
        cpu_before = worker_cpu_seconds(processes)
        (dispatch_seconds, run_ids), dispatch_cpu = with_cpu(  # (b) concurrent
            lambda: dispatch_all(environment, rows, dispatchers, dispatch_mode))
        concurrent = _canvas_burst(environment, processes, run_ids, dispatch_seconds)
        concurrent.worker_cpu_seconds = worker_cpu_seconds(processes) - cpu_before
        if dispatch_mode == "threads":  # processes: their CPU is not this process's
            concurrent.dispatch_cpu_seconds = dispatch_cpu
        latencies = _canvas_latencies(environment, probes, processes)
    finally:
        stop(processes)
    return Figures(prefilled, concurrent, latencies)


def _dispatch(environment: Environment, workflow) -> uuid.UUID:  # noqa: ANN001
    return dispatch_one(environment.services, workflow.id, environment.account_id)


def dispatch_one(services, workflow_id: uuid.UUID, account_id: uuid.UUID) -> uuid.UUID:  # noqa: ANN001
    """One run of the workflow, dispatched as the API's RunWorkflow does once it has read the workflow: the workflow
    read in a session of its own, then canvas.queueing.dispatch. (Not merging the caller's detached row into the
    session: that left the session with state to flush at the commit, which the API does not have: 2.0 -> 1.6 ms
    of CPU per dispatch, medians of 4 rounds of 1,000, SQLite.)"""
    from canvas.models import Workflow
    from canvas.queueing.dispatch import RunRequest, dispatch

    with services.db.sessions() as session:
        workflow = session.get(Workflow, workflow_id)
        return dispatch(session, services.redis, workflow, RunRequest(workflow.id, account_id)).id


def dispatch_all(environment: Environment, workflows: list, dispatchers: int,
                 mode: str = "threads") -> tuple[float, list[uuid.UUID]]:
    """One run of each workflow, dispatched by `dispatchers` threads of this process (sharing its engine and Redis
    client, as an API process's threads do), or by as many processes (each with its own app, started and ready
    before the clock starts). Returns the seconds from the first dispatch to the last, and the run ids."""
    shares = [workflows[n::dispatchers] for n in range(dispatchers)]
    if mode == "processes":
        return _dispatch_in_processes(environment, [[str(row.id) for row in share] for share in shares])
    seconds, results = _concurrently([lambda share=share: [_dispatch(environment, row) for row in share]
                                      for share in shares])
    return seconds, [run_id for ids in results for run_id in ids]


def _concurrently(jobs: list[Callable[[], object]]) -> tuple[float, list]:
    """Run each job on a thread of its own, all let go at once: (seconds until the last ended, their results)."""
    results: list = [None] * len(jobs)
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(jobs) + 1)

    def run(index: int) -> None:
        barrier.wait()
        try:
            results[index] = jobs[index]()
        except BaseException as error:  # noqa: BLE001 - handed to the main thread
            errors.append(error)

    threads = [threading.Thread(target=run, args=(index,), daemon=True) for index in range(len(jobs))]
    for thread in threads:
        thread.start()
    barrier.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - began
    if errors:
        raise errors[0]
    return seconds, results


def _dispatch_in_processes(environment: Environment, shares: list[list[str]]) -> tuple[float, list[uuid.UUID]]:
    context = multiprocessing.get_context("spawn")  # a fresh interpreter: no engine or Redis client inherited
    barrier, results = context.Barrier(len(shares) + 1), context.Queue()
    processes = [context.Process(target=_dispatcher_process, daemon=True,
                                 args=(share, str(environment.account_id), barrier, results)) for share in shares]
    for process in processes:
        process.start()
    try:
        try:
            barrier.wait(timeout=120)  # every dispatcher has its app: the clock starts now
        except threading.BrokenBarrierError:
            raise RuntimeError(f"a dispatcher process did not start: {results.get(timeout=5)}") from None
        began = time.perf_counter()
        answers = [results.get(timeout=BURST_TIMEOUT_SECONDS) for _ in processes]
        seconds = time.perf_counter() - began
    finally:
        for process in processes:
            process.join(10)
            if process.is_alive():
                process.kill()
                process.join()
    failed = [answer for answer in answers if isinstance(answer, str)]
    if failed:
        raise RuntimeError(f"a dispatcher process failed: {failed[0]}")
    return seconds, [uuid.UUID(run_id) for answer in answers for run_id in answer]


def _dispatcher_process(workflow_ids: list[str], account_id: str, barrier, results) -> None:  # noqa: ANN001
    from canvas import create_app

    try:
        services = create_app().extensions["canvas"]
    except BaseException as error:  # noqa: BLE001 - reported to the parent
        barrier.abort()
        results.put(f"{error.__class__.__name__}: {error}")
        return
    barrier.wait()
    try:
        results.put([str(dispatch_one(services, uuid.UUID(workflow_id), uuid.UUID(account_id)))
                     for workflow_id in workflow_ids])
    except BaseException as error:  # noqa: BLE001 - reported to the parent
        results.put(f"{error.__class__.__name__}: {error}")


def _canvas_burst(environment: Environment, processes: list, run_ids: list, dispatch_seconds: float) -> Burst:
    _wait_until_finished(environment, run_ids, processes=processes)
    rows = _run_rows(environment, run_ids)
    return Burst(len(run_ids), dispatch_seconds, [started.timestamp() for _, started, *_ in rows],
                 [finished.timestamp() for _, _, _, finished, *_ in rows], [worker for *_, worker in rows],
                 sum(1 for *_, status, _ in rows if status == "Succeeded"))


def _canvas_latencies(environment: Environment, probes: int, processes: list | None = None) -> list[float]:
    """One run at a time through the same dispatch the API uses: enqueue -> block start without a backlog."""
    run_ids = []
    for workflow in environment.workflows(probes):
        run_ids.append(_dispatch(environment, workflow))
        _wait_until_finished(environment, run_ids[-1:], poll=0.002, processes=processes)
    return [(block_started - queued).total_seconds() * 1000
            for queued, _, block_started, *_ in _run_rows(environment, run_ids)]


def _wait_until_finished(environment: Environment, run_ids: list, poll: float = 0.1,
                         processes: Sequence[subprocess.Popen] = ()) -> None:
    from canvas.models import WorkflowRun

    def finished() -> bool:
        with environment.services.db.sessions() as session:
            return session.scalar(select(WorkflowRun.id).where(WorkflowRun.id.in_(run_ids),
                                                               WorkflowRun.status.in_(("Queued", "Running")))
                                  .limit(1)) is None

    _wait(finished, processes or (), poll, f"{len(run_ids)} runs")


def _run_rows(environment: Environment, run_ids: list) -> list:
    """(date_queued, run date_started, first block's date_started, date_finished, status, worker_name) per run."""
    from canvas.models import BlockRun, WorkflowRun

    first_block = (select(BlockRun.run_id, func.min(BlockRun.date_started).label("started"))
                   .where(BlockRun.run_id.in_(run_ids)).group_by(BlockRun.run_id).subquery())
    with environment.services.db.sessions() as session:
        return list(session.execute(
            select(WorkflowRun.date_queued, WorkflowRun.date_started, first_block.c.started,
                   WorkflowRun.date_finished, WorkflowRun.status, WorkflowRun.worker_name)
            .join(first_block, first_block.c.run_id == WorkflowRun.id)
            .where(WorkflowRun.id.in_(run_ids))))


# --- the report ----------------------------------------------------------------------------------------------------

def min_median(values: list[float], digits: int = 1) -> str:
    return f"{min(values):.{digits}f} / {statistics.median(values):.{digits}f}"


ROWS = [("prefilled_dispatch", "pre-filled: dispatch rate (runs/s)"),
        ("prefilled_execution", "pre-filled: execution rate (runs/s)"),
        ("concurrent_dispatch", "concurrent: dispatch rate (runs/s)"),
        ("concurrent_execution", "concurrent: execution rate (runs/s)"),
        ("p50", "start latency p50 (ms)"),
        ("p99", "start latency p99 (ms)"),
        ("cpu_ms_per_run", "concurrent: worker CPU per run (ms)"),
        ("dispatch_cpu_ms_per_run", "concurrent: dispatch CPU per run (ms)"),
        ("total_cpu_ms_per_run", "concurrent: both, CPU per run (ms)")]


def report(results: dict[int, dict[str, list[Figures]]], rounds: int,
           names: tuple[str, str, str, str] = ("raw", "canvas", "raw RQ", "canvas")) -> None:
    """``names``: the keys of the baseline and of the subject in ``results``, then their headings."""
    baseline, subject, baseline_heading, subject_heading = names
    for workers, by_system in results.items():
        raw, ours = by_system[baseline], by_system[subject]
        print(f"\n{workers} worker(s), min / median over {rounds} rounds (ratios taken within each round)")
        print(f"  {'figure':<38} {baseline_heading:>17} {subject_heading:>17} "
              f"{f'{subject_heading} / {baseline_heading}':>17}")
        for key, label in ROWS:
            ratios = [o.values[key] / r.values[key] for o, r in zip(ours, raw)]
            print(f"  {label:<38} {min_median([r.values[key] for r in raw]):>17} "
                  f"{min_median([o.values[key] for o in ours]):>17} {min_median(ratios, 3):>17}")
        spreads = [f.prefilled.spread * 1000 for f in ours], [f.prefilled.spread * 1000 for f in raw]
        print(f"  {'pre-filled: spread of worker starts (ms)':<38} {min_median(spreads[1], 0):>17} "
              f"{min_median(spreads[0], 0):>17}")
    counts = sorted(results)
    if len(counts) >= 2:
        low, high = counts[0], counts[-1]
        print(f"\nscaling {low} -> {high} workers (execution rate with {high} / with {low}, per round): min / median")
        for key in ("prefilled_execution", "concurrent_execution"):
            line = []
            for system, heading in ((baseline, baseline_heading), (subject, subject_heading)):
                ratios = [h.values[key] / lo.values[key]
                          for h, lo in zip(results[high][system], results[low][system])]
                line.append(f"{heading} {min_median(ratios, 2)}")
            print(f"  {key.replace('_', ' '):<22} {line[0]:<24} {line[1]}")


def in_rounds(environment: Environment, args: argparse.Namespace, systems: tuple[str, str],
              measure: Callable[[str, int], Figures]) -> dict[int, dict[str, list[Figures]]]:
    """`measure(system, workers)` for each round and worker count, the two systems' order alternating between
    rounds; each figure printed as it comes. The environment is closed at the end, however it ends."""
    results: dict[int, dict[str, list[Figures]]] = {workers: {system: [] for system in systems}
                                                    for workers in args.workers}
    try:
        for round_number in range(1, args.rounds + 1):
            for workers in args.workers:
                print(f"round {round_number}, {workers} worker(s):")
                for system in systems if round_number % 2 else systems[::-1]:
                    figures = measure(system, workers)
                    results[workers][system].append(figures)
                    print(figures.line(system, "jobs" if system == "raw" else "runs"), flush=True)
    finally:
        environment.close()
    return results


def worker_settings(args: argparse.Namespace) -> dict:
    return {"CANVAS_WORKER_RUNS_PER_CHILD": str(args.runs_per_child)}


def workers_note(args: argparse.Namespace) -> str:
    per_child = f" ({args.runs_per_child} runs per child)" if args.worker_class == "fork" else ""
    return f"{args.worker_class} workers{per_child}"


def main_in_process(args: argparse.Namespace) -> None:
    environment = Environment()
    print(f"{cpu_note()}; {environment.database}; Redis {redis_url(environment.settings)[:40]}; "
          f"{workers_note(args)}; {args.runs} runs (raw RQ: {args.raw_runs} jobs) per burst, "
          f"{args.dispatchers} dispatcher {args.dispatch_mode}, {args.probes} sequential latency probes, "
          f"{args.rounds} rounds; pre-filled backlog released: {args.pre_filled_release}")

    def measure(system: str, workers: int) -> Figures:
        if system == "raw":
            return measure_raw_rq(environment, args.raw_runs, args.probes, args.worker_class, workers,
                                  args.dispatchers, args.pre_filled_release)
        return measure_canvas(environment, args.runs, args.probes, args.worker_class, workers, args.dispatchers,
                              args.dispatch_mode, worker_settings(args), args.pre_filled_release)

    report(in_rounds(environment, args, ("raw", "canvas"), measure), args.rounds)
    print("\ngoals (issues 5, 18): execution rate ratio >= 0.7; latency ratios <= 2")


# --- what operating features cost the workers ------------------------------------------------------------------

OPERATIONS = {"off": {"CANVAS_METRICS_ENABLED": "false", "CANVAS_LOG_FORMAT": "text"},
              "on": {"CANVAS_METRICS_ENABLED": "true", "CANVAS_LOG_FORMAT": "json"}}


def main_operations(args: argparse.Namespace) -> None:
    """The platform's workers with metrics off and text lines, then with metrics on and JSON lines (their order
    alternating between rounds), at CANVAS_LOG_LEVEL (INFO unless set): the same bursts, ratios within each round.
    Rate limits are the API's (benchmarks/api_auth_operations.py)."""
    os.environ.setdefault("CANVAS_LOG_LEVEL", "INFO")
    environment = Environment()
    print(f"{cpu_note()}; {environment.database}; Redis {redis_url(environment.settings)[:40]}; "
          f"{workers_note(args)}; {args.runs} runs per burst, {args.dispatchers} dispatcher "
          f"{args.dispatch_mode}, {args.probes} latency probes, {args.rounds} rounds; "
          f"log level {os.environ['CANVAS_LOG_LEVEL']}; "
          f"off = {OPERATIONS['off']}, on = {OPERATIONS['on']}")

    def measure(mode: str, workers: int) -> Figures:
        return measure_canvas(environment, args.runs, args.probes, args.worker_class, workers, args.dispatchers,
                              args.dispatch_mode, {**worker_settings(args), **OPERATIONS[mode]},
                              args.pre_filled_release)

    report(in_rounds(environment, args, ("off", "on"), measure), args.rounds, ("off", "on", "off", "on"))
    print("\ngoal (issue 19): execution rates with them on at least 0.9 of off")


# --- through the API ---------------------------------------------------------------------------------------------

@dataclass
class ApiFigures:
    accepted_rate: float  # runs/s the API accepted, from the first request to the last answer
    execution_rate: float  # runs / (first start -> last finish)
    end_to_end_rate: float  # runs / (first request -> last finish)
    http_p50: float
    http_p99: float
    request_to_start_p50: float
    request_to_start_p99: float
    queued_to_start_p50: float
    queued_to_start_p99: float
    succeeded: int
    runs: int


class ApiClient:
    def __init__(self, port: int, consumer: str, secret: str):
        self.port = port
        self.headers = {"Consumer": consumer, "SecretKey": secret, "Content-Type": "application/json"}

    def run_workflow(self, workflow_id: uuid.UUID) -> tuple[uuid.UUID, float, float]:
        """POST /api/RunWorkflow: (run id, epoch seconds when sent, seconds until answered)."""
        sent, began = time.time(), time.perf_counter()
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            connection.request("POST", "/api/RunWorkflow", json.dumps({"workflowId": str(workflow_id)}),
                               self.headers)
            response = connection.getresponse()
            body = response.read()
        finally:
            connection.close()
        if response.status != 202:
            raise RuntimeError(f"RunWorkflow answered {response.status}: {body[:300]!r}")
        return uuid.UUID(response.getheader("Location").rsplit("/", 1)[1]), sent, time.perf_counter() - began


def measure_through_api(environment: Environment, client: ApiClient, processes: list, runs: int, probes: int,
                        dispatchers: int) -> ApiFigures:
    rows = environment.workflows(runs)
    shares = [rows[n::dispatchers] for n in range(dispatchers)]
    seconds, answers = _concurrently([lambda share=share: [client.run_workflow(row.id) for row in share]
                                      for share in shares])
    sent = [answer for share in answers for answer in share]
    run_ids = [run_id for run_id, _, _ in sent]
    _wait_until_finished(environment, run_ids, processes=processes)
    burst = _run_rows(environment, run_ids)
    first_request = min(at for _, at, _ in sent)
    last_finish = max(finished.timestamp() for _, _, _, finished, *_ in burst)
    first_start = min(started.timestamp() for _, started, *_ in burst)
    http_ms = [took * 1000 for *_, took in sent]

    probe_ids, sent_at = [], {}
    for workflow in environment.workflows(probes):
        run_id, at, _ = client.run_workflow(workflow.id)
        probe_ids.append(run_id)
        sent_at[run_id] = at
        _wait_until_finished(environment, [run_id], poll=0.002, processes=processes)
    request_ms, queued_ms = [], []
    for run_id in probe_ids:
        (queued, _, block_started, *_), = _run_rows(environment, [run_id])
        request_ms.append((block_started.timestamp() - sent_at[run_id]) * 1000)
        queued_ms.append((block_started - queued).total_seconds() * 1000)
    succeeded = sum(1 for *_, status, _ in burst if status == "Succeeded")
    return ApiFigures(len(sent) / seconds, len(burst) / (last_finish - first_start),
                      len(burst) / (last_finish - first_request), percentile(http_ms, 0.5),
                      percentile(http_ms, 0.99), percentile(request_ms, 0.5), percentile(request_ms, 0.99),
                      percentile(queued_ms, 0.5), percentile(queued_ms, 0.99), succeeded, len(burst))


def warm_up(environment: Environment, client: ApiClient, processes: list, runs: int) -> None:
    """A few runs through every part first: each gunicorn worker's and each `canvas worker`'s first requests and
    runs pay for imports and connections."""
    rows = environment.workflows(runs)
    _, answers = _concurrently([lambda row=row: client.run_workflow(row.id) for row in rows])
    _wait_until_finished(environment, [run_id for run_id, _, _ in answers], processes=processes)


def _with_workers(workers: int) -> Callable[[object], bool]:
    """/healthz's answer once `workers` workers have registered (or more: a killed worker's registration expires
    only after RQ's worker TTL)."""
    return lambda health: isinstance(health, dict) and health.get("workers", 0) >= workers


def main_through_api(args: argparse.Namespace) -> None:
    environment = Environment()
    organization = environment.organization
    print(f"{cpu_note()}; {environment.database}; Redis {redis_url(environment.settings)[:40]}; through the API: "
          f"`canvas up` ({args.api_workers} gunicorn workers) + more `canvas worker`s, {args.worker_class} workers; "
          f"{args.runs} runs per burst from {args.dispatchers} client threads, {args.probes} probes one at a time, "
          f"{args.rounds} rounds")
    results: dict[int, list[ApiFigures]] = {}
    try:
        for workers in args.workers:
            port = free_port()
            env = environment.env(CANVAS_API_WORKERS=str(args.api_workers), CANVAS_WORKER_CLASS=args.worker_class)
            up_log = environment.log_dir / f"up-{workers}.log"
            processes = [spawn([sys.executable, "-m", "canvas", "up", "--port", str(port)], env, up_log)]
            try:
                processes += start([sys.executable, "-m", "canvas", "worker", "--worker-class", args.worker_class],
                                   env, workers - 1, environment.log_dir)
                wait_until_ready(f"http://127.0.0.1:{port}/healthz", processes[0], 180, up_log,
                                 ready=_with_workers(workers))
                client = ApiClient(port, organization.consumer, organization.secret_key)
                warm_up(environment, client, processes, 4 * args.api_workers)
                results[workers] = []
                for round_number in range(1, args.rounds + 1):
                    figures = measure_through_api(environment, client, processes, args.runs, args.probes,
                                                  args.dispatchers)
                    results[workers].append(figures)
                    print(f"  {workers} worker(s) round {round_number}: accepted {figures.accepted_rate:6.1f} runs/s, "
                          f"execution {figures.execution_rate:6.1f} runs/s, end to end {figures.end_to_end_rate:6.1f}"
                          f" runs/s; RunWorkflow p50 {figures.http_p50:5.1f} ms p99 {figures.http_p99:6.1f} ms; "
                          f"request->start p50 {figures.request_to_start_p50:5.1f} ms p99 "
                          f"{figures.request_to_start_p99:6.1f} ms ({figures.succeeded}/{figures.runs} ok)",
                          flush=True)
            finally:
                stop_processes(processes, grace=60)
    finally:
        environment.close()
    rows = [("accepted_rate", "RunWorkflow accepted (runs/s)"), ("execution_rate", "execution rate (runs/s)"),
            ("end_to_end_rate", "first request -> last finish (runs/s)"),
            ("http_p50", "RunWorkflow answer p50 in burst (ms)"), ("http_p99", "RunWorkflow answer p99 in burst (ms)"),
            ("request_to_start_p50", "request -> start p50, one at a time (ms)"),
            ("request_to_start_p99", "request -> start p99, one at a time (ms)"),
            ("queued_to_start_p50", "creation -> start p50, one at a time (ms)"),
            ("queued_to_start_p99", "creation -> start p99, one at a time (ms)")]
    print(f"\nthrough the API, min / median over {args.rounds} rounds")
    print(f"  {'figure':<42}" + "".join(f"{f'{w} worker(s)':>18}" for w in results))
    for key, label in rows:
        print(f"  {label:<42}" + "".join(f"{min_median([getattr(f, key) for f in figures]):>18}"
                                          for figures in results.values()))
    counts = sorted(results)
    if len(counts) >= 2:
        low, high = counts[0], counts[-1]
        ratios = [h.execution_rate / lo.execution_rate for h, lo in zip(results[high], results[low])]
        print(f"  scaling {low} -> {high} workers, execution rate: {min_median(ratios, 2)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=300, help="platform runs per burst (pre-filled, concurrent)")
    parser.add_argument("--raw-runs", type=int, default=None,
                        help="raw RQ jobs per burst (default 5 x --runs: a raw burst of --runs is over too soon "
                             "for its rate to mean much)")
    parser.add_argument("--probes", type=int, default=200,
                        help="sequential runs for the latency figures (p99 is the nearest rank: of fewer than 100 "
                             "probes, the slowest one)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds per figure (min and median are printed)")
    parser.add_argument("--worker-class", choices=["simple", "fork"], default="simple")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--runs-per-child", type=int, default=1,
                        help="fork: runs a platform worker's child serves (CANVAS_WORKER_RUNS_PER_CHILD; raw RQ's "
                             "forking worker forks for every job)")
    parser.add_argument("--dispatchers", type=int, default=4, help="concurrent dispatchers (or API client threads)")
    parser.add_argument("--dispatch-mode", choices=["threads", "processes"], default="threads",
                        help="platform dispatchers: threads of this process, or processes with an app each")
    parser.add_argument("--pre-filled-release", choices=["ready", "boot"], default="ready",
                        help="pre-filled bursts: the backlog released once every worker waits idle, or the workers "
                             "booting onto it")
    parser.add_argument("--through-api", action="store_true", help="drive `canvas up` through POST /api/RunWorkflow")
    parser.add_argument("--operations", action="store_true",
                        help="the platform alone, metrics + JSON lines on vs off (no raw RQ)")
    parser.add_argument("--api-workers", type=int, default=2, help="gunicorn workers of the API (--through-api)")
    args = parser.parse_args()
    args.raw_runs = args.raw_runs or 5 * args.runs
    if args.rounds < 1 or args.dispatchers < 1 or min(args.workers) < 1 or args.runs_per_child < 1:
        parser.error("--rounds, --dispatchers, --workers and --runs-per-child must be at least 1")
    if args.through_api and args.operations:
        parser.error("--through-api and --operations are two different measurements: choose one")
    (main_through_api if args.through_api else main_operations if args.operations else main_in_process)(args)


if __name__ == "__main__":
    main()
