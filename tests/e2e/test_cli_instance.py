"""The instance file of `canvas up` with real processes: what a dead `canvas up` left running is stopped, process
groups included; a live one refuses a second; a pid reused by another process is left alone."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from canvas.supervisor import InstanceFile, InstanceRunningError, _start_time
from tests.process_tools import alive, descendants

pytestmark = pytest.mark.slow
SLEEPER = "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); " \
          "time.sleep(60)"


def _leftover() -> subprocess.Popen:
    """A stand-in for a child a killed `canvas up` left behind: a process group leader with a child of its own."""
    process = subprocess.Popen([sys.executable, "-c", SLEEPER], process_group=0)
    deadline = time.monotonic() + 10
    while not descendants(process.pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    return process


def test_a_new_instance_stops_what_a_dead_one_left_running(tmp_path):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    dead_supervisor = [gone.pid, "1"]  # a start time no live process has
    gone.wait()
    worker = _leftover()
    worker_group = {worker.pid, *descendants(worker.pid)}
    pid_file = tmp_path / "canvas-up.pid"
    pid_file.write_text(json.dumps({"supervisor": dead_supervisor, "publicUrl": "http://127.0.0.1:1",
                                    "worker": [worker.pid, _start_time(worker.pid)]}))
    instance = InstanceFile(pid_file)
    assert instance.running_public_url() is None  # its supervisor is dead: nothing serves there
    try:
        stopped = instance.claim()
        instance.record_public_url("http://127.0.0.1:8123")
        assert InstanceFile(pid_file).running_public_url() == "http://127.0.0.1:8123"
        worker.wait(10)
        deadline = time.monotonic() + 10
        while any(alive(pid) for pid in worker_group) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert [pid for pid in worker_group if alive(pid)] == []
        assert stopped == [f"stopped the worker (pid {worker.pid}) a previous `canvas up` left running"]
        assert json.loads(pid_file.read_text())["supervisor"] == [os.getpid(), _start_time(os.getpid())]
    finally:
        instance.release()
        for pid in worker_group:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
    assert not pid_file.exists()


def test_a_recorded_pid_now_used_by_another_process_is_left_alone(tmp_path):
    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], process_group=0)
    pid_file = tmp_path / "canvas-up.pid"
    pid_file.write_text(json.dumps({"api": [stranger.pid, "1"]}))  # recorded with another start time
    instance = InstanceFile(pid_file)
    try:
        assert instance.claim() == []
        assert alive(stranger.pid)
    finally:
        instance.release()
        stranger.kill()
        stranger.wait()


def test_a_live_instance_refuses_a_second_on_the_same_data_dir(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from pathlib import Path; from canvas.supervisor import InstanceFile; "
        f"held = InstanceFile(Path({str(tmp_path / 'canvas-up.pid')!r})); held.claim(); print('held', flush=True); "
        "time.sleep(60)")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        with pytest.raises(InstanceRunningError, match=f"another `canvas up` \\(pid {holder.pid}\\) is running"):
            InstanceFile(tmp_path / "canvas-up.pid").claim()
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)
        second = InstanceFile(tmp_path / "canvas-up.pid")  # the kernel dropped the dead one's lock
        assert second.claim() == []
        second.release()
    finally:
        if holder.poll() is None:
            holder.kill()
