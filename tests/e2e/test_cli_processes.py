"""`canvas up` failing well, with real processes: a taken port, a SIGKILL of the supervisor, a start from a folder
that holds a `canvas/` directory of its own, a second `canvas up` on the same data dir, the API's real port passed
to every child."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from cryptography.fernet import Fernet

from canvas.supervisor import InstanceFile
from tests.process_tools import (
    alive,
    arguments_of,
    canvas_env,
    descendants,
    free_port,
    one_error_line,
    run_canvas,
    start_canvas,
    wait_for_http,
)

pytestmark = pytest.mark.slow
CANVAS_SCRIPT = Path(sys.executable).with_name("canvas")  # the installed entry point, as a user starts it


def _environ_of(pid: int) -> dict[str, str]:
    pairs = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(pair.decode().split("=", 1) for pair in pairs if b"=" in pair)


def _cmdline_of(pid: int) -> str:
    return " ".join(arguments_of(pid))


def _wait_until_gone(pids: set[int], timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = [pid for pid in pids if alive(pid)]
        if not left:
            return []
        time.sleep(0.1)
    return [pid for pid in pids if alive(pid)]


def _wait_for_workers_and_scheduler(base: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        health = requests.get(f"{base}/healthz", timeout=10).json()
        if (health["workers"], health["schedulers"]) == (1, 1):
            return
        time.sleep(0.3)
    raise AssertionError(f"worker and scheduler not up: {health}")


def test_a_taken_port_ends_canvas_up_at_once_with_one_line_and_starts_nothing(tmp_path):
    data_dir = tmp_path / "data"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        started = time.monotonic()
        result = run_canvas("up", "--port", str(port), env=canvas_env(data_dir), timeout=30)
    assert result.returncode == 2
    assert result.stderr == f"Error: port {port} on 127.0.0.1 is in use; start with --port <another port>\n"
    assert time.monotonic() - started < 15
    # Nothing was started: no database prepared, no embedded Redis, so no worker or scheduler either.
    assert not (data_dir / "canvas.db").exists() and not (data_dir / "redis").exists()
    assert not (data_dir / "canvas-up.pid").exists()


@pytest.mark.parametrize("command", ["worker", "scheduler", "api", "up"])
def test_a_malformed_secret_key_refuses_to_start_with_one_line_that_never_quotes_it(tmp_path, command):
    """A worker started anyway and failed each run that reads credentials; the API showed a traceback."""
    good = Fernet.generate_key().decode()
    env = canvas_env(tmp_path / "data", CANVAS_SECRET_KEYS=f"{good},not-a-fernet-key")
    error = one_error_line(run_canvas(command, env=env))
    assert error == ("Error: CANVAS_SECRET_KEYS: key 2 of 2 is not a valid Fernet key (expected 32 url-safe "
                     "base64-encoded bytes)")


@pytest.mark.parametrize("command", ["api", "up"])
def test_an_unreachable_database_refuses_the_api_with_one_line_and_the_reason_never_the_password(tmp_path, command):
    """They migrate the database as they start; the reason was a traceback of SQLAlchemy's."""
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # bound, never listening: connections to it are refused
        env = canvas_env(tmp_path / "data",
                         CANVAS_DATABASE_URL=f"postgresql+psycopg://canvas:S3cret-Pw@127.0.0.1:{port}/canvas")
        result = run_canvas(command, "--port", str(free_port()), env=env)
    error = one_error_line(result)
    assert error.startswith(f"Error: CANVAS_DATABASE_URL: the database at postgresql+psycopg://canvas:***@127.0.0.1:"
                            f"{port}/canvas cannot be reached: ")
    assert "refused" in error.lower()
    assert "S3cret-Pw" not in result.stderr + result.stdout


def test_canvas_up_from_a_folder_with_a_canvas_directory_then_sigkill_leaves_no_process(tmp_path):
    """Started where `python -m canvas` would import the folder's own `canvas/`; every child (API, its gunicorn
    workers, worker, scheduler, embedded Redis) gets the API's real address and goes when the supervisor is killed."""
    folder = tmp_path / "project"
    (folder / "canvas").mkdir(parents=True)
    (folder / "canvas" / "__init__.py").write_text("raise SystemExit('the wrong canvas package was imported')\n")
    (folder / "canvas" / "__main__.py").write_text("raise SystemExit('the wrong canvas package was imported')\n")
    data_dir, port = tmp_path / "data", free_port()
    env = canvas_env(data_dir, CANVAS_API_WORKERS="1")
    log = open(tmp_path / "up.log", "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen([str(CANVAS_SCRIPT), "up", "--port", str(port)], cwd=folder, env=env, stdout=log,
                               stderr=subprocess.STDOUT)
    children: set[int] = set()
    try:
        base = f"http://127.0.0.1:{port}"
        assert wait_for_http(f"{base}/healthz", process).status_code == 200
        _wait_for_workers_and_scheduler(base)
        children = descendants(process.pid)
        commands = {pid: _cmdline_of(pid) for pid in children}
        worker = next(pid for pid, command in commands.items() if command.endswith("-m canvas worker "))
        assert _environ_of(worker)["CANVAS_PUBLIC_URL"] == f"http://127.0.0.1:{port}"
        assert any("redis-server" in command for command in commands.values())

        second = run_canvas("up", "--port", str(free_port()), env=env, timeout=30)
        assert second.returncode == 2
        assert second.stderr.strip() == (f"Error: another `canvas up` (pid {process.pid}) is running with the data "
                                         f"dir {data_dir}; stop it first")

        process.send_signal(signal.SIGKILL)
        process.wait(10)
        left = _wait_until_gone(children, timeout=30)
        assert left == [], {pid: _cmdline_of(pid) for pid in left if alive(pid)}
    finally:
        log.close()
        for pid in children:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
    assert "the wrong canvas package" not in (tmp_path / "up.log").read_text()

    # What a new `canvas up` on the same data dir and port finds: the port free, the killed one's pid file with
    # nothing of it left to stop, its lock gone with it (the stale cleanup itself: test_cli_instance.py).
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", port))
    assert (data_dir / "canvas-up.pid").exists()
    successor = InstanceFile(data_dir / "canvas-up.pid")
    assert successor.claim() == []
    successor.release()


def _worker_of(supervisor: int) -> int | None:
    return next((pid for pid in descendants(supervisor) if _cmdline_of(pid).endswith("-m canvas worker ")), None)


def test_a_worker_that_dies_while_the_pid_file_cannot_be_written_comes_back_and_canvas_up_stays(tmp_path):
    """A full disk made the supervisor's record of the restarted worker raise, which ended `canvas up` and everything
    it ran. Simulated here by a directory where the pid file's temporary copy is written."""
    data_dir, port = tmp_path / "data", free_port()
    process = start_canvas("up", "--port", str(port), env=canvas_env(data_dir, CANVAS_API_WORKERS="1"),
                           log_path=tmp_path / "up.log")
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for_http(f"{base}/healthz", process)
        _wait_for_workers_and_scheduler(base)
        first = _worker_of(process.pid)
        (data_dir / "canvas-up.tmp").mkdir()
        os.kill(first, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while _worker_of(process.pid) in (None, first) and time.monotonic() < deadline:
            time.sleep(0.1)
        second = _worker_of(process.pid)
        assert second not in (None, first), (tmp_path / "up.log").read_text()[-3000:]
        time.sleep(2)  # time to die, for a supervisor that would
        assert process.poll() is None and alive(second), (tmp_path / "up.log").read_text()[-3000:]
        assert requests.get(f"{base}/healthz", timeout=10).json()["redis"] == "ok"
    finally:
        process.send_signal(signal.SIGTERM)
        exit_code = process.wait(60)
    assert exit_code == 0
    assert "could not update " in (tmp_path / "up.log").read_text()


def _accepts(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def redis_with_a_password(tmp_path):
    """A redis-server of the test's own that requires the password "right-Pw"; yields its port."""
    from canvas.queueing.embedded import redis_server_binary

    port = free_port()
    server = subprocess.Popen([redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                               "--requirepass", "right-Pw", "--dir", str(tmp_path)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 15
        while not _accepts(port):
            assert server.poll() is None and time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)
        yield port
    finally:
        server.terminate()
        server.wait(15)


@pytest.mark.parametrize("command", ["worker", "scheduler", "api", "up"])
def test_a_redis_that_refuses_the_password_refuses_to_start_with_one_line_never_the_password(
        tmp_path, redis_with_a_password, command):
    """Every process waited for it forever, logging "Redis is unreachable (AuthenticationError)", as for an outage
    that would pass."""
    url = f"redis://:wrong-Pw@127.0.0.1:{redis_with_a_password}/0"
    result = run_canvas(command, env=canvas_env(tmp_path / "data", CANVAS_REDIS_URL=url))
    assert one_error_line(result) == (f"Error: CANVAS_REDIS_URL: Redis at redis://:***@127.0.0.1:"
                                      f"{redis_with_a_password}/0 refused the credentials: invalid "
                                      "username-password pair or user is disabled.")
    assert "wrong-Pw" not in result.stderr + result.stdout


def test_a_redis_url_without_the_password_it_needs_says_so(tmp_path, redis_with_a_password):
    url = f"redis://127.0.0.1:{redis_with_a_password}/0"
    error = one_error_line(run_canvas("worker", env=canvas_env(tmp_path / "data", CANVAS_REDIS_URL=url)))
    assert error == f"Error: CANVAS_REDIS_URL: Redis at {url} requires a password, and the URL gives none"


def test_a_redis_database_the_server_does_not_have_refuses_to_start_with_one_line(tmp_path, redis_with_a_password):
    """redis://…/99 on a server with 16 databases: the worker died with a traceback, the scheduler logged one each
    time it said it was alive."""
    url = f"redis://:right-Pw@127.0.0.1:{redis_with_a_password}/99"
    error = one_error_line(run_canvas("worker", env=canvas_env(tmp_path / "data", CANVAS_REDIS_URL=url)))
    assert error == (f"Error: CANVAS_REDIS_URL: Redis at redis://:***@127.0.0.1:{redis_with_a_password}/99 has no "
                     "database 99 (its 'databases' setting is lower)")


def test_the_right_password_starts_the_worker(tmp_path, redis_with_a_password):
    env = canvas_env(tmp_path / "data", CANVAS_REDIS_URL=f"redis://:right-Pw@127.0.0.1:{redis_with_a_password}/0")
    assert run_canvas("db", "upgrade", env=env).returncode == 0  # or the worker waits for it
    worker = start_canvas("worker", env=env, log_path=tmp_path / "worker.log")
    try:
        deadline = time.monotonic() + 60
        while "Listening on canvas-runs" not in (tmp_path / "worker.log").read_text() and worker.poll() is None:
            assert time.monotonic() < deadline, (tmp_path / "worker.log").read_text()[-3000:]
            time.sleep(0.2)
        assert worker.poll() is None, (tmp_path / "worker.log").read_text()[-3000:]
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(60)
