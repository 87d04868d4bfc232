"""A forking worker's child forked ahead of its job (canvas.queueing.worker.CanvasForkWorker).

RQ's forking worker forks when a job arrives, and the child then opens its own database connection: on a no-op run
that was most of the time between the enqueue and the run's start (a fork of a ~90 MB process, and a new SQLite
connection reading the schema, or a new PostgreSQL backend). The worker forks the next child as soon as it has handed
a job to the last one; the child prepares (its connections) and waits on a pipe for its order: the ids of a job RQ
has dequeued and prepared, which the child reads back from Redis like RQ's spawned children do. One child waits at a
time, per worker; an order is one write, far below the pipe's atomic size.
"""
from __future__ import annotations

import json
import logging
import os
import signal
import time
from contextlib import suppress
from dataclasses import asdict, dataclass

log = logging.getLogger(__name__)
DISMISS_WAIT_SECONDS = 2.0  # a dismissed child closes its connections and leaves; after this it is killed


@dataclass(frozen=True)
class JobOrder:
    job_id: str
    queue_name: str
    execution_id: str

    def encode(self) -> bytes:
        return json.dumps(asdict(self)).encode()


def read_order(pipe: int) -> JobOrder | None:
    """In the child: the order, or None when the worker closed the pipe without one (it is done with the child)."""
    with os.fdopen(pipe, "rb") as reader:
        message = reader.read()
    return JobOrder(**json.loads(message)) if message else None


@dataclass
class WaitingChild:
    """The worker's handle on a child waiting for its order."""
    pid: int
    pipe: int  # the write end

    def hand_over(self, order: JobOrder) -> bool:
        """Give the child its job; False when it had died while it waited (it is reaped, the caller forks another)."""
        try:
            os.write(self.pipe, order.encode())
        except BrokenPipeError:
            log.warning("the child forked ahead (pid %s) had died while it waited; forking another", self.pid)
            with suppress(ChildProcessError):
                os.waitpid(self.pid, 0)
            return False
        finally:
            os.close(self.pipe)
        return True

    def dismiss(self) -> None:
        """No job for it (the worker stops): the closed pipe tells it to close its connections and leave."""
        os.close(self.pipe)
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
