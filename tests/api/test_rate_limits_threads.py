"""Rate-limit counters shared by the threads of one API worker (`canvas api` serves CANVAS_API_THREADS requests at
once per process): each request is judged by its own count, not by what the process learned from other threads'
requests while it waited for Redis."""
from __future__ import annotations

import threading

from canvas.ratelimits.counters import Counters, Limit


class HeldPipelines:
    """The service's Redis, whose pipelines in one thread wait, after their round trip, until released."""

    def __init__(self, connection) -> None:  # noqa: ANN001 - redis.Redis
        self.connection = connection
        self.held_thread: threading.Thread | None = None
        self.executed, self.release = threading.Event(), threading.Event()

    def __getattr__(self, name: str):  # noqa: ANN204 - everything else is the connection's
        return getattr(self.connection, name)

    def pipeline(self, **options):  # noqa: ANN201 - redis.client.Pipeline
        pipe = self.connection.pipeline(**options)
        if threading.current_thread() is self.held_thread:
            execute = pipe.execute

            def execute_then_wait() -> list:
                values = execute()
                self.executed.set()
                self.release.wait(30)
                return values

            pipe.execute = execute_then_wait
        return pipe


def test_a_request_is_judged_by_its_own_count_not_by_later_ones_of_other_threads(services):
    held = HeldPipelines(services.redis)
    counters = Counters(lambda: held, services.settings["REDIS_PREFIX"])
    counters.forget_all()
    limit = Limit("key", 3, 3600)  # counted in Redis at every event
    outcome = {}
    first = threading.Thread(target=lambda: outcome.update(first=counters.count([(limit, "k")])))
    held.held_thread = first
    first.start()
    try:
        assert held.executed.wait(30), "the first event reached Redis"
        later = [counters.count([(limit, "k")]) for _ in range(3)]  # events 2, 3 and 4 while the first one waits
    finally:
        held.release.set()
        first.join(30)
    assert [over is None for over in later] == [True, True, False]  # the 4th is over the limit of 3
    assert outcome == {"first": None}  # the 1st was within it, though the process has since seen a count of 4
    counters.forget_all()
