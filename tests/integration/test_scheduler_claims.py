"""Claiming and dispatching occurrences against the real database and Redis: exactly once across dispatchers,
the overlap policies, stale occurrences, and Redis refusing the enqueue."""
from __future__ import annotations

import json
import threading
import uuid
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest
import redis
from rq import Queue
from rq.job import Job
from sqlalchemy import select, update

from canvas.models import Account, ScheduleOccurrence, Workflow, WorkflowRun
from canvas.queueing.keys import RUN_QUEUE
from canvas.scheduling.claims import OccurrenceDispatcher
from canvas.scheduling.occurrences import Firing
from tests.api.workflow_helpers import file_hub_app, new_workflow, published_template
from tests.process_tools import free_port

EVERY_SECOND = "* * * ? * *"


@pytest.fixture(autouse=True)
def empty_run_queue(services):
    yield
    Queue(RUN_QUEUE, connection=services.redis).empty()


@pytest.fixture()
def make_scheduled(client, org):
    """Workflows with a schedule set through the API; returns their ids."""
    template_id = published_template(client, org.admin_headers)
    registered_id = file_hub_app(client, org.admin_headers)

    def make(count: int = 1, cron: str = EVERY_SECOND, **policy) -> list[uuid.UUID]:
        ids = []
        for _ in range(count):
            workflow_id = new_workflow(client, org.admin_headers, template_id, registered_id)
            answer = client.post("/api/WorkflowScheduler", json={
                "workflowId": workflow_id, "isScheduled": True,
                "scheduleFrequency": json.dumps({"cronSchedule": cron})}, headers=org.admin_headers)
            assert answer.status_code == 200, answer.json
            if policy:
                client.post("/api/WorkflowSchedulePolicy", json={"workflowId": workflow_id, **policy},
                            headers=org.admin_headers)
            ids.append(uuid.UUID(workflow_id))
        return ids

    return make


def coming_seconds(count: int, start_in: float = 2.0) -> list[datetime]:
    first = (datetime.now(timezone.utc) + timedelta(seconds=start_in)).replace(microsecond=0)
    return [first + timedelta(seconds=index) for index in range(count)]


def dispatcher(services, name: str = "test-scheduler") -> OccurrenceDispatcher:
    return OccurrenceDispatcher(services.db, services.redis, name)


def ledger(services, workflow_id: uuid.UUID) -> list[ScheduleOccurrence]:
    with services.db.sessions() as session:
        return list(session.scalars(select(ScheduleOccurrence).where(ScheduleOccurrence.workflow_id == workflow_id)
                                    .order_by(ScheduleOccurrence.scheduled_time)))


def runs_of(services, workflow_id: uuid.UUID) -> list[WorkflowRun]:
    with services.db.sessions() as session:
        return list(session.scalars(select(WorkflowRun).where(WorkflowRun.workflow_id == workflow_id)
                                    .order_by(WorkflowRun.date_queued)))


def finish_runs(services, workflow_id: uuid.UUID) -> None:
    """What a worker would do: the active run ends."""
    with services.db.transaction() as session:
        session.execute(update(WorkflowRun).where(WorkflowRun.workflow_id == workflow_id)
                        .values(status="Succeeded"))


def test_two_dispatchers_claim_every_occurrence_exactly_once(services, make_scheduled):
    workflows, times = make_scheduled(8), coming_seconds(3)
    firings = [Firing(workflow_id, (time,)) for workflow_id in workflows for time in times]
    results: list[Counter] = []

    def handle(name: str) -> None:
        results.append(dispatcher(services, name).handle(list(firings)))

    threads = [threading.Thread(target=handle, args=(name,)) for name in ("scheduler-a", "scheduler-b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sum(results, Counter()) == Counter(fired=8, skipped=16), "each occurrence counted by one dispatcher"
    for workflow_id in workflows:
        rows, runs = ledger(services, workflow_id), runs_of(services, workflow_id)
        assert [row.scheduled_time for row in rows] == times
        assert [row.outcome for row in rows] == ["fired", "skipped", "skipped"]
        assert [run.id for run in runs] == [rows[0].run_id]
        assert runs[0].trigger == "schedule" and runs[0].scheduled_times == [times[0].isoformat()]
        assert Job.exists(str(runs[0].id), connection=services.redis)


def test_a_second_claim_of_the_same_occurrence_does_nothing(services, make_scheduled):
    [workflow_id], [time] = make_scheduled(1), coming_seconds(1)
    assert dispatcher(services).handle([Firing(workflow_id, (time,))]) == Counter(fired=1)
    assert dispatcher(services, "other").handle([Firing(workflow_id, (time,))]) == Counter()
    assert len(runs_of(services, workflow_id)) == 1 and len(ledger(services, workflow_id)) == 1


def test_an_occurrence_offered_twice_in_one_batch_is_planned_once(services, make_scheduled):
    [workflow_id], [time] = make_scheduled(1), coming_seconds(1)
    outcome = dispatcher(services).handle([Firing(workflow_id, (time,)), Firing(workflow_id, (time,))])
    assert outcome == Counter(fired=1) and len(runs_of(services, workflow_id)) == 1


def test_overlap_skip_records_the_active_run(services, make_scheduled):
    [workflow_id], times = make_scheduled(1), coming_seconds(2)
    dispatcher(services).handle([Firing(workflow_id, (times[0],))])
    dispatcher(services).handle([Firing(workflow_id, (times[1],))])
    first, second = ledger(services, workflow_id)
    assert (first.outcome, second.outcome) == ("fired", "skipped")
    assert second.reason == f"previous run {first.run_id} still Queued"
    assert second.run_id is None and second.dispatch_time is None


def test_a_deactivated_accounts_schedule_starts_no_run_and_says_why(services, make_scheduled, org):
    [workflow_id], times = make_scheduled(1), coming_seconds(2)
    assert dispatcher(services).handle([Firing(workflow_id, (times[0],))]) == Counter(fired=1)
    finish_runs(services, workflow_id)
    with services.db.transaction() as session:  # as DELETE Account / the console's Deactivate leave it
        session.execute(update(Account).where(Account.id == uuid.UUID(org.admin_id)).values(active=False))
    try:
        assert dispatcher(services).handle([Firing(workflow_id, (times[1],))]) == Counter(skipped=1)
    finally:
        with services.db.transaction() as session:
            session.execute(update(Account).where(Account.id == uuid.UUID(org.admin_id)).values(active=True))
    fired, skipped = ledger(services, workflow_id)
    assert fired.outcome == "fired" and (skipped.outcome, skipped.run_id) == ("skipped", None)
    assert skipped.reason == "the workflow's account is deactivated"
    assert len(runs_of(services, workflow_id)) == 1


def test_overlap_queue_keeps_one_waiting_and_starts_it_when_the_run_ends(services, make_scheduled):
    [workflow_id], times = make_scheduled(1, overlapPolicy="queue"), coming_seconds(3)
    worker = dispatcher(services)
    assert worker.handle([Firing(workflow_id, (time,)) for time in times]) == Counter(fired=1, queued=1, skipped=1)
    first, waiting, skipped = ledger(services, workflow_id)
    assert waiting.reason == f"queued behind run {first.run_id} (Queued) (overlap policy queue)"
    assert skipped.reason.startswith(f"previous run {first.run_id} still Queued; another occurrence already waits")
    assert worker.release_waiting() == 0, "the first run is still active"
    finish_runs(services, workflow_id)
    assert worker.release_waiting() == 1
    released = ledger(services, workflow_id)[1]
    assert released.outcome == "fired" and released.dispatch_time is not None
    second_run = next(run for run in runs_of(services, workflow_id) if run.id == released.run_id)
    assert second_run.status == "Queued" and second_run.scheduled_times == [times[1].isoformat()]


def test_stale_occurrences_are_ignored(services, make_scheduled):
    [hourly] = make_scheduled(1, cron="0 0 * * * ?")
    [disabled] = make_scheduled(1)
    with services.db.transaction() as session:
        session.execute(update(Workflow).where(Workflow.id == disabled).values(is_scheduled=False))
    next_hour = (datetime.now(timezone.utc) + timedelta(hours=1)).replace(minute=0, second=0, microsecond=0)
    before_the_change = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(seconds=30)
    firings = [Firing(hourly, (next_hour + timedelta(seconds=1),)), Firing(hourly, (before_the_change,)),
               Firing(disabled, coming_seconds(1))]
    assert dispatcher(services).handle(firings) == Counter()
    assert ledger(services, hourly) == [] and ledger(services, disabled) == []


def test_firing_keeps_date_next_schedule_current(services, make_scheduled):
    [workflow_id], [time] = make_scheduled(1), coming_seconds(1, start_in=30)
    dispatcher(services).handle([Firing(workflow_id, (time,))])
    with services.db.sessions() as session:
        assert session.get(Workflow, workflow_id).date_next_schedule == time + timedelta(seconds=1)


def test_redis_refusing_the_enqueue_leaves_the_run_queued_for_the_reaper(services, make_scheduled, caplog):
    """The database is the source of truth, Redis a transport: the reaper queues the run once Redis answers."""
    [workflow_id], [time] = make_scheduled(1), coming_seconds(1)
    unreachable = redis.Redis(port=free_port(), socket_connect_timeout=1)
    dispatched = OccurrenceDispatcher(services.db, unreachable, "test-scheduler").handle([Firing(workflow_id, (time,))])
    assert dispatched == Counter(fired=1)
    [row], [run] = ledger(services, workflow_id), runs_of(services, workflow_id)
    assert (row.outcome, row.run_id, row.reason) == ("fired", run.id, None), "no occurrence recorded failed"
    assert (run.status, run.error, run.error_class, run.date_finished) == ("Queued", None, None, None)
    with services.db.sessions() as session:
        assert session.get(Workflow, workflow_id).status == "Queued"
    assert "1 scheduled runs not queued (ConnectionError); they stay Queued and will be queued when Redis returns" \
        in caplog.text


def test_a_database_outage_hands_the_occurrences_back(services, make_scheduled):
    from canvas.db import Database

    [workflow_id], [time] = make_scheduled(1), coming_seconds(1)
    handed_back: set[uuid.UUID] = set()
    unreachable = Database(f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/none")
    outage = OccurrenceDispatcher(unreachable, services.redis, "test-scheduler", on_unclaimed=handed_back.update)
    assert outage.handle([Firing(workflow_id, (time,))]) == Counter(unclaimed=1)
    assert handed_back == {workflow_id}
    unreachable.dispose()


def test_a_scheduled_run_is_executed_by_a_worker_like_a_manual_one(app, client, org, services):
    from tests.integration.run_helpers import make_workflow, work_off

    workflow_id = make_workflow(client, org.admin_headers)
    client.post("/api/WorkflowScheduler", json={"workflowId": workflow_id, "isScheduled": True,
                                                "scheduleFrequency": json.dumps({"cronSchedule": EVERY_SECOND})},
                headers=org.admin_headers)
    [time] = coming_seconds(1)
    assert dispatcher(services).handle([Firing(uuid.UUID(workflow_id), (time,))]) == Counter(fired=1)
    work_off(app)
    [run] = client.get(f"/api/WorkflowRuns?workflowId={workflow_id}", headers=org.admin_headers).json
    assert (run["status"], run["trigger"], run["scheduledTimes"]) == ("Succeeded", "schedule", [time.isoformat()])
    assert (run["runFromBlock"], run["runTillBlock"]) == (1, 3)
    workflow = client.get(f"/api/Workflow/{workflow_id}", headers=org.admin_headers).json
    assert workflow["status"] == "Ready" and workflow["dateLastRun"]
