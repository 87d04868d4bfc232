"""A TCP relay on 127.0.0.1 in front of a real server (PostgreSQL, Redis…) that a test can cut and restore: a network
outage between the service and that server, without stopping a server other tests share.

`cut()` closes every relayed connection at once and refuses new ones until `restore()`.
"""
from __future__ import annotations

import socket
import threading


class TcpProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.connections: set[socket.socket] = set()
        self.lock = threading.Lock()
        self.open = threading.Event()
        self.open.set()
        self.stopping = False

    def start(self) -> TcpProxy:
        threading.Thread(target=self._accept, name="tcp-proxy", daemon=True).start()
        return self

    def cut(self) -> None:
        self.open.clear()
        with self.lock:
            doomed, self.connections = self.connections, set()
        for connection in doomed:
            _close(connection)

    def restore(self) -> None:
        self.open.set()

    def stop(self) -> None:
        self.stopping = True
        self.cut()
        _close(self.listener)

    def _accept(self) -> None:
        while not self.stopping:
            try:
                client, _address = self.listener.accept()
            except OSError:
                return
            if not self.open.is_set():
                _close(client)  # refused, as an unreachable server would be
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                _close(client)
                continue
            with self.lock:
                self.connections.update((client, upstream))
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while chunk := source.recv(65536):
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            _close(source)
            _close(sink)

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(self, *_exc) -> None:
        self.stop()


def _close(connection: socket.socket) -> None:
    try:
        connection.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        connection.close()
    except OSError:
        pass
