"""`canvas up`: the API, one worker and the scheduler as child processes, stopped together on SIGINT/SIGTERM."""
from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass

from canvas.defaults import DEFAULT_SHUTDOWN_GRACE_SECONDS

log = logging.getLogger(__name__)


@dataclass
class Child:
    name: str
    command: list[str]
    process: subprocess.Popen | None = None


def canvas_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "canvas", *args]


class Supervisor:
    def __init__(self, children: list[Child], grace_seconds: float = DEFAULT_SHUTDOWN_GRACE_SECONDS):
        self.children = children
        self.grace_seconds = grace_seconds
        self.stopping = threading.Event()

    def run(self) -> int:
        """Start every child; return when asked to stop or when a child dies (then stop the others)."""
        self._install_signal_handlers()
        for child in self.children:
            child.process = subprocess.Popen(child.command, env=os.environ.copy())
            log.info("started %s (pid %s)", child.name, child.process.pid)
        exit_code = 0
        while not self.stopping.wait(0.5):
            failed = next((child for child in self.children if child.process.poll() is not None), None)
            if failed is not None:
                log.error("%s exited with status %s; stopping the others", failed.name, failed.process.returncode)
                exit_code = 1
                break
        self.stop_children()
        return exit_code

    def _install_signal_handlers(self) -> None:
        def request_stop(signum, _frame):  # noqa: ANN001
            log.info("received %s; stopping", signal.Signals(signum).name)
            self.stopping.set()

        signal.signal(signal.SIGTERM, request_stop)
        signal.signal(signal.SIGINT, request_stop)

    def stop_children(self) -> None:
        running = [child for child in self.children if child.process and child.process.poll() is None]
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
