"""The `canvas up` supervisor restarts a dying child and gives up on one that cannot start."""
from __future__ import annotations

import sys
import threading
import time

from canvas import supervisor
from canvas.supervisor import Child, Supervisor
from tests.process_tools import alive


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_a_child_that_dies_is_restarted(monkeypatch, tmp_path):
    marker = tmp_path / "starts"
    code = f"open({str(marker)!r}, 'a').write('x'); import time; time.sleep(0.3)"
    monkeypatch.setattr(supervisor, "QUICK_EXIT_SECONDS", 0.1)  # its runs are long enough to count as healthy
    child = Child("flaky", python(code))
    sup = Supervisor([child], grace_seconds=5)
    stopper = threading.Timer(4.0, sup.stopping.set)
    stopper.start()
    assert sup.run() == 0
    assert len(marker.read_text()) >= 2


def test_a_child_that_keeps_failing_stops_everything(monkeypatch):
    monkeypatch.setattr(supervisor, "MAX_RESTART_DELAY_SECONDS", 0.1)
    monkeypatch.setattr(supervisor, "MAX_QUICK_EXITS", 3)
    broken, healthy = Child("broken", python("raise SystemExit(3)")), Child("healthy", python("import time; time.sleep(60)"))
    started = time.monotonic()
    assert Supervisor([broken, healthy], grace_seconds=5).run() == 1
    assert time.monotonic() - started < 30
    assert healthy.process.poll() is not None  # stopped with the others


def test_what_a_killed_child_left_behind_is_killed_before_it_restarts(monkeypatch, tmp_path):
    """A worker killed with SIGKILL cannot stop the processes it forked (a job's child): the supervisor must."""
    grandchild_pid = tmp_path / "grandchild.pid"
    code = ("import os, subprocess, sys, time; "
            f"p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
            f"open({str(grandchild_pid)!r}, 'w').write(str(p.pid)); "
            "os.kill(os.getpid(), 9)")
    monkeypatch.setattr(supervisor, "MAX_RESTART_DELAY_SECONDS", 60.0)
    child = Child("worker", python(code))
    sup = Supervisor([child], grace_seconds=5)
    child.start()
    child.process.wait(30)
    pid = int(grandchild_pid.read_text())
    assert alive(pid)  # orphaned, and still running
    assert sup._tend_children()  # notices the death, clears the group, schedules the restart
    deadline = time.monotonic() + 10
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(pid)
    assert child.restart_at is not None


def test_stopping_also_kills_what_a_child_left_running(tmp_path):
    grandchild_pid = tmp_path / "grandchild.pid"
    code = ("import subprocess, sys, time, signal; signal.signal(signal.SIGTERM, lambda *a: sys.exit(0)); "
            f"p = subprocess.Popen([sys.executable, '-c', 'import signal, time; "
            f"signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)']); "
            f"open({str(grandchild_pid)!r}, 'w').write(str(p.pid)); time.sleep(60)")
    child = Child("worker", python(code))
    sup = Supervisor([child], grace_seconds=5)
    child.start()
    deadline = time.monotonic() + 20
    while not grandchild_pid.exists() or not grandchild_pid.read_text():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    pid = int(grandchild_pid.read_text())
    sup.stop_children()
    deadline = time.monotonic() + 10
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(pid)

