"""What a block gets besides its input: the run context, and the errors a block raises to tell the runner how it
failed (transient → retried with backoff, authentication → not retried and the application marked faulted)."""
from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, timezone, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from canvas.clock import utcnow

if TYPE_CHECKING:  # the storage package imports nothing from here; the hint only documents the collaborators
    from canvas.storage.blob import BlobStore, FileHub

Item = TypeVar("Item")

CANCEL_CHECK_INTERVAL = 1000  # items between two cancellation checks; checking is cheap but not free
# Marks credentials that are the platform's own mail relay (operator configured, so its host may be private).
PLATFORM_RELAY = "platformRelay"


class BlockError(Exception):
    """A block failed. The message is shown in run history as is: never put a secret in it.

    `outcome_unknown`: a write was sent and what became of it is not known (never repeated blindly); `retry_safe`:
    the block sent nothing that could have been processed, so even a block with side effects may run again."""

    transient: bool = False
    outcome_unknown: bool = False
    retry_safe: bool = False


class TransientBlockError(BlockError):
    """A failure that may go away by itself (connection refused, timeout, HTTP 429/5xx): the runner retries."""

    transient = True


class BlockAuthenticationError(BlockError):
    """The third-party system refused the credentials: not retried; the registered application is marked faulted."""


class BlockCancelledError(BlockError):
    """The run was cancelled while the block was working."""


def _nobody() -> str | None:
    return None


def _ignore_confirmation(_count: int) -> None:
    return None


ON_RECORD_ERROR = ("fail", "continue")


class RecordErrorSink(Protocol):
    def add(self, record: Any, position: int, error: BlockError) -> None: ...


def _never_cancelled() -> bool:
    return False


@dataclass
class BlockContext:
    variables: dict  # merged, placeholders already resolved by the runner
    # Decrypted credentials of the bound registered application: never log them (and never in the repr).
    credentials: dict | None = field(repr=False)
    logger: logging.Logger  # the block's own logger; the runner captures its lines into run history
    blob_store: BlobStore
    file_hub: FileHub | None
    run_id: str
    block_number: int
    workflow_name: str
    network_policy: Any = None  # canvas.network.guard.NetworkPolicy for network blocks
    is_cancelled: Callable[[], bool] = _never_cancelled
    temp_dir: Path | None = None  # where blocks put temporary files; None = the system's temporary directory
    owner_email: Callable[[], str | None] = _nobody  # the e-mail address of the account the workflow belongs to
    on_record_error: str = "fail"  # the chain entry's onRecordError
    record_errors: RecordErrorSink | None = None  # where records set aside go (the runner's error output)
    # A resumable block (Block.resumable) skips the first `resume_after` input records, which an earlier run of it
    # on the same input confirmed, and calls `confirm(n)` once the first n input records are done (sent, or set aside).
    resume_after: int = 0
    confirm: Callable[[int], None] = _ignore_confirmation
    time_zone: tzinfo = timezone.utc  # the workflow's: its schedule's, else its account's (Block.dated)

    def today(self) -> date:
        """The date the run is on in the workflow's time zone: a run at 23:30 UTC in Oslo is on the next day."""
        return utcnow().astimezone(self.time_zone).date()

    def fail_record(self, record: Any, position: int, error: BlockError) -> None:
        """One input record (1-based `position`) could not be processed. With onRecordError `continue` it is set
        aside in the block's error output and the block goes on; otherwise `error` fails the block."""
        if self.on_record_error != "continue" or self.record_errors is None:
            raise error
        self.record_errors.add(record, position, error)

    def raise_if_cancelled(self) -> None:
        if self.is_cancelled():
            raise BlockCancelledError("the run was cancelled")

    def cancellable(self, items: Iterable[Item], every: int = CANCEL_CHECK_INTERVAL) -> Iterator[Item]:
        """Yields `items`, checking for cancellation before every `every` items, so a long loop stops soon after a
        cancel. Slices instead of counting: nothing is allocated per item on this hot path."""
        iterator = iter(items)
        while True:
            self.raise_if_cancelled()
            exhausted = True
            for item in itertools.islice(iterator, every):
                exhausted = False
                yield item
            if exhausted:
                return
