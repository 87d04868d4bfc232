"""The `canvas up` supervisor restarts a dying child and gives up on one that cannot start."""
from __future__ import annotations

import sys
import threading
import time

from canvas import supervisor
from canvas.supervisor import Child, Supervisor


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
