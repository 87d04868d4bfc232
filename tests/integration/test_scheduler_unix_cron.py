"""The scheduler fires a flow whose v2 `cron` is a Unix cron: croniter's fire times in the flow's time zone, claimed
once in the ledger with two schedulers running, the next time kept current."""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from croniter import croniter
from sqlalchemy import update

from canvas.models import Workflow, WorkflowSchedule
from canvas.scheduling.trigger import UnixCronTrigger
from tests.api.test_v2_support import V2
from tests.integration.test_scheduler_claims import empty_run_queue, ledger, runs_of  # noqa: F401 - fixtures
from tests.integration.test_scheduler_engine import start_engine, wait_for  # noqa: F401 - fixtures

CRON, ZONE = "* * * * *", "Europe/Oslo"
BACKLOG_MINUTES = 4


def croniter_between(after: datetime, until: datetime) -> list[datetime]:
    times, found = croniter(CRON, after.astimezone(ZoneInfo(ZONE))), []
    while (time := times.get_next(datetime).astimezone(timezone.utc)) <= until:
        found.append(time)
    return found


def started_unix_flow(app, client, org) -> uuid.UUID:
    v2 = V2(app, client, org)
    flow = v2.create(cron=CRON, time_zone=ZONE)
    answer = v2.call("POST", f"/v2/flows/{flow['id']}/start")
    assert answer.status_code == 202, answer.json
    return uuid.UUID(flow["id"])


def backdate(services, workflow_id: uuid.UUID, minutes: int) -> datetime:
    """As if the flow had been started ``minutes`` ago with no scheduler running since."""
    changed = datetime.now(timezone.utc).replace(second=30, microsecond=0) - timedelta(minutes=minutes)
    with services.db.transaction() as session:
        session.execute(update(WorkflowSchedule).where(WorkflowSchedule.workflow_id == workflow_id)
                        .values(date_changed=changed))
    return changed


def test_a_unix_cron_flow_fires_croniters_times_once_with_two_schedulers(app, client, org, services,
                                                                         start_engine):  # noqa: F811 - a fixture
    workflow_id = started_unix_flow(app, client, org)
    changed = backdate(services, workflow_id, BACKLOG_MINUTES)
    first = start_engine(misfire_grace_seconds=3600.0)
    start_engine(misfire_grace_seconds=3600.0)
    job = first.apscheduler.get_job(str(workflow_id))
    assert isinstance(job.trigger, UnixCronTrigger) and str(job.trigger.zone) == ZONE
    now = datetime.now(timezone.utc)
    expected = croniter_between(changed, now)
    assert len(expected) >= BACKLOG_MINUTES - 1
    rows = wait_for(lambda: len(rows := ledger(services, workflow_id)) >= len(expected) and rows, 20,
                    "the backlog's occurrences")
    times = [row.scheduled_time.astimezone(timezone.utc) if row.scheduled_time.tzinfo
             else row.scheduled_time.replace(tzinfo=timezone.utc) for row in rows]
    assert times[:len(expected)] == expected, "croniter's times, each once"
    assert len(set(times)) == len(times)
    assert rows[0].outcome == "fired" and {row.outcome for row in rows[1:len(expected)]} <= {"skipped"}
    [run] = runs_of(services, workflow_id)
    assert run.id == rows[0].run_id
    with services.db.sessions() as session:
        stored = session.get(Workflow, workflow_id).date_next_schedule
    stored = stored if stored.tzinfo else stored.replace(tzinfo=timezone.utc)
    following = croniter_between(times[-1], times[-1] + timedelta(minutes=2))
    assert stored in following[:2], "dateNextSchedule is current (the second one if a minute fired meanwhile)"
    assert job.next_run_time.astimezone(timezone.utc) in croniter_between(now - timedelta(minutes=1),
                                                                          now + timedelta(minutes=2))
