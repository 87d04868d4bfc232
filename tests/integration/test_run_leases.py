"""Run leases with fencing, in one process against the suite's database and Redis: a runner whose lease is revoked
stops and writes nothing more; a lease is renewed while a long block runs; a final state is never changed; the
reaper queues stranded runs again (and gives up, in words, after REQUEUE_LIMIT)."""
from __future__ import annotations

import threading
import time
import uuid
from datetime import timedelta

import pytest
from rq import Queue
from rq.job import Job
from sqlalchemy import create_engine, select, update
from sqlalchemy.exc import OperationalError

from canvas.execution import reaper
from canvas.execution import run_records as records
from canvas.execution.lease import DatabaseUnreachableError, FencedWriter, LeaseLostError, LeaseTiming, RunLease
from canvas.execution.reaper import OUTCOME_UNKNOWN, InFlightJobs, ReaperConfig, fail_lost_runs, reap_lost_runs
from canvas.execution.runner import Runner
from canvas.models import BlockOutput, BlockRun, Workflow, WorkflowRun
from canvas.models.base import utcnow
from canvas.queueing.keys import RUN_QUEUE
from tests.integration.run_helpers import THREE_BLOCKS, in_a_thread, make_workflow, rq_connection, run, wait_for
from tests.integration.test_scheduler_claims import make_scheduled  # noqa: F401 - a fixture

pytestmark = pytest.mark.usefixtures("clean_run_queue")
SLOW_MIDDLE = [THREE_BLOCKS[0], ("Wait", "delay", {"seconds": 2.5}), THREE_BLOCKS[2]]
FAST_LEASES = {"LOST_RUN_GRACE_SECONDS": 3.0, "LEASE_RENEW_SECONDS": 0.5}


@pytest.fixture()
def app(make_app):
    return make_app(**FAST_LEASES)


def queued_run(client, org, blocks=None) -> uuid.UUID:
    workflow_id = make_workflow(client, org.admin_headers, blocks or SLOW_MIDDLE)
    answer = run(client, org.admin_headers, workflow_id)
    assert answer.status_code == 202, answer.json
    return uuid.UUID(answer.headers["Location"].rsplit("/", 1)[1])


def run_in_thread(app, run_id: uuid.UUID) -> tuple[threading.Thread, dict]:
    return in_a_thread(app, lambda runner: runner.run(run_id))


def run_row(app, run_id: uuid.UUID) -> WorkflowRun:
    with app.extensions["canvas"].db.sessions() as session:
        return session.get(WorkflowRun, run_id)


def block_runs(app, run_id: uuid.UUID) -> list[BlockRun]:
    with app.extensions["canvas"].db.sessions() as session:
        return list(session.scalars(select(BlockRun).where(BlockRun.run_id == run_id).order_by(BlockRun.number)))


def block_running(app, run_id: uuid.UUID, number: int) -> bool:
    return any(block.number == number and block.status == "Running" for block in block_runs(app, run_id))


def test_a_runner_whose_lease_is_revoked_stops_and_writes_nothing_more(client, app, org):
    run_id = queued_run(client, org)
    thread, outcome = run_in_thread(app, run_id)
    wait_for(lambda: block_running(app, run_id, 2), what="block 2 running")
    # As the reaper of another process would, had this worker been silent too long: revoke and fail.
    assert fail_lost_runs(app.extensions["canvas"].db, grace_seconds=-60) == [run_id]
    failed = run_row(app, run_id)
    thread.join(30)
    assert outcome["result"] == "lease lost"
    final = run_row(app, run_id)
    assert (final.status, final.error, final.date_finished) == ("Failed", failed.error, failed.date_finished)
    assert final.error.startswith("worker lost")
    assert [(block.number, block.status) for block in block_runs(app, run_id)] == [(1, "Succeeded"), (2, "Failed")]
    assert block_runs(app, run_id)[1].error == f"{final.error}; {OUTCOME_UNKNOWN}"  # for whoever would run it again
    with app.extensions["canvas"].db.sessions() as session:
        outputs = session.scalars(select(BlockOutput.number).where(BlockOutput.run_id == run_id)).all()
    assert outputs == [1]  # block 2 finished its wait, but its output was not recorded: the lease was gone


def test_the_lease_is_renewed_while_a_long_block_runs_and_the_reaper_leaves_it_alone(client, app, org):
    run_id = queued_run(client, org, [THREE_BLOCKS[0], ("Wait", "delay", {"seconds": 4.5})])
    thread, outcome = run_in_thread(app, run_id)
    wait_for(lambda: block_running(app, run_id, 2), what="block 2 running")
    first = run_row(app, run_id).heartbeat_at
    began = time.monotonic()
    samples = []  # (seconds into the block, heartbeat_at): a failure shows whether the keeper or the sampling stalled
    while thread.is_alive():
        assert fail_lost_runs(app.extensions["canvas"].db, FAST_LEASES["LOST_RUN_GRACE_SECONDS"]) == []
        samples.append((round(time.monotonic() - began, 2), run_row(app, run_id).heartbeat_at))
        time.sleep(0.3)
    assert outcome["result"] == "Succeeded" and run_row(app, run_id).status == "Succeeded"
    renewals = {at for _, at in samples if at and at > first}
    assert len(renewals) >= 3, f"renewed several times during a 4.5 s block; first {first}, samples {samples}"


def test_a_final_state_is_never_changed_by_a_late_finish(client, app, org):
    run_id = queued_run(client, org, [THREE_BLOCKS[0]])
    services = app.extensions["canvas"]
    with services.db.transaction() as session:  # cancelled before it started: final, and not Queued any more
        session.execute(update(WorkflowRun).where(WorkflowRun.id == run_id)
                        .values(status="Cancelled", date_finished=utcnow(), error="cancelled before it started"))
    with app.app_context():
        assert Runner(services).run(run_id) == "not started"
    assert (run_row(app, run_id).status, block_runs(app, run_id)) == ("Cancelled", [])


def running_run(client, app, org, token: int) -> uuid.UUID:
    """A run set Running under `token`, as a claim would leave it."""
    run_id = queued_run(client, org, [THREE_BLOCKS[0]])
    with app.extensions["canvas"].db.engine.begin() as connection:
        connection.execute(update(WorkflowRun).where(WorkflowRun.id == run_id)
                           .values(status="Running", lease_token=token, heartbeat_at=utcnow()))
    return run_id


def test_a_fenced_write_is_refused_once_another_process_took_the_run(client, app, org):
    run_id = running_run(client, app, org, token=7)
    engine = app.extensions["canvas"].db.engine
    stale = FencedWriter(engine, RunLease(run_id, 6, LeaseTiming(3.0, 0.5)))
    with pytest.raises(LeaseLostError):
        stale.write("finishing the run", lambda connection: connection.execute(
            update(WorkflowRun).where(WorkflowRun.id == run_id).values(status="Succeeded")))
    assert stale.lease.revoked and run_row(app, run_id).status == "Running"
    current = FencedWriter(engine, RunLease(run_id, 7, LeaseTiming(3.0, 0.5)))
    current.write("finishing the run", lambda connection: connection.execute(
        update(WorkflowRun).where(WorkflowRun.id == run_id).values(status="Succeeded")))
    assert run_row(app, run_id).status == "Succeeded"


def test_a_runs_end_and_its_last_block_are_written_together_and_only_under_its_lease(client, app, org):
    """The run's end, its workflow's state and its last block's output and completion are written together (one
    statement on PostgreSQL), and none of them under a stale token."""
    run_id = running_run(client, app, org, token=7)
    engine = app.extensions["canvas"].db.engine
    workflow_id, block_run_id, output_id = run_row(app, run_id).workflow_id, uuid.uuid4(), uuid.uuid4()
    with engine.begin() as connection:
        records.insert_block_run(connection, workflow_id, {
            "id": block_run_id, "run_id": run_id, "number": 1, "unique_block_id": "b1", "block_name": "Records",
            "block_key": "records.from_variable", "status": "Running", "attempts": 0, "log": [],
            "date_started": utcnow()})
    output = {"id": output_id, "workflow_id": workflow_id, "run_id": run_id, "number": 1, "unique_block_id": "b1",
              "blob_key": "runs/b1", "kind": "records", "content_type": "application/x-ndjson", "file_name": None,
              "size": 12, "record_count": 2, "sha256": "0" * 64, "dry_run": False, "date_created": utcnow()}
    completed = records.completion(output, block_run_id, 1, [{"message": "done"}], 3, utcnow())

    def finish(token: int) -> bool:
        with engine.begin() as connection:
            return records.finish_run(connection, run_id, token, workflow_id,
                                      {"status": "Succeeded", "date_finished": utcnow()},
                                      {"status": "Ready", "current_block": 1}, completed)

    def written() -> tuple:
        with app.extensions["canvas"].db.sessions() as session:
            block = session.get(BlockRun, block_run_id)
            outputs = session.scalars(select(BlockOutput.id).where(BlockOutput.run_id == run_id)).all()
            return (session.get(WorkflowRun, run_id).status, session.get(Workflow, workflow_id).status,
                    (block.status, block.output_id, block.records_read, block.records_out, block.log), outputs)

    before = written()
    assert not finish(6)
    assert written() == before and before[0] == "Running" and before[3] == []
    assert finish(7)
    assert written() == ("Succeeded", "Ready", ("Succeeded", output_id, 3, 2, [{"message": "done"}]), [output_id])


def test_a_lost_connection_is_waited_out_and_a_landed_commit_is_not_applied_twice(client, app, org):
    run_id = running_run(client, app, org, token=1)
    engine = app.extensions["canvas"].db.engine
    writer = FencedWriter(engine, RunLease(run_id, 1, LeaseTiming(3.0, 0.5)), sleep=lambda _seconds: None)
    attempts = []

    def count_then_fail_once(connection) -> None:  # noqa: ANN001
        attempts.append(1)
        connection.execute(update(WorkflowRun).where(WorkflowRun.id == run_id)
                           .values(dispatch_count=WorkflowRun.dispatch_count + 1))
        if len(attempts) == 1:
            raise OperationalError("COMMIT", {}, ConnectionResetError("server closed the connection"))

    writer.write("recording block 1", count_then_fail_once)
    assert (len(attempts), run_row(app, run_id).dispatch_count) == (2, 2)  # rolled back once, applied once
    attempts.clear()
    writer.write("recording block 1", count_then_fail_once, landed=lambda connection: True)
    assert len(attempts) == 1  # the probe said the first attempt landed: not tried again
    assert run_row(app, run_id).dispatch_count == 2


def test_a_write_given_up_for_the_outage_logs_its_first_and_its_last_error(client, app, org, caplog):
    """An outage is one line when it begins and, if the write is given up, one more naming the last attempt's
    error: an operator sees why it was given up when the error changed in between (refused, then reset)."""
    run_id = running_run(client, app, org, token=1)
    now = [1000.0]
    lease = RunLease(run_id, 1, LeaseTiming(3.0, 0.5), clock=lambda: now[0], wall=lambda: now[0])
    writer = FencedWriter(app.extensions["canvas"].db.engine, lease,
                          sleep=lambda seconds: now.__setitem__(0, now[0] + seconds))
    errors = iter([ConnectionRefusedError("connection refused")] * 3)

    def failing(_connection) -> None:  # noqa: ANN001
        raise OperationalError("SELECT 1", {}, next(errors, ConnectionResetError("server closed the connection")))

    with pytest.raises(DatabaseUnreachableError, match="while finishing the run; the run was stopped"):
        writer.write("finishing the run", failing, fences_itself=True, until=now[0] + 3.0)
    lines = [record.getMessage() for record in caplog.records if "finishing the run" in record.getMessage()]
    assert len(lines) == 2, lines
    assert "(ConnectionRefusedError: connection refused); trying again" in lines[0]
    assert "still unavailable while finishing the run (ConnectionResetError: server closed" in lines[1]
    assert lines[1].endswith("giving up")


def test_a_lease_expires_locally_one_renewal_before_the_grace_ends():
    now = [100.0]
    lease = RunLease(uuid.uuid4(), 1, LeaseTiming(grace=6.0, renew=1.0), clock=lambda: now[0], wall=lambda: now[0])
    assert not lease.due() and not lease.expired()
    now[0] = 101.0
    assert lease.due() and not lease.expired()
    now[0] = 105.5  # a pause: past grace - renew, before the grace itself
    assert lease.expired()
    with pytest.raises(LeaseLostError, match="not renewed for 6 s"):
        lease.check()
    lease.renewed((105.5, 105.5))
    assert not lease.expired()


def requeued(reason: str) -> float:
    """canvas_runs_requeued_total{reason} in this process."""
    from canvas.observability.metrics_web import exposition
    from tests.unit.test_metrics import value

    return value(exposition().decode(), "canvas_runs_requeued_total", reason=reason)


def queue_of(app) -> Queue:
    return Queue(RUN_QUEUE, connection=rq_connection(app))


def age(app, run_id: uuid.UUID, seconds: float = 60) -> None:
    with app.extensions["canvas"].db.transaction() as session:
        session.execute(update(WorkflowRun).where(WorkflowRun.id == run_id)
                        .values(heartbeat_at=utcnow() - timedelta(seconds=seconds)))


def test_a_queued_run_whose_job_was_lost_is_queued_again_then_failed_in_words(client, app, org):
    services = app.extensions["canvas"]
    config = ReaperConfig.from_settings({**app.config["CANVAS_SETTINGS"], "REQUEUE_LIMIT": 1})
    run_id = queued_run(client, org, [THREE_BLOCKS[0]])
    age(app, run_id)
    assert reap_lost_runs(services.db, rq_connection(app), config) == []  # its job waits in the queue: fine
    queue_of(app).empty()  # as Redis losing its data would
    before = requeued("job_missing")
    assert reap_lost_runs(services.db, rq_connection(app), config) == [run_id]
    assert requeued("job_missing") == before + 1
    assert Job.fetch(str(run_id), connection=rq_connection(app)).get_status().value == "queued"
    assert (run_row(app, run_id).status, run_row(app, run_id).dispatch_count) == ("Queued", 2)
    assert reap_lost_runs(services.db, rq_connection(app), config) == []  # just queued again: its clock restarted
    queue_of(app).empty()
    age(app, run_id)
    assert reap_lost_runs(services.db, rq_connection(app), config) == [run_id]
    failed = run_row(app, run_id)
    assert failed.status == "Failed" and failed.error.startswith("job lost: the run was queued 2 times")
    with services.db.sessions() as session:
        assert session.get(Workflow, failed.workflow_id).status == "Failed"


def test_a_job_that_failed_before_its_claim_is_queued_again_and_runs_once(client, app, org):
    from tests.integration.run_helpers import work_off

    run_id = queued_run(client, org, [THREE_BLOCKS[0]])
    job = Job.fetch(str(run_id), connection=rq_connection(app))
    queue_of(app).remove(job)
    job.set_status("failed")  # as RQ leaves a job whose first transaction died before the claim
    age(app, run_id)
    services, before = app.extensions["canvas"], requeued("job_ended")
    assert reap_lost_runs(services.db, rq_connection(app), ReaperConfig.from_settings(
        app.config["CANVAS_SETTINGS"])) == [run_id]
    assert requeued("job_ended") == before + 1
    work_off(app)
    assert run_row(app, run_id).status == "Succeeded"
    assert [block.status for block in block_runs(app, run_id)] == ["Succeeded"]


@pytest.mark.parametrize("misfire_policy, final", [("skip", "Cancelled"), ("coalesce", "Queued")])
def test_a_scheduled_run_queued_too_late_follows_the_misfire_policy(client, app, org, make_scheduled,
                                                                   misfire_policy, final):
    """The scheduler could not queue its run (Redis away); when the reaper finds it, past the misfire grace."""
    from canvas.models import ScheduleOccurrence

    workflow_id = make_scheduled(1, "0 0 3 * * ?", misfirePolicy=misfire_policy)[0]
    services = app.extensions["canvas"]
    scheduled = (utcnow() - timedelta(minutes=10)).replace(microsecond=0)
    run_id = uuid.uuid4()
    with services.db.transaction() as session:
        session.add(WorkflowRun(id=run_id, workflow_id=workflow_id, account_id=uuid.UUID(org.admin_id),
                                status="Queued", trigger="schedule", run_from_block=1, run_till_block=1,
                                scheduled_times=[scheduled.isoformat()], date_queued=scheduled,
                                heartbeat_at=scheduled))
        session.add(ScheduleOccurrence(workflow_id=workflow_id, scheduled_time=scheduled, outcome="fired",
                                       run_id=run_id, dispatch_time=scheduled, scheduler="test"))
    config = ReaperConfig.from_settings(app.config["CANVAS_SETTINGS"])
    assert reap_lost_runs(services.db, rq_connection(app), config) == [run_id]
    assert run_row(app, run_id).status == final
    with services.db.sessions() as session:
        occurrence = session.get(ScheduleOccurrence, (workflow_id, scheduled))
    if misfire_policy == "skip":
        assert occurrence.outcome == "missed" and "misfire policy skip" in occurrence.reason
        assert run_row(app, run_id).error.startswith("missed: the scheduled run could not be queued")
    else:
        assert occurrence.outcome == "fired" and run_row(app, run_id).dispatch_count == 2
        assert Job.fetch(str(run_id), connection=rq_connection(app)).get_status().value == "queued"


def test_a_lease_that_expired_locally_is_confirmed_by_the_database_or_given_up(client, app, org):
    """A paused worker resumes with its lease expired locally: if nobody took the run meanwhile, one fenced renewal
    confirms it and the run goes on; if the run was declared lost, it stops."""
    run_id = running_run(client, app, org, token=3)
    engine = app.extensions["canvas"].db.engine
    now = [1000.0]
    lease = RunLease(run_id, 3, LeaseTiming(3.0, 0.5), clock=lambda: now[0], wall=lambda: now[0])
    writer = FencedWriter(engine, lease)
    now[0] += 60  # the pause
    assert lease.expired()
    assert writer.confirm() and not lease.expired()  # renewed: nobody had declared it lost
    now[0] += 60
    assert fail_lost_runs(app.extensions["canvas"].db, grace_seconds=-60) == [run_id]
    assert not writer.confirm() and lease.revoked
    assert run_row(app, run_id).error.startswith("worker lost")


def test_a_lease_that_expired_in_an_outage_holds_while_patient_and_is_renewed_once_the_database_is_back(
        client, app, org, tmp_path):
    """Between blocks (FencedWriter.patient) a lease past its deadline while the database cannot be reached still
    holds, up to the patience, so the run rides the outage out; without patience, or past it, it does not. The
    first confirmation once the database answers renews it, before a reaper could find the run silent."""
    run_id = running_run(client, app, org, token=3)
    engine, away = app.extensions["canvas"].db.engine, create_engine(f"sqlite:///{tmp_path}/missing/canvas.db")
    now = [1000.0]
    lease = RunLease(run_id, 3, LeaseTiming(3.0, 0.5), clock=lambda: now[0], wall=lambda: now[0])
    writer = FencedWriter(away, lease)
    now[0] += 3.0  # past the deadline, grace - renew = 2.5 s, the database unreachable
    assert lease.expired() and not writer.confirm()
    with writer.patient(3.0):
        assert writer.confirm()
        now[0] += 2.0  # 5 s silent, within 2.5 + 3
        assert writer.confirm()
        before = run_row(app, run_id).heartbeat_at
        writer.engine = engine  # the database is back
        assert writer.confirm() and not lease.expired()
        assert run_row(app, run_id).heartbeat_at > before
        writer.engine, now[0] = away, now[0] + 6.0  # away again, longer than deadline + patience
        assert not writer.confirm()
    assert not lease.revoked  # nobody took the run: it was given up for want of the database


def test_a_job_a_worker_took_but_could_not_start_is_queued_again_and_runs_once(client, app, org):
    """RQ moves a job to the queue's intermediate list as a worker takes it; a worker that cannot write the next
    step (Redis refusing writes: a full disk) leaves it there, its status "queued", and the run stayed Queued for
    good in the reaper's eyes."""
    from tests.integration.run_helpers import work_off

    run_id = queued_run(client, org, [THREE_BLOCKS[0]])
    queue, connection = queue_of(app), rq_connection(app)
    assert connection.lmove(queue.key, queue.intermediate_queue_key) == str(run_id).encode()  # as a worker takes it
    age(app, run_id)
    services = app.extensions["canvas"]
    config, in_flight = ReaperConfig.from_settings(app.config["CANVAS_SETTINGS"]), InFlightJobs()
    assert reap_lost_runs(services.db, connection, config, in_flight) == []  # its worker may be starting it now
    assert connection.lrange(queue.intermediate_queue_key, 0, -1) == [str(run_id).encode()]
    assert reap_lost_runs(services.db, connection, config, in_flight) == [run_id]  # still there a round later
    assert connection.lrange(queue.intermediate_queue_key, 0, -1) == []
    assert queue.job_ids == [str(run_id)] and run_row(app, run_id).dispatch_count == 2
    work_off(app)
    assert run_row(app, run_id).status == "Succeeded"
    assert [block.status for block in block_runs(app, run_id)] == ["Succeeded"]


def test_a_job_taken_while_its_run_is_recent_is_left_to_its_worker(client, app, org):
    run_id = queued_run(client, org, [THREE_BLOCKS[0]])
    queue, connection = queue_of(app), rq_connection(app)
    connection.lmove(queue.key, queue.intermediate_queue_key)
    services = app.extensions["canvas"]
    assert reap_lost_runs(services.db, connection, ReaperConfig.from_settings(app.config["CANVAS_SETTINGS"])) == []
    assert connection.lrange(queue.intermediate_queue_key, 0, -1) == [str(run_id).encode()]


def test_a_job_in_flight_in_one_round_only_was_being_started_and_is_left_to_its_worker(client, app, org):
    """A backlog's runs have all waited past the grace period: a job a worker is taking (in RQ's intermediate list)
    at the moment the reaper looks is being started, not stuck. Seen so in one round and gone the next (its worker
    started and ran it), it gets no second job."""
    from tests.integration.run_helpers import work_off

    run_id = queued_run(client, org, [THREE_BLOCKS[0]])
    queue, connection = queue_of(app), rq_connection(app)
    age(app, run_id)
    services = app.extensions["canvas"]
    config, in_flight = ReaperConfig.from_settings(app.config["CANVAS_SETTINGS"]), InFlightJobs()
    connection.lmove(queue.key, queue.intermediate_queue_key)  # a worker takes it
    assert reap_lost_runs(services.db, connection, config, in_flight) == []
    connection.lmove(queue.intermediate_queue_key, queue.key)  # (the worker goes on with it)
    work_off(app)
    assert reap_lost_runs(services.db, connection, config, in_flight) == []
    assert (queue.job_ids, run_row(app, run_id).status, run_row(app, run_id).dispatch_count) == ([], "Succeeded", 1)


def test_a_job_started_but_never_claimed_for_two_rounds_is_queued_again(client, app, org):
    """RQ marked the job started, and its worker died before it claimed the run."""
    run_id = queued_run(client, org, [THREE_BLOCKS[0]])
    queue, connection = queue_of(app), rq_connection(app)
    age(app, run_id)
    connection.lmove(queue.key, queue.intermediate_queue_key)
    connection.lrem(queue.intermediate_queue_key, 1, str(run_id))
    Job.fetch(str(run_id), connection=connection).set_status("started")
    services = app.extensions["canvas"]
    config, in_flight = ReaperConfig.from_settings(app.config["CANVAS_SETTINGS"]), InFlightJobs()
    before = requeued("job_stuck")
    assert reap_lost_runs(services.db, connection, config, in_flight) == []  # its claim may be on the way
    assert (queue.job_ids, run_row(app, run_id).dispatch_count, requeued("job_stuck")) == ([], 1, before)
    assert reap_lost_runs(services.db, connection, config, in_flight) == [run_id]
    assert requeued("job_stuck") == before + 1
    assert (queue.job_ids, run_row(app, run_id).dispatch_count) == ([str(run_id)], 2)
    assert reap_lost_runs(services.db, connection, config) == []  # a one-off round takes no job in flight for stuck


def test_a_run_claimed_after_the_reaper_read_it_gets_no_second_job(client, app, org, monkeypatch):
    """The reaper reads the Queued runs, then their jobs in Redis: a worker that claims and finishes a run in between
    leaves a finished job behind a run the reaper saw Queued. That run is not queued again."""
    from tests.integration.run_helpers import work_off

    run_id = queued_run(client, org, [THREE_BLOCKS[0]])
    age(app, run_id)
    read_states = reaper._job_states

    def a_worker_runs_it_first(connection, run_ids):  # noqa: ANN001, ANN202
        work_off(app)
        return read_states(connection, run_ids)

    monkeypatch.setattr(reaper, "_job_states", a_worker_runs_it_first)
    services, connection = app.extensions["canvas"], rq_connection(app)
    assert reap_lost_runs(services.db, connection, ReaperConfig.from_settings(app.config["CANVAS_SETTINGS"])) == []
    assert Job.fetch(str(run_id), connection=connection).get_status().value == "finished"
    assert queue_of(app).job_ids == []
    assert (run_row(app, run_id).status, run_row(app, run_id).dispatch_count) == ("Succeeded", 1)


def test_a_renewal_that_meets_the_runs_own_end_is_not_taken_for_a_lost_run(client, app, org, monkeypatch, caplog):
    """The process's lease keeper renews a run's lease just as the run's final state lands: the database refuses the
    renewal (the run is no longer Running), because this worker ended the run, not another process."""
    from canvas.execution import lease as leases
    from tests.integration.run_helpers import work_off

    run_id = queued_run(client, org, [THREE_BLOCKS[0]])
    refused = []
    write = FencedWriter.write

    def write_then_renew(self, what, work, **options):  # noqa: ANN001, ANN003, ANN202
        write(self, what, work, **options)
        if what == "finishing the run":
            leases._keeper.renew(self.lease)
            refused.append(self.lease.revoked)

    monkeypatch.setattr(FencedWriter, "write", write_then_renew)
    work_off(app)
    assert refused == [True] and run_row(app, run_id).status == "Succeeded"
    assert not [record for record in caplog.records if "declared lost" in record.getMessage()]
