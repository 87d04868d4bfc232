"""Runs/s and enqueue→block-start latency of one-block no-op workflows, next to raw RQ no-op jobs, with the same
worker class and worker count, in the same run.

    .venv/bin/python benchmarks/run_throughput.py [--runs 300] [--worker-class simple|fork] [--workers 1 2]

Embedded defaults (SQLite + embedded Redis) unless CANVAS_DATABASE_URL / CANVAS_REDIS_URL are set.
Goals (issue 5): runs/s >= 0.5 of raw RQ's; enqueue→block-start p50 and p99 within 2x raw RQ's.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # _harness: it puts the project on the path too

from redis import Redis  # noqa: E402
from rq import Queue  # noqa: E402
from sqlalchemy import select  # noqa: E402

import rq_noop  # noqa: E402
from _harness import ROOT, InProcessPlatform, percentile  # noqa: E402
from canvas.settings import redis_url  # noqa: E402

RQ_WORKER_CLASSES = {"simple": "rq.worker.SimpleWorker", "fork": "rq.worker.Worker"}
BASELINE_QUEUE = "bench-raw-rq"


class Environment(InProcessPlatform):
    """The platform (embedded defaults unless configured) with one account to run workflows as."""

    def __init__(self):
        super().__init__("canvas-bench-runs-", CANVAS_LOG_LEVEL=os.environ.get("CANVAS_LOG_LEVEL", "WARNING"))
        self.account_id = self.create_organization().account_id

    def workflows(self, count: int) -> list:
        from canvas.models import Workflow

        chain = [{"uniqueBlockId": str(uuid.uuid4()), "blockName": "No-op", "block": "noop", "application": None,
                  "variables": {}}]
        from canvas.models import Account

        with self.services.db.transaction() as session:
            account = session.get(Account, self.account_id)
            rows = [Workflow(account_id=account.id, organization_id=account.organization_id, name=f"bench {n}",
                             chain=chain, chain_overrides=[]) for n in range(count)]
            session.add_all(rows)
        return rows

    def env(self) -> dict:
        return self.child_env(CANVAS_LOG_LEVEL="WARNING", BENCH_REDIS_URL=redis_url(self.settings),
                              PYTHONPATH=str(ROOT / "benchmarks"))


def start(command: list[str], env: dict, count: int) -> list[subprocess.Popen]:
    return [subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for _ in range(count)]


def stop(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()


def measure_raw_rq(environment: Environment, runs: int, probes: int, worker_class: str, workers: int) -> dict:
    connection = Redis.from_url(redis_url(environment.settings))
    queue = Queue(BASELINE_QUEUE, connection=connection)
    queue.empty()
    command = [sys.executable, "-m", "rq.cli", "worker", "-w", RQ_WORKER_CLASSES[worker_class], "--url",
               redis_url(environment.settings), "-q", BASELINE_QUEUE]
    processes = start(command, environment.env(), workers)
    time.sleep(3)  # workers up and listening
    try:
        rate, done = _raw_burst(connection, queue, runs)
        latencies = _raw_latencies(connection, queue, probes)
    finally:
        stop(processes)
    return {"rate": rate, "p50": percentile(latencies, 0.5), "p99": percentile(latencies, 0.99), "done": done}


def _raw_burst(connection: Redis, queue: Queue, runs: int) -> tuple[float, int]:
    connection.delete(rq_noop.RESULTS_KEY)
    first_enqueue = time.time()
    for _ in range(runs):
        queue.enqueue(rq_noop.record_start, time.time(), result_ttl=0)
    _wait_for_results(connection, runs)
    pairs = _raw_pairs(connection)
    return len(pairs) / (max(started for _, started in pairs) - first_enqueue), len(pairs)


def _raw_latencies(connection: Redis, queue: Queue, probes: int) -> list[float]:
    """One job at a time, each enqueued when the previous has started: latency without a backlog."""
    connection.delete(rq_noop.RESULTS_KEY)
    for number in range(1, probes + 1):
        queue.enqueue(rq_noop.record_start, time.time(), result_ttl=0)
        _wait_for_results(connection, number)
    return [(started - enqueued) * 1000 for enqueued, started in _raw_pairs(connection)]


def _wait_for_results(connection: Redis, count: int) -> None:
    deadline = time.time() + 600
    while connection.llen(rq_noop.RESULTS_KEY) < count and time.time() < deadline:
        time.sleep(0.002)


def _raw_pairs(connection: Redis) -> list[tuple[float, float]]:
    return [tuple(map(float, item.decode().split(","))) for item in connection.lrange(rq_noop.RESULTS_KEY, 0, -1)]


def measure_canvas(environment: Environment, runs: int, probes: int, worker_class: str, workers: int) -> dict:
    command = [sys.executable, "-m", "canvas", "worker", "--worker-class", worker_class]
    processes = start(command, environment.env(), workers)
    time.sleep(4)
    try:
        rate, done = _canvas_burst(environment, runs)
        latencies = _canvas_latencies(environment, probes)
    finally:
        stop(processes)
    return {"rate": rate, "p50": percentile(latencies, 0.5), "p99": percentile(latencies, 0.99), "done": done}


def _dispatch(environment: Environment, workflow) -> uuid.UUID:  # noqa: ANN001
    from canvas.queueing.dispatch import RunRequest, dispatch

    services = environment.services
    with services.db.sessions() as session:
        workflow = session.merge(workflow)
        return dispatch(session, services.redis, workflow, RunRequest(workflow.id, environment.account_id)).id


def _canvas_burst(environment: Environment, runs: int) -> tuple[float, int]:
    rows = environment.workflows(runs)
    first_enqueue = time.time()
    run_ids = [_dispatch(environment, workflow) for workflow in rows]
    _wait_until_finished(environment, run_ids)
    timings = _timings(environment, run_ids)
    last_start = max(started for _, started, _ in timings).timestamp()
    return len(timings) / (last_start - first_enqueue), sum(1 for *_, status in timings if status == "Succeeded")


def _canvas_latencies(environment: Environment, probes: int) -> list[float]:
    """One run at a time through the same dispatch the API uses: enqueue -> block start without a backlog."""
    run_ids = []
    for workflow in environment.workflows(probes):
        run_ids.append(_dispatch(environment, workflow))
        _wait_until_finished(environment, run_ids[-1:], poll=0.002)
    return [(started - queued).total_seconds() * 1000 for queued, started, _ in _timings(environment, run_ids)]


def _wait_until_finished(environment: Environment, run_ids: list, poll: float = 0.1) -> None:
    from canvas.models import WorkflowRun

    deadline = time.time() + 900
    while time.time() < deadline:
        with environment.services.db.sessions() as session:
            busy = session.scalar(select(WorkflowRun.id).where(WorkflowRun.id.in_(run_ids),
                                                               WorkflowRun.status.in_(("Queued", "Running")))
                                  .limit(1))
        if busy is None:
            return
        time.sleep(poll)


def _timings(environment: Environment, run_ids: list) -> list:
    from canvas.models import BlockRun, WorkflowRun

    with environment.services.db.sessions() as session:
        return list(session.execute(select(WorkflowRun.date_queued, BlockRun.date_started, WorkflowRun.status)
                                    .join(BlockRun, BlockRun.run_id == WorkflowRun.id)
                                    .where(WorkflowRun.id.in_(run_ids))))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=300, help="runs in the throughput burst")
    parser.add_argument("--probes", type=int, default=60, help="sequential runs for the latency figures")
    parser.add_argument("--worker-class", choices=["simple", "fork"], default="simple")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    environment = Environment()
    database = "PostgreSQL" if "postgresql" in environment.settings["DATABASE_URL"] else "SQLite (WAL)"
    print(f"{os.cpu_count()} cores; {database}; Redis {redis_url(environment.settings)[:40]}; "
          f"{args.worker_class} workers; {args.runs} runs per burst, {args.probes} sequential latency probes")
    try:
        for workers in args.workers:
            raw = measure_raw_rq(environment, args.runs, args.probes, args.worker_class, workers)
            ours = measure_canvas(environment, args.runs, args.probes, args.worker_class, workers)
            print(f"\n{workers} worker(s):")
            print(f"  raw RQ no-op jobs : {raw['rate']:7.1f} jobs/s   start latency p50 {raw['p50']:6.1f} ms  "
                  f"p99 {raw['p99']:7.1f} ms  ({raw['done']} done)")
            print(f"  canvas no-op runs : {ours['rate']:7.1f} runs/s   start latency p50 {ours['p50']:6.1f} ms  "
                  f"p99 {ours['p99']:7.1f} ms  ({ours['done']} succeeded)")
            print(f"  ratios            : throughput {ours['rate'] / raw['rate']:.2f} (goal >= 0.5), "
                  f"p50 {ours['p50'] / raw['p50']:.2f}x, p99 {ours['p99'] / raw['p99']:.2f}x (goal <= 2x)")
    finally:
        environment.close()


if __name__ == "__main__":
    main()
