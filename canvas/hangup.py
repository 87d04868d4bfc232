"""A terminal's hangup, for Canvas's long-lived processes (`canvas up`, `canvas worker`, `canvas scheduler`)."""
from __future__ import annotations

import signal
from collections.abc import Callable
from types import FrameType

Handler = Callable[[int, FrameType | None], object]


def stop_on_hangup(handler: Handler) -> None:
    """SIGHUP (the terminal it runs in went away: an SSH session dropped) goes to `handler`, which stops the process
    in order as for Ctrl-C, instead of killing it at once with its run half done. A process started to ignore
    hangups (nohup) goes on ignoring them."""
    if hasattr(signal, "SIGHUP") and signal.getsignal(signal.SIGHUP) is not signal.SIG_IGN:
        signal.signal(signal.SIGHUP, handler)


def as_sigterm(signum: int, frame: FrameType | None) -> None:
    """A handler that does whatever SIGTERM does at the moment, naming the signal it got: between RQ's work loops a
    worker's own stop, within one RQ's warm stop (a second one is RQ's cold stop, as for SIGTERM). In a forked
    child, whose SIGTERM is the default action again, it does nothing: the child follows its parent."""
    current = signal.getsignal(signal.SIGTERM)
    if callable(current):
        current(signum, frame)
