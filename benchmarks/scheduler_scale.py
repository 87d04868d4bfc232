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
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path

from _harness import ROOT, cpu_note

ADMIN_URL = os.environ.get("CANVAS_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
ZONES = ["UTC", "Europe/Oslo", "America/New_York", "Asia/Tokyo", "Australia/Adelaide"]
RUN_JOB_FUNCTION = "canvas.execution.runner.execute_run"


def random_cron(rng: random.Random) -> str:
    """Everyday shapes: a daily time, weekdays, a monthly rule."""
    second, minute, hour = rng.randrange(60), rng.randrange(60), rng.randrange(24)
    days = rng.choice(["? * *", "? * MON-FRI", "L * ?", "15W * ?", "? * 6L", "1,15 * ?"])
    return f"{second} {minute} {hour} {days}"


def one_off_cron(moment: datetime) -> str:
    return f"{moment.second} {moment.minute} {moment.hour} {moment.day} {moment.month} ? {moment.year}"


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def percentiles(values: list[float]) -> dict:
    ordered = sorted(values)
    pick = lambda fraction: ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else float("nan")  # noqa: E731
    return {"p50": pick(0.5), "p99": pick(0.99), "max": ordered[-1] if ordered else float("nan")}


# --- plain APScheduler, in its own process ---------------------------------------------------------------------

def baseline_main(redis_url: str, schedules: int, first_due: str, per_second: int, seconds: int) -> None:
    """Runs in a child process; prints one JSON object."""
    from apscheduler.events import EVENT_JOB_EXECUTED, EVENT_JOB_MISSED
    from apscheduler.schedulers.background import BackgroundScheduler
    from apscheduler.triggers.cron import CronTrigger
    from apscheduler.triggers.date import DateTrigger
    from redis import Redis
    from rq import Queue

    rng, queue = random.Random(7), Queue("bench-baseline", connection=Redis.from_url(redis_url))
    scheduler = BackgroundScheduler()  # the defaults: 10 threads, misfire_grace_time 1 s, coalesce
    scheduler.start()
    rss_before, began = rss_mib(os.getpid()), time.perf_counter()
    for number in range(schedules):
        second, minute, hour = rng.randrange(60), rng.randrange(60), rng.randrange(24)
        scheduler.add_job(print, CronTrigger(second=second, minute=minute, hour=hour), id=f"cron-{number}")
    added = {"seconds": time.perf_counter() - began, "rss_delta_mib": rss_mib(os.getpid()) - rss_before}
    scheduler.remove_all_jobs()
    enqueued, missed = {}, []
    scheduler.add_listener(lambda event: missed.append(event.job_id), EVENT_JOB_MISSED)

    def enqueue(number: int, scheduled: datetime) -> None:
        queue.enqueue_call(RUN_JOB_FUNCTION, args=(str(number),))
        enqueued[number] = (datetime.now(timezone.utc) - scheduled).total_seconds() * 1000

    start = datetime.fromisoformat(first_due)
    for number in range(per_second * seconds):
        moment = start + timedelta(seconds=number // per_second)
        scheduler.add_job(enqueue, DateTrigger(run_date=moment), args=(number, moment), id=str(number))
    _sleep_until(start + timedelta(seconds=seconds + 8))
    scheduler.shutdown(wait=True)
    queue.empty()
    print(json.dumps({"added": added, "enqueued": enqueued, "missed": len(missed)}))


def run_baseline(redis_url: str, args, first_due: datetime) -> dict:  # noqa: ANN001
    command = [sys.executable, __file__, "--baseline-child", redis_url, str(args.schedules), first_due.isoformat(),
               str(args.per_second), str(args.seconds)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=ROOT)
    if result.returncode:
        raise SystemExit(f"baseline failed: {result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


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
    from canvas.scheduling.quartz import parse
    from zoneinfo import ZoneInfo

    rng, now, database = random.Random(11), utcnow(), app.extensions["canvas"].db
    with database.sessions() as session:
        prototype = session.get(Workflow, prototype_id)
        template = {column.key: getattr(prototype, column.key) for column in Workflow.__table__.columns}
    workflows, schedules = [], []
    for _ in range(count):
        cron, zone = random_cron(rng), rng.choice(ZONES)
        workflow_id = uuid.uuid4()
        next_time = parse(cron).next_fire_time(now, ZoneInfo(zone))
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
        self.process = subprocess.Popen([sys.executable, "-m", "canvas", "scheduler"], env=env, cwd=ROOT,
                                        stdout=self.log_file, stderr=subprocess.STDOUT)

    def wait_started(self, timeout: float = 120) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = re.search(r"scheduler (\S+) started: (\d+) schedules loaded in ([0-9.]+) s",
                              self.log_path.read_text())
            if match:
                return {"name": match[1], "schedules": int(match[2]), "seconds": float(match[3]),
                        "rss_mib": rss_mib(self.process.pid)}
            if self.process.poll() is not None:
                raise SystemExit(self.log_path.read_text()[-3000:])
            time.sleep(0.05)
        raise SystemExit("scheduler did not start")

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(60)
        self.log_file.close()


def burst_results(app, workflow_ids: list[uuid.UUID], first_due: datetime, per_second: int) -> dict:  # noqa: ANN001
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
    return {"expected": len(workflow_ids), "ledger_rows": len(ledger), "fired": len(fired), "runs": runs,
            "jobs": len(lateness), "most_runs_per_workflow": most_runs,
            "by_scheduler": {name: sum(row.scheduler == name for row in fired) for name in {r.scheduler for r in fired}},
            "first_second": percentiles(first_second), "first_second_count": len(first_second),
            "all": percentiles(list(lateness.values()))}


def _sleep_until(moment: datetime) -> None:
    time.sleep(max(0.0, (moment - datetime.now(timezone.utc)).total_seconds()))


# --- the report ------------------------------------------------------------------------------------------------

def baseline_burst(baseline: dict, per_second: int, seconds: int) -> dict:
    enqueued = {int(number): ms for number, ms in baseline["enqueued"].items()}
    return {"expected": per_second * seconds, "dispatched": len(enqueued), "missed": baseline["missed"],
            "first_second_count": sum(1 for number in enqueued if number < per_second),
            "first_second": percentiles([ms for number, ms in enqueued.items() if number < per_second]),
            "all": percentiles(list(enqueued.values()))}


def report(args, start: dict, idle_rss: float, reconciled_rss: float, ours: dict, baseline: dict) -> None:  # noqa: ANN001
    plain = baseline_burst(baseline, args.per_second, args.seconds)
    added = baseline["added"]
    ratio = lambda ours_value, plain_value: f"{ours_value / plain_value:.2f}x" if plain_value else "n/a"  # noqa: E731
    rate, plain_rate = start["schedules"] / start["seconds"], args.schedules / added["seconds"]
    print(f"\n{cpu_note()}, PostgreSQL + embedded Redis, {args.schedules} schedules, "
          f"{args.per_second}/s for {args.seconds} s")
    print(f"{'':34}{'ours':>14}{'plain APScheduler':>20}{'ratio':>9}")
    print(f"{'start: load seconds':34}{start['seconds']:>14.2f}{added['seconds']:>20.2f}"
          f"{ratio(start['seconds'], added['seconds']):>9}   goal <= 5 s")
    print(f"{'start: schedules per second':34}{rate:>14.0f}{plain_rate:>20.0f}{ratio(rate, plain_rate):>9}"
          f"   goal >= 1500/s")
    delta = reconciled_rss - idle_rss
    print(f"{'memory for the schedules (MiB)':34}{delta:>14.1f}{added['rss_delta_mib']:>20.1f}"
          f"{ratio(delta, added['rss_delta_mib']):>9}")
    print(f"{'scheduler process RSS (MiB)':34}{start['rss_mib']:>14.1f}{'':>20}{'':>9}   goal < 300 MB")
    first, plain_first = ours["first_second"], plain["first_second"]
    print(f"{'first second: dispatched':34}{ours['first_second_count']:>14}{plain['first_second_count']:>20}"
          f"{'':>9}   of {args.per_second}")
    for key in ("p50", "p99", "max"):
        print(f"{'first second: lateness ' + key + ' (ms)':34}{first[key]:>14.0f}{plain_first[key]:>20.0f}"
              f"{ratio(first[key], plain_first[key]):>9}" + ("   goal p99 < 1000 ms" if key == "p99" else ""))
    print(f"{'all seconds: dispatched':34}{ours['jobs']:>14}{plain['dispatched']:>20}{'':>9}   of {ours['expected']}")
    print(f"{'all seconds: dropped':34}{ours['expected'] - ours['jobs']:>14}"
          f"{plain['expected'] - plain['dispatched']:>20}")
    for key in ("p50", "p99", "max"):
        print(f"{'all seconds: lateness ' + key + ' (ms)':34}{ours['all'][key]:>14.0f}{plain['all'][key]:>20.0f}"
              f"{ratio(ours['all'][key], plain['all'][key]):>9}")
    print(f"ours: ledger rows {ours['ledger_rows']}, fired {ours['fired']}, runs {ours['runs']}, "
          f"most runs of one workflow {ours['most_runs_per_workflow']} (none twice: 1), "
          f"claims by scheduler {ours['by_scheduler']}")


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
        ours = burst_results(app, workflow_ids[:burst], first_due, args.per_second)
        first.stop()
        second.stop()
        baseline_due = (datetime.now(timezone.utc) + timedelta(seconds=args.schedules / 1500 + 15)).replace(
            microsecond=0)
        baseline = run_baseline(settings["REDIS_URL"], args, baseline_due)
        report(args, start, idle["rss_mib"], reconciled_rss, ours, baseline)
        app.extensions["canvas"].close()


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--baseline-child":
        sys.path.insert(0, str(ROOT))
        _, _, url, count, due, per_second, seconds = sys.argv
        baseline_main(url, int(count), due, int(per_second), int(seconds))
    else:
        main()
