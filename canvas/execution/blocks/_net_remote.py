"""Upload, download and list on a remote file server, whatever the protocol (FTP, FTPS, SFTP).

A protocol module supplies a RemoteFolder (one open session) and subclasses the blocks below with `open_folder`.

- upload: the input file (or the input records written as csv/json/xml) goes to a temporary name in the target
  directory, then is renamed to its name, so a reader never sees half a file; an existing file is an error unless
  `overwrite` is true (then it is replaced: renamed over, or deleted first where rename cannot replace).
- download: the files matching the glob `pattern`; one file gives that file, several give one zip archive of them
  (so a chain always carries exactly one file); afterwards each is deleted (`deleteAfter`) or moved (`moveTo`).
- list: records {name, size, modified} (modified: ISO 8601 UTC, or null when the server does not say).
"""
from __future__ import annotations

import fnmatch
import mimetypes
import posixpath
import uuid
import zipfile
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import BinaryIO

from canvas.execution.blocks._formats import temp_output_path
from canvas.execution.blocks._net_common import as_file, file_format_variable, target_file_name, timeout_variable
from canvas.execution.blocks.base import Block, VariableSpec
from canvas.execution.context import BlockContext, BlockError
from canvas.execution.data import BlockData, FileData, Records

DEFAULT_ZIP_NAME = "files.zip"
ZIP_CONTENT_TYPE = "application/zip"
DEFAULT_CONTENT_TYPE = "application/octet-stream"


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
        """Rename over an existing target."""

    @abstractmethod
    def delete(self, path: str) -> None: ...

    @abstractmethod
    def close(self) -> None: ...

    def delete_quietly(self, path: str) -> None:
        try:
            self.delete(path)
        except BlockError:
            pass  # cleaning up after a failure must not hide that failure


def remote_path(directory: str | None, name: str) -> str:
    return posixpath.join(remote_directory(directory), name)


def remote_directory(directory: str | None) -> str:
    return posixpath.normpath(posixpath.join("/", directory or "/"))


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
        "filename": VariableSpec("string", description="Remote file name; the format's extension is appended."),
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
            upload_atomically(folder, file, target, variables.get("overwrite") is True)
        context.logger.info("uploaded %s", target)
        return file


def upload_atomically(folder: RemoteFolder, file: FileData, target: str, overwrite: bool) -> None:
    if not overwrite and folder.exists(target):
        raise BlockError(f"file already exists: {target} (set overwrite to true to replace it)")
    directory, name = posixpath.split(target)
    temporary = posixpath.join(directory, f".{name}.{uuid.uuid4().hex[:12]}.part")
    try:
        with file.open() as stream:
            folder.store(temporary, stream, shown_as=target)
        if overwrite:
            folder.replace(temporary, target)
        elif folder.exists(target):  # appeared while we uploaded: do not rename over it
            raise BlockError(f"file already exists: {target} (set overwrite to true to replace it)")
        else:
            folder.rename(temporary, target)
    except BaseException:
        folder.delete_quietly(temporary)
        raise


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
        "zipName": VariableSpec("string", default=DEFAULT_ZIP_NAME, description="Name of the zip of several files."),
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
