"""Queueing runs and blocks on a real Redis: one round trip per enqueue, however many jobs, all or none
(canvas.queueing.dispatch.enqueue_jobs); RQ's own enqueue is the control: two."""
from __future__ import annotations

import uuid

import pytest
from redis import ConnectionPool, Redis
from rq import Queue
from rq.job import Job, JobStatus

from canvas.models import Workflow
from canvas.queueing.dispatch import (
    BLOCK_JOB_FUNCTION,
    RUN_JOB_FUNCTION,
    RunRequest,
    block_job,
    dispatch,
    enqueue_jobs,
    run_job,
)
from canvas.queueing.keys import RUN_QUEUE
from canvas.settings import redis_url
from tests.integration.run_helpers import make_workflow

pytestmark = pytest.mark.usefixtures("clean_run_queue")


class CountingRedis:
    """A client of the test's Redis that counts what it sends: one packed send per round trip (a pipeline sends all
    its commands at once)."""

    def __init__(self, url: str) -> None:
        self.sends = 0
        pool = ConnectionPool.from_url(url)
        counter = self

        class Counting(pool.connection_class):
            def send_packed_command(self, command, check_health=True):  # noqa: ANN001, ANN201, FBT002
                counter.sends += 1
                return super().send_packed_command(command, check_health)

        pool.connection_class = Counting
        self.client = Redis(connection_pool=pool)
        # Not the enqueue's: the connection's handshake, and RQ asking the server's version (once per client).
        Queue(RUN_QUEUE, connection=self.client).get_redis_server_version()
        self.sends = 0


@pytest.fixture()
def counting(app) -> CountingRedis:
    return CountingRedis(redis_url(app.config["CANVAS_SETTINGS"]))


def queued_jobs(connection: Redis) -> list[Job]:
    queue = Queue(RUN_QUEUE, connection=connection)
    return [Job.fetch(job_id, connection=connection) for job_id in queue.job_ids]


def test_a_run_job_is_queued_in_one_round_trip_and_rq_finds_it(counting):
    run_id, workflow_id = uuid.uuid4(), uuid.uuid4()
    enqueue_jobs(counting.client, [run_job(run_id, workflow_id)])
    assert counting.sends == 1

    [job] = queued_jobs(counting.client)
    assert (job.id, job.func_name, job.args) == (str(run_id), RUN_JOB_FUNCTION, (str(run_id),))
    assert job.get_status() == JobStatus.QUEUED
    assert RUN_QUEUE in {queue.name for queue in Queue.all(connection=counting.client)}  # RQ's list of queues


def test_rq_own_enqueue_takes_two_round_trips(counting):
    """The control: the queue's registration, then the job."""
    Queue(RUN_QUEUE, connection=counting.client).enqueue_call(**run_job(uuid.uuid4(), uuid.uuid4()))
    assert counting.sends == 2


def test_the_blocks_of_a_branch_are_queued_together_in_order(counting):
    run_id = uuid.uuid4()
    block_runs = {number: uuid.uuid4() for number in (2, 3, 4)}
    enqueue_jobs(counting.client, [block_job(run_id, block_run_id, number)
                                   for number, block_run_id in block_runs.items()])
    assert counting.sends == 1
    jobs = queued_jobs(counting.client)
    assert [job.id for job in jobs] == [str(block_run_id) for block_run_id in block_runs.values()]
    assert {job.func_name for job in jobs} == {BLOCK_JOB_FUNCTION}


def test_a_dispatch_costs_redis_one_round_trip(client, app, org, counting):
    workflow_id = make_workflow(client, org.admin_headers)
    services = app.extensions["canvas"]
    with app.app_context(), services.db.sessions() as session:
        workflow = session.get(Workflow, uuid.UUID(workflow_id))
        run = dispatch(session, counting.client, workflow, RunRequest(workflow.id, uuid.UUID(org.admin_id)))
    assert counting.sends == 1
    assert [job.id for job in queued_jobs(counting.client)] == [str(run.id)]
