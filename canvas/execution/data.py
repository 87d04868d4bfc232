"""What flows between blocks: a stream of records, a file, or nothing.

Records may be a one-shot iterator (a generator reading a file or an HTTP response), so a block must iterate them
once and never assume it can go back; blocks that need the data twice spill it to a temporary file.
"""
from __future__ import annotations

import io
import os
import tempfile
import weakref
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Union

DEFAULT_CONTENT_TYPE = "application/octet-stream"
TEMP_FILE_PREFIX = "canvas-block-"


@dataclass
class Records:
    """A stream of dict records. `items` may be a list or a one-shot iterator: iterate it once.

    `json_native`: the producer knows every value is a JSON type (parsed JSON, text from CSV/XML), so storing them
    may take the fast encoder; other records (SQL rows with Decimal and datetime) keep the exact one."""

    items: Iterable[dict]
    json_native: bool = False

    def __iter__(self) -> Iterator[dict]:
        return iter(self.items)


@dataclass
class FileData:
    """A file: its name, content type, and a way to open its bytes.

    `opener` returns a fresh binary stream each time when the file is backed by bytes, a path or a blob, so the file
    may be read more than once; the caller closes what it opens.
    """

    name: str
    content_type: str
    opener: Callable[[], BinaryIO]
    # The file behind this FileData when it will never be written again (a block's finished temporary file, a
    # stored blob, which is replaced by renaming, never rewritten): a store may link it instead of copying it.
    frozen_path: Path | None = None

    def open(self) -> BinaryIO:
        return self.opener()

    def read_bytes(self) -> bytes:
        """The whole content; for small files and tests only, blocks should stream with open()."""
        with self.open() as stream:
            return stream.read()

    @classmethod
    def from_bytes(cls, name: str, content_type: str, data: bytes) -> FileData:
        return cls(name, content_type, lambda: io.BytesIO(data))

    @classmethod
    def from_path(cls, name: str, content_type: str, path: str | os.PathLike) -> FileData:
        file_path = Path(path)
        return cls(name, content_type, lambda: open(file_path, "rb"))

    @classmethod
    def from_temp_path(cls, name: str, content_type: str, path: str | os.PathLike) -> FileData:
        """A FileData that owns a temporary file: the file is deleted once nothing refers to its opener any more
        (this FileData, copies made with dataclasses.replace, readers holding the opener), or at interpreter exit,
        because nobody else knows when the last reader is done with it."""
        temporary = _TemporaryFile(path)
        return cls(name, content_type, temporary.open, temporary.path)


class _TemporaryFile:
    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        weakref.finalize(self, _remove_quietly, str(self.path))

    def open(self) -> BinaryIO:
        return open(self.path, "rb")


BlockData = Union[Records, FileData, None]


def new_temp_path(suffix: str = "", directory: str | os.PathLike | None = None) -> Path:
    """A fresh, empty temporary file for a block to write its output into (pair it with FileData.from_temp_path)."""
    if directory is not None:
        Path(directory).mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=TEMP_FILE_PREFIX, suffix=suffix, dir=directory)
    os.close(handle)
    return Path(name)


def _remove_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
