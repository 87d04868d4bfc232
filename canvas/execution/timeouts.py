"""A hard per-block time limit. RQ's own job timeout covers a whole job; a block needs its own."""
from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from canvas.execution.context import BlockError


class BlockTimeoutError(BlockError):
    """The block ran past its time limit. Transient: the next attempt may be faster."""

    transient = True


@contextmanager
def time_limit(seconds: float, what: str) -> Iterator[None]:
    """Interrupts the block with BlockTimeoutError after `seconds` (a real timer signal, so blocked I/O is cut short
    too). Outside the main thread (tests running a runner in a thread) no limit applies."""
    if seconds <= 0 or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(_signum, _frame):  # noqa: ANN001
        raise BlockTimeoutError(f"{what} did not finish within {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
