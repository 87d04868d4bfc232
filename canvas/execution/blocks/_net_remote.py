"""Upload, download and list on a remote file server, whatever the protocol (FTP, FTPS, SFTP).

A protocol module supplies a RemoteFolder (one open session) and subclasses the blocks below with `open_folder`.

- upload: the input file (or the input records written as csv/json/xml) goes to a temporary name in the target
  directory, `.<name>.canvas-<run>-<block>-<nonce>.part` (hidden, traceable to the run, new for every attempt), and
  is renamed to its name once complete, so the name never shows half a file. An existing file is an error unless
  `overwrite` is true; then it is replaced: renamed over, or deleted just before the rename where the server's
  rename cannot replace (the name is missing for that moment, never partial). When anything fails, the temporary
  file is removed as well as can be (through a fresh session when the failure broke this one) and the failure raised;
  a failure before the rename is marked `retry_safe` (nothing is visible yet), so the runner may try again.
- download: the files matching the glob `pattern`; one file gives that file, several give one zip archive of them
  (so a chain always carries exactly one file); afterwards each is deleted (`deleteAfter`) or moved (`moveTo`).
- list: records {name, size, modified} (modified: ISO 8601 UTC, or null when the server does not say).
"""
from __future__ import annotations

import fnmatch
import mimetypes
import posixpath
import re
import uuid
import zipfile
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import BinaryIO

from canvas.execution.blocks._file_names import file_name_problem
from canvas.execution.blocks._formats import temp_output_path
from canvas.execution.blocks._net_common import as_file, file_format_variable, target_file_name, timeout_variable
from canvas.execution.blocks.base import Block, VariableSpec
from canvas.execution.context import BlockContext, BlockError, TransientBlockError
from canvas.execution.data import BlockData, FileData, Records

DEFAULT_ZIP_NAME = "files.zip"
ZIP_CONTENT_TYPE = "application/zip"
DEFAULT_CONTENT_TYPE = "application/octet-stream"
TEMPORARY_MARK = ".canvas-"
TEMPORARY_SUFFIX = ".part"
MAX_NAME_BYTES = 255  # the limit of one file name on common file systems (ext4, XFS, ZFS, APFS)


@dataclass(frozen=True)
class RemoteEntry:
    name: str
    size: int | None
    modified: str | None  # ISO 8601 UTC

    def as_record(self) -> dict:
        return {"name": self.name, "size": self.size, "modified": self.modified}


class RemoteFolder(ABC):
    """One open session with a file server; paths are absolute POSIX paths. Failures raise BlockErrors."""

    @abstractmethod
    def list_files(self, directory: str) -> list[RemoteEntry]: ...

    @abstractmethod
    def exists(self, path: str) -> bool: ...

    @abstractmethod
    def store(self, path: str, stream: BinaryIO, shown_as: str) -> None:
        """Write `stream` to `path`; errors name `shown_as` (the final name, not the temporary one)."""

    @abstractmethod
    def fetch(self, path: str, sink: BinaryIO) -> None: ...

    @abstractmethod
    def rename(self, source: str, target: str) -> None: ...

    @abstractmethod
    def replace(self, source: str, target: str) -> None:
        """Rename over an existing target (where the server cannot, delete the target first, then rename)."""

    @abstractmethod
    def delete(self, path: str) -> None:
        """Failures raise TransientBlockError when the session itself is broken, BlockError when the server said no."""

    @abstractmethod
    def close(self) -> None: ...


def remote_path(directory: str | None, name: str) -> str:
    return posixpath.join(remote_directory(directory), name)


def remote_directory(directory: str | None) -> str:
    return posixpath.normpath(posixpath.join("/", directory or "/"))


FolderOpener = Callable[[], AbstractContextManager[RemoteFolder]]  # opens a fresh session, closed on leaving


class RemoteFilesBlock(Block):
    """Not registered: the protocol modules register subclasses that implement `open_folder`."""

    def open_folder(self, context: BlockContext) -> RemoteFolder:
        raise NotImplementedError

    @contextmanager
    def folder(self, context: BlockContext) -> Iterator[RemoteFolder]:
        folder = self.open_folder(context)
        try:
            yield folder
        finally:
            folder.close()


# --- upload --------------------------------------------------------------------------------------------------


class RemoteUpload(RemoteFilesBlock):
    side_effects = True
    input_kind = "any"
    output_kind = "file"
    variables = {
        "filename": VariableSpec("string", description="Remote file name; the format's extension is appended.",
                                 text_check=file_name_problem),
        "fileformat": file_format_variable(),
        "filepath": VariableSpec("string", default="/", description="Remote directory."),
        "overwrite": VariableSpec("boolean", default=False, description="Replace an existing file."),
        "timeout": timeout_variable(),
    }

    def run(self, context: BlockContext, data: BlockData) -> FileData:
        variables = context.variables
        fileformat = variables.get("fileformat") or "csv"
        name = target_file_name(variables.get("filename"), data, fileformat)
        if "/" in name or name in (".", ".."):
            raise BlockError(f"variable 'filename' must be a file name, not a path: {name!r} (use filepath)")
        file = as_file(context, data, fileformat, name, self.key)
        target = remote_path(variables.get("filepath"), name)
        with self.folder(context) as folder:
            upload_atomically(folder, file, target, temporary_path(context, target),
                              overwrite=variables.get("overwrite") is True, reopen=lambda: self.folder(context))
        context.logger.info("uploaded %s", target)
        return file


def upload_atomically(folder: RemoteFolder, file: FileData, target: str, temporary: str, *, overwrite: bool,
                      reopen: FolderOpener) -> None:
    """Store under `temporary`, then rename it to `target`; on any failure remove `temporary` and raise the failure.
    `reopen` opens a fresh session, for that removal when the failure broke `folder`."""
    if not overwrite:
        refuse_existing(folder, target)
    try:
        store_unseen(folder, file, temporary, target)
        put_in_place(folder, temporary, target, overwrite)
    except BaseException:
        discard_quietly(folder, temporary, reopen)
        raise


def store_unseen(folder: RemoteFolder, file: FileData, temporary: str, target: str) -> None:
    try:
        with file.open() as stream:
            folder.store(temporary, stream, shown_as=target)
    except BlockError as error:
        # Nothing has reached the final name, and another attempt writes a temporary file of its own: the runner may
        # run this block again although it has side effects (a failed rename, below, is not marked: it may have
        # happened).
        error.retry_safe = True
        raise


def put_in_place(folder: RemoteFolder, temporary: str, target: str, overwrite: bool) -> None:
    if overwrite:
        folder.replace(temporary, target)
    else:
        refuse_existing(folder, target)  # it may have appeared while we uploaded: never rename over it
        folder.rename(temporary, target)


def refuse_existing(folder: RemoteFolder, target: str) -> None:
    if folder.exists(target):
        raise BlockError(f"file already exists: {target} (set overwrite to true to replace it)")


def discard_quietly(folder: RemoteFolder, path: str, reopen: FolderOpener) -> None:
    """Delete `path`, best effort and raising nothing: the failure that brought us here is the one to report."""
    try:
        folder.delete(path)
        return
    except TransientBlockError:
        pass  # the session broke (a dropped connection, a transfer cut short): try once more on a fresh one
    except BlockError:
        return  # the server answered: the file was never created, or we may not delete it; nothing more to try
    try:
        with reopen() as fresh:
            fresh.delete(path)
    except BlockError:
        pass


def temporary_path(context: BlockContext, target: str) -> str:
    """`.<name>.canvas-<run>-<block>-<nonce>.part` beside `target`: hidden, recognisably ours (which run and block
    wrote it), and new for every attempt (the runner retries with the same context), so no two uploads share one."""
    directory, name = posixpath.split(target)
    run = re.sub(r"[^0-9A-Za-z]", "", str(context.run_id))[:8] or "run"
    ending = f"{TEMPORARY_MARK}{run}-{context.block_number}-{uuid.uuid4().hex[:6]}{TEMPORARY_SUFFIX}"
    room = MAX_NAME_BYTES - len(ending) - 1  # a name that fits must not fail for want of room for the temporary one
    return posixpath.join(directory, f".{_cut_to_bytes(name, room)}{ending}")


def _cut_to_bytes(text: str, size: int) -> str:
    return text.encode()[:size].decode(errors="ignore")  # never half a multibyte character


# --- download ------------------------------------------------------------------------------------------------


class RemoteDownload(RemoteFilesBlock):
    # deleteAfter/moveTo change the server: a dry run must not delete the files the real run is meant to fetch.
    side_effects = True
    input_kind = "any"
    output_kind = "file"
    variables = {
        "filepath": VariableSpec("string", default="/", description="Remote directory."),
        "pattern": VariableSpec("string", default="*", description="Glob of the files to download, e.g. *.csv."),
        "deleteAfter": VariableSpec("boolean", default=False, description="Delete each file once downloaded."),
        "moveTo": VariableSpec("string", description="Move each file into this remote directory once downloaded."),
        "zipName": VariableSpec("string", default=DEFAULT_ZIP_NAME, description="Name of the zip of several files.",
                                text_check=file_name_problem),
        "timeout": timeout_variable(),
    }

    def run(self, context: BlockContext, data: BlockData) -> FileData:
        variables = context.variables
        directory = remote_directory(variables.get("filepath"))
        pattern = variables.get("pattern") or "*"
        with self.folder(context) as folder:
            names = matching_names(folder, directory, pattern)
            output = download(context, folder, directory, names, variables.get("zipName") or DEFAULT_ZIP_NAME)
            tidy_up(folder, directory, names, variables.get("deleteAfter") is True, variables.get("moveTo"))
        context.logger.info("downloaded %d file(s) from %s", len(names), directory)
        return output


def matching_names(folder: RemoteFolder, directory: str, pattern: str) -> list[str]:
    names = sorted(entry.name for entry in folder.list_files(directory) if fnmatch.fnmatchcase(entry.name, pattern))
    if not names:
        raise BlockError(f"no file matching {pattern!r} in {directory}")
    return names


def download(context: BlockContext, folder: RemoteFolder, directory: str, names: list[str], zip_name: str) -> FileData:
    if len(names) == 1:
        path = temp_output_path(context, posixpath.splitext(names[0])[1])
        output = FileData.from_temp_path(names[0], _content_type(names[0]), path)  # owns the file from now on
        with open(path, "wb") as sink:
            folder.fetch(remote_path(directory, names[0]), sink)
        return output
    path = temp_output_path(context, ".zip")
    output = FileData.from_temp_path(zip_name, ZIP_CONTENT_TYPE, path)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in context.cancellable(names, every=1):
            with archive.open(name, "w", force_zip64=True) as sink:
                folder.fetch(remote_path(directory, name), sink)
    return output


def tidy_up(folder: RemoteFolder, directory: str, names: list[str], delete: bool, move_to: str | None) -> None:
    """After every file arrived: a failure midway must not lose files that were not downloaded."""
    for name in names:
        source = remote_path(directory, name)
        if move_to:
            folder.replace(source, remote_path(move_to, name))
        elif delete:
            folder.delete(source)


def _content_type(name: str) -> str:
    return mimetypes.guess_type(name)[0] or DEFAULT_CONTENT_TYPE


# --- list ----------------------------------------------------------------------------------------------------


class RemoteList(RemoteFilesBlock):
    input_kind = "any"
    output_kind = "records"
    variables = {
        "filepath": VariableSpec("string", default="/", description="Remote directory."),
        "pattern": VariableSpec("string", default="*", description="Glob of the files to list."),
        "timeout": timeout_variable(),
    }

    def run(self, context: BlockContext, data: BlockData) -> Records:
        directory = remote_directory(context.variables.get("filepath"))
        pattern = context.variables.get("pattern") or "*"
        with self.folder(context) as folder:
            entries = folder.list_files(directory)
        records = [entry.as_record() for entry in sorted(entries, key=lambda e: e.name)
                   if fnmatch.fnmatchcase(entry.name, pattern)]
        context.logger.info("listed %d file(s) in %s", len(records), directory)
        return Records(records)
