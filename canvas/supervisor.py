"""`canvas up`: the API, one worker and the scheduler as child processes, stopped together on SIGINT/SIGTERM.

A child that dies is restarted with a growing delay (a crashed worker must not take the API down with it); one that
keeps dying right after its start stops everything with an error, since restarting it again would only hide why.

Each child leads a process group of its own, and what is left of a group when its leader has gone is killed: a
worker killed with SIGKILL cannot stop the processes it forked (a job's child with --worker-class fork), and nothing
else would. Ctrl-C reaches only the supervisor, which stops the children gracefully, in order.

The supervisor itself stays small (~40 MB): `canvas up` prepares the database and the catalog in a short-lived child
before it starts supervising. RQ's scheduler runs in the scheduler child, not in the worker.
"""
from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

from canvas.defaults import DEFAULT_SHUTDOWN_GRACE_SECONDS

log = logging.getLogger(__name__)
QUICK_EXIT_SECONDS = 10.0  # a child that dies sooner than this after starting counts as failing to start
MAX_QUICK_EXITS = 5
MAX_RESTART_DELAY_SECONDS = 30.0


@dataclass
class Child:
    name: str
    command: list[str]
    process: subprocess.Popen | None = None
    started_at: float = 0.0
    quick_exits: int = 0
    restart_at: float | None = None
    group_cleared: bool = False  # its group's leftovers are killed once: the id may be another's group later

    def start(self) -> None:
        self.process = subprocess.Popen(self.command, env=os.environ.copy(), process_group=0)
        self.started_at, self.restart_at, self.group_cleared = time.monotonic(), None, False
        log.info("started %s (pid %s)", self.name, self.process.pid)

    def exited(self) -> bool:
        return self.process is not None and self.restart_at is None and self.process.poll() is not None

    def kill_leftovers(self) -> None:
        """Kills what the child started and left behind (its process group outlives it); call once it has exited."""
        if self.group_cleared:
            return
        self.group_cleared = True
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:  # nothing left: the usual case
            return
        log.warning("killed the processes %s left behind", self.name)


def canvas_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "canvas", *args]


class Supervisor:
    def __init__(self, children: list[Child], grace_seconds: float = DEFAULT_SHUTDOWN_GRACE_SECONDS):
        self.children = children
        self.grace_seconds = grace_seconds
        self.stopping = threading.Event()

    def run(self) -> int:
        """Start every child; return when asked to stop, or when a child keeps failing (then stop the others)."""
        self._install_signal_handlers()
        for child in self.children:
            child.start()
        exit_code = 0
        while not self.stopping.wait(0.5):
            if not self._tend_children():
                exit_code = 1
                break
        self.stop_children()
        return exit_code

    def _tend_children(self) -> bool:
        now = time.monotonic()
        for child in self.children:
            if child.exited() and not self._schedule_restart(child, now):
                return False
            if child.restart_at is not None and now >= child.restart_at:
                child.start()
        return True

    def _schedule_restart(self, child: Child, now: float) -> bool:
        quick = now - child.started_at < QUICK_EXIT_SECONDS
        child.quick_exits = child.quick_exits + 1 if quick else 0
        if child.quick_exits >= MAX_QUICK_EXITS:
            log.error("%s keeps exiting right after it starts (status %s); stopping everything", child.name,
                      child.process.returncode)
            return False
        child.kill_leftovers()
        delay = min(MAX_RESTART_DELAY_SECONDS, 2.0 ** child.quick_exits)
        log.warning("%s exited with status %s; restarting it in %.0f s", child.name, child.process.returncode, delay)
        child.restart_at = now + delay
        return True

    def _install_signal_handlers(self) -> None:
        def request_stop(signum, _frame):  # noqa: ANN001
            log.info("received %s; stopping", signal.Signals(signum).name)
            self.stopping.set()

        signal.signal(signal.SIGTERM, request_stop)
        signal.signal(signal.SIGINT, request_stop)

    def stop_children(self) -> None:
        started = [child for child in self.children if child.process]
        running = [child for child in started if child.process.poll() is None]
        for child in running:
            child.process.send_signal(signal.SIGTERM)
        for child in running:
            try:
                child.process.wait(self.grace_seconds)
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop within %.0f s; killing it", child.name, self.grace_seconds)
                child.process.kill()
                child.process.wait()
            log.info("%s stopped", child.name)
        for child in started:
            child.kill_leftovers()
