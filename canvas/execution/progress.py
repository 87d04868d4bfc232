"""A running block's progress: how many records it has read and how many it has stored so far, written to its
block run row every few seconds, so that a long block is seen moving (recordsRead against recordsIn, recordsOut
growing) instead of sitting at "Running" for minutes.

Counting costs nothing per record: input records are counted a chunk at a time, stored ones a write batch at a time,
and the row is written at most once per interval. Progress is best effort: a failed write is logged, never fatal.
"""
from __future__ import annotations

import itertools
import logging
import operator
import time
import uuid
from collections.abc import Callable, Iterable, Iterator

from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from canvas.defaults import DEFAULT_PROGRESS_INTERVAL_SECONDS as DEFAULT_INTERVAL_SECONDS
from canvas.execution import run_records
from canvas.execution.data import BlockData, Records

log = logging.getLogger(__name__)
COUNT_CHUNK = 1000  # input records handed on a chunk at a time, counted per chunk


class BlockProgress:
    def __init__(self, engine: Engine | None, block_run_id: uuid.UUID | None,
                 interval: float = DEFAULT_INTERVAL_SECONDS, clock: Callable[[], float] = time.monotonic):
        self.engine, self.block_run_id = engine, block_run_id
        self.interval, self.clock = interval, clock
        self.written: int | None = None
        self._published_at = clock()
        self.restart()

    def restart(self) -> None:
        """A new attempt reads its input from the start again."""
        self.written = None
        self._counting = False  # the input is not records (or not handed over yet)
        self._before_chunk, self._chunk, self._position = 0, [], iter(())

    @property
    def read(self) -> int | None:
        """Input records the block has taken, exact at any moment (the one it failed on included): the records
        before the current chunk, and how far into the chunk its iterator has got."""
        if not self._counting:
            return None
        return self._before_chunk + len(self._chunk) - operator.length_hint(self._position)

    def counted(self, data: BlockData) -> BlockData:
        """The block's input, its records counted as the block takes them."""
        if not isinstance(data, Records):
            return data
        self._counting = True
        return Records(self._count(data), json_native=data.json_native)

    def _count(self, records: Iterable[dict]) -> Iterator[dict]:
        iterator = iter(records)
        while chunk := list(itertools.islice(iterator, COUNT_CHUNK)):
            self._before_chunk += len(self._chunk)
            self._chunk, self._position = chunk, iter(chunk)
            yield from self._position
            self._tick()

    def stored(self, count: int) -> None:
        """`count` records of the output are stored so far."""
        self.written = count
        self._tick()

    def _tick(self) -> None:
        now = self.clock()
        if now - self._published_at >= self.interval:
            self._published_at = now
            self.publish()

    def publish(self) -> None:
        if self.engine is None or self.block_run_id is None:
            return
        try:
            with run_records.bookkeeping(self.engine) as connection:
                run_records.record_progress(connection, self.block_run_id, self.read, self.written)
        except SQLAlchemyError as error:
            log.warning("progress of block run %s not written: %s", self.block_run_id, error.__class__.__name__)
