"""The blob store: block outputs and File Hub files, addressed by keys like "runs/<run id>/block-3.out".

Writes are atomic: bytes go to a temporary file beside the target, are fsynced, then renamed over it, so a reader
sees the old blob or the whole new one, and a writer that fails (or a worker that dies) leaves no partial blob.
canvas/storage/s3.py implements the same Protocol on S3-compatible object storage; canvas/storage/factory.py picks
the store from CANVAS_BLOB_URL.
"""
from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import io
import mimetypes
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from canvas.errors import NotFoundError, ValidationError
from canvas.execution.data import DEFAULT_CONTENT_TYPE, FileData

TEMP_PREFIX = ".canvas-tmp-"  # temporary files of unfinished writes; never a valid key segment
MAX_KEY_LENGTH = 1024
WRITE_BUFFER_SIZE = 256 * 1024
FILEHUB_PREFIX = "filehub"


class BlobNotFoundError(NotFoundError):
    """No blob under that key."""


class BlobStoreError(RuntimeError):
    """The store cannot be used (bucket missing, access denied, endpoint unreachable, folder not writable); the
    message names the setting and says what to fix, and never holds a secret."""


class InvalidFileNameError(ValidationError, ValueError):
    """A File Hub name that is empty, absolute or tries to leave the account's folder."""


@dataclass
class StoredBlob:
    key: str
    size: int
    sha256: str
    # What the writer callable returned (e.g. serialization's OutputInfo), so a caller gets both in one call.
    result: Any = field(default=None, repr=False, compare=False)


class BlobStore(Protocol):
    def put(self, key: str, source: Callable[[BinaryIO], Any]) -> StoredBlob:
        """Calls `source` with a writable binary stream and stores what it writes under `key`, atomically."""

    def put_file(self, key: str, path: Path) -> StoredBlob:
        """Stores the finished file at `path` (which nobody writes any more) under `key`, atomically; the file
        itself stays where it is."""

    def open(self, key: str) -> BinaryIO:
        """A readable binary stream of the blob; BlobNotFoundError when missing. The caller closes it."""

    def local_path(self, key: str) -> Path | None:
        """The blob's file on this machine, for put_file; None for a store without local files."""

    def delete(self, key: str) -> None:
        """Removes the blob; deleting a missing blob is not an error."""

    def exists(self, key: str) -> bool: ...

    def list_keys(self, prefix: str) -> list[str]:
        """Keys under the folder `prefix` (recursively), sorted."""

    def check(self) -> None:
        """BlobStoreError saying what to fix when the store cannot be used: for process start."""


def key_problem(key: str) -> str | None:
    """Why `key` is not acceptable (anything that could escape the store's root or confuse it), or None."""
    if not isinstance(key, str) or not key:
        return "must be a non-empty string"
    if len(key) > MAX_KEY_LENGTH:
        return f"must be at most {MAX_KEY_LENGTH} characters"
    if "\\" in key or "\x00" in key:
        return "must not contain backslashes or NUL characters"
    if key.startswith("/") or (len(key) > 1 and key[1] == ":"):
        return "must be relative"
    for segment in key.split("/"):
        if segment in ("", ".", ".."):
            return "must not contain empty, '.' or '..' path segments"
        if segment.startswith(TEMP_PREFIX):
            return f"path segments starting with {TEMP_PREFIX!r} are reserved"
    return None


def validate_key(key: str) -> list[str]:
    """The key's segments; ValueError naming the problem when the key is not acceptable."""
    problem = key_problem(key)
    if problem:
        raise ValueError(f"invalid blob key {key!r}: {problem}")
    return key.split("/")


class HashingWriter(io.RawIOBase):
    """Counts and hashes the bytes on their way to the file, so the blob is never read back to get its checksum.
    `failed` turns the target's OSError into the store's own error: the bytes' source may raise OSError of its own
    (a remote file read while it writes), which is not the store's."""

    def __init__(self, target: BinaryIO, failed: Callable[[OSError], Exception] | None = None):
        self._target = target
        self._failed = failed
        self.size = 0
        self.digest = hashlib.sha256()

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        view = memoryview(data).cast("B")
        self.digest.update(view)
        self.size += view.nbytes
        written = 0
        try:
            while written < view.nbytes:  # an unbuffered file may take fewer bytes than offered
                written += self._target.write(view[written:])
        except OSError as error:
            if self._failed is None:
                raise
            raise self._failed(error) from error
        return view.nbytes


def write_through(hashing: HashingWriter, source: Callable[[BinaryIO], Any]) -> Any:
    """Calls `source` with a buffered stream into `hashing`, flushed at the end; returns what `source` returned."""
    stream = io.BufferedWriter(hashing, buffer_size=WRITE_BUFFER_SIZE)
    result = source(stream)
    if not stream.closed:  # the source may have closed it (e.g. through a TextIOWrapper), which flushes
        stream.flush()
    return result


class _CannotLink(Exception):
    """The file system refused a hard link: copy instead."""


class FileSystemBlobStore:
    """Blobs as files under `root`; the key is the relative path.

    Writes are atomic (temp file, then rename), so a crashed process never leaves a half blob under a key. `fsync`
    adds durability against power loss at about a millisecond per blob; without it the store promises what SQLite
    in WAL mode with synchronous=NORMAL promises: the newest writes may be lost to power loss, never corrupted."""

    def __init__(self, root: str | os.PathLike, fsync: bool = True):
        self.root = Path(root).resolve()
        self.fsync = fsync

    def path_for(self, key: str) -> Path:
        return self.root.joinpath(*validate_key(key))

    def put(self, key: str, source: Callable[[BinaryIO], Any]) -> StoredBlob:
        def write(temp_path: Path) -> StoredBlob:
            with self._own_writes():
                raw_file = open(temp_path, "xb", buffering=0)  # noqa: SIM115 - closed just below
            with raw_file:
                hashing = HashingWriter(raw_file, failed=self._cannot_write)
                result = write_through(hashing, source)
                with self._own_writes():
                    self._sync(raw_file)
            return StoredBlob(key, hashing.size, hashing.digest.hexdigest(), result)

        return self._atomically(key, write)

    def put_file(self, key: str, path: Path) -> StoredBlob:
        """A hard link to the file instead of a copy of its bytes (a big export's CSV: one read to hash it instead
        of a read and a write); a copy where links are not possible (another file system, no link support)."""

        def link(temp_path: Path) -> StoredBlob:
            try:
                os.link(path, temp_path)
            except OSError as error:
                raise _CannotLink() from error
            with open(temp_path, "rb") as linked:
                size, digest = _hash_stream(linked)
                with self._own_writes():
                    self._sync(linked)
            return StoredBlob(key, size, digest)

        try:
            return self._atomically(key, link)
        except _CannotLink:
            return self.put(key, lambda sink: copy_path(path, sink))

    def _atomically(self, key: str, fill: Callable[[Path], StoredBlob]) -> StoredBlob:
        """`fill` makes the blob under a temporary name beside the target; then it is renamed into place."""
        target = self.path_for(key)
        with self._own_writes():
            target.parent.mkdir(parents=True, exist_ok=True)
        temp_path = target.with_name(f"{TEMP_PREFIX}{os.urandom(8).hex()}")
        try:
            stored = fill(temp_path)
            with self._own_writes():
                os.replace(temp_path, target)
        except BaseException:
            temp_path.unlink(missing_ok=True)
            raise
        if self.fsync:
            _fsync_directory(target.parent)
        return stored

    def _sync(self, file: BinaryIO) -> None:
        if self.fsync:
            os.fsync(file.fileno())

    def _cannot_write(self, error: OSError) -> BlobStoreError:
        """The store's own files cannot be written (disk full, quota, read-only, permissions): what to fix, in the
        run's error and the worker's log, instead of an unexpected error's traceback."""
        return BlobStoreError(f"CANVAS_BLOB_URL: cannot write to {self.root} ({error.strerror or error})")

    @contextlib.contextmanager
    def _own_writes(self) -> Iterator[None]:
        try:
            yield
        except OSError as error:
            raise self._cannot_write(error) from error

    def open(self, key: str) -> BinaryIO:
        path = self.path_for(key)
        try:
            return open(path, "rb")
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise BlobNotFoundError(f"no blob {key!r}") from None

    def local_path(self, key: str) -> Path | None:
        return self.path_for(key)

    def delete(self, key: str) -> None:
        path = self.path_for(key)
        try:
            path.unlink()
        except (FileNotFoundError, NotADirectoryError):
            pass

    def exists(self, key: str) -> bool:
        return self.path_for(key).is_file()

    def list_keys(self, prefix: str) -> list[str]:
        folder = self.path_for(prefix)
        if not folder.is_dir():
            return []
        keys = []
        for directory, _, file_names in os.walk(folder):
            for file_name in file_names:
                if not file_name.startswith(TEMP_PREFIX):
                    keys.append(Path(directory, file_name).relative_to(self.root).as_posix())
        return sorted(keys)

    def check(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            probe = self.root / f"{TEMP_PREFIX}check-{os.urandom(8).hex()}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as error:
            raise self._cannot_write(error) from None


def _fsync_directory(directory: Path) -> None:
    """Makes the rename itself durable; not every platform lets a directory be opened, which is fine to skip."""
    try:
        handle = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(handle)
    except OSError:
        pass
    finally:
        os.close(handle)


class FileHub:
    """An account's own files on the platform's blob store, under "filehub/<account id>/<name>"."""

    def __init__(self, store: BlobStore, account_id: str):
        account = str(account_id)
        if "/" in account or key_problem(account):
            raise ValueError(f"invalid account id {account!r} for the File Hub: must be a single key segment")
        self.store = store
        self.prefix = f"{FILEHUB_PREFIX}/{account}"

    def key_for(self, name: str) -> str:
        problem = key_problem(name)
        if problem:
            raise InvalidFileNameError(f"invalid File Hub file name {name!r}: {problem}", field="name")
        return f"{self.prefix}/{name}"

    def write(self, name: str, data: FileData) -> StoredBlob:
        return put_file_data(self.store, self.key_for(name), data)

    def open(self, name: str) -> FileData:
        """The file as FileData; BlobNotFoundError right away when it does not exist."""
        key = self.key_for(name)
        if not self.store.exists(key):
            raise BlobNotFoundError(f"no File Hub file {name!r}")
        content_type = mimetypes.guess_type(name)[0] or DEFAULT_CONTENT_TYPE
        return FileData(name.rsplit("/", 1)[-1], content_type, lambda: self.store.open(key),
                        self.store.local_path(key))

    def exists(self, name: str) -> bool:
        return self.store.exists(self.key_for(name))

    def list(self, pattern: str = "*") -> list[str]:
        """Names matching the shell-style `pattern` (fnmatch: '*' also matches '/'), sorted."""
        start = len(self.prefix) + 1
        names = (key[start:] for key in self.store.list_keys(self.prefix))
        return [name for name in names if fnmatch.fnmatchcase(name, pattern)]

    def delete(self, name: str) -> None:
        self.store.delete(self.key_for(name))


def _hash_stream(stream: BinaryIO) -> tuple[int, str]:
    digest, size = hashlib.sha256(), 0
    while chunk := stream.read(WRITE_BUFFER_SIZE):
        digest.update(chunk)
        size += len(chunk)
    return size, digest.hexdigest()


def copy_path(path: Path, sink: BinaryIO) -> None:
    with open(path, "rb") as stream:
        shutil.copyfileobj(stream, sink, WRITE_BUFFER_SIZE)


def put_file_data(store: BlobStore, key: str, data: FileData) -> StoredBlob:
    """A file under `key`: linked when it will never be written again (FileData.frozen_path), else copied."""
    if data.frozen_path is not None:
        return store.put_file(key, data.frozen_path)
    return store.put(key, lambda sink: copy_file_data(data, sink))


def copy_file_data(data: FileData, sink: BinaryIO) -> None:
    with data.open() as stream:
        shutil.copyfileobj(stream, sink, WRITE_BUFFER_SIZE)

