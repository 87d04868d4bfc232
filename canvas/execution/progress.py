"""A running block's progress: how many records it has read and how many it has stored so far, written to its
block run row every few seconds, so that a long block is seen moving (recordsRead against recordsIn, recordsOut
growing) instead of sitting at "Running" for minutes.

Counting costs nothing per record: input records are counted a chunk at a time, stored ones a write batch at a time,
and the row is written at most once per interval. Progress is best effort: the runner's recorder logs a failed
write and never raises (it is fenced by the run's lease like every other write of the run).
"""
from __future__ import annotations

import itertools
import operator
import time
from collections.abc import Callable, Iterable, Iterator

from canvas.defaults import DEFAULT_PROGRESS_INTERVAL_SECONDS as DEFAULT_INTERVAL_SECONDS
from canvas.execution.data import BlockData, Records

ProgressRecorder = Callable[[int | None, int | None], None]  # (records read, records stored) -> written somewhere
COUNT_CHUNK = 1000  # input records handed on a chunk at a time, counted per chunk


class BlockProgress:
    def __init__(self, recorder: ProgressRecorder | None, interval: float = DEFAULT_INTERVAL_SECONDS,
                 clock: Callable[[], float] = time.monotonic):
        self.recorder = recorder
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
        if self.recorder is not None:
            self.recorder(self.read, self.written)
