"""`canvas up`: the API, one worker and the scheduler as child processes, stopped together on SIGINT/SIGTERM/SIGHUP.

A child that dies is restarted with a growing delay (a crashed worker must not take the API down with it); one that
keeps dying right after its start stops everything with an error, since restarting it again would only hide why.

Each child leads a process group of its own, and what is left of a group when its leader has gone is killed: a
worker killed with SIGKILL cannot stop the processes it forked (a job's child with --worker-class fork), and nothing
else would. Ctrl-C reaches only the supervisor, which stops the children gracefully, in order.

Every child (and the embedded Redis) asks Linux to send it SIGTERM when the supervisor dies (PR_SET_PDEATHSIG), so
a supervisor killed with SIGKILL leaves nothing serving; they stop as they would on Ctrl-C. A pid file under the data
dir (``InstanceFile``) records the supervisor and its children: a new `canvas up` on the same data dir refuses to start
beside a live one, and stops what a dead one left behind.

The supervisor itself stays small (~40 MB): `canvas up` prepares the database and the catalog in a short-lived child
before it starts supervising. RQ's scheduler runs in the scheduler child, not in the worker.
"""
from __future__ import annotations

import ctypes
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from canvas.defaults import DEFAULT_SHUTDOWN_GRACE_SECONDS
from canvas.hangup import stop_on_hangup

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
        self.process = self._spawn()
        self.started_at, self.restart_at, self.group_cleared = time.monotonic(), None, False
        log.info("started %s (pid %s)", self.name, self.process.pid)

    def _spawn(self) -> subprocess.Popen:
        # Started from the main thread: PR_SET_PDEATHSIG fires when the thread that forked the child ends.
        return subprocess.Popen(self.command, env=os.environ.copy(), process_group=0,
                                preexec_fn=die_with_parent())  # noqa: PLW1509 - prctl only, no locks

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


@dataclass
class KeptChild(Child):
    """A process every child uses (the embedded Redis): its owner starts it before the supervisor starts the
    children and stops it after they have stopped, and the supervisor restarts it like them when it dies. `launch`
    starts it and returns its process, a process that has already ended when it could not start."""

    launch: Callable[[], subprocess.Popen] | None = None

    def _spawn(self) -> subprocess.Popen:
        return self.launch()


def canvas_command(*args: str) -> list[str]:
    """-P: the working directory is not put on sys.path, so a folder that holds a `canvas/` directory of its own
    cannot stand in for this package."""
    return [sys.executable, "-P", "-m", "canvas", *args]


_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with_parent(signum: int = signal.SIGTERM) -> Callable[[], None] | None:
    """A Popen preexec_fn that makes the child receive ``signum`` when its parent dies (Linux; None elsewhere), and
    end at once if the parent died before the request took effect."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None
    parent = os.getpid()

    def in_child() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, signum, 0, 0, 0)
        if os.getppid() != parent:
            os.kill(os.getpid(), signum)

    return in_child


class Supervisor:
    def __init__(self, children: list[Child], grace_seconds: float = DEFAULT_SHUTDOWN_GRACE_SECONDS,
                 on_start: Callable[[Child], None] | None = None, kept: list[KeptChild] | None = None):
        self.children = children
        self.kept = kept or []  # running already, and stopped by their owner after the children
        self.grace_seconds = grace_seconds
        self.stopping = threading.Event()
        self.on_start = on_start or (lambda _child: None)  # told of each (re)start: the instance file records it

    def run(self) -> int:
        """Start every child; return when asked to stop, or when a child keeps failing (then stop the others)."""
        self._install_signal_handlers()
        for child in self.children:
            child.start()
            self.on_start(child)
        exit_code = 0
        while not self.stopping.wait(0.5):
            if not self._tend_children():
                exit_code = 1
                break
        self.stop_children()
        return exit_code

    def _tend_children(self) -> bool:
        now = time.monotonic()
        for child in [*self.kept, *self.children]:
            if child.exited() and not self._schedule_restart(child, now):
                return False
            if child.restart_at is not None and now >= child.restart_at:
                child.start()
                self.on_start(child)
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
        # Rather than die at once and leave the children to stop on their own, Redis before the processes using it.
        stop_on_hangup(request_stop)

    def stop_children(self) -> None:
        started = [child for child in self.children if child.process]
        running = [child for child in started if child.process.poll() is None]
        for child in running:
            child.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.grace_seconds  # one grace for all: they stop side by side
        for child in running:
            try:
                child.process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop within %.0f s; killing it", child.name, self.grace_seconds)
                child.process.kill()
                child.process.wait()
            log.info("%s stopped", child.name)
        for child in started:
            child.kill_leftovers()


# --- the instance file: one `canvas up` per data dir -------------------------------------------------------------

class InstanceRunningError(Exception):
    """Another `canvas up` is alive on the same data dir."""


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (/proc/<pid>/stat field 22): with the pid it names one
    process, never a later one that reuses the pid. None when there is no such live process."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if fields[0] == "Z" else fields[19]


INSTANCE_FILE_NAME, PUBLIC_URL_KEY = "canvas-up.pid", "publicUrl"


class InstanceFile:
    """DATA_DIR/canvas-up.pid: JSON naming the supervisor and each process it started, with their start times, and
    the address its API serves (PUBLIC_URL_KEY). The supervisor holds a lock on DATA_DIR/canvas-up.lock for its life:
    the kernel drops it however it dies."""

    def __init__(self, path: Path):
        self.path = path
        self.processes: dict[str, list] = {}
        self.public_url: str | None = None
        self._lock = None

    def claim(self) -> list[str]:
        """Make this process the data dir's `canvas up`. Raises InstanceRunningError when a live one holds it;
        stops (SIGTERM, then SIGKILL) whatever a dead one left running, returning a line per process stopped."""
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = open(self.path.with_suffix(".lock"), "a")  # noqa: SIM115 - held until this process ends
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            holder = self._read().get("supervisor", ["?"])[0]
            raise InstanceRunningError(f"another `canvas up` (pid {holder}) is running with the data dir "
                                       f"{self.path.parent}; stop it first") from None
        recorded = self._read()
        stopped = _stop_leftovers({name: entry for name, entry in recorded.items()
                                   if name not in ("supervisor", PUBLIC_URL_KEY)})
        self.record("supervisor", os.getpid())
        return stopped

    def record(self, name: str, pid: int) -> None:
        self.processes[name] = [pid, _start_time(pid)]
        self._write()

    def record_public_url(self, url: str) -> None:
        self.public_url = url
        self._write()

    def running_public_url(self) -> str | None:
        """The address the live `canvas up` of this data dir serves; None when none runs (or it has not said)."""
        recorded = self._read()
        supervisor = recorded.get("supervisor")
        if not supervisor or _start_time(supervisor[0]) != supervisor[1]:
            return None
        return recorded.get(PUBLIC_URL_KEY)

    def _write(self) -> None:
        """A file that cannot be written (a full disk) is no reason to stop serving: what it would have recorded
        only helps a later `canvas up` stop what this one left, and the lock already keeps a second one out."""
        temporary = self.path.with_suffix(".tmp")
        try:
            temporary.write_text(json.dumps({**self.processes, **({PUBLIC_URL_KEY: self.public_url}
                                                                  if self.public_url else {})}))
            temporary.replace(self.path)  # a reader never sees half a file
        except OSError as error:
            log.warning("could not update %s (%s): if this `canvas up` dies, the next one may not find all of its "
                        "processes to stop", self.path, error.strerror or error)

    def release(self) -> None:
        if self._read().get("supervisor", [None])[0] == os.getpid():
            self.path.unlink(missing_ok=True)

    def _read(self) -> dict[str, list]:
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}


STALE_STOP_SECONDS = 5.0


def _stop_leftovers(recorded: dict[str, list]) -> list[str]:
    """The processes of a dead `canvas up` that are still running, with their process groups (each led one): asked
    to stop, then killed. A pid whose start time differs belongs to another process by now, and is left alone."""
    alive = {name: pid for name, (pid, started) in recorded.items() if started and _start_time(pid) == started}
    for pid in alive.values():
        _signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + STALE_STOP_SECONDS
    while time.monotonic() < deadline and any(_start_time(pid) == recorded[name][1] for name, pid in alive.items()):
        time.sleep(0.05)
    for pid in alive.values():  # the group too: a leader that went may have left members (gunicorn's workers)
        _signal_group(pid, signal.SIGKILL)
    return [f"stopped the {name} (pid {pid}) a previous `canvas up` left running" for name, pid in alive.items()]


def _signal_group(pgid: int, signum: int) -> None:
    try:
        os.killpg(pgid, signum)
    except (ProcessLookupError, PermissionError):  # the group is gone
        pass
