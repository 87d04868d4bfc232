"""A backlog whose runs have all waited longer than the lost-run grace period (a scheduler's burst, a night's batch,
workers back after an outage), worked off by real `canvas worker` processes whose reapers look at it every half
second: each run is executed once and gets no second job. The reapers see the backlog's every run as Queued and past
the grace; a run a worker took, started or finished between the reaper's read of the database and its read of Redis
used to be queued again (up to a tenth of a backlog, each a dequeue for nothing and an "is no longer queued" line)."""
from __future__ import annotations

import uuid
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from canvas.models import Account, Workflow, WorkflowRun
from canvas.models.base import utcnow
from canvas.queueing.dispatch import RunRequest, dispatch
from tests.integration.run_helpers import start_worker, stop_worker, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("clean_run_queue")]
RUNS = 600
FAST_REAPERS = {"CANVAS_LOST_RUN_GRACE_SECONDS": "2", "CANVAS_LEASE_RENEW_SECONDS": "0.5",
                "CANVAS_REAPER_INTERVAL_SECONDS": "0.5", "CANVAS_LOG_LEVEL": "INFO"}
SECOND_JOB = "is no longer queued"  # a worker's line for a job whose run another job already started
QUEUED_AGAIN = "queued it again"  # a reaper's line


def backlog(app, org, runs: int) -> list[uuid.UUID]:
    """`runs` one-block no-op runs, each of a workflow of its own, queued a minute ago as far as the reaper sees."""
    services = app.extensions["canvas"]
    chain = [{"uniqueBlockId": str(uuid.uuid4()), "blockName": "No-op", "block": "noop", "application": None,
              "variables": {}}]
    with services.db.transaction() as session:
        account = session.get(Account, uuid.UUID(org.admin_id))
        workflows = [Workflow(account_id=account.id, organization_id=account.organization_id, name=f"backlog {n}",
                              chain=chain, chain_overrides=[]) for n in range(runs)]
        session.add_all(workflows)
        session.flush()
        workflow_ids = [workflow.id for workflow in workflows]
    run_ids = []
    for workflow_id in workflow_ids:
        with services.db.sessions() as session:
            workflow = session.get(Workflow, workflow_id)
            run_ids.append(dispatch(session, services.redis, workflow, RunRequest(workflow.id, account.id)).id)
    a_minute_ago = utcnow() - timedelta(minutes=1)
    with services.db.transaction() as session:
        session.execute(update(WorkflowRun).where(WorkflowRun.id.in_(run_ids))
                        .values(date_queued=a_minute_ago, heartbeat_at=a_minute_ago))
    return run_ids


def test_a_backlog_past_the_grace_is_worked_off_once_with_no_second_job(app, org, tmp_path):
    run_ids = backlog(app, org, RUNS)
    logs = [tmp_path / f"worker-{n}.log" for n in range(2)]
    workers = [start_worker(app.config["CANVAS_SETTINGS"], log_path, env=FAST_REAPERS) for log_path in logs]
    services = app.extensions["canvas"]

    def statuses() -> Counter:
        with services.db.sessions() as session:
            return Counter(dict(session.execute(select(WorkflowRun.status, func.count())
                                                .where(WorkflowRun.id.in_(run_ids)).group_by(WorkflowRun.status)).all()))

    try:
        wait_for(lambda: statuses()["Succeeded"] == RUNS, timeout=240, interval=0.5, what="the backlog worked off")
    finally:
        for worker in workers:
            stop_worker(worker)
    text = "\n".join(log_path.read_text(errors="replace") for log_path in logs)
    with services.db.sessions() as session:
        dispatched = Counter(session.scalars(select(WorkflowRun.dispatch_count).where(WorkflowRun.id.in_(run_ids))))
    started = Counter(line.split(" run ")[1].split()[0] for line in text.splitlines()
                      if "canvas.execution.runner" in line and " succeeded in " in line)
    print(f"{RUNS} runs: {text.count(SECOND_JOB)} second jobs, {text.count(QUEUED_AGAIN)} queued again, "
          f"dispatch counts {dict(dispatched)}, runs per worker "
          f"{[log_path.read_text(errors='replace').count(' succeeded in ') for log_path in logs]}")
    assert statuses() == Counter({"Succeeded": RUNS})
    assert len(started) == RUNS and set(started.values()) == {1}  # each run executed once
    assert text.count(SECOND_JOB) == 0 and text.count(QUEUED_AGAIN) == 0
    assert dispatched == Counter({1: RUNS})
