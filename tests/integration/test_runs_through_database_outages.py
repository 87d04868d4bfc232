"""The database goes away under a running run (a relay between the service and PostgreSQL is cut): a short outage is
ridden out and the run succeeds; a long one stops the run, which then records its failure in words once the
database is back, its block in flight included, and nothing after it starts."""
from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url

from canvas.execution.lease import FencedWriter, LeaseKeeper
from canvas.execution.reaper import WORKER_LOST, fail_lost_runs
from canvas.execution.runner import Runner
from canvas.models import BlockOutput, BlockRun, WorkflowRun
from tests.conftest import Org
from tests.integration.run_helpers import (
    THREE_BLOCKS,
    empty_queue,
    graph_workflow,
    in_a_thread,
    make_workflow,
    node,
    run,
    wait_for,
)
from tests.servers.tcp_proxy import TcpProxy

GRACE, RENEW = 3.0, 0.5
# An outage past the lease's deadline (grace - renew after the last renewal, which came before the cut) and within
# the patience after it (another grace). A loaded machine only makes the outage longer, and the runner's next attempt
# comes up to one renewal interval after the database is back, so the outage sits near the deadline: 0.5 s past it,
# 1.5 s or more before the patience ends (grace + 1 left as little as 0.5 s there).
PAST_THE_DEADLINE = GRACE


@pytest.fixture
def proxy(postgres_database_url) -> Iterator[TcpProxy]:
    url = make_url(postgres_database_url)
    with TcpProxy(url.host or "127.0.0.1", url.port or 5432) as relay:
        yield relay


@pytest.fixture
def outage_app(proxy, postgres_database_url, make_app):  # the relay goes last: the tables are emptied through it
    proxied = make_url(postgres_database_url).set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    app = make_app(DATABASE_URL=proxied, LOST_RUN_GRACE_SECONDS=GRACE, LEASE_RENEW_SECONDS=RENEW)
    empty_queue(app)
    yield app
    proxy.restore()  # the tables are emptied through it
    empty_queue(app)


def answered(monkeypatch, what: str) -> threading.Event:
    """Set when the runner has the database's answer to its write `what`."""
    write, event = FencedWriter.write, threading.Event()

    def answered_write(writer, writing, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003
        write(writer, writing, *args, **kwargs)
        if writing == what:
            event.set()

    monkeypatch.setattr(FencedWriter, "write", answered_write)
    return event


def stopped_by_the_outage(monkeypatch) -> threading.Event:
    """Set when the runner has stopped its run for the outage (the lease's deadline passed), before it tries to
    record the failure: the test brings the database back then, so the failure's record has a whole grace period
    (a fixed wait past the deadline left it a second or two on a loaded machine)."""
    stop, event = Runner._stop_unreachable, threading.Event()

    def stopping(runner, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003
        event.set()
        return stop(runner, *args, **kwargs)

    monkeypatch.setattr(Runner, "_stop_unreachable", stopping)
    return event


@pytest.fixture
def step_answered(monkeypatch) -> threading.Event:
    """Set when the runner has the database's answer to its step out of block 1 (block 2 begun)."""
    return answered(monkeypatch, "recording block 1")


def start_run(app, seconds: float, step_answered: threading.Event | None = None
              ) -> tuple[uuid.UUID, threading.Thread, dict]:
    """A run of Records -> Wait `seconds` -> To CSV, running in a thread, once block 2 is running (and, with
    `step_answered`, once the runner knows it is)."""
    run_id, thread, outcome = start_thread(app, seconds)
    wait_for(lambda: [block.status for block in blocks(app, run_id)] == ["Succeeded", "Running"], what="block 2")
    if step_answered is not None:
        wait_for(step_answered.is_set, what="the step into block 2 answered")
    return run_id, thread, outcome


def start_thread(app, seconds: float, graph: list[dict] | None = None, policy: str = "failFast"
                 ) -> tuple[uuid.UUID, threading.Thread, dict]:
    """A run in a thread: of Records -> Wait `seconds` -> To CSV, or of the `graph` given (under `policy`)."""
    client, org = app.test_client(), Org(app, "Outage")
    if graph is not None:
        workflow_id = graph_workflow(client, app, org.admin_headers, graph, policy)
    else:
        wait = ("Wait", "delay", {"seconds": seconds})
        workflow_id = make_workflow(client, org.admin_headers, [THREE_BLOCKS[0], wait, THREE_BLOCKS[2]])
    answer = run(client, org.admin_headers, workflow_id)
    assert answer.status_code == 202, answer.json
    run_id = uuid.UUID(answer.headers["Location"].rsplit("/", 1)[1])
    return (run_id, *in_a_thread(app, lambda runner: runner.run(run_id)))


def blocks(app, run_id: uuid.UUID) -> list[BlockRun]:
    with app.extensions["canvas"].db.sessions() as session:
        return list(session.scalars(select(BlockRun).where(BlockRun.run_id == run_id).order_by(BlockRun.number)))


def run_row(app, run_id: uuid.UUID) -> WorkflowRun:
    with app.extensions["canvas"].db.sessions() as session:
        return session.get(WorkflowRun, run_id)


def test_a_database_outage_shorter_than_the_lease_is_ridden_out(outage_app, proxy):
    run_id, thread, outcome = start_run(outage_app, seconds=3)
    proxy.cut()
    time.sleep(1.0)  # under grace - renew (2.5 s)
    proxy.restore()
    thread.join(30)
    assert outcome["result"] == "Succeeded"
    assert [block.status for block in blocks(outage_app, run_id)] == ["Succeeded"] * 3


def test_a_long_database_outage_stops_the_run_which_says_so_in_words(outage_app, proxy, step_answered,
                                                                       monkeypatch):
    # Cut once the runner is in block 2, not merely once block 2 shows Running: a cut between the two (a loaded
    # machine) is the step whose answer was lost, tested below.
    stopped = stopped_by_the_outage(monkeypatch)
    run_id, thread, outcome = start_run(outage_app, seconds=30, step_answered=step_answered)
    proxy.cut()
    assert stopped.wait(GRACE * 3), "the run was not stopped"  # at grace - renew; nobody else can reach it either
    proxy.restore()
    thread.join(30)
    assert outcome["result"] == "Failed"
    failed = run_row(outage_app, run_id)
    assert failed.status == "Failed" and failed.failed_block == 2
    assert failed.error.startswith("database connection lost while running block 2; the run was stopped")
    assert "psycopg" not in failed.error and "OperationalError" not in failed.error
    assert [(block.number, block.status) for block in blocks(outage_app, run_id)] == [(1, "Succeeded"),
                                                                                       (2, "Failed")]
    assert blocks(outage_app, run_id)[1].error == failed.error


def lose_the_answer(monkeypatch, proxy: TcpProxy, landed: bool, what: str = "recording block 1") -> threading.Event:
    """The runner's write `what` (by default its step out of block 1: its success, the next block begun) meets a
    lost connection before the runner hears how it went: written first when `landed`, not at all otherwise. The
    connection goes as the relay is cut, so the driver raises its own error; the event is set then."""
    write, lost = FencedWriter.write, threading.Event()

    def lossy_write(writer, writing, work, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003
        def lose_its_answer(connection) -> None:  # noqa: ANN001
            if lost.is_set():
                return work(connection)
            lost.set()
            if landed:
                work(connection)
                connection.commit()
                proxy.cut()
                with writer.engine.connect() as after:  # this transaction is over: the error comes from the next
                    after.exec_driver_sql("SELECT 1")
            proxy.cut()
            connection.exec_driver_sql("SELECT 1")

        return write(writer, writing, lose_its_answer if writing == what else work, *args, **kwargs)

    monkeypatch.setattr(FencedWriter, "write", lossy_write)
    return lost


def ride_out_the_loss(app, proxy: TcpProxy, lost: threading.Event, graph: list[dict] | None = None,
                      once_back: Callable[[uuid.UUID], None] | None = None, seconds: float = 30,
                      away: float = PAST_THE_DEADLINE, back_after: threading.Event | None = None
                      ) -> tuple[uuid.UUID, dict]:
    """A run whose answer is lost (`lose_the_answer`), the database away for `away` seconds (by default past the
    lease's deadline, grace - renew, and within another grace period), and until `back_after` is set when given,
    then back; `once_back(run_id)` is called then, before the runner is waited for. `seconds`: the chain's wait
    (start_thread)."""
    began = time.monotonic()
    run_id, thread, outcome = start_thread(app, seconds=seconds, graph=graph)
    assert lost.wait(30), "the write whose answer is lost never came"
    time.sleep(away)
    if back_after is not None:
        assert back_after.wait(20), "the runner never gave up its write"
    proxy.restore()
    if once_back is not None:
        once_back(run_id)
    thread.join(30)
    assert not thread.is_alive() and time.monotonic() - began < 30, "a 30 s wait ran"
    return run_id, outcome


WAIT_30, WAIT_1 = ("delay", {"seconds": 30}), ("delay", {"seconds": 1})
STEPS = {"chain": None,  # Records -> Wait -> To CSV: the step is one statement
         "graph": [node("Start", "noop", inputs=[]), node("Wait A", *WAIT_1, inputs=[(1, {})]),
                   node("Wait B", *WAIT_1, inputs=[(1, {})])]}  # block 2 begun here, 3 queued: a transaction
PAST_THE_PATIENCE = 2 * GRACE + 1  # the lease's deadline (grace - renew), then another grace period, passed


def outputs_of(app, run_id: uuid.UUID) -> list[int]:
    with app.extensions["canvas"].db.sessions() as session:
        return sorted(session.scalars(select(BlockOutput.number).where(BlockOutput.run_id == run_id)))


@pytest.mark.parametrize("shape", STEPS)
@pytest.mark.parametrize("landed", [True, False], ids=["step landed", "step lost"])
def test_a_step_whose_answer_the_outage_swallowed_is_written_once_and_the_run_goes_on(outage_app, proxy,
                                                                                    monkeypatch, landed, shape):
    """The database goes away while block 1's success and block 2's start are being written, before the runner
    hears whether they were, and stays away past the lease's deadline. Nothing of the run is in flight between two
    blocks, so the runner waits the outage out (another grace period), then writes the step unless it had landed:
    block 1 recorded once, and the run goes on to its end."""
    lost = lose_the_answer(monkeypatch, proxy, landed)
    run_id, outcome = ride_out_the_loss(outage_app, proxy, lost, STEPS[shape], seconds=1)
    assert outcome["result"] == "Succeeded"
    ended = run_row(outage_app, run_id)
    assert (ended.status, ended.failed_block, ended.error) == ("Succeeded", None, None)
    assert [(block.number, block.status) for block in blocks(outage_app, run_id)] == [
        (1, "Succeeded"), (2, "Succeeded"), (3, "Succeeded")]
    assert outputs_of(outage_app, run_id) == [1, 2, 3]  # block 1's once, whether or not the lost step had landed


@pytest.mark.parametrize("landed", [True, False], ids=["step landed", "step lost"])
def test_a_step_whose_answer_an_outage_past_the_patience_swallowed_keeps_the_block_done_and_fails_the_next(
        outage_app, proxy, monkeypatch, landed):
    """As above, but the database stays away longer than the runner waits (the lease's deadline and another grace
    period): the run stops. Block 1 ran and its side effects happened, whether or not the step landed: it keeps its
    success and its output, and the run fails at block 2, which never started (so a re-run from the failed block
    does not repeat block 1)."""
    lost = lose_the_answer(monkeypatch, proxy, landed)
    stopped = stopped_by_the_outage(monkeypatch)  # back only then, however late a loaded machine makes it
    run_id, outcome = ride_out_the_loss(outage_app, proxy, lost, away=PAST_THE_PATIENCE, back_after=stopped)
    assert outcome["result"] == "Failed"
    failed = run_row(outage_app, run_id)
    assert (failed.status, failed.failed_block) == ("Failed", 2)
    assert failed.error == "database connection lost before block 2 started; the run was stopped"
    ran = blocks(outage_app, run_id)
    written = [(1, "Succeeded"), (2, "Failed")]
    assert [(block.number, block.status) for block in ran] == (written if landed else written[:1])
    assert ran[0].output_id is not None and ran[0].error is None
    if landed:
        assert ran[1].error == failed.error


@pytest.mark.parametrize("landed", [True, False], ids=["block landed", "block lost"])
def test_a_branch_block_whose_record_the_outage_swallowed_keeps_its_success_and_the_run_goes_on(
        outage_app, proxy, monkeypatch, landed):
    """Start -> A (done here) and B (left to other workers): A's success is written alone, as B is still out, and
    the database goes away before the runner hears whether it was, past the lease's deadline. Waiting for B has
    nothing in flight: the runner waits the outage out, A keeps its success (written once), and as no worker took B
    the runner takes it back and runs it."""
    lost = lose_the_answer(monkeypatch, proxy, landed, what="recording block 2")
    graph = [node("Start", "noop", inputs=[]), node("A", "noop", inputs=[(1, {})]),
             node("B", *WAIT_1, inputs=[(1, {})])]
    run_id, outcome = ride_out_the_loss(outage_app, proxy, lost, graph)
    assert outcome["result"] == "Succeeded"
    assert run_row(outage_app, run_id).status == "Succeeded"
    assert [(block.number, block.status) for block in blocks(outage_app, run_id)] == [
        (1, "Succeeded"), (2, "Succeeded"), (3, "Succeeded")]
    assert outputs_of(outage_app, run_id) == [1, 2, 3]


@pytest.mark.parametrize("landed", [True, False], ids=["block landed", "block lost"])
def test_a_block_on_another_worker_whose_record_the_outage_swallowed_is_kept_and_its_run_goes_on(
        outage_app, proxy, monkeypatch, landed):
    """Start -> A (a 1-s wait, here) and B (run by another worker: a second runner). B's worker writes B's success
    and the database goes away before it hears whether that landed, past both workers' lease deadlines, while the
    run's worker finishes A and waits for B. B ran, so its worker writes its success once the database is back
    (unless it had landed); the run's worker, with nothing in flight, waits the outage out, gives B's worker a grace
    period from the outage's end rather than declaring it lost at once, finds B done, and the run succeeds."""
    lost = lose_the_answer(monkeypatch, proxy, landed, what="recording block 3")
    graph = [node("Start", "noop", inputs=[]), node("A", *WAIT_1, inputs=[(1, {})]),
             node("B", "noop", inputs=[(1, {})])]
    run_id, thread, outcome = start_thread(outage_app, seconds=1, graph=graph)
    queued = wait_for(lambda: [block.id for block in blocks(outage_app, run_id)
                               if block.number == 3 and block.status == "Queued"], what="block 3 queued")
    other_worker, other = in_a_thread(outage_app, lambda runner: runner.run_elsewhere(run_id, queued[0]))
    assert lost.wait(30), "block 3's record never came"
    time.sleep(PAST_THE_DEADLINE)  # past both leases' deadlines
    proxy.restore()
    thread.join(30)
    other_worker.join(30)
    assert (outcome["result"], other["result"]) == ("Succeeded", "succeeded")
    assert run_row(outage_app, run_id).status == "Succeeded"
    ran = blocks(outage_app, run_id)
    assert [(block.number, block.status, block.error) for block in ran] == [
        (1, "Succeeded", None), (2, "Succeeded", None), (3, "Succeeded", None)]
    assert outputs_of(outage_app, run_id) == [1, 2, 3]  # block 3's once, whether or not its lost record had landed


@pytest.mark.parametrize("landed", [True, False], ids=["end landed", "end lost"])
def test_a_run_whose_end_the_outage_swallowed_ends_as_it_did(outage_app, proxy, monkeypatch, landed):
    """Every block done, the run's end (Succeeded, its last block's success with it) is written and the database
    goes away before the runner hears whether it was, for longer than the lease: once the database is back the
    run is Succeeded, not failed at a block that finished."""
    lost = lose_the_answer(monkeypatch, proxy, landed, what="finishing the run")
    graph = [node("Start", "noop", inputs=[]), node("Then", "noop", inputs=[(1, {})])]
    run_id, outcome = ride_out_the_loss(outage_app, proxy, lost, graph)
    assert outcome["result"] == "Succeeded"
    ended = run_row(outage_app, run_id)
    assert (ended.status, ended.failed_block, ended.error) == ("Succeeded", None, None)
    ran = blocks(outage_app, run_id)
    assert [(block.number, block.status) for block in ran] == [(1, "Succeeded"), (2, "Succeeded")]
    assert all(block.output_id is not None for block in ran)
    assert fail_lost_runs(outage_app.extensions["canvas"].db, GRACE) == []  # a reaper after it finds nothing lost
    assert run_row(outage_app, run_id).status == "Succeeded"


def test_a_run_the_reaper_declared_lost_before_its_end_was_written_keeps_the_reapers_end(outage_app, proxy,
                                                                                         monkeypatch):
    """The run's end is lost in an outage past the lease's deadline, as above, but once the database is back a
    reaper declares the run lost before the runner writes the end it knows. Both writes are fenced by the lease's
    token: the reaper's end is final, and the runner writes nothing more (not its end, not block 2's success, which
    only it knew of and which is lost with the run: block 2 ends as the reaper found it)."""
    lost = lose_the_answer(monkeypatch, proxy, landed=False, what="finishing the run")
    write, gave_up, reaped = FencedWriter.write, threading.Event(), threading.Event()

    def after_the_reaper(writer, what, *args, until=None, **kwargs):  # noqa: ANN001, ANN002, ANN003
        if what == "finishing the run" and until is not None:  # the end written again after the outage
            gave_up.set()  # the database comes back only now: a first attempt that a loaded machine delayed past
            # the outage's end would meet the reaper's end and stop there, never trying again
            assert reaped.wait(30), "the reaper never ran"
        return write(writer, what, *args, until=until, **kwargs)

    monkeypatch.setattr(FencedWriter, "write", after_the_reaper)
    renew = LeaseKeeper.renew

    def keeper_after_the_reaper(keeper, lease):  # noqa: ANN001 - else the keeper may renew the lease first, once back
        if lost.is_set():
            assert reaped.wait(30), "the reaper never ran"
        return renew(keeper, lease)

    monkeypatch.setattr(LeaseKeeper, "renew", keeper_after_the_reaper)
    reaped_ends = []

    def reap(run_id: uuid.UUID) -> None:
        assert fail_lost_runs(outage_app.extensions["canvas"].db, GRACE) == [run_id]
        reaped_ends.append(run_row(outage_app, run_id))
        reaped.set()

    graph = [node("Start", "noop", inputs=[]), node("Then", "noop", inputs=[(1, {})])]
    run_id, outcome = ride_out_the_loss(outage_app, proxy, lost, graph, once_back=reap, back_after=gave_up)
    assert outcome["result"] == "stopped"
    (reaped_end,) = reaped_ends
    ended = run_row(outage_app, run_id)
    assert (ended.status, ended.error_class, ended.failed_block) == ("Failed", "WorkerLost", 2)
    assert ended.error.startswith(WORKER_LOST)
    assert (ended.lease_token, ended.date_finished, ended.error) == (reaped_end.lease_token,
                                                                    reaped_end.date_finished, reaped_end.error)
    ran = blocks(outage_app, run_id)
    assert [(block.number, block.status, block.error_class) for block in ran] == [(1, "Succeeded", None),
                                                                                  (2, "Failed", "WorkerLost")]
    assert ran[1].output_id is None


def test_a_run_going_on_past_a_failed_block_that_an_outage_stops_fails_at_that_block_naming_both(
        outage_app, proxy, monkeypatch):
    """Policy continue: block 2 failed, the other branch's block 3 went on and the database went away under it. The
    run fails at block 2, as it would have at its end, and its error names block 2's failure, then the outage;
    block 3 ends with the outage's error, not block 2's."""
    taken_back = answered(monkeypatch, "taking back block 3")  # 3 was queued for others; none here: run here
    graph = [node("People", "records.from_variable", {"records": [{"name": "Ada"}]}, inputs=[]),
             node("Breaks", "jsonata.transform", {"expression": '$error("the partner API said no")'},
                  inputs=[(1, {})]),
             node("Wait", *WAIT_30, inputs=[(1, {})])]
    stopped = stopped_by_the_outage(monkeypatch)
    run_id, thread, outcome = start_thread(outage_app, seconds=30, graph=graph, policy="continue")
    wait_for(taken_back.is_set, what="block 3 taken back")
    proxy.cut()
    assert stopped.wait(GRACE * 3), "the run was not stopped"
    proxy.restore()
    thread.join(30)
    assert outcome["result"] == "Failed"
    failed = run_row(outage_app, run_id)
    assert (failed.status, failed.failed_block, failed.error_class) == ("Failed", 2, "DatabaseUnreachableError")
    named, stop = failed.error.split("; then ", 1)
    assert named.startswith("block 2 (Breaks) failed: ") and "the partner API said no" in named
    assert stop.startswith("database connection lost while running block 3; the run was stopped"), stop
    ran = blocks(outage_app, run_id)
    assert [(block.number, block.status) for block in ran] == [(1, "Succeeded"), (2, "Failed"), (3, "Failed")]
    assert "the partner API said no" in ran[1].error and ran[2].error == stop
