"""A worker's listener for RQ's commands (a pub/sub thread) stops promptly when the worker does, with the redis-py
versions the project allows: from 8.2, redis-py's PubSubWorkerThread.stop() waits for the thread to end, and RQ sends
its UNSUBSCRIBE before it stops the thread, so a listener that had just read the reply went back to waiting for the
next message, a whole poll (RQ's own: a minute; seen in CI as a worker killed 30 s after "unsubscribing from channel",
and as tests' in-process workers taking 60 s to end a burst). The worker tells its listener to end before RQ's
UNSUBSCRIBE, whose reply then wakes it. Real Redis, real threads; the race is forced by waiting until the listener
has read a reply and is back in its wait. And when Redis failed the unsubscribe itself, the worker waits for its
listener a bounded time, whichever redis-py (a stand-in for a read that never comes back)."""
from __future__ import annotations

import threading
import time

import pytest
from redis.client import PubSubWorkerThread

from canvas.queueing import worker as worker_module
from canvas.queueing.worker import PUBSUB_POLL_SECONDS, _stop_listener
from tests.integration.run_helpers import rq_worker, wait_for


LONG_POLL_SECONDS = 30.0  # a listener that waits out its poll is told apart from one the reply woke


@pytest.fixture()
def subscribed(redis_url, monkeypatch):
    monkeypatch.setattr(worker_module, "PUBSUB_POLL_SECONDS", LONG_POLL_SECONDS)
    worker = rq_worker(redis_url, "pubsub")
    worker.subscribe()
    wait_for(lambda: worker.pubsub.subscribed, timeout=10, interval=0.01, what="the worker subscribed")
    yield worker
    worker.pubsub_thread.join(timeout=LONG_POLL_SECONDS * 2)
    worker.connection.close()


@pytest.fixture()
def stop_comes_late(monkeypatch) -> None:
    """Every stop of a listener thread comes 0.3 s late, as when the stopping thread loses the processor right
    after sending UNSUBSCRIBE: a listener woken by the reply has read it and gone back to its wait by then."""
    stop = PubSubWorkerThread.stop

    def late(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003
        time.sleep(0.3)
        stop(self, *args, **kwargs)

    monkeypatch.setattr(PubSubWorkerThread, "stop", late)


def test_the_listener_ends_on_the_unsubscribe_reply_without_waiting_out_its_poll(subscribed, stop_comes_late):
    worker = subscribed
    started = time.monotonic()
    worker.unsubscribe()
    took = time.monotonic() - started
    assert not worker.pubsub_thread.is_alive()
    assert took < LONG_POLL_SECONDS / 6, f"stopping the listener took {took:.1f} s: it waited out its poll"


def test_a_burst_ends_without_waiting_out_the_listeners_poll(redis_url, monkeypatch, stop_comes_late):
    """A whole burst on an empty queue, its listener polling for 30 s at a time: the worker ends as soon as it is done,
    its listener with it, whichever came first of the reply and the worker telling it to end."""
    monkeypatch.setattr(worker_module, "PUBSUB_POLL_SECONDS", LONG_POLL_SECONDS)
    worker = rq_worker(redis_url, "pubsub")
    worker.queues[0].enqueue("operator.add", 1, 1, result_ttl=60)
    try:
        started = time.monotonic()
        assert worker.work(burst=True)  # True: it did the job
        took = time.monotonic() - started
    finally:
        worker.connection.close()
    assert not worker.pubsub_thread.is_alive()
    assert took < LONG_POLL_SECONDS / 6, f"the burst took {took:.1f} s"


def test_the_listener_still_hears_commands_between_polls(redis_url):
    """A command published after the listener's wait has timed out at least once still reaches RQ's handler."""
    worker = rq_worker(redis_url, "pubsub")
    connection = worker.connection
    heard: list = []
    worker.handle_payload = heard.append  # what subscribe registers for the worker's channel
    worker.subscribe()
    try:
        wait_for(lambda: worker.pubsub.subscribed, timeout=10, interval=0.01, what="the worker subscribed")
        time.sleep(PUBSUB_POLL_SECONDS * 1.5)
        connection.publish(worker.pubsub_channel_name, '{"command": "shutdown"}')
        wait_for(lambda: heard, timeout=10, interval=0.01, what="the command heard")
    finally:
        worker.unsubscribe()
        connection.close()
    assert heard[0]["data"] == b'{"command": "shutdown"}'


class StuckListener:
    """Stands in for a pub/sub connection whose read does not come back (a Redis that drops packets, while the
    socket waits for the operating system's timeout): the thread's body, not a protocol."""

    def __init__(self) -> None:
        self.released = threading.Event()

    def get_message(self, **_options) -> None:  # noqa: ANN003
        self.released.wait(STUCK_SECONDS)

    def close(self) -> None:
        pass


STUCK_SECONDS = 30.0


def test_a_listener_stuck_in_a_read_is_waited_for_a_bounded_time():
    """The worker's way of stopping its listener when Redis failed the unsubscribe (canvas.queueing.worker
    ._stop_listener): it waits the given time and goes on, whichever redis-py; a plain stop() on redis-py 8.2 waits
    for the read."""
    stuck = StuckListener()
    thread = PubSubWorkerThread(stuck, sleep_time=PUBSUB_POLL_SECONDS, daemon=True)
    thread.start()
    try:
        started = time.monotonic()
        _stop_listener(thread, 0.5)
        took = time.monotonic() - started
    finally:
        stuck.released.set()
        thread.join(5)
    assert took < 3.0, f"stopping took {took:.1f} s"
    assert not thread.is_alive()  # and the thread ends once its read does
