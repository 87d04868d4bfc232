"""Helpers for tests that run the real `canvas` command as subprocesses."""
from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import requests


def free_port() -> int:
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """`count` different free ports: every probe stays bound until all are chosen, or the kernel may hand one out
    twice (two processes of one test then fight over it and one of them exits)."""
    probes = [socket.socket() for _ in range(count)]
    try:
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return [probe.getsockname()[1] for probe in probes]
    finally:
        for probe in probes:
            probe.close()


def canvas_env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("CANVAS_")}
    env.update({"CANVAS_DATA_DIR": str(data_dir), "CANVAS_API_WORKERS": "2", **extra})
    return env


def run_canvas(*args: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "canvas", *args], env=env, capture_output=True, text=True,
                          timeout=timeout)


def one_error_line(result: subprocess.CompletedProcess) -> str:
    """A command that refused to start: status 2, no traceback, and exactly one `Error:` line, returned."""
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    [error] = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    return error


def start_canvas(*args: str, env: dict[str, str], log_path: Path) -> subprocess.Popen:
    with open(log_path, "wb") as log:  # the child writes to its own copy
        return subprocess.Popen([sys.executable, "-m", "canvas", *args], env=env, stdout=log,
                                stderr=subprocess.STDOUT)


def wait_for_http(url: str, process: subprocess.Popen, timeout: float = 60) -> requests.Response:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"process exited early with {process.returncode}")
        try:
            return requests.get(url, timeout=2)
        except requests.ConnectionError:
            time.sleep(0.2)
    raise AssertionError(f"{url} did not answer within {timeout} s")


def descendants(pid: int) -> set[int]:
    """Every live process below `pid`, read from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    found, stack = set(), [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            found.add(child)
            stack.append(child)
    return found


def open_handles(pid: int, database: Path) -> list[str]:
    """The process's file descriptors on the database file, its write-ahead log or its shared memory."""
    names = re.compile(re.escape(str(database)) + r"(-wal|-shm)?$")
    found = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:  # closed meanwhile
            continue
        if names.match(target):
            found.append(target)
    return found


def arguments_of(pid: int) -> list[str]:
    """The process's command line, as /proc gives it (a trailing empty string); none for one gone meanwhile (a
    short-lived start-up check, listed and exited before it is read)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
    except OSError:
        return []


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def stop_gracefully(process: subprocess.Popen, timeout: float) -> None:
    """SIGTERM, and SIGKILL when the process has not exited `timeout` seconds later."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def skewed_clock(seconds: float, control: Path | None = None) -> dict[str, str]:
    """The environment that sets a process's wall clock `seconds` off the machine's, as on a machine whose clock
    drifted: libfaketime (LD_PRELOAD; the PyPI package carries the library), its monotonic clock left alone. With
    `control`, the offset is read from that file at every reading of the clock: write another to step the clock."""
    import libfaketime

    library = Path(libfaketime.__file__).parent / "vendor" / "libfaketime" / "src" / "libfaketime.so.1"
    offset = f"{seconds:+g}s"
    if control is not None:
        control.write_text(offset)
    return {"LD_PRELOAD": str(library), "DONT_FAKE_MONOTONIC": "1", "FAKETIME_NO_CACHE": "1",
            **({"FAKETIME_TIMESTAMP_FILE": str(control)} if control is not None else {"FAKETIME": offset})}


def clock_offset_in_log(log_path: Path) -> float:
    """Seconds a process's clock is off the machine's: the time stamp of its last log line (its clock) against the
    log file's modification time (the kernel's)."""
    stamps = [line[:23] for line in log_path.read_text(errors="replace").splitlines() if line[:2] == "20"]
    logged = datetime.strptime(stamps[-1], "%Y-%m-%d %H:%M:%S,%f")
    return (logged - datetime.fromtimestamp(log_path.stat().st_mtime)).total_seconds()


WATCHDOG_SECONDS = 20.0  # far past the timeouts the tests of lost connections expect


def watched(work: Callable[[], object]) -> tuple[BaseException | None, float]:
    """The error of `work` and the seconds it took, in a thread a watchdog waits for (a connection that waits as long
    as the operating system lets it would wait for minutes)."""
    outcome: dict = {}

    def attempt() -> None:
        began = time.monotonic()
        try:
            work()
        except Exception as error:  # noqa: BLE001 - what the test inspects
            outcome["error"] = error
        outcome["seconds"] = time.monotonic() - began

    thread = threading.Thread(target=attempt, daemon=True)
    thread.start()
    thread.join(WATCHDOG_SECONDS)
    assert not thread.is_alive(), f"still waiting after {WATCHDOG_SECONDS} s"
    return outcome.get("error"), outcome["seconds"]


def hangups(disposition: signal.Handlers) -> Callable[[], object]:
    """A preexec_fn: SIGHUP's disposition for a process a test starts, as a terminal session (SIG_DFL) or nohup
    (SIG_IGN) leaves it, whatever the test run itself was started with (under nohup, say)."""
    return lambda: signal.signal(signal.SIGHUP, disposition)
