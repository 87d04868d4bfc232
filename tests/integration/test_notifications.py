"""Run notifications by e-mail, received by a real SMTP server (aiosmtpd) on loopback: failure, recovery, missed
schedule occurrence, the interval and its digest; and the follow-up of final states recorded by the reaper (worker
lost) and by dispatch (Redis refused the enqueue): each gets its v2 callback delivery and its mail."""
from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from rq import Queue
from rq.job import Job
from sqlalchemy import select, update
from werkzeug.wrappers import Response

from canvas.execution.reaper import ReaperConfig, reap_lost_runs
from canvas.execution.run_endings import follow_up
from canvas.models import Account, CallbackDelivery, Workflow, WorkflowRun
from canvas.models.base import utcnow
from canvas.notifications import mail
from canvas.queueing.keys import RUN_QUEUE, notification_window_key
from canvas.scheduling.claims import OccurrenceDispatcher
from canvas.scheduling.occurrences import MISS, Firing
from tests.api.test_v2_support import V2
from tests.integration.run_helpers import B2, THREE_BLOCKS, empty_queue, make_workflow, run, run_and_work, work_off

pytestmark = pytest.mark.usefixtures("clean_run_queue")
EXPLODING = [THREE_BLOCKS[0], ("Explode", "jsonata.transform", {"expression": "$error('boom at ' & name)"}),
             THREE_BLOCKS[2]]
OPS = "ops@example.com"


def smtp_url(server) -> str:
    return f"smtp://{server.username}:{server.password}@{server.host}:{server.port}"


@pytest.fixture()
def mail_app(make_app, smtp_server):
    return make_app(SMTP_URL=smtp_url(smtp_server), NOTIFICATION_INTERVAL_SECONDS=0,
                    PUBLIC_URL="https://canvas.example.com")


@pytest.fixture()
def app(mail_app):
    """The app of the suite's fixtures (clean_run_queue) is this one: one app built per test, not two."""
    return mail_app


@pytest.fixture()
def org(mail_app):
    from tests.conftest import Org

    return Org(mail_app, "Told")


def notify_account(app, org, email: str = OPS) -> None:
    """The account fields the Canvas dialect accepts: globalNotifications, defaultNotificationEmail."""
    with app.extensions["canvas"].db.transaction() as session:
        session.execute(update(Account).where(Account.id == uuid.UUID(org.admin_id))
                        .values(global_notifications=True, default_notification_email=email))


def set_notifications(client, org, workflow_id: str, **settings) -> None:
    answer = client.post("/api/UpdateWorkflow", headers=org.admin_headers,
                         json={"id": workflow_id, "notificationSettings": settings})
    assert answer.status_code == 200, answer.json


def mails(server) -> list:
    return [message.parsed() for message in server.messages]


def test_a_failed_run_is_mailed_to_the_accounts_default_address(mail_app, org, smtp_server):
    client = mail_app.test_client()
    notify_account(mail_app, org)
    workflow_id = make_workflow(client, org.admin_headers, EXPLODING)
    failed = run_and_work(client, mail_app, org.admin_headers, workflow_id)
    assert failed["status"] == "Failed"
    [message] = mails(smtp_server)
    assert smtp_server.messages[0].rcpt_tos == [OPS] and smtp_server.messages[0].login == smtp_server.username
    assert message["Subject"] == "[Canvas] Run failed: Run test" and message["To"] == OPS
    body = message.get_content()
    assert f"Run: {failed['id']}" in body and "Failed block: 2 (Explode)" in body and "boom at Ann" in body
    assert f"Details: https://canvas.example.com/api/WorkflowRun/{failed['id']}" in body
    succeeded = run_and_work(client, mail_app, org.admin_headers, make_workflow(client, org.admin_headers))
    assert succeeded["status"] == "Succeeded" and len(smtp_server.messages) == 1, "a success tells nobody"


def test_a_workflow_whose_name_has_a_line_break_is_mailed_with_a_one_line_subject(mail_app, org, smtp_server):
    client = mail_app.test_client()
    notify_account(mail_app, org)
    workflow_id = make_workflow(client, org.admin_headers, EXPLODING)
    renamed = client.post("/api/UpdateWorkflow", headers=org.admin_headers,
                          json={"id": workflow_id, "name": "Nightly\r\nexport\u2028to FTP"})
    assert renamed.status_code == 200, renamed.json
    assert run_and_work(client, mail_app, org.admin_headers, workflow_id)["status"] == "Failed"
    [message] = mails(smtp_server)
    assert message["Subject"] == "[Canvas] Run failed: Nightly  export to FTP"
    assert f"to FTP ({workflow_id})" in message.get_content()  # the body keeps the name as it is


def test_nobody_is_mailed_without_settings(mail_app, org, smtp_server):
    client = mail_app.test_client()
    workflow_id = make_workflow(client, org.admin_headers, EXPLODING)
    assert run_and_work(client, mail_app, org.admin_headers, workflow_id)["status"] == "Failed"
    with mail_app.extensions["canvas"].db.sessions() as session:
        followed = session.scalar(select(WorkflowRun.followed_up_at).where(WorkflowRun.workflow_id
                                                                           == uuid.UUID(workflow_id)))
    assert smtp_server.messages == [] and followed is not None, "followed up by the runner's final write"


def test_a_success_after_a_failure_is_mailed_as_a_recovery(mail_app, org, smtp_server):
    client = mail_app.test_client()
    workflow_id = make_workflow(client, org.admin_headers, EXPLODING)
    set_notifications(client, org, workflow_id, emails=["team@example.com", "lead@example.com"])
    assert run_and_work(client, mail_app, org.admin_headers, workflow_id)["status"] == "Failed"
    fixed = client.post("/api/UpdateWorkflow", headers=org.admin_headers, json={
        "id": workflow_id, "chain": [{"uniqueBlockId": B2, "variables": {"expression": "$"}}]})
    assert fixed.status_code == 200
    recovered = run_and_work(client, mail_app, org.admin_headers, workflow_id)
    assert recovered["status"] == "Succeeded"
    again = run_and_work(client, mail_app, org.admin_headers, workflow_id)
    assert again["status"] == "Succeeded"
    with mail_app.extensions["canvas"].db.sessions() as session:
        run_row = session.get(WorkflowRun, uuid.UUID(again["id"]))
        assert run_row.followed_up_at == run_row.date_finished, "no recovery: nothing to send, no follow-up"
    failure, recovery = mails(smtp_server)  # the second success is no recovery
    assert failure["Subject"].startswith("[Canvas] Run failed")
    assert recovery["Subject"] == "[Canvas] Run succeeded again: Run test"
    assert recovery["To"] == "team@example.com, lead@example.com"
    assert f"Run: {recovered['id']}" in recovery.get_content() and "Status: Succeeded" in recovery.get_content()


def test_settings_without_a_flag_mail_nothing_for_it(mail_app, org, smtp_server):
    client = mail_app.test_client()
    notify_account(mail_app, org)
    workflow_id = make_workflow(client, org.admin_headers, EXPLODING)
    set_notifications(client, org, workflow_id, onFailure=False)  # overrides the account's global notifications
    assert run_and_work(client, mail_app, org.admin_headers, workflow_id)["status"] == "Failed"
    assert smtp_server.messages == []


def test_a_missed_schedule_occurrence_is_mailed(mail_app, org, smtp_server):
    client, services = mail_app.test_client(), mail_app.extensions["canvas"]
    workflow_id = make_workflow(client, org.admin_headers)
    scheduled = client.post("/api/WorkflowScheduler", headers=org.admin_headers, json={
        "workflowId": workflow_id, "isScheduled": True, "scheduleFrequency": json.dumps({"cronSchedule": "* * * ? * *"})})
    assert scheduled.status_code == 200, scheduled.json
    set_notifications(client, org, workflow_id, onFailure=False, emails=[OPS])
    due = (datetime.now(timezone.utc) + timedelta(seconds=2)).replace(microsecond=0)  # after the schedule was set
    firing = Firing(uuid.UUID(workflow_id), (due,), MISS, "missed: the scheduler was down at the time")
    outcomes = OccurrenceDispatcher(services.db, services.redis, "test-scheduler").handle([firing])
    assert outcomes["missed"] == 1
    work_off(mail_app)
    [message] = mails(smtp_server)
    assert message["Subject"] == "[Canvas] Scheduled run missed: Run test"
    body = message.get_content()
    assert due.isoformat() in body and "Outcome: missed" in body and "scheduler was down" in body


def digests_scheduled(connection, workflow_id: str) -> list[Job]:
    """The workflow's digest jobs waiting for RQ's scheduler (the queue's registry is shared with other tests)."""
    registry = Queue(RUN_QUEUE, connection=connection).scheduled_job_registry
    jobs = Job.fetch_many(registry.get_job_ids(), connection=connection)
    return [job for job in jobs if job is not None and job.func_name == mail.DIGEST_JOB and job.args == (workflow_id,)]


@pytest.fixture()
def forget_digests():
    """Digest jobs a test scheduled an hour ahead are removed after it: no later scheduler runs them."""
    scheduled = []
    yield scheduled.append
    for connection, workflow_id in scheduled:
        registry = Queue(RUN_QUEUE, connection=connection).scheduled_job_registry
        for job in digests_scheduled(connection, workflow_id):
            registry.remove(job, delete_job=True)


def test_one_mail_per_interval_and_the_next_one_counts_the_rest(make_app, smtp_server, forget_digests):
    from tests.conftest import Org

    app = make_app(SMTP_URL=smtp_url(smtp_server), NOTIFICATION_INTERVAL_SECONDS=3600)
    client, services, org = app.test_client(), app.extensions["canvas"], Org(app, "Digest")
    workflow_id = make_workflow(client, org.admin_headers, EXPLODING)
    set_notifications(client, org, workflow_id, emails=[OPS])
    forget_digests((services.redis, workflow_id))
    for _ in range(3):
        assert run_and_work(client, app, org.admin_headers, workflow_id)["status"] == "Failed"
    assert len(smtp_server.messages) == 1, "one mail per workflow per interval"
    assert len(digests_scheduled(services.redis, workflow_id)) == 1, "a digest for the end of the interval"
    services.redis.delete(notification_window_key(services.settings["REDIS_PREFIX"], workflow_id))  # it is over
    assert run_and_work(client, app, org.admin_headers, workflow_id)["status"] == "Failed"
    first, second = mails(smtp_server)
    assert "more failure" not in first.get_content()
    assert "2 more failures since " in second.get_content() and second["Subject"].startswith("[Canvas] Run failed")
    with app.app_context():
        assert mail.send_digest(workflow_id) == "nothing held", "the next mail told them: no digest"


def test_the_digest_tells_events_held_until_the_end_of_the_interval(make_app, smtp_server, forget_digests):
    from tests.conftest import Org

    app = make_app(SMTP_URL=smtp_url(smtp_server), NOTIFICATION_INTERVAL_SECONDS=3600)
    client, services, org = app.test_client(), app.extensions["canvas"], Org(app, "Digest")
    workflow_id = make_workflow(client, org.admin_headers, EXPLODING)
    set_notifications(client, org, workflow_id, emails=[OPS])
    forget_digests((services.redis, workflow_id))
    for _ in range(2):
        assert run_and_work(client, app, org.admin_headers, workflow_id)["status"] == "Failed"
    services.redis.delete(notification_window_key(services.settings["REDIS_PREFIX"], workflow_id))
    with app.app_context():
        assert len(digests_scheduled(services.redis, workflow_id)) == 1
        assert mail.send_digest(workflow_id) == "sent"
    _failure, digest = mails(smtp_server)
    assert digest["Subject"] == "[Canvas] Notification digest: Run test" and digest["To"] == OPS
    assert "1 more failure since " in digest.get_content()


# --- final states recorded by others than the runner --------------------------------------------------------------

@pytest.fixture()
def hook(http_server):
    http_server.route("/hook", lambda request: Response(status=204))
    return http_server


def told_flow(app, org, hook) -> tuple[V2, str]:
    """A v2 flow with a callback on failures and notifications to OPS."""
    v2 = V2(app, app.test_client(), org)
    flow = v2.create("Watched", notification_settings={"emails": [OPS]})
    answer = v2.call("POST", f"/v2/flows/{flow['id']}/callbacks", {"data": {"type": "callback", "attributes": {
        "url": hook.url("/hook"), "events": ["run.failed"]}}})
    assert answer.status_code == 201, answer.json
    return v2, flow["id"]


def callbacks_received(hook) -> list[dict]:
    return [request.json() for request in hook.requests if request.path == "/hook"]


def test_a_run_failed_by_the_reaper_gets_its_callback_and_its_mail(mail_app, org, smtp_server, hook):
    services = mail_app.extensions["canvas"]
    v2, flow_id = told_flow(mail_app, org, hook)
    queued = run(v2.client, org.admin_headers, flow_id)
    assert queued.status_code == 202, queued.json
    run_id = uuid.UUID(queued.headers["Location"].rsplit("/", 1)[-1])
    empty_queue(mail_app)
    silent_since = utcnow() - timedelta(minutes=5)
    with services.db.transaction() as session:  # what a worker killed mid-run leaves behind
        session.execute(update(WorkflowRun).where(WorkflowRun.id == run_id).values(
            status="Running", worker_name="gone:1", date_started=silent_since, heartbeat_at=silent_since,
            lease_token=WorkflowRun.lease_token + 1))
        session.execute(update(Workflow).where(Workflow.id == uuid.UUID(flow_id)).values(status="Running"))
    reap_lost_runs(services.db, services.redis, ReaperConfig(grace_seconds=30, requeue_limit=3))
    work_off(mail_app)
    [summary] = callbacks_received(hook)
    assert summary["run_id"] == str(run_id) and summary["status"] == "Failed" and summary["event"] == "run.failed"
    assert summary["error"].startswith("worker lost")
    [message] = mails(smtp_server)
    assert message["Subject"] == "[Canvas] Run failed: Watched" and "worker lost" in message.get_content()
    reap_lost_runs(services.db, services.redis, ReaperConfig(grace_seconds=30, requeue_limit=3))
    work_off(mail_app)
    assert len(callbacks_received(hook)) == 1 and len(smtp_server.messages) == 1, "followed up once"


def test_a_run_failed_by_a_refused_enqueue_is_followed_up_once_redis_is_back(make_app, own_redis, smtp_server,
                                                                              hook):
    from tests.conftest import Org

    app = make_app(REDIS_URL=own_redis.url, SMTP_URL=smtp_url(smtp_server), NOTIFICATION_INTERVAL_SECONDS=0)
    services, org = app.extensions["canvas"], Org(app, "Outage")
    v2, flow_id = told_flow(app, org, hook)
    own_redis.stop()
    refused = run(v2.client, org.admin_headers, flow_id)
    assert refused.status_code == 503, refused.json
    with services.db.sessions() as session:
        failed = session.scalars(select(WorkflowRun).where(WorkflowRun.workflow_id == uuid.UUID(flow_id))).one()
    assert failed.status == "Failed" and failed.error_class == "QueueUnavailable" and failed.followed_up_at is None
    assert follow_up(services.db, services.redis, [failed.id]) == 0, "Redis is still away"
    with services.db.sessions() as session:
        assert session.get(WorkflowRun, failed.id).followed_up_at is None, "the claim was undone"
        assert session.scalars(select(CallbackDelivery).where(CallbackDelivery.run_id == failed.id)).all() == []
    own_redis.start()
    reap_lost_runs(services.db, services.redis, ReaperConfig(grace_seconds=30, requeue_limit=3))
    work_off(app)
    [summary] = callbacks_received(hook)
    assert summary["run_id"] == str(failed.id) and summary["status"] == "Failed"
    assert "Redis is unavailable" in summary["error"]
    [message] = mails(smtp_server)
    assert message["Subject"] == "[Canvas] Run failed: Watched" and f"Run: {failed.id}" in message.get_content()


def test_a_mail_the_relay_cannot_take_is_logged_not_retried(make_app, caplog):
    from tests.conftest import Org
    from tests.process_tools import free_port

    app = make_app(SMTP_URL=f"smtp://user:Secret-Pass-1@127.0.0.1:{free_port()}", NOTIFICATION_INTERVAL_SECONDS=0)
    client, services, org = app.test_client(), app.extensions["canvas"], Org(app, "Unrelayed")
    notify_account(app, org)
    workflow_id = make_workflow(client, org.admin_headers, EXPLODING)
    failed_jobs = Queue(RUN_QUEUE, connection=services.redis).failed_job_registry
    failed_before = set(failed_jobs.get_job_ids())
    with caplog.at_level("WARNING", logger="canvas.notifications.mail"):
        assert run_and_work(client, app, org.admin_headers, workflow_id)["status"] == "Failed"
    [line] = [record.getMessage() for record in caplog.records if record.name == "canvas.notifications.mail"]
    assert f"workflow {workflow_id} could not be mailed: ConnectionRefusedError" in line
    assert "Secret-Pass-1" not in caplog.text
    assert Queue(RUN_QUEUE, connection=services.redis).count == 0, "logged, not retried"
    # The registry is the suite's, shared: a worker starting up moves jobs that earlier tests abandoned into it.
    # What this test owns is that none of the jobs failed here is about this workflow (its run or its mail).
    failed_here = Job.fetch_many(sorted(set(failed_jobs.get_job_ids()) - failed_before), connection=services.redis)
    about_this_workflow = [job.id for job in failed_here if job and workflow_id in f"{job.description} {job.args!r}"]
    assert about_this_workflow == [], \
        "the mail that the relay refused is logged, not left failed for a retry"
