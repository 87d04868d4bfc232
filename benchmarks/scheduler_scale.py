"""Scheduler scale: ours (`canvas scheduler` x2) next to plain APScheduler 3 with its defaults, in the same run.

    .venv/bin/python benchmarks/scheduler_scale.py [--schedules 10000] [--per-second 1000] [--seconds 10]

1. Start: a scheduler process starts on ``--schedules`` enabled schedules (load + first next-time computation):
   seconds, schedules/s and resident memory; plain APScheduler adds as many CronTrigger jobs to its memory store.
2. Burst: ``--per-second`` occurrences due in each of ``--seconds`` consecutive seconds, with two schedulers running;
   every one must be dispatched (a Queued run row and its RQ job), none twice. Lateness is the RQ job's enqueue time
   minus the scheduled time. Plain APScheduler runs the same jobs, each enqueuing one RQ job.

PostgreSQL: CANVAS_BENCH_PG (default postgresql+psycopg://postgres@127.0.0.1:5432/postgres) gets a scratch database,
dropped at the end. Redis: an embedded server on a scratch directory, shared by both sides.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path

from _harness import ROOT, cpu_note, percentile, proc_status_kb

ADMIN_URL = os.environ.get("CANVAS_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
ZONES = ["UTC", "Europe/Oslo", "America/New_York", "Asia/Tokyo", "Australia/Adelaide"]


def random_cron(rng: random.Random) -> str:
    """Everyday shapes: a daily time, weekdays, a monthly rule."""
    second, minute, hour = rng.randrange(60), rng.randrange(60), rng.randrange(24)
    days = rng.choice(["? * *", "? * MON-FRI", "L * ?", "15W * ?", "? * 6L", "1,15 * ?"])
    return f"{second} {minute} {hour} {days}"


def quiet_schedule(rng: random.Random, now: datetime) -> tuple[str, str, datetime]:
    """A random everyday schedule that does not fire while the benchmark runs: (cron, zone, next fire time)."""
    from zoneinfo import ZoneInfo

    from canvas.scheduling.quartz import parse

    while True:
        cron, zone = random_cron(rng), rng.choice(ZONES)
        next_time = parse(cron).next_fire_time(now, ZoneInfo(zone))
        if next_time - now > timedelta(hours=1):
            return cron, zone, next_time


def one_off_cron(moment: datetime) -> str:
    return f"{moment.second} {moment.minute} {moment.hour} {moment.day} {moment.month} ? {moment.year}"


def rss_mib(pid: int, field: str = "VmRSS") -> float:
    """Resident memory (VmRSS), or its high-water mark (VmHWM)."""
    kb = proc_status_kb(pid, field)
    return float("nan") if kb is None else kb / 1024


def percentiles(values: list[float]) -> dict:
    return {"p50": percentile(values, 0.5), "p99": percentile(values, 0.99),
            "max": max(values) if values else float("nan")}


# --- plain APScheduler, in its own process ---------------------------------------------------------------------

def baseline_main(config: dict) -> None:
    """Runs in a child process, prints one JSON object: plain APScheduler with its defaults (10 threads,
    misfire_grace_time 1 s, coalesce) adding cron jobs, then two bursts: jobs that only enqueue to RQ (the issue's
    measurement), and jobs that call canvas's dispatch() (run row + RQ job: the work our scheduler does, minus the
    exactly-once claim)."""
    from apscheduler.schedulers.background import BackgroundScheduler
    from apscheduler.triggers.cron import CronTrigger

    rng, scheduler = random.Random(7), BackgroundScheduler()
    scheduler.start()
    rss_before, began = rss_mib(os.getpid()), time.perf_counter()
    for number in range(config["schedules"]):
        second, minute, hour = rng.randrange(60), rng.randrange(60), rng.randrange(24)
        scheduler.add_job(print, CronTrigger(second=second, minute=minute, hour=hour), id=f"cron-{number}")
    added = {"seconds": time.perf_counter() - began, "rss_delta_mib": rss_mib(os.getpid()) - rss_before}
    scheduler.remove_all_jobs()
    enqueue_only = baseline_burst_run(scheduler, config, rq_enqueuer(config))
    with_dispatch = baseline_burst_run(scheduler, config, canvas_dispatcher(config))
    scheduler.shutdown(wait=True)
    print(json.dumps({"added": added, "enqueue_only": enqueue_only, "dispatch": with_dispatch}))


def rq_enqueuer(config: dict):  # noqa: ANN201
    from redis import Redis
    from rq import Queue

    from canvas.queueing.dispatch import RUN_JOB_FUNCTION

    queue = Queue("bench-baseline", connection=Redis.from_url(config["redis_url"]))
    return lambda number: queue.enqueue_call(RUN_JOB_FUNCTION, args=(str(number),))


def canvas_dispatcher(config: dict):  # noqa: ANN201
    from redis import Redis

    from canvas.db import Database
    from canvas.models import Workflow
    from canvas.queueing.dispatch import RunRequest, dispatch

    database, connection = Database(config["database_url"]), Redis.from_url(config["redis_url"])
    workflow_ids = [uuid.UUID(text) for text in config["workflow_ids"]]

    def dispatch_one(number: int) -> None:
        with database.sessions() as session:
            workflow = session.get(Workflow, workflow_ids[number])
            dispatch(session, connection, workflow, RunRequest(workflow.id, workflow.account_id, trigger="schedule"))

    return dispatch_one


def baseline_burst_run(scheduler, config: dict, work) -> dict:  # noqa: ANN001
    """``per_second`` jobs due in each of ``seconds`` seconds; each does ``work`` and records its lateness."""
    from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_MISSED
    from apscheduler.triggers.date import DateTrigger

    count, done, missed, failed = config["per_second"] * config["seconds"], {}, [], []
    listener = lambda event: (missed if event.code == EVENT_JOB_MISSED else failed).append(event.job_id)  # noqa: E731
    scheduler.add_listener(listener, EVENT_JOB_MISSED | EVENT_JOB_ERROR)

    def job(number: int, scheduled: datetime) -> None:
        work(number)
        done[number] = (datetime.now(timezone.utc) - scheduled).total_seconds() * 1000

    scheduler.pause()
    start = (datetime.now(timezone.utc) + timedelta(seconds=count / 2000 + 3)).replace(microsecond=0)
    for number in range(count):
        moment = start + timedelta(seconds=number // config["per_second"])
        scheduler.add_job(job, DateTrigger(run_date=moment), args=(number, moment), id=str(number))
    scheduler.resume()
    _sleep_until(start + timedelta(seconds=config["seconds"] + 8))
    scheduler.remove_listener(listener)
    return {"done": done, "missed": len(missed), "failed": len(failed)}


def run_baseline(settings: dict, args, workflow_ids: list[uuid.UUID]) -> dict:  # noqa: ANN001
    config = {"redis_url": settings["REDIS_URL"], "database_url": settings["DATABASE_URL"],
              "schedules": args.schedules, "per_second": args.per_second, "seconds": args.seconds,
              "workflow_ids": [str(workflow_id) for workflow_id in workflow_ids]}
    config_path = Path(settings["DATA_DIR"]) / "baseline.json"
    config_path.write_text(json.dumps(config))
    result = subprocess.run([sys.executable, __file__, "--baseline-child", str(config_path)], capture_output=True,
                            text=True, timeout=900, cwd=ROOT)
    if result.returncode:
        raise SystemExit(f"baseline failed: {result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def finish_all_runs(app) -> None:  # noqa: ANN001
    """Before the dispatch() baseline: no workflow may have an active run, or dispatch() refuses it."""
    from sqlalchemy import update

    from canvas.models import Workflow, WorkflowRun

    with app.extensions["canvas"].db.transaction() as session:
        session.execute(update(WorkflowRun).values(status="Succeeded"))
        session.execute(update(Workflow).values(status="Ready"))


# --- our side: database, schedules, scheduler processes --------------------------------------------------------

@contextmanager
def scratch_environment():
    """A scratch PostgreSQL database, an embedded Redis and a data dir; all removed afterwards."""
    from sqlalchemy import create_engine, text

    from canvas.queueing.embedded import EmbeddedRedis

    name = f"canvas_bench_sched_{os.getpid()}"
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f"CREATE DATABASE {name}"))
    with tempfile.TemporaryDirectory(prefix="canvas-bench-") as data_dir:
        redis_server = EmbeddedRedis({"DATA_DIR": data_dir, "REDIS_URL": None})
        redis_server.start()
        try:
            yield {"DATA_DIR": data_dir, "DATABASE_URL": ADMIN_URL.rsplit("/", 1)[0] + f"/{name}",
                   "REDIS_URL": redis_server.url, "REDIS_PREFIX": "bench:", "LOG_LEVEL": "WARNING"}
        finally:
            redis_server.stop()
            with admin.connect() as connection:
                connection.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            admin.dispose()


def build_app(settings: dict):  # noqa: ANN201
    from canvas import create_app, migrate
    from canvas.catalog.loader import sync_catalog_files
    from canvas.db import Database

    database = Database(settings["DATABASE_URL"])
    migrate.upgrade(database.engine)
    database.dispose()
    app = create_app(settings)
    sync_catalog_files(app.extensions["canvas"].db, app.config["CANVAS_SETTINGS"])
    return app


def prototype_workflow(app) -> uuid.UUID:  # noqa: ANN001
    """One workflow made through the API, to be cloned."""
    from canvas.accounts.service import create_organization
    from tests.api.workflow_helpers import file_hub_app, new_workflow, published_template

    with app.extensions["canvas"].db.transaction() as session:
        created = create_organization(session, "Bench", "bench@bench.test")
    headers = {"Consumer": created.consumer, "SecretKey": created.secret_key}
    client = app.test_client()
    return uuid.UUID(new_workflow(client, headers, published_template(client, headers), file_hub_app(client, headers)))


def clone_scheduled(app, prototype_id: uuid.UUID, count: int) -> list[uuid.UUID]:  # noqa: ANN001
    """``count`` copies of the prototype, each with a random everyday schedule, written as the API would."""
    from canvas.models import Workflow, WorkflowSchedule
    from canvas.models.base import utcnow

    rng, now, database = random.Random(11), utcnow(), app.extensions["canvas"].db
    with database.sessions() as session:
        prototype = session.get(Workflow, prototype_id)
        template = {column.key: getattr(prototype, column.key) for column in Workflow.__table__.columns}
    workflows, schedules = [], []
    for _ in range(count):
        cron, zone, next_time = quiet_schedule(rng, now)
        workflow_id = uuid.uuid4()
        workflows.append({**template, "id": workflow_id, "is_scheduled": True, "date_next_schedule": next_time,
                          "schedule_frequency": json.dumps({"cronSchedule": cron, "timeZone": zone})})
        schedules.append({"workflow_id": workflow_id, "cron_expression": cron, "time_zone": zone,
                          "overlap_policy": "skip", "misfire_policy": "coalesce", "version": 1, "date_changed": now})
    with database.transaction() as session:
        session.execute(Workflow.__table__.insert(), workflows)
        session.execute(WorkflowSchedule.__table__.insert(), schedules)
    return [row["id"] for row in workflows]


def reschedule_as_burst(app, workflow_ids: list[uuid.UUID], first_due: datetime, per_second: int) -> None:  # noqa: ANN001
    """Every workflow fires once: ``per_second`` of them in each second from ``first_due``; announced on Redis."""
    from sqlalchemy import bindparam, update

    from canvas.models import Workflow, WorkflowSchedule
    from canvas.models.base import utcnow
    from canvas.queueing.keys import schedule_changes_channel

    now, services = utcnow(), app.extensions["canvas"]
    moments = [first_due + timedelta(seconds=index // per_second) for index in range(len(workflow_ids))]
    with services.db.transaction() as session:
        session.connection().execute(
            update(WorkflowSchedule.__table__).where(WorkflowSchedule.__table__.c.workflow_id == bindparam("wid"))
            .values(cron_expression=bindparam("cron"), time_zone="UTC", version=WorkflowSchedule.__table__.c.version + 1,
                    date_changed=now),
            [{"wid": workflow_id, "cron": one_off_cron(moment)} for workflow_id, moment in zip(workflow_ids, moments)])
        session.connection().execute(
            update(Workflow.__table__).where(Workflow.__table__.c.id == bindparam("wid"))
            .values(date_next_schedule=bindparam("next")),
            [{"wid": workflow_id, "next": moment} for workflow_id, moment in zip(workflow_ids, moments)])
    services.redis.publish(schedule_changes_channel(services.settings["REDIS_PREFIX"]), "changed")


class SchedulerProcess:
    def __init__(self, settings: dict, data_dir: Path, name: str) -> None:
        env = {key: value for key, value in os.environ.items() if not key.startswith("CANVAS_")}
        env.update({f"CANVAS_{key}": value for key, value in settings.items()})
        env["CANVAS_LOG_LEVEL"] = "INFO"
        self.log_path = data_dir / f"{name}.log"
        self.log_file = open(self.log_path, "wb")  # noqa: SIM115
        self.spawned = time.perf_counter()
        self.process = subprocess.Popen([sys.executable, "-m", "canvas", "scheduler"], env=env, cwd=ROOT,
                                        stdout=self.log_file, stderr=subprocess.STDOUT)

    def wait_started(self, timeout: float = 120) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = re.search(r"scheduler (\S+) started: (\d+) schedules loaded in ([0-9.]+) s",
                              self.log_path.read_text())
            if match:
                return {"name": match[1], "schedules": int(match[2]), "seconds": float(match[3]),
                        "process_seconds": time.perf_counter() - self.spawned, "rss_mib": rss_mib(self.process.pid)}
            if self.process.poll() is not None:
                raise SystemExit(self.log_path.read_text()[-3000:])
            time.sleep(0.05)
        raise SystemExit("scheduler did not start")

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(60)
        self.log_file.close()


def burst_results(app, first_due: datetime) -> dict:  # noqa: ANN001
    """Per occurrence: one fired ledger row, one run, one RQ job; lateness from the job's enqueue time."""
    from rq.job import Job
    from sqlalchemy import func, select

    from canvas.models import ScheduleOccurrence, WorkflowRun

    services = app.extensions["canvas"]
    with services.db.sessions() as session:
        ledger = session.execute(select(ScheduleOccurrence.run_id, ScheduleOccurrence.scheduled_time,
                                        ScheduleOccurrence.outcome, ScheduleOccurrence.scheduler)
                                 .where(ScheduleOccurrence.scheduled_time >= first_due)).all()
        runs = session.scalar(select(func.count()).select_from(WorkflowRun).where(WorkflowRun.trigger == "schedule"))
        most_runs = session.scalar(select(func.count()).select_from(WorkflowRun).group_by(WorkflowRun.workflow_id)
                                   .order_by(func.count().desc()).limit(1))
    fired = [row for row in ledger if row.outcome == "fired"]
    jobs = Job.fetch_many([str(row.run_id) for row in fired], connection=services.redis)
    lateness = {}
    for row, job in zip(fired, jobs):
        if job is not None:
            enqueued = job.enqueued_at.replace(tzinfo=timezone.utc) if job.enqueued_at.tzinfo is None else job.enqueued_at
            lateness[row.run_id] = (enqueued - row.scheduled_time).total_seconds() * 1000
    first_second = [lateness[row.run_id] for row in fired if row.scheduled_time == first_due and row.run_id in lateness]
    return {"outcomes": dict(Counter(row.outcome for row in ledger)), "runs": runs, "most_runs_per_workflow": most_runs,
            "by_scheduler": dict(Counter(row.scheduler for row in fired)),
            "first_count": len(first_second), "first": percentiles(first_second),
            "count": len(lateness), "all": percentiles(list(lateness.values()))}


def _sleep_until(moment: datetime) -> None:
    time.sleep(max(0.0, (moment - datetime.now(timezone.utc)).total_seconds()))


# --- the report ------------------------------------------------------------------------------------------------

def plain_summary(burst: dict, per_second: int) -> dict:
    done = {int(number): ms for number, ms in burst["done"].items()}
    first = [ms for number, ms in done.items() if number < per_second]
    return {"first_count": len(first), "first": percentiles(first), "count": len(done), "all": percentiles(
        list(done.values())), "missed": burst["missed"], "failed": burst["failed"]}


def row(label: str, ours: float, plains: list[float | None], goal: str = "", digits: int = 0) -> None:
    """One line: ours, each baseline (None: not measured), and ours / each baseline."""
    plains = (plains + [None, None])[:2]
    values = "".join(f"{'':>16}" if plain is None else f"{plain:>16.{digits}f}" for plain in plains)
    ratios = "".join(f"{'':>10}" if not plain else f"{ours / plain:>9.2f}x" for plain in plains)
    print(f"{label:32}{ours:>10.{digits}f}{values}{ratios}   {goal}")


def report(args, start: dict, memory_mib: float, ours: dict, baseline: dict) -> None:  # noqa: ANN001
    added, total = baseline["added"], args.per_second * args.seconds
    plains = [plain_summary(baseline["enqueue_only"], args.per_second),
              plain_summary(baseline["dispatch"], args.per_second)]
    print(f"\n{cpu_note()}, PostgreSQL + embedded Redis, {args.schedules} schedules, {args.per_second} due in each "
          f"of {args.seconds} seconds, two schedulers")
    print("APS+enqueue: plain APScheduler (defaults) whose jobs only enqueue to RQ; APS+dispatch: whose jobs call "
          "canvas's dispatch() (run row + RQ job, as ours does, without the exactly-once claim). Lateness: RQ enqueue "
          "time - scheduled time.")
    print(f"{'':32}{'ours':>10}{'APS+enqueue':>16}{'APS+dispatch':>16}{'ours/enq':>10}{'ours/disp':>10}")
    print(f"{'start (APS: add jobs)':32}")
    row("  load seconds", start["seconds"], [added["seconds"]], "goal <= 5 s", 2)
    row("  schedules per second", start["schedules"] / start["seconds"], [args.schedules / added["seconds"]],
        "goal >= 1500/s")
    row("  memory for the schedules, MiB", memory_mib, [added["rss_delta_mib"]], "", 1)
    row("  scheduler process RSS, MiB", start["rss_mib"], [], "goal < 300 MB", 1)
    row("  same, peak through the bursts", start["peak_rss_mib"], [], "", 1)
    row("  process spawn to ready, s", start["process_seconds"], [], "(Python, app, load)", 2)
    print(f"{'first second':32}")
    row("  dispatched", ours["first_count"], [plain["first_count"] for plain in plains], f"of {args.per_second}")
    for key in ("p50", "p99", "max"):
        row(f"  lateness {key}, ms", ours["first"][key], [plain["first"][key] for plain in plains],
            "goal p99 < 1000 ms" if key == "p99" else "")
    print(f"{'all seconds':32}")
    row("  dispatched", ours["count"], [plain["count"] for plain in plains], f"of {total}")
    row("  dropped", total - ours["count"], [total - plain["count"] for plain in plains], "goal 0")
    for key in ("p50", "p99", "max"):
        row(f"  lateness {key}, ms", ours["all"][key], [plain["all"][key] for plain in plains])
    print(f"ours: ledger {ours['outcomes']}, runs {ours['runs']}, most runs of one workflow "
          f"{ours['most_runs_per_workflow']} (1: none twice), claims by scheduler {ours['by_scheduler']}")
    print(f"APS misfired (dropped by misfire_grace_time): enqueue {plains[0]['missed']}, dispatch {plains[1]['missed']};"
          f" failed: enqueue {plains[0]['failed']}, dispatch {plains[1]['failed']}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--schedules", type=int, default=10_000)
    parser.add_argument("--per-second", type=int, default=1000)
    parser.add_argument("--seconds", type=int, default=10)
    args = parser.parse_args()
    burst = args.per_second * args.seconds
    if burst > args.schedules:
        raise SystemExit("--per-second x --seconds must not exceed --schedules")
    with scratch_environment() as settings:
        app = build_app(settings)
        data_dir = Path(settings["DATA_DIR"])
        first = SchedulerProcess(settings, data_dir, "scheduler-a")
        idle = first.wait_started()
        workflow_ids = clone_scheduled(app, prototype_workflow(app), args.schedules)
        second = SchedulerProcess(settings, data_dir, "scheduler-b")
        start = second.wait_started()
        time.sleep(8)  # scheduler-a reconciles the 10,000 new schedules meanwhile
        reconciled_rss = rss_mib(first.process.pid)
        first_due = (datetime.now(timezone.utc) + timedelta(seconds=25)).replace(microsecond=0)
        reschedule_as_burst(app, workflow_ids[:burst], first_due, args.per_second)
        _sleep_until(first_due + timedelta(seconds=args.seconds + 8))
        ours = burst_results(app, first_due)
        start["peak_rss_mib"] = rss_mib(second.process.pid, "VmHWM")
        first.stop()
        second.stop()
        finish_all_runs(app)
        baseline = run_baseline(settings, args, workflow_ids[:burst])
        report(args, start, reconciled_rss - idle["rss_mib"], ours, baseline)
        if os.environ.get("BENCH_KEEP_LOGS"):
            for process in (first, second):
                print(process.log_path.read_text()[-6000:])
        app.extensions["canvas"].close()


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--baseline-child":
        baseline_main(json.loads(Path(sys.argv[2]).read_text()))
    else:
        main()
