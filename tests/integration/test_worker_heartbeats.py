"""The worker's heartbeats against a real Redis: RQ renews the worker's keys three times per job with the same expiry;
the platform's worker sends one of those per HEARTBEAT_MIN_INTERVAL_SECONDS, and never leaves out a beat that
changes the expiry."""
from __future__ import annotations

import pytest
from rq.worker.base import BaseWorker

from canvas.queueing import worker as worker_module
from canvas.queueing.worker import CanvasSimpleWorker
from tests.integration.run_helpers import rq_worker


@pytest.fixture()
def sent_beats(monkeypatch) -> list[int | None]:
    """The expiry of every beat sent to Redis on its own (None: RQ's default). A beat in a pipeline (RQ's check for
    a suspension, a job's start) costs no round trip of its own: those are not listed."""
    sent: list[int | None] = []
    rq_heartbeat = BaseWorker.heartbeat

    def counted(self, timeout=None, pipeline=None):  # noqa: ANN001, ANN202
        if pipeline is None:
            sent.append(timeout)
        return rq_heartbeat(self, timeout, pipeline)

    monkeypatch.setattr(BaseWorker, "heartbeat", counted)
    return sent


def stored_beat(worker: CanvasSimpleWorker) -> bytes | None:
    return worker.connection.hget(worker.key, "last_heartbeat")


def burst_of_jobs(worker: CanvasSimpleWorker, jobs: int) -> None:
    queue = worker.queues[0]
    for number in range(jobs):
        queue.enqueue("operator.add", number, 1, result_ttl=60)
    assert worker.work(burst=True)
    assert queue.count == 0


@pytest.mark.parametrize("interval, most_default_beats", [(1.0, 10), (0.0, None)])
def test_a_busy_worker_renews_its_keys_once_per_interval(redis_url, sent_beats, monkeypatch, interval,
                                                         most_default_beats):
    monkeypatch.setattr(worker_module, "HEARTBEAT_MIN_INTERVAL_SECONDS", interval)
    jobs = 30
    burst_of_jobs(rq_worker(redis_url, "beats"), jobs)
    default_beats = sent_beats.count(None)
    if most_default_beats is None:  # the control: with no interval, RQ's own count (three or more per job)
        assert default_beats >= 3 * jobs
    else:  # one after each job (the one before it set another expiry), none around the dequeues
        assert default_beats <= jobs + most_default_beats


def test_a_beat_that_changes_the_expiry_is_always_sent_and_so_is_the_next_default_one(redis_url, sent_beats):
    worker = rq_worker(redis_url, "beats")
    worker.register_birth()
    try:
        default_expiry = worker.worker_ttl + 60
        worker.heartbeat()
        assert worker.connection.ttl(worker.key) > default_expiry - 5
        first = stored_beat(worker)

        worker.heartbeat()  # the same expiry, at once: left out
        assert stored_beat(worker) == first
        assert sent_beats == [None]

        worker.heartbeat(90)  # RQ's beat as a job starts: another expiry
        assert 80 < worker.connection.ttl(worker.key) <= 90
        worker.heartbeat()  # back to the default expiry, however recent the last beat
        assert worker.connection.ttl(worker.key) > default_expiry - 5
        assert sent_beats == [None, 90, None]
    finally:
        worker.register_death()


def test_a_default_beat_is_sent_again_once_the_interval_has_passed(redis_url, sent_beats, monkeypatch):
    monkeypatch.setattr(worker_module, "HEARTBEAT_MIN_INTERVAL_SECONDS", 0.05)
    clock = [1000.0]
    monkeypatch.setattr(worker_module.time, "monotonic", lambda: clock[0])
    worker = rq_worker(redis_url, "beats")
    worker.register_birth()
    try:
        worker.heartbeat()
        worker.heartbeat()
        clock[0] += 0.06
        worker.heartbeat()
        assert sent_beats == [None, None]
    finally:
        worker.register_death()
