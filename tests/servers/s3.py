"""A real S3-speaking server (moto's standalone HTTP server) on 127.0.0.1, on a free port, in a child process.

A child process rather than a thread: moto keeps every object in memory, and the memory tests of the blob store
measure the client's allocations (tracemalloc) and peak RSS, which a server in the same process would swamp; the
child has its own interpreter lock too, so a 50 MB upload is not slowed by the server's Python.

Any access key is accepted until `requiring_auth()` turns moto's authentication on (then every key is unknown:
"InvalidAccessKeyId", 403). Run as `python -m tests.servers.s3` it serves until stdin closes, after printing its port.
"""
from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

ACCESS_KEY_ID = "canvas-test-key"
SECRET_ACCESS_KEY = "canvas-test-Secret-4711"
REGION = "us-east-1"
REPOSITORY_ROOT = Path(__file__).resolve().parents[2]  # where `python -m tests.servers.s3` finds the module
START_TIMEOUT = 60.0  # seconds; importing moto takes about a second, more on a loaded CI machine


class S3Server:
    """moto's S3 on 127.0.0.1:<port>; `client()` is a boto3 client for checking what the store left behind."""

    access_key_id, secret_access_key, region = ACCESS_KEY_ID, SECRET_ACCESS_KEY, REGION

    def __init__(self, host: str = "127.0.0.1"):
        self.host = host
        self.port = 0
        self._process: subprocess.Popen | None = None

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> "S3Server":
        environment = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self._process = subprocess.Popen([sys.executable, "-m", "tests.servers.s3", self.host], cwd=REPOSITORY_ROOT,
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=environment)
        line = _read_line(self._process, START_TIMEOUT)
        if not line.startswith("port "):
            self.stop()
            raise RuntimeError(f"the S3 test server did not start: {line!r}")
        self.port = int(line.split()[1])
        return self

    def stop(self) -> None:
        if self._process is None:
            return
        self._process.stdin.close()  # the child serves until its stdin closes
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process.stdout.close()
        self._process = None

    def client(self, **overrides):  # noqa: ANN201 - a boto3 S3 client
        import boto3

        options = {"endpoint_url": self.endpoint_url, "aws_access_key_id": ACCESS_KEY_ID,
                   "aws_secret_access_key": SECRET_ACCESS_KEY, "region_name": REGION, **overrides}
        return boto3.client("s3", **options)

    def create_bucket(self, name: str | None = None) -> str:
        name = name or f"canvas-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name

    @contextlib.contextmanager
    def requiring_auth(self) -> Iterator[None]:
        """moto checks signatures and access keys meanwhile; it knows no key, so every request is refused."""
        import requests

        requests.post(f"{self.endpoint_url}/moto-api/reset-auth", data=b"0", timeout=10).raise_for_status()
        try:
            yield
        finally:
            requests.post(f"{self.endpoint_url}/moto-api/reset-auth", data=b"inf", timeout=10).raise_for_status()

    def __enter__(self) -> "S3Server":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()


def _read_line(process: subprocess.Popen, timeout: float) -> str:
    """The child's first line, or "" when it dies or stays silent past `timeout`."""
    import selectors

    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        if not selector.select(timeout):
            return ""
    return process.stdout.readline().decode("ascii", "replace").strip()


def _serve(host: str) -> None:
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request on the test's stderr
    server = ThreadedMotoServer(ip_address=host, port=0, verbose=False)
    server.start()
    print(f"port {server.get_host_and_port()[1]}", flush=True)
    sys.stdin.read()  # until the parent closes our stdin (or dies)
    server.stop()


if __name__ == "__main__":
    _serve(sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1")
