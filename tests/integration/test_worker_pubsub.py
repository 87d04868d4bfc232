"""A worker's listener for RQ's commands (a pub/sub thread) stops promptly when the worker does, with the redis-py
versions the project allows: from 8.2, redis-py's PubSubWorkerThread.stop() waits for the thread to end, and RQ's own
listener waits for a message for up to a minute at a time (sleep_time=60), so a worker stopping while its listener
had just taken RQ's unsubscribe reply waited up to that minute (seen in CI as a worker killed 30 s after
"unsubscribing from channel"). Real Redis, real threads; the race is forced by waiting until the listener has read
the reply before the worker stops it. And when Redis failed the unsubscribe itself, the worker waits for its listener
a bounded time, whichever redis-py (a stand-in for a read that never comes back)."""
from __future__ import annotations

import threading
import time

import pytest
from redis.client import PubSubWorkerThread

from canvas.queueing.worker import PUBSUB_POLL_SECONDS, _stop_listener
from tests.integration.run_helpers import rq_worker, wait_for


@pytest.fixture()
def subscribed(redis_url):
    worker = rq_worker(redis_url, "pubsub")
    worker.subscribe()
    wait_for(lambda: worker.pubsub.subscribed, timeout=10, interval=0.01, what="the worker subscribed")
    yield worker
    worker.pubsub_thread.join(timeout=PUBSUB_POLL_SECONDS * 3)
    worker.connection.close()


def test_the_listener_stops_within_its_poll_after_taking_the_unsubscribe_reply(subscribed):
    worker = subscribed
    worker.pubsub.unsubscribe()  # RQ's first step when the worker stops; the listener thread reads the reply
    wait_for(lambda: not worker.pubsub.subscribed, timeout=10, interval=0.01, what="the reply read by the listener")
    time.sleep(0.1)  # and the listener back in its wait for the next message
    started = time.monotonic()
    worker.unsubscribe()
    took = time.monotonic() - started
    assert took < PUBSUB_POLL_SECONDS + 2.0, f"stopping the listener took {took:.1f} s"
    worker.pubsub_thread.join(timeout=PUBSUB_POLL_SECONDS + 2.0)
    assert not worker.pubsub_thread.is_alive()


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
