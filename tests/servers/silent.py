"""A TCP server on 127.0.0.1 that accepts connections and never says a word: the subject of timeout tests.

A client's connect succeeds at once, so only a timeout on READS saves it from hanging forever.
Also `unused_port()`: a port where nothing listens (connection refused).
"""
from __future__ import annotations

import socket
import threading

ACCEPT_POLL_SECONDS = 0.05


def unused_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now (bound, then released: another process could take it, rarely)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


class SilentServer:
    """Accepts every connection, reads nothing, writes nothing, and closes them all on stop()."""

    def __init__(self, host: str = "127.0.0.1"):
        self.host = host
        self.port = 0
        self.accepted = 0
        self._listener: socket.socket | None = None
        self._connections: list[socket.socket] = []
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    def start(self) -> "SilentServer":
        self._listener = socket.create_server((self.host, 0))
        self._listener.settimeout(ACCEPT_POLL_SECONDS)
        self.port = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._accept_loop, name=f"silent-{self.port}", daemon=True)
        self._thread.start()
        return self

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self._stopping.is_set():
            try:
                connection, _ = self._listener.accept()
            except (TimeoutError, OSError):
                continue
            self._connections.append(connection)
            self.accepted += 1

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        for connection in self._connections:
            connection.close()
        if self._listener is not None:
            self._listener.close()

    def __enter__(self) -> "SilentServer":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()
