"""SFTP upload, download and list (paramiko through canvas.network.ssh.open_sftp, which applies the SSRF guard).

Host keys: the application's `hostKey` (pinned) when set, else the worker's known_hosts file
(CANVAS_SSH_KNOWN_HOSTS_FILE, default ~/.ssh/known_hosts); an unknown host is refused unless the variable
`hostKeyPolicy` is "accept_new" (trust on first use; a changed key is refused even then).
The shared behaviour (atomic upload, glob download, zip of several files) is described in _net_remote.
"""
from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import BinaryIO

from canvas.execution.blocks._net_common import (
    credential_redactor,
    Redactor, credentials_of, network_failures, policy_of, port_field, required_field, timeout_of,
)
from canvas.execution.blocks._net_remote import RemoteDownload, RemoteEntry, RemoteFolder, RemoteList, RemoteUpload
from canvas.execution.blocks.base import VariableSpec
from canvas.execution.context import BlockAuthenticationError, BlockContext, BlockError, TransientBlockError
from canvas.execution.registry import register
from canvas.network.ssh import (
    DEFAULT_KNOWN_HOSTS_FILE, HOST_KEY_POLICIES, HostKeyCheck, SftpSession, SshError, SshLogin, open_sftp,
)

DEFAULT_PORT = 22
KNOWN_HOSTS_SETTING = "CANVAS_SSH_KNOWN_HOSTS_FILE"
# open_sftp's reasons that a retry will not cure: a refused login, a host key problem, a refused address...
_AUTH_REASONS = ("login failed",)
_FINAL_REASONS = ("unknown SSH host key", "host key mismatch", "Refused to connect", "enter a password", "privateKey")

HOST_KEY_VARIABLE = VariableSpec(
    "string", default="known_hosts", choices=HOST_KEY_POLICIES,
    description="Without a pinned hostKey: known_hosts (refuse unknown hosts) or accept_new (trust on first use).",
)


class SftpFolder(RemoteFolder):
    def __init__(self, session: SftpSession, host: str, port: int, timeout: float, redact: Redactor):
        self.session, self.sftp = session, session.sftp
        self.host, self.port, self.timeout, self.redact = host, port, timeout, redact

    @contextmanager
    def replies(self, action: str) -> Iterator[None]:
        """SFTP status errors (no such file, permission denied) are final; socket trouble is transient."""
        import paramiko  # already loaded by the open session; not at import time, which the API pays for

        with network_failures(self.host, self.port, self.timeout, self.redact):
            try:
                yield
            except (FileNotFoundError, PermissionError, IsADirectoryError) as error:
                raise BlockError(f"{action}: {error.strerror or type(error).__name__}") from None
            except paramiko.SSHException as error:  # the session broke down under us
                raise TransientBlockError(self.redact(f"{action}: {error}")) from None
            except OSError as error:
                if isinstance(error, (TimeoutError, ConnectionError)):
                    raise
                if not self.session.transport.is_active():  # paramiko's "Socket is closed": the connection dropped
                    raise TransientBlockError(self.redact(f"{action}: connection lost ({error})")) from None
                raise BlockError(self.redact(f"{action}: {error}")) from None  # an SFTP status such as "Failure"

    def list_files(self, directory: str) -> list[RemoteEntry]:
        with self.replies(f"cannot list {directory}"):
            return [_entry(attributes) for attributes in self.sftp.listdir_attr(directory)
                    if stat.S_ISREG(attributes.st_mode or 0)]

    def exists(self, path: str) -> bool:
        with self.replies(f"cannot check {path}"):
            try:
                self.sftp.stat(path)
                return True
            except FileNotFoundError:
                return False

    def store(self, path: str, stream: BinaryIO, shown_as: str) -> None:
        with self.replies(f"cannot upload {shown_as}"):
            self.sftp.putfo(stream, path, confirm=True)

    def fetch(self, path: str, sink: BinaryIO) -> None:
        with self.replies(f"cannot download {path}"):
            self.sftp.getfo(path, sink)

    def rename(self, source: str, target: str) -> None:
        with self.replies(f"cannot rename {source} to {target}"):
            self.sftp.rename(source, target)

    def replace(self, source: str, target: str) -> None:
        """OpenSSH's posix-rename replaces in one step. A server without it gets delete then plain rename (SFTP's
        own rename refuses an existing target): for that moment the name is missing, never partial."""
        try:
            with self.replies(f"cannot rename {source} to {target}"):
                self.sftp.posix_rename(source, target)
        except TransientBlockError:
            raise
        except BlockError:
            if not self.exists(source):
                raise  # nothing to put in its place: deleting the target would lose it for nothing
            if self.exists(target):
                self.delete(target)
            self.rename(source, target)

    def delete(self, path: str) -> None:
        with self.replies(f"cannot delete {path}"):
            self.sftp.remove(path)

    def close(self) -> None:
        self.session.close()


def _entry(attributes) -> RemoteEntry:  # noqa: ANN001 - paramiko.SFTPAttributes
    modified = None
    if attributes.st_mtime is not None:
        modified = datetime.fromtimestamp(attributes.st_mtime, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return RemoteEntry(attributes.filename, attributes.st_size, modified)


def known_hosts_file() -> str:
    return os.environ.get(KNOWN_HOSTS_SETTING) or DEFAULT_KNOWN_HOSTS_FILE


def open_sftp_folder(context: BlockContext, block_key: str) -> SftpFolder:
    credentials = credentials_of(context, block_key)
    host, port = required_field(credentials, "address"), port_field(credentials, DEFAULT_PORT)
    timeout, redact = timeout_of(context), credential_redactor(credentials)
    login = SshLogin(
        required_field(credentials, "username"), password=str(credentials.get("password") or ""),
        private_key=str(credentials.get("privateKey") or ""),
        passphrase=str(credentials.get("passphrase") or "") or None,
    )
    host_keys = HostKeyCheck(
        pinned=str(credentials.get("hostKey") or ""),
        policy=context.variables.get("hostKeyPolicy") or "known_hosts", known_hosts_file=known_hosts_file(),
    )
    try:
        session = open_sftp(policy_of(context), host, port, login, host_keys, timeout)
    except SshError as error:
        raise _classified(redact(error.reason)) from None
    return SftpFolder(session, host, port, timeout, redact)


def _classified(reason: str) -> BlockError:
    if reason.startswith(_AUTH_REASONS):
        return BlockAuthenticationError(f"SFTP {reason}")
    if any(marker in reason for marker in _FINAL_REASONS):
        return BlockError(reason)
    return TransientBlockError(reason)  # timeouts, refused or lost connections, failed handshakes


class _SftpAccess:
    application_kind = "sftp"

    @classmethod
    def preload(cls) -> None:
        import paramiko  # noqa: F401 - imported in a forked child, it cost each run ~90 ms of CPU

    def open_folder(self, context: BlockContext) -> SftpFolder:
        return open_sftp_folder(context, self.key)


@register
class SftpUpload(_SftpAccess, RemoteUpload):
    key = "sftp.upload"
    title = "SFTP Upload"
    description = "Uploads the input file, or the input records as csv/json/xml, to the SFTP server atomically."
    variables = {**RemoteUpload.variables, "hostKeyPolicy": HOST_KEY_VARIABLE}


@register
class SftpDownload(_SftpAccess, RemoteDownload):
    key = "sftp.download"
    title = "SFTP Download"
    description = "Downloads the files matching a glob: one file as is, several as one zip archive."
    variables = {**RemoteDownload.variables, "hostKeyPolicy": HOST_KEY_VARIABLE}


@register
class SftpList(_SftpAccess, RemoteList):
    key = "sftp.list"
    title = "SFTP List"
    description = "Lists the files of a remote directory as records {name, size, modified}."
    variables = {**RemoteList.variables, "hostKeyPolicy": HOST_KEY_VARIABLE}
