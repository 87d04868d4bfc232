"""A TCP relay on 127.0.0.1 in front of a real server (PostgreSQL, Redis…) that a test can cut and restore: the
server goes away for the process under test (connections dropped, new ones refused) without stopping a server that
other tests share."""
from __future__ import annotations

import socket
import sys
import threading
import time

from tests.process_tools import free_port

CHUNK = 65536


class TcpProxy:
    """Listens on a free local port and forwards each connection to ``target``. ``cut()`` drops every connection and
    refuses new ones, as a server that went away; ``restore()`` listens again on the same port. ``answer_delay``
    (seconds) holds back each piece of the target's answers that long, as a slow server."""

    def __init__(self, target_host: str, target_port: int, listen_host: str = "127.0.0.1",
                 listen_port: int | None = None) -> None:
        self.target = (target_host, target_port)
        self.host = listen_host
        self.port = listen_port or free_port()
        self._listener: socket.socket | None = None
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        self.answer_delay = 0.0

    def start(self) -> TcpProxy:
        if self._listener is not None:  # already relaying
            return self
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.host, self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self

    restore = start

    def cut(self) -> None:
        with self._lock:
            doomed, self._sockets = [self._listener, *self._sockets], set()
            self._listener = None
        for sock in doomed:
            _close(sock)

    stop = cut

    def connections(self) -> int:
        with self._lock:
            return len(self._sockets) // 2  # a client's socket and its upstream one

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(self, *_exc) -> None:
        self.stop()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _address = listener.accept()
            except OSError:  # cut
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                _close(client)
                continue
            upstream.settimeout(None)
            with self._lock:
                if self._listener is not listener:  # cut meanwhile
                    _close(client)
                    _close(upstream)
                    return
                self._sockets.update((client, upstream))
            for source, sink, answers in ((client, upstream, False), (upstream, client, True)):
                threading.Thread(target=self._pipe, args=(source, sink, answers), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket, answers: bool) -> None:
        try:
            while data := source.recv(CHUNK):
                if answers and self.answer_delay:
                    time.sleep(self.answer_delay)
                sink.sendall(data)
        except OSError:
            pass
        finally:
            with self._lock:
                self._sockets.difference_update((source, sink))
            _close(source)
            _close(sink)


def _close(sock: socket.socket | None) -> None:
    if sock is None:
        return
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


def main(arguments: list[str]) -> None:
    """`python -m tests.servers.tcp_proxy LISTEN_HOST LISTEN_PORT TARGET_HOST TARGET_PORT`: relays until killed (in
    another network namespace, say)."""
    listen_host, listen_port, target_host, target_port = arguments
    TcpProxy(target_host, int(target_port), listen_host, int(listen_port)).start()
    print("relaying", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main(sys.argv[1:])
