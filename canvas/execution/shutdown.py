"""A worker asked to stop (Ctrl-C, SIGTERM from `canvas up` or a service manager) while a run is going.

The worker lets the run finish within its stop timeout (CANVAS_SHUTDOWN_GRACE_SECONDS, less the time to record the
end). A run still going then is ended at once, "Failed" with the reason, through the runner's fenced writes, rather
than left "Running" until a reaper declares it lost after the next start: nobody cancelled it, so "Cancelled" would
mislead, and a failed run shows up where operators look for runs to re-run.

The worker's process (or, with the fork worker class, its job's child) gets ``INTERRUPT_SIGNAL``: its handler
remembers the reason, which the runner's cancel checks read (blocks that poll stop at their next check), and raises
``WorkerShutdownError`` in the main thread, where the run executes, so a block blocked in I/O stops too.
"""
from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager

INTERRUPT_SIGNAL = signal.SIGUSR1  # RQ uses SIGALRM (job timeouts, as do block time limits) and SIGRTMIN
_reason: list[str] = []  # this process's, once it was told to stop its run
_shielded: list[bool] = []  # non-empty while the run's end is being written


class WorkerShutdownError(Exception):
    """The worker was shut down before the run finished; the message says why and how."""


def stop_reason() -> str | None:
    """Why this process must stop its run, once it was told to."""
    return _reason[0] if _reason else None


def request_stop(reason: str) -> None:
    if not _reason:
        _reason.append(reason)


@contextmanager
def not_interrupted() -> Iterator[None]:
    """While the run's final state is written: a stop signal then is only remembered (the run is ending anyway)."""
    _shielded.append(True)
    try:
        yield
    finally:
        _shielded.pop()


def install_interrupt_handler(reason: Callable[[], str], interrupting: Callable[[], bool] = lambda: True) -> None:
    """From now on ``INTERRUPT_SIGNAL`` stops the run of this process: ``reason()`` is recorded, and the main thread
    gets WorkerShutdownError when ``interrupting()`` says a run is executing there (raising in RQ's own
    bookkeeping, after the run, would only end the worker with a traceback)."""

    def interrupt(_signum: int, _frame) -> None:  # noqa: ANN001
        request_stop(reason())
        if interrupting() and not _shielded:
            raise WorkerShutdownError(stop_reason())

    signal.signal(INTERRUPT_SIGNAL, interrupt)
