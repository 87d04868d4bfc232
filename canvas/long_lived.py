"""Objects a process builds once and keeps for its life (the API's app, the scheduler's schedules, a forking worker's
imports and services), set out of the cyclic garbage collector's sight."""
from __future__ import annotations

import gc


def freeze_long_lived() -> None:
    """Collect what is garbage already, then freeze the rest (gc.freeze): the collector's full passes no longer walk
    these objects - in the API about 170,000 of them, which an answer of 10,000 workflows made it walk at a cost of
    60-100 ms one time in two - nor write to the pages a forked child shares with its parent."""
    gc.collect()
    gc.freeze()
