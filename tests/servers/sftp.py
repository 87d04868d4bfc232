"""A real SFTP server (paramiko) on 127.0.0.1, on a free port, backed by a local directory.

Password and public-key authentication; `host_key_line` is what an application's `hostKey` field holds.
`generate_key()` makes client keys (RSA, Ed25519, ECDSA) in the text forms users paste.
`before_write(path, offset, length)`, when given, is called before each write into a file (in the session's own
thread): it may sleep (a slow server) or call `drop_connections()` (a connection lost mid-transfer).
`rename_replaces=False` makes a server whose rename refuses an existing target and that does not offer OpenSSH's
posix-rename (which replaces) either.
"""
from __future__ import annotations

import hmac
import io
import os
import posixpath
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import paramiko
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

DEFAULT_USERNAME = "sftp-user"
DEFAULT_PASSWORD = "sftp-Secret-0815"
ACCEPT_POLL_SECONDS = 0.1


@dataclass(frozen=True)
class GeneratedKey:
    private_text: str  # what a user pastes into privateKey
    public_line: str  # "ssh-ed25519 AAAA...", what goes into authorized_keys / hostKey

    @property
    def public_base64(self) -> str:
        return self.public_line.split()[1]

    def paramiko_key(self) -> paramiko.PKey:
        key_class = {"ssh-rsa": paramiko.RSAKey, "ssh-ed25519": paramiko.Ed25519Key}.get(
            self.public_line.split()[0], paramiko.ECDSAKey
        )
        return key_class.from_private_key(io.StringIO(self.private_text))


def generate_key(kind: str = "ed25519") -> GeneratedKey:
    """A fresh key pair: Ed25519 in OpenSSH format, RSA and ECDSA in traditional PEM (both forms users have)."""
    if kind == "ed25519":
        key, private_format = ed25519.Ed25519PrivateKey.generate(), serialization.PrivateFormat.OpenSSH
    elif kind == "rsa":
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        private_format = serialization.PrivateFormat.TraditionalOpenSSL
    elif kind == "ecdsa":
        key, private_format = ec.generate_private_key(ec.SECP256R1()), serialization.PrivateFormat.TraditionalOpenSSL
    else:
        raise ValueError(f"unknown key kind {kind!r}")
    private_text = key.private_bytes(serialization.Encoding.PEM, private_format, serialization.NoEncryption())
    public_line = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return GeneratedKey(private_text.decode(), public_line.decode())


class _Authenticator(paramiko.ServerInterface):
    def __init__(self, username: str, password: str, authorized_keys: list[str]):
        self._username, self._password = username, password
        self._authorized = {line.split()[1] for line in authorized_keys}

    def get_allowed_auths(self, username):
        return "password,publickey"

    def check_auth_password(self, username, password):
        ok = username == self._username and hmac.compare_digest(password.encode(), self._password.encode())
        return paramiko.AUTH_SUCCESSFUL if ok else paramiko.AUTH_FAILED

    def check_auth_publickey(self, username, key):
        ok = username == self._username and key.get_base64() in self._authorized
        return paramiko.AUTH_SUCCESSFUL if ok else paramiko.AUTH_FAILED

    def check_channel_request(self, kind, chanid):
        return paramiko.OPEN_SUCCEEDED if kind == "session" else paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED


WriteHook = Callable[[Path, int, int], None]  # (local path, offset, length)


class _LocalHandle(paramiko.SFTPHandle):
    def __init__(self, flags: int, before_write: WriteHook | None):
        super().__init__(flags)
        self.before_write = before_write

    def write(self, offset, data):
        if self.before_write is not None:
            self.before_write(Path(self.filename), offset, len(data))
        return super().write(offset, data)

    def stat(self):
        try:
            return paramiko.SFTPAttributes.from_stat(os.fstat(self.readfile.fileno()))
        except OSError as error:
            return paramiko.SFTPServer.convert_errno(error.errno)


def _open_mode(flags: int) -> str:
    if flags & os.O_WRONLY:
        return "ab" if flags & os.O_APPEND else "wb"
    if flags & os.O_RDWR:
        return "a+b" if flags & os.O_APPEND else "r+b"
    return "rb"


def _errno_answer(function):
    """Turn OSError into the SFTP status paramiko expects, as every SFTPServerInterface method must."""

    def wrapper(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except OSError as error:
            return paramiko.SFTPServer.convert_errno(error.errno)

    return wrapper


class _LocalSFTPServer(paramiko.SFTPServerInterface):
    """The client sees `root` as "/"; ".." cannot leave it (paths are normalised before mapping)."""

    def __init__(self, server, *args, root: str, before_write: WriteHook | None = None, rename_replaces: bool = True,
                 **kwargs):
        super().__init__(server, *args, **kwargs)
        self.root, self.before_write, self.rename_replaces = root, before_write, rename_replaces

    def canonicalize(self, path):
        return posixpath.normpath(posixpath.join("/", path)) if path not in ("", ".") else "/"

    def _local(self, path: str) -> str:
        return os.path.join(self.root, self.canonicalize(path).lstrip("/"))

    @_errno_answer
    def list_folder(self, path):
        folder = self._local(path)
        entries = []
        for name in sorted(os.listdir(folder)):
            attributes = paramiko.SFTPAttributes.from_stat(os.lstat(os.path.join(folder, name)))
            attributes.filename = name
            entries.append(attributes)
        return entries

    @_errno_answer
    def stat(self, path):
        return paramiko.SFTPAttributes.from_stat(os.stat(self._local(path)))

    @_errno_answer
    def lstat(self, path):
        return paramiko.SFTPAttributes.from_stat(os.lstat(self._local(path)))

    @_errno_answer
    def open(self, path, flags, attr):
        local = self._local(path)
        descriptor = os.open(local, flags | getattr(os, "O_BINARY", 0), 0o644)
        file = os.fdopen(descriptor, _open_mode(flags))
        handle = _LocalHandle(flags, self.before_write)
        handle.filename = local
        handle.readfile = handle.writefile = file
        return handle

    @_errno_answer
    def remove(self, path):
        os.remove(self._local(path))
        return paramiko.SFTP_OK

    @_errno_answer
    def rename(self, oldpath, newpath):
        if not self.rename_replaces and os.path.lexists(self._local(newpath)):
            return paramiko.SFTP_FAILURE  # as OpenSSH's server answers: its plain rename does not replace
        os.rename(self._local(oldpath), self._local(newpath))
        return paramiko.SFTP_OK

    @_errno_answer
    def posix_rename(self, oldpath, newpath):
        if not self.rename_replaces:
            return paramiko.SFTP_OP_UNSUPPORTED
        os.replace(self._local(oldpath), self._local(newpath))
        return paramiko.SFTP_OK

    @_errno_answer
    def mkdir(self, path, attr):
        os.mkdir(self._local(path))
        return paramiko.SFTP_OK

    @_errno_answer
    def rmdir(self, path):
        os.rmdir(self._local(path))
        return paramiko.SFTP_OK

    @_errno_answer
    def chattr(self, path, attr):
        paramiko.SFTPServer.set_file_attr(self._local(path), attr)
        return paramiko.SFTP_OK


class SftpServer:
    """Serve `root` over SFTP to one user, with a password and/or authorized public keys."""

    def __init__(
        self,
        root: Path,
        username: str = DEFAULT_USERNAME,
        password: str = DEFAULT_PASSWORD,
        authorized_keys: list[str] | None = None,
        before_write: WriteHook | None = None,
        rename_replaces: bool = True,
    ):
        self.root = Path(root)
        self.before_write, self.rename_replaces = before_write, rename_replaces
        self.username, self.password = username, password
        self.authorized_keys = list(authorized_keys or [])
        self._host_key_pair = generate_key("ed25519")
        self.host_key = self._host_key_pair.paramiko_key()
        self.host = "127.0.0.1"
        self.port = 0
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._transports: list[paramiko.Transport] = []
        self._stopping = threading.Event()

    @property
    def host_key_line(self) -> str:
        """The server's public host key, "ssh-ed25519 AAAA..." (the `hostKey` credential field)."""
        return self._host_key_pair.public_line

    def start(self) -> "SftpServer":
        self.root.mkdir(parents=True, exist_ok=True)
        self._listener = socket.create_server((self.host, 0))
        self._listener.settimeout(ACCEPT_POLL_SECONDS)
        self.port = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._accept_loop, name=f"sftpd-{self.port}", daemon=True)
        self._thread.start()
        return self

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self._stopping.is_set():
            try:
                connection, _ = self._listener.accept()
            except (TimeoutError, OSError):
                continue
            self._serve(connection)

    def _serve(self, connection: socket.socket) -> None:
        transport = paramiko.Transport(connection)
        transport.set_log_channel("tests.servers.sftpd")  # server-side noise apart from the client's paramiko logs
        transport.add_server_key(self.host_key)
        transport.set_subsystem_handler("sftp", paramiko.SFTPServer, _LocalSFTPServer, root=str(self.root),
                                        before_write=self.before_write, rename_replaces=self.rename_replaces)
        self._transports.append(transport)
        authenticator = _Authenticator(self.username, self.password, self.authorized_keys)
        try:
            transport.start_server(event=threading.Event(), server=authenticator)  # negotiates in its own thread
        except paramiko.SSHException:
            transport.close()

    def drop_connections(self) -> None:
        """Close every client connection at once, as a network failure would; new ones are still accepted."""
        for transport in self._transports:
            transport.close()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        if self._listener is not None:
            self._listener.close()
        self.drop_connections()

    def __enter__(self) -> "SftpServer":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def credentials(self, **overrides) -> dict:
        """SFTP application credentials that log in with the password and pin this server's host key."""
        credentials = {
            "address": self.host,
            "port": self.port,
            "username": self.username,
            "password": self.password,
            "hostKey": self.host_key_line,
        }
        return {**credentials, **overrides}
