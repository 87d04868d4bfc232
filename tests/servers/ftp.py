"""A real FTP / explicit-FTPS server (pyftpdlib) on 127.0.0.1, on a free port, served from a thread.

    with FtpServer(home=tmp_path, tls_certs=certs) as server:
        ftp.connect(server.host, server.port) ...

`upload_rate` makes uploads slow (bytes per second, pyftpdlib's throttling); `cut_uploads_after` makes the server
drop an upload's data connection once it has received that many bytes, keeping what arrived (as pyftpdlib does);
`rename_replaces=False` refuses a rename onto an existing file (550), as servers on some file systems do.
"""
from __future__ import annotations

import errno
import logging
import os
import threading
from pathlib import Path

from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.filesystems import AbstractedFS
from pyftpdlib.handlers import DTPHandler, FTPHandler, ThrottledDTPHandler, TLS_FTPHandler
from pyftpdlib.ioloop import IOLoop
from pyftpdlib.servers import FTPServer

from tests.servers.certs import TlsCerts

# pyftpdlib configures logging process-wide (and turns off thread names in records) unless a handler exists.
server_log = logging.getLogger("pyftpdlib")
server_log.addHandler(logging.NullHandler())

POLL_SECONDS = 0.05
DEFAULT_USERNAME = "ftp-user"
DEFAULT_PASSWORD = "ftp-Secret-4711"


class _CutShortUploads:
    """Mixed into a DTPHandler class: closes an upload's data connection after `cut_after` bytes, answering 426."""

    cut_after = 0

    def handle_read_event(self) -> None:
        super().handle_read_event()
        if self.receive and not self._closed and self.tot_bytes_received >= self.cut_after:
            self._resp = ("426 Connection cut by the test server; transfer aborted.", server_log.info)
            self.close()


class _RenameCannotReplace(AbstractedFS):
    def rename(self, src: str, dst: str) -> None:
        if os.path.lexists(dst):
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST))
        super().rename(src, dst)


class FtpServer:
    """pyftpdlib with one read-write user whose home is `home`; `tls_certs` turns on explicit FTPS (AUTH TLS)."""

    def __init__(
        self,
        home: Path,
        username: str = DEFAULT_USERNAME,
        password: str = DEFAULT_PASSWORD,
        *,
        tls_certs: TlsCerts | None = None,
        tls_required: bool = False,
        upload_rate: int | None = None,
        cut_uploads_after: int | None = None,
        rename_replaces: bool = True,
    ):
        self.home = Path(home)
        self.upload_rate, self.cut_uploads_after = upload_rate, cut_uploads_after
        self.rename_replaces = rename_replaces
        self.username, self.password = username, password
        self.tls_certs = tls_certs
        self.tls_required = tls_required
        self.host = "127.0.0.1"
        self.port = 0
        self._server: FTPServer | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    def _handler_class(self) -> type[FTPHandler]:
        # pyftpdlib keeps its settings on the handler CLASS: a fresh subclass per server keeps servers apart.
        authorizer = DummyAuthorizer()
        authorizer.add_user(self.username, self.password, str(self.home), perm="elradfmwMT")
        settings = {
            "authorizer": authorizer,
            "banner": "canvas test ftpd ready",
            "auth_failed_timeout": 0.05,  # pyftpdlib's default 3 s penalty would slow every wrong-password test
            "permit_privileged_ports": False,
            "abstracted_fs": AbstractedFS if self.rename_replaces else _RenameCannotReplace,
        }
        if self.tls_certs is None:
            settings["dtp_handler"] = self._dtp_handler_class(FTPHandler.dtp_handler)
            return type("TestFTPHandler", (FTPHandler,), settings)
        settings.update(
            dtp_handler=self._dtp_handler_class(TLS_FTPHandler.dtp_handler),
            certfile=str(self.tls_certs.cert_file),
            keyfile=str(self.tls_certs.key_file),
            ssl_context=None,  # built lazily per class from the files above
            tls_control_required=self.tls_required,
            tls_data_required=self.tls_required,
        )
        return type("TestTLSFTPHandler", (TLS_FTPHandler,), settings)

    def _dtp_handler_class(self, base: type[DTPHandler]) -> type[DTPHandler]:
        """`base` (plain or TLS data connections) with the throttling and the cut asked for."""
        bases, settings = (base,), {}
        if self.upload_rate:
            bases, settings["read_limit"] = (ThrottledDTPHandler, *bases), self.upload_rate
        if self.cut_uploads_after is not None:
            bases, settings["cut_after"] = (_CutShortUploads, *bases), self.cut_uploads_after
        return type("TestDTPHandler", bases, settings) if settings else base

    def start(self) -> "FtpServer":
        self.home.mkdir(parents=True, exist_ok=True)
        self._server = FTPServer((self.host, 0), self._handler_class(), ioloop=IOLoop())
        self.port = self._server.address[1]
        self._thread = threading.Thread(target=self._serve, name=f"ftpd-{self.port}", daemon=True)
        self._thread.start()
        return self

    def _serve(self) -> None:
        assert self._server is not None
        while not self._stopping.is_set():
            self._server.serve_forever(timeout=POLL_SECONDS, blocking=False, handle_exit=False)
        self._server.close_all()  # in this thread: the IO loop is not thread-safe

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def __enter__(self) -> "FtpServer":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def credentials(self, **overrides) -> dict:
        """The FTP application credentials that log in to this server."""
        credentials = {
            "address": self.host,
            "port": self.port,
            "username": self.username,
            "password": self.password,
            "secure": self.tls_certs is not None,
        }
        return {**credentials, **overrides}
