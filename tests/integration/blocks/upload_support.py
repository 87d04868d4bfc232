"""Helpers of the atomic upload tests (ftp.upload, sftp.upload): an input file that breaks off after some bytes, the
shape of the temporary name, and directory listings taken while an upload runs in the background."""
from __future__ import annotations

import errno
import io
import re
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from canvas.execution.data import FileData

BIG = bytes(range(256)) * 2048  # 512 KiB: many blocks on either protocol
Listing = dict[str, int]  # file name → size, as the server reports it
LISTING_PAUSE_SECONDS = 0.02


def temporary_name_pattern(name: str) -> re.Pattern:
    """What the blocks call the file while it is being written (net_support's contexts are run "run-1", block 1)."""
    return re.compile(rf"\.{re.escape(name)}\.canvas-run1-1-[0-9a-f]{{6}}\.part")


class _BreakingStream(io.RawIOBase):
    """Gives `content`, but fails with an I/O error once `fail_after` bytes have been read (a disk or blob store
    failing under the upload)."""

    def __init__(self, content: bytes, fail_after: int):
        self.content, self.fail_after, self.position = content, fail_after, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # noqa: ANN001 - a writable buffer
        if self.position >= self.fail_after:
            raise OSError(errno.EIO, "the input broke off")
        chunk = self.content[self.position:min(self.fail_after, self.position + len(buffer))]
        buffer[:len(chunk)] = chunk
        self.position += len(chunk)
        return len(chunk)


def breaking_file(name: str, content: bytes, fail_after: int) -> FileData:
    return FileData(name, "application/octet-stream", lambda: io.BufferedReader(_BreakingStream(content, fail_after)))


@dataclass
class WatchedUpload:
    listings: list[Listing]  # taken while the upload ran, in order
    result: object  # what the upload returned


def list_during(upload: Callable[[], object], list_directory: Callable[[], Listing]) -> WatchedUpload:
    """Runs `upload` in a thread and lists the directory over and over (through the server) until it is done."""
    listings: list[Listing] = []
    finished = threading.Event()
    with ThreadPoolExecutor(max_workers=1) as pool:
        future = pool.submit(upload)
        future.add_done_callback(lambda _: finished.set())
        while not finished.is_set():
            listings.append(list_directory())
            finished.wait(LISTING_PAUSE_SECONDS)
    return WatchedUpload(listings, future.result())


def assert_never_partial(listings: list[Listing], name: str, size: int, temporary: re.Pattern) -> None:
    """The final name (which did not exist before) is absent or complete in every listing, and never beside the
    temporary file it comes from; the temporary file was seen at least once (else the listings proved nothing)."""
    assert all(listing.get(name, size) == size for listing in listings), [listing.get(name) for listing in listings]
    with_temporary = [listing for listing in listings if any(temporary.fullmatch(entry) for entry in listing)]
    assert with_temporary, "no listing caught the upload in progress"
    assert all(name not in listing for listing in with_temporary)
