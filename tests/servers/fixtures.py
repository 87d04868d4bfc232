"""pytest fixtures around the real test servers. Load with `pytest_plugins = ["tests.servers.fixtures"]`.

Servers are function-scoped (each test gets clean state and its own free port); only the TLS certificates, which
never change, and the S3 server, where each test makes a bucket of its own for clean state, are shared by the whole
session.
"""
from __future__ import annotations

from typing import Iterator

import pytest

from tests.servers.certs import TlsCerts, generate_tls_certs
from tests.servers.ftp import FtpServer
from tests.servers.http import HttpServer
from tests.servers.s3 import S3Server
from tests.servers.sftp import SftpServer
from tests.servers.silent import SilentServer, unused_port
from tests.servers.smtp import SmtpServer


@pytest.fixture(scope="session")
def tls_certs(tmp_path_factory) -> TlsCerts:
    """A CA and a server certificate for 127.0.0.1/localhost (PEM files)."""
    return generate_tls_certs(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def ftp_server(tmp_path) -> Iterator[FtpServer]:
    """Plain FTP; the user's home is tmp_path / "ftp"."""
    with FtpServer(tmp_path / "ftp") as server:
        yield server


@pytest.fixture
def ftps_server(tmp_path, tls_certs) -> Iterator[FtpServer]:
    """Explicit FTPS (AUTH TLS) with the test CA's certificate; TLS is required on control and data."""
    with FtpServer(tmp_path / "ftps", tls_certs=tls_certs, tls_required=True) as server:
        yield server


@pytest.fixture
def sftp_server(tmp_path) -> Iterator[SftpServer]:
    """SFTP serving tmp_path / "sftp"; add client keys to `authorized_keys` for public-key login."""
    with SftpServer(tmp_path / "sftp") as server:
        yield server


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    """SMTP without TLS that requires AUTH; received messages land in `.messages`."""
    with SmtpServer() as server:
        yield server


@pytest.fixture
def smtp_starttls_server(tls_certs) -> Iterator[SmtpServer]:
    """SMTP offering STARTTLS (test CA certificate); AUTH only after STARTTLS."""
    with SmtpServer(mode="starttls", tls_certs=tls_certs) as server:
        yield server


@pytest.fixture
def smtps_server(tls_certs) -> Iterator[SmtpServer]:
    """SMTP over implicit TLS (SMTPS) with the test CA's certificate."""
    with SmtpServer(mode="ssl", tls_certs=tls_certs) as server:
        yield server


@pytest.fixture
def http_server() -> Iterator[HttpServer]:
    """HTTP server where the test registers handlers with `.route(path, handler)`."""
    with HttpServer() as server:
        yield server


@pytest.fixture
def https_server(tls_certs) -> Iterator[HttpServer]:
    """Like http_server, over HTTPS with the test CA's certificate."""
    with HttpServer(tls_certs=tls_certs) as server:
        yield server


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """moto's S3 in a child process (it takes a second to start): make a bucket per test with `create_bucket()`."""
    with S3Server() as server:
        yield server


@pytest.fixture
def s3_environment(s3_server, monkeypatch) -> S3Server:
    """The standard AWS variables set for the S3 server, as an operator sets them; nothing from the machine's own
    AWS configuration (profiles, session tokens) gets in."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server.access_key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server.secret_access_key)
    monkeypatch.setenv("AWS_DEFAULT_REGION", s3_server.region)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
    return s3_server


@pytest.fixture
def silent_server() -> Iterator[SilentServer]:
    """Accepts TCP connections and never answers."""
    with SilentServer() as server:
        yield server


@pytest.fixture
def closed_port() -> int:
    """A port on 127.0.0.1 where nothing listens."""
    return unused_port()
