"""A forking worker's child forked ahead of its job (canvas.queueing.worker.CanvasForkWorker).

RQ's forking worker forks when a job arrives, and the child then opens its own database connection: on a no-op run
that was most of the time between the enqueue and the run's start (a fork of a ~90 MB process, and a new SQLite
connection reading the schema, or a new PostgreSQL backend). The worker forks the next child as soon as it has handed
a job to the last one; the child prepares (its connections) and waits on a pipe for its order: the ids of a job RQ
has dequeued and prepared, which the child reads back from Redis like RQ's spawned children do. One child waits at a
time, per worker; an order is one line, written at once, far below the pipe's atomic size.

A child may serve several runs (CANVAS_WORKER_RUNS_PER_CHILD, as Celery's prefork pool reuses its children): after
each run but its last it writes a line on a second pipe, the worker counts the run done and the same child waits for
the next order, with its connections (on PostgreSQL a server process, ~15 ms of the server's CPU to start and warm
up) still open. Its last run it serves as RQ's child does, and exits; the worker forks the next child meanwhile.
"""
from __future__ import annotations

import json
import logging
import os
import signal
import time
from contextlib import suppress
from dataclasses import asdict, dataclass
from typing import BinaryIO

log = logging.getLogger(__name__)
DISMISS_WAIT_SECONDS = 2.0  # a dismissed child closes its connections and leaves; after this it is killed
RUN_DONE = b"\n"


@dataclass(frozen=True)
class JobOrder:
    job_id: str
    queue_name: str
    execution_id: str

    def encode(self) -> bytes:
        return json.dumps(asdict(self)).encode() + b"\n"


def read_order(orders: BinaryIO) -> JobOrder | None:
    """In the child: the next order, or None when the worker closed the pipe without one (it is done with it)."""
    message = orders.readline()
    return JobOrder(**json.loads(message)) if message.endswith(b"\n") else None


def report_done(done: int) -> None:
    """In the child: its run is over and recorded; it waits for the next order."""
    os.write(done, RUN_DONE)


@dataclass
class WaitingChild:
    """The worker's handle on a child: waiting for an order, or running one. ``orders``: the write end of the
    child's order pipe (None once it has been handed its last); ``done``: the read end of the pipe it reports each
    run but its last on (None likewise)."""
    pid: int
    orders: int | None
    done: int | None
    runs_left: int

    def hand_over(self, order: JobOrder) -> bool:
        """Give the child its job; False when it had died while it waited (it is reaped, the caller forks another).
        When this is the child's last run, its pipes are closed: it exits after the run."""
        try:
            os.write(self.orders, order.encode())
        except BrokenPipeError:
            log.warning("the child forked ahead (pid %s) had died while it waited; forking another", self.pid)
            self.close()
            with suppress(ChildProcessError):
                os.waitpid(self.pid, 0)
            return False
        self.runs_left -= 1
        if self.runs_left == 0:
            self.close()
        return True

    @property
    def stays(self) -> bool:
        """It will report its run done and wait for another, rather than exit."""
        return self.runs_left > 0

    def wait_done(self) -> bool:
        """In the worker, while the child runs: True when it reports its run done, False when it ended instead (it
        died, or was killed): the caller then collects its exit status."""
        if os.read(self.done, 1) == RUN_DONE:
            return True
        self.close()
        return False

    def close(self) -> None:
        for end in (self.orders, self.done):
            if end is not None:
                os.close(end)
        self.orders = self.done = None

    def dismiss(self) -> None:
        """No job for it (the worker stops): the closed pipe tells it to close its connections and leave."""
        self.close()
        deadline = time.monotonic() + DISMISS_WAIT_SECONDS
        while time.monotonic() < deadline:
            with suppress(ChildProcessError):
                if os.waitpid(self.pid, os.WNOHANG)[0] == 0:
                    time.sleep(0.01)
                    continue
            return
        with suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        with suppress(ChildProcessError):
            os.waitpid(self.pid, 0)
