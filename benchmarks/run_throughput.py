"""Runs/s and enqueue→block-start latency of one-block no-op workflows, next to raw RQ no-op jobs, with the same
worker class and worker count, in the same run.

    .venv/bin/python benchmarks/run_throughput.py [--runs 300] [--worker-class simple|fork] [--workers 1 2]

Embedded defaults (SQLite + embedded Redis) unless CANVAS_DATABASE_URL / CANVAS_REDIS_URL are set.
Goals (issue 5): runs/s >= 0.5 of raw RQ's; enqueue→block-start p50 and p99 within 2x raw RQ's.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from redis import Redis  # noqa: E402
from rq import Queue  # noqa: E402
from sqlalchemy import select  # noqa: E402

import rq_noop  # noqa: E402
from canvas.settings import load_settings, redis_url  # noqa: E402

RQ_WORKER_CLASSES = {"simple": "rq.worker.SimpleWorker", "fork": "rq.worker.Worker"}
BASELINE_QUEUE = "bench-raw-rq"


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


class Environment:
    """A data dir with a migrated database, the catalog, an embedded Redis (unless configured), one account."""

    def __init__(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="canvas-bench-runs-")
        os.environ["CANVAS_DATA_DIR"] = self.tmp.name
        os.environ.setdefault("CANVAS_LOG_LEVEL", "WARNING")
        from canvas.queueing.embedded import ensure_redis

        self.settings = load_settings()
        self.embedded = ensure_redis(self.settings)
        self.settings = load_settings()
        from canvas import create_app, migrate
        from canvas.catalog.loader import sync_catalog_files

        self.app = create_app()
        self.services = self.app.extensions["canvas"]
        migrate.upgrade(self.services.db.engine)
        sync_catalog_files(self.services.db, self.settings)
        self.account_id = self._account()

    def _account(self) -> uuid.UUID:
        from canvas.accounts import service

        with self.services.db.transaction() as session:
            return service.create_organization(session, "Bench", f"{uuid.uuid4().hex[:8]}@bench.test").account_id

    def workflows(self, count: int) -> list:
        from canvas.catalog.definition import definition_from_json
        from canvas.models import Workflow

        chain = [{"uniqueBlockId": str(uuid.uuid4()), "blockName": "No-op", "block": "noop", "application": None,
                  "variables": {}}]
        with self.services.db.transaction() as session:
            from canvas.models import Account

            account = session.get(Account, self.account_id)
            rows = [Workflow(account_id=account.id, organization_id=account.organization_id, name=f"bench {n}",
                             chain=chain, chain_overrides=[]) for n in range(count)]
            session.add_all(rows)
        del definition_from_json
        return rows

    def env(self) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CANVAS_")}
        env.update({"CANVAS_DATA_DIR": self.tmp.name, "CANVAS_DATABASE_URL": self.settings["DATABASE_URL"],
                    "CANVAS_REDIS_URL": redis_url(self.settings), "CANVAS_LOG_LEVEL": "WARNING",
                    "BENCH_REDIS_URL": redis_url(self.settings), "PYTHONPATH": str(ROOT / "benchmarks")})
        return env

    def close(self) -> None:
        self.services.close()
        if self.embedded is not None:
            self.embedded.stop()
        self.tmp.cleanup()


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


def measure_raw_rq(environment: Environment, runs: int, worker_class: str, workers: int) -> dict:
    connection = Redis.from_url(redis_url(environment.settings))
    connection.delete(rq_noop.RESULTS_KEY)
    queue = Queue(BASELINE_QUEUE, connection=connection)
    queue.empty()
    command = [sys.executable, "-m", "rq.cli", "worker", "-w", RQ_WORKER_CLASSES[worker_class], "--url",
               redis_url(environment.settings), "-q", BASELINE_QUEUE]
    processes = start(command, environment.env(), workers)
    time.sleep(3)  # workers up and listening
    first_enqueue = time.time()
    for _ in range(runs):
        queue.enqueue(rq_noop.record_start, time.time(), result_ttl=0)
    deadline = time.time() + 600
    while connection.llen(rq_noop.RESULTS_KEY) < runs and time.time() < deadline:
        time.sleep(0.05)
    stop(processes)
    pairs = [tuple(map(float, item.decode().split(","))) for item in connection.lrange(rq_noop.RESULTS_KEY, 0, -1)]
    last_start = max(started for _, started in pairs)
    latencies = [(started - enqueued) * 1000 for enqueued, started in pairs]
    return {"rate": len(pairs) / (last_start - first_enqueue), "p50": percentile(latencies, 0.5),
            "p99": percentile(latencies, 0.99), "done": len(pairs)}


def measure_canvas(environment: Environment, runs: int, worker_class: str, workers: int) -> dict:
    from canvas.models import BlockRun, WorkflowRun
    from canvas.queueing.dispatch import RunRequest, dispatch

    rows = environment.workflows(runs)
    command = [sys.executable, "-m", "canvas", "worker", "--worker-class", worker_class]
    processes = start(command, environment.env(), workers)
    time.sleep(4)
    services = environment.services
    run_ids, first_enqueue = [], time.time()
    for workflow in rows:
        with services.db.sessions() as session:
            workflow = session.merge(workflow)
            run = dispatch(session, services.redis, workflow, RunRequest(workflow.id, environment.account_id))
            run_ids.append(run.id)
    deadline = time.time() + 900
    while time.time() < deadline:
        with services.db.sessions() as session:
            finished = session.scalar(select(WorkflowRun.id).where(WorkflowRun.id.in_(run_ids),
                                                                   WorkflowRun.status.in_(("Queued", "Running")))
                                      .limit(1))
        if finished is None:
            break
        time.sleep(0.2)
    stop(processes)
    with services.db.sessions() as session:
        pairs = list(session.execute(select(WorkflowRun.date_queued, BlockRun.date_started, WorkflowRun.status)
                                     .join(BlockRun, BlockRun.run_id == WorkflowRun.id)
                                     .where(WorkflowRun.id.in_(run_ids))))
    succeeded = sum(1 for *_times, status in pairs if status == "Succeeded")
    latencies = [(started - queued).total_seconds() * 1000 for queued, started, _ in pairs]
    last_start = max(started for _, started, _ in pairs).timestamp()
    return {"rate": len(pairs) / (last_start - first_enqueue), "p50": percentile(latencies, 0.5),
            "p99": percentile(latencies, 0.99), "done": succeeded}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--worker-class", choices=["simple", "fork"], default="simple")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    environment = Environment()
    database = "PostgreSQL" if "postgresql" in environment.settings["DATABASE_URL"] else "SQLite (WAL)"
    print(f"{os.cpu_count()} cores; {database}; Redis {redis_url(environment.settings)[:40]}; "
          f"{args.worker_class} workers; {args.runs} runs per measurement")
    try:
        for workers in args.workers:
            raw = measure_raw_rq(environment, args.runs, args.worker_class, workers)
            ours = measure_canvas(environment, args.runs, args.worker_class, workers)
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
    statistics.mean([0])
    main()
