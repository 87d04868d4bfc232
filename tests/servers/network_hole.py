"""A route to a real TCP server that a test can turn into a black hole: packets dropped without an answer, as when
the server's host is powered off, a failover moves its address away, or a firewall forgets a connection. A TcpProxy
(`cut()`) closes connections, which the client learns at once; in a black hole it learns nothing, and waits as long
as its operating system and its own timeouts let it.

The route crosses a network namespace of the test's own, joined to this one by a veth pair:

    client -> 10.213.N.2:PORT (a relay in the namespace) -> 10.213.N.1:PROXY (a TcpProxy here) -> the server

`open()` takes the namespace's end of the veth pair down: both directions drop every packet, the connections
through it stay open on both ends, and nothing answers, not even with a reset (the neighbours are fixed entries, so
no address resolution fails either). `close()` brings it up again. Needs root and iproute2 (`ip netns`), as on CI
and these machines.
"""
from __future__ import annotations

import itertools
import os
import subprocess
import sys
import time
from pathlib import Path

from tests.process_tools import free_port
from tests.servers.tcp_proxy import TcpProxy

REPO = Path(__file__).resolve().parents[2]
_numbers = itertools.count(1)


class NetworkHole:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        tag = f"{os.getpid() % 100000}{next(_numbers)}"
        self.namespace, self.here, self.there = f"cvh{tag}", f"cvh{tag}a", f"cvh{tag}b"
        self.subnet = _free_subnet()
        self.here_address, self.there_address = f"{self.subnet}.1", f"{self.subnet}.2"
        self.port = target_port  # the relay's, in a namespace where every port is free
        self._proxy: TcpProxy | None = None
        self._relay: subprocess.Popen | None = None

    def start(self) -> NetworkHole:
        try:
            self._join_namespace()
            self._proxy = TcpProxy(*self.target, listen_host=self.here_address, listen_port=free_port()).start()
            self._relay = subprocess.Popen(
                ["ip", "netns", "exec", self.namespace, sys.executable, "-m", "tests.servers.tcp_proxy",
                 self.there_address, str(self.port), self.here_address, str(self._proxy.port)],
                cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            ready = self._relay.stdout.readline()
            if "relaying" not in ready:
                raise RuntimeError(f"the relay in namespace {self.namespace} did not start: {ready!r}")
        except BaseException:
            self.stop()
            raise
        return self

    def connections(self) -> int:
        """Connections relayed now (open on both ends)."""
        return self._proxy.connections() if self._proxy is not None else 0

    def open(self) -> None:
        """From now on every packet through the route is dropped."""
        self._in_namespace("ip", "link", "set", self.there, "down")

    def close(self) -> None:
        self._in_namespace("ip", "link", "set", self.there, "up")

    def stop(self) -> None:
        if self._relay is not None:
            self._relay.kill()
            self._relay.wait(10)
            self._relay = None
        if self._proxy is not None:
            self._proxy.stop()
            self._proxy = None
        subprocess.run(["ip", "netns", "delete", self.namespace], capture_output=True)  # the veth pair with it

    def __enter__(self) -> NetworkHole:
        return self.start()

    def __exit__(self, *_exc) -> None:
        self.stop()

    def _join_namespace(self) -> None:
        _ip("netns", "add", self.namespace)
        _ip("link", "add", self.here, "type", "veth", "peer", "name", self.there)
        _ip("link", "set", self.there, "netns", self.namespace)
        _ip("addr", "add", f"{self.here_address}/30", "dev", self.here)
        _ip("link", "set", self.here, "up")
        self._in_namespace("ip", "addr", "add", f"{self.there_address}/30", "dev", self.there)
        self._in_namespace("ip", "link", "set", self.there, "up")
        self._in_namespace("ip", "link", "set", "lo", "up")
        # Fixed neighbours: with the link down, a lookup would fail and report "no route to host" to new connections
        # at once, which a vanished host does not do.
        _ip("neigh", "replace", self.there_address, "lladdr", self._mac(self.there, inside=True), "dev", self.here,
            "nud", "permanent")
        self._in_namespace("ip", "neigh", "replace", self.here_address, "lladdr", self._mac(self.here, inside=False),
                           "dev", self.there, "nud", "permanent")

    def _mac(self, device: str, inside: bool) -> str:
        command = ["ip", "-o", "link", "show", device]
        shown = self._in_namespace(*command) if inside else _ip(*command[1:])
        return shown.split("link/ether", 1)[1].split()[0]

    def _in_namespace(self, *command: str) -> str:
        return _run(["ip", "netns", "exec", self.namespace, *command])


def _ip(*arguments: str) -> str:
    return _run(["ip", *arguments])


def _run(command: list[str]) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=30)
    except FileNotFoundError:
        raise RuntimeError("a network hole needs iproute2's `ip` (Debian: apt-get install iproute2)") from None
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}): {done.stderr.strip()}; a network hole "
                           f"needs root (network namespaces)")
    return done.stdout


def _free_subnet() -> str:
    """A 10.213.N.0/30 no interface of this machine has, N tried in turn from one of the process and the time."""
    taken = _ip("-o", "addr", "show")
    start = os.getpid() + int(time.time())
    for offset in range(250):
        subnet = f"10.213.{(start + offset) % 250}"
        if f"inet {subnet}." not in taken:
            return subnet
    raise RuntimeError("no free 10.213.x.0/30 subnet for a network hole")
