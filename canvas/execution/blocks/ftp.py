"""FTP and explicit FTPS (AUTH TLS + PROT P when the application's `secure` is true): upload, download, list.

`ftp.upload` is the Canvas document's "FTP Upload" block (variables filename, fileformat, filepath). The shared
behaviour (atomic upload, glob download, zip of several files) is described in _net_remote. Over FTP, a rename that
the server refuses to do over an existing file is done, with `overwrite`, as delete then rename (FtpFolder.replace).
"""
from __future__ import annotations

import ftplib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO

from canvas.execution.blocks._net_common import (
    credential_redactor,
    Redactor, credentials_of, flag, network_failures, policy_of, port_field, required_field, timeout_of,
)
from canvas.execution.blocks._net_remote import RemoteDownload, RemoteEntry, RemoteFolder, RemoteList, RemoteUpload
from canvas.execution.context import BlockAuthenticationError, BlockContext, BlockError, TransientBlockError
from canvas.execution.registry import register
from canvas.network.clients import GuardedFTP, GuardedFTPTLS
from canvas.network.failures import first_line

DEFAULT_PORT = 21
LOGIN_REFUSED_CODES = ("530", "430")
NOT_FOUND_CODE = "550"
MLSD_FACTS = ["type", "size", "modify"]


class FtpFolder(RemoteFolder):
    def __init__(self, ftp: ftplib.FTP, host: str, port: int, timeout: float, redact: Redactor):
        self.ftp, self.host, self.port, self.timeout, self.redact = ftp, host, port, timeout, redact
        self.abandoned = False  # see _abandon

    @contextmanager
    def replies(self, action: str) -> Iterator[None]:
        """FTP replies in plain words: 4xx is worth a retry, 5xx is final; socket trouble is transient."""
        if self.abandoned:  # ftplib would fail with an AttributeError on its closed socket
            raise TransientBlockError(f"{action}: the FTP session ended with the interrupted transfer")
        with network_failures(self.host, self.port, self.timeout, self.redact):
            try:
                yield
            except ftplib.error_temp as error:
                raise TransientBlockError(self.redact(f"{action}: {first_line(error)}")) from None
            except ftplib.Error as error:
                raise BlockError(self.redact(f"{action}: {first_line(error)}")) from None
            except ValueError as error:  # ftplib refuses a line break inside a path: it would smuggle commands in
                raise BlockError(f"{action}: {error}") from None

    def list_files(self, directory: str) -> list[RemoteEntry]:
        with self.replies(f"cannot list {directory}"):
            try:
                return [_entry(name, facts) for name, facts in self.ftp.mlsd(directory, MLSD_FACTS)
                        if facts.get("type", "file") == "file"]
            except ftplib.error_perm as error:
                if not str(error).startswith(("500", "502")):  # anything but "MLSD unknown" is a real refusal
                    raise
            return [RemoteEntry(name.rsplit("/", 1)[-1], None, None) for name in self.ftp.nlst(directory)]

    def exists(self, path: str) -> bool:
        with self.replies(f"cannot check {path}"):
            self.ftp.voidcmd("TYPE I")  # SIZE is refused in ASCII mode by many servers
            try:
                self.ftp.size(path)
                return True
            except ftplib.error_perm as error:
                if str(error).startswith(NOT_FOUND_CODE):
                    return False
                raise

    def store(self, path: str, stream: BinaryIO, shown_as: str) -> None:
        with self.replies(f"cannot upload {shown_as}"):
            try:
                self.ftp.storbinary(f"STOR {path}", stream)
            except ftplib.Error:
                raise  # the server's reply was read: the session is still in step
            except BaseException:
                self._abandon()
                raise

    def _abandon(self) -> None:
        """A transfer cut short (the data connection broke, the input failed, a time limit struck) leaves the
        server's reply to STOR unread: every later command would read an earlier command's reply. So this session
        ends here; a clean-up needs a fresh one."""
        self.abandoned = True
        self.ftp.close()

    def fetch(self, path: str, sink: BinaryIO) -> None:
        with self.replies(f"cannot download {path}"):
            self.ftp.retrbinary(f"RETR {path}", sink.write)

    def rename(self, source: str, target: str) -> None:
        with self.replies(f"cannot rename {source} to {target}"):
            self.ftp.rename(source, target)

    def replace(self, source: str, target: str) -> None:
        """RNFR/RNTO, which replaces the target on most servers. Where it is refused and the target exists (the
        server's rename cannot replace), the target is deleted and the rename tried again: for that moment the name
        is missing, never partial. Only done with `overwrite` (and download's moveTo), which replace anyway."""
        try:
            self.rename(source, target)
        except TransientBlockError:
            raise
        except BlockError:
            if not (self.exists(target) and self.exists(source)):
                raise  # another refusal: deleting the target would lose it for nothing
            self.delete(target)
            self.rename(source, target)

    def delete(self, path: str) -> None:
        with self.replies(f"cannot delete {path}"):
            self.ftp.delete(path)

    def close(self) -> None:
        if self.abandoned:
            return  # closed already
        try:
            self.ftp.quit()
        except (OSError, EOFError, ftplib.Error):
            self.ftp.close()


def _entry(name: str, facts: dict) -> RemoteEntry:
    size = str(facts.get("size") or "")
    return RemoteEntry(name, int(size) if size.isascii() and size.isdigit() else None, _iso_time(facts.get("modify")))


def _iso_time(value: str | None) -> str | None:
    """MLSD's modify fact, YYYYMMDDHHMMSS[.sss] in UTC, as ISO 8601."""
    text = (value or "").split(".")[0]
    if len(text) != 14 or not (text.isascii() and text.isdigit()):
        return None
    return f"{text[0:4]}-{text[4:6]}-{text[6:8]}T{text[8:10]}:{text[10:12]}:{text[12:14]}Z"


def open_ftp_folder(context: BlockContext, block_key: str) -> FtpFolder:
    """Connect, negotiate TLS when `secure`, log in (and protect the data connections): a ready session."""
    credentials = credentials_of(context, block_key)
    host, port = required_field(credentials, "address"), port_field(credentials, DEFAULT_PORT)
    secure, timeout, redact = flag(credentials.get("secure")), timeout_of(context), credential_redactor(credentials)
    ftp = (GuardedFTPTLS if secure else GuardedFTP)(policy_of(context), timeout=timeout)
    folder = FtpFolder(ftp, host, port, timeout, redact)
    try:
        with folder.replies(f"the FTP server {host} refused the connection"):
            ftp.connect(host, port)
            if secure:
                ftp.auth()
        _log_in(folder, required_field(credentials, "username"), str(credentials.get("password") or ""))
        if secure:
            with folder.replies("the FTP server refused PROT P (encrypted data connections)"):
                ftp.prot_p()
    except BaseException:
        ftp.close()
        raise
    return folder


def _log_in(folder: FtpFolder, username: str, password: str) -> None:
    with folder.replies("FTP login failed"):
        try:
            folder.ftp.login(username, password)
        except ftplib.error_perm as error:
            if str(error).startswith(LOGIN_REFUSED_CODES):
                raise BlockAuthenticationError(
                    folder.redact(f"FTP login failed for user {username!r}: {first_line(error)}")
                ) from None
            raise


class _FtpAccess:
    application_kind = "ftp"

    def open_folder(self, context: BlockContext) -> FtpFolder:
        return open_ftp_folder(context, self.key)


@register
class FtpUpload(_FtpAccess, RemoteUpload):
    key = "ftp.upload"
    title = "FTP Upload"
    description = "Uploads the input file, or the input records as csv/json/xml, to the FTP(S) server atomically."


@register
class FtpDownload(_FtpAccess, RemoteDownload):
    key = "ftp.download"
    title = "FTP Download"
    description = "Downloads the files matching a glob: one file as is, several as one zip archive."


@register
class FtpList(_FtpAccess, RemoteList):
    key = "ftp.list"
    title = "FTP List"
    description = "Lists the files of a remote directory as records {name, size, modified}."
