"""The scheduler engine in this process, on the real database and Redis, with every-second schedules: picking up
API changes within 5 s (announced, and healed by the reconcile when not), overlap skip, misfire policies on start
and coalescing after a restart."""
from __future__ import annotations

import json
import time
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import update

from canvas.models import ScheduleOccurrence, Workflow, WorkflowSchedule
from canvas.scheduling.scheduler import SchedulerConfig, SchedulerEngine
from tests.integration.test_scheduler_claims import (  # noqa: F401 - fixtures
    EVERY_SECOND,
    empty_run_queue,
    finish_runs,
    ledger,
    make_scheduled,
    runs_of,
)

PICKUP_LIMIT_SECONDS = 5.0


@pytest.fixture()
def start_engine(services):
    engines = []

    def start(**config) -> SchedulerEngine:
        settings = {"reconcile_seconds": 3.0, "misfire_grace_seconds": 60.0, "run_each_limit": 10,
                    "lost_run_grace_seconds": 30.0, "redis_prefix": services.settings["REDIS_PREFIX"], **config}
        engine = SchedulerEngine(services.db, services.redis, SchedulerConfig(**settings),
                                 name=f"engine-{len(engines)}")
        engines.append(engine)
        engine.start()
        return engine

    yield start
    for engine in engines:
        if not engine.stopping.is_set():
            engine.shutdown()


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.05)
    raise AssertionError(f"{what} not within {timeout} s")


def set_schedule(client, headers, workflow_id, cron=EVERY_SECOND, on=True):
    answer = client.post("/api/WorkflowScheduler", json={"workflowId": str(workflow_id), "isScheduled": on,
                                                         "scheduleFrequency": json.dumps({"cronSchedule": cron})},
                         headers=headers)
    assert answer.status_code == 200, answer.json


def backdate(services, workflow_id: uuid.UUID, seconds: float) -> None:
    """As if the schedule had been set ``seconds`` ago with no scheduler running since."""
    with services.db.transaction() as session:
        session.execute(update(WorkflowSchedule).where(WorkflowSchedule.workflow_id == workflow_id)
                        .values(date_changed=datetime.now(timezone.utc) - timedelta(seconds=seconds)))


def assert_every_second_once(rows: list[ScheduleOccurrence]) -> None:
    times = [row.scheduled_time for row in rows]
    assert times == [times[0] + timedelta(seconds=index) for index in range(len(times))], "no gap, none twice"


def test_an_enabled_schedule_is_picked_up_within_5_s_and_a_disabled_one_stops(services, client, org, start_engine,
                                                                              make_scheduled):
    [workflow_id] = make_scheduled(1, cron="0 0 0 1 1 ? 2099")
    start_engine()
    changed_at = time.monotonic()
    set_schedule(client, org.admin_headers, workflow_id)
    wait_for(lambda: ledger(services, workflow_id), PICKUP_LIMIT_SECONDS, "first occurrence")
    assert time.monotonic() - changed_at < PICKUP_LIMIT_SECONDS
    set_schedule(client, org.admin_headers, workflow_id, on=False)
    time.sleep(2.0)  # the scheduler hears of it at once; allow one occurrence already in flight
    settled = len(ledger(services, workflow_id))
    time.sleep(2.0)
    assert len(ledger(services, workflow_id)) == settled


def test_a_lost_notification_is_healed_by_the_reconcile(services, client, org, start_engine, make_scheduled):
    [workflow_id] = make_scheduled(1, cron="0 0 0 1 1 ? 2099")
    engine = start_engine(reconcile_seconds=1.0)
    engine.changed.clear()
    with services.db.transaction() as session:  # what the API does, without announcing it
        session.execute(update(WorkflowSchedule).where(WorkflowSchedule.workflow_id == workflow_id)
                        .values(cron_expression=EVERY_SECOND, version=WorkflowSchedule.version + 1,
                                date_changed=datetime.now(timezone.utc)))
    changed_at = time.monotonic()
    wait_for(lambda: ledger(services, workflow_id), PICKUP_LIMIT_SECONDS, "first occurrence")
    assert time.monotonic() - changed_at < PICKUP_LIMIT_SECONDS


def test_occurrences_due_while_a_run_is_active_are_skipped(services, start_engine, make_scheduled):
    [workflow_id] = make_scheduled(1)
    start_engine()
    rows = wait_for(lambda: len(rows := ledger(services, workflow_id)) >= 4 and rows, 20, "four occurrences")
    first, *later = rows
    assert first.outcome == "fired" and first.run_id == runs_of(services, workflow_id)[0].id
    assert {(row.outcome, row.reason) for row in later} == {("skipped", f"previous run {first.run_id} still Queued")}
    assert_every_second_once(rows)


def test_missed_occurrences_are_coalesced_into_one_run_after_a_restart(services, start_engine, make_scheduled):
    [workflow_id] = make_scheduled(1)
    first = start_engine(misfire_grace_seconds=2.0)
    wait_for(lambda: len(ledger(services, workflow_id)) >= 2, 20, "two occurrences")
    first.shutdown()
    before_restart = ledger(services, workflow_id)[-1].scheduled_time
    finish_runs(services, workflow_id)  # so that the catch-up run is not skipped as an overlap
    time.sleep(5.0)
    start_engine(misfire_grace_seconds=2.0)
    rows = wait_for(lambda: len(rows := ledger(services, workflow_id)) >= 10 and rows, 20, "occurrences after restart")
    assert_every_second_once(rows)
    coalesced = [row for row in rows if row.scheduled_time > before_restart and row.reason
                 and "coalesced" in row.reason]
    assert len(coalesced) >= 2 and {row.outcome for row in coalesced} == {"fired"}
    assert coalesced[0].scheduled_time == before_restart + timedelta(seconds=1), "from the first one missed"
    assert len({row.run_id for row in coalesced}) == 1
    [run] = [run for run in runs_of(services, workflow_id) if run.id == coalesced[0].run_id]
    assert run.scheduled_times == [row.scheduled_time.isoformat() for row in coalesced]
    assert coalesced[0].reason == f"{len(coalesced)} missed occurrence(s) coalesced into one run (misfire policy coalesce)"


def test_misfire_policy_skip_records_them_missed(services, start_engine, make_scheduled):
    [workflow_id] = make_scheduled(1, misfirePolicy="skip")
    backdate(services, workflow_id, 6)
    start_engine(misfire_grace_seconds=2.0)
    rows = wait_for(lambda: len(rows := ledger(services, workflow_id)) >= 6 and rows, 20, "occurrences")
    missed = [row for row in rows if row.outcome == "missed"]
    assert len(missed) >= 3 and {row.run_id for row in missed} == {None}
    assert missed[0].reason == "missed: not fired within the misfire grace time of 2 s; misfire policy skip"
    [run] = runs_of(services, workflow_id)
    assert run.scheduled_times == [next(row for row in rows if row.outcome == "fired").scheduled_time.isoformat()]
    assert max(row.scheduled_time for row in missed) < datetime.fromisoformat(run.scheduled_times[0])


def test_misfire_policy_run_each_queues_the_newest_up_to_the_limit(services, start_engine, make_scheduled):
    [workflow_id] = make_scheduled(1, misfirePolicy="run_each")
    backdate(services, workflow_id, 20)
    start_engine(misfire_grace_seconds=2.0, run_each_limit=3)
    rows = wait_for(lambda: len(rows := ledger(services, workflow_id)) >= 18 and rows, 20, "occurrences")
    caught_up = [row for row in rows if row.reason and "run_each" in row.reason and "limit" not in row.reason]
    beyond = [row for row in rows if row.reason and "limit" in row.reason]
    assert [row.outcome for row in caught_up] == ["fired", "queued", "queued"]
    assert beyond and {row.outcome for row in beyond} == {"missed"}
    assert max(row.scheduled_time for row in beyond) < min(row.scheduled_time for row in caught_up)
    finish_runs(services, workflow_id)
    waiting = caught_up[1].scheduled_time
    # The scheduler releases a waiting run on its next reconcile (every 3 s), later on a loaded machine.
    wait_for(lambda: next(row for row in ledger(services, workflow_id) if row.scheduled_time == waiting).outcome
             == "fired", 15, "release")


def test_date_next_schedule_is_corrected_on_start(services, start_engine, make_scheduled):
    [workflow_id] = make_scheduled(1, cron="0 0 0 1 1 ? 2099")
    with services.db.transaction() as session:
        session.execute(update(Workflow).where(Workflow.id == workflow_id)
                        .values(date_next_schedule=datetime(2001, 1, 1, tzinfo=timezone.utc)))
    start_engine()
    with services.db.sessions() as session:
        assert session.get(Workflow, workflow_id).date_next_schedule == datetime(2099, 1, 1, tzinfo=timezone.utc)


def test_occurrences_lost_to_a_database_outage_are_recovered(services, start_engine, make_scheduled, monkeypatch):
    from sqlalchemy.exc import OperationalError

    [workflow_id] = make_scheduled(1)
    engine = start_engine(reconcile_seconds=1.0)
    wait_for(lambda: len(ledger(services, workflow_id)) >= 2, 20, "two occurrences")
    handle_batch = engine.dispatcher._handle_batch

    def database_down(firings):
        raise OperationalError("INSERT", {}, Exception("connection refused"))

    monkeypatch.setattr(engine.dispatcher, "_handle_batch", database_down)
    time.sleep(3.0)
    monkeypatch.setattr(engine.dispatcher, "_handle_batch", handle_batch)
    outage_end = datetime.now(timezone.utc)
    rows = wait_for(lambda: (rows := ledger(services, workflow_id))[-1].scheduled_time > outage_end + timedelta(
        seconds=2) and rows, 10, "occurrences after the outage")
    assert_every_second_once(rows)
