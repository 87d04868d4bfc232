"""A flow edge's JSONata condition and mapper, applied by the runner to a block's input records before the block
runs (chain entries made from a graph carry them as `inputCondition` / `inputMapper`). Part of the engine: no
dialect, no Flask here."""
from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator

from canvas.execution.blocks._jsonata import compile_expression, evaluate, is_truthy, result_records
from canvas.execution.context import BlockError
from canvas.execution.data import BlockData, Records

_NOTHING = object()


def with_edge(entry: dict, make_input: Callable[[], BlockData]) -> Callable[[], BlockData]:
    """`make_input`, filtered by the entry's condition and mapped by its mapper; unchanged when it has neither."""
    mapper_text, condition_text = entry.get("inputMapper"), entry.get("inputCondition")
    if not mapper_text and not condition_text:
        return make_input
    mapper = compile_expression(mapper_text, "edge mapper") if mapper_text else None
    condition = compile_expression(condition_text, "edge condition") if condition_text else None

    def edged() -> BlockData:
        data = make_input()
        if not isinstance(data, Records):  # files and empty inputs pass as they are: edges map records
            return data
        return Records(_edged_records(data, mapper, condition))

    return edged


def peeked(data: BlockData) -> tuple[BlockData, bool]:
    """`(data, delivers)`: whether an input delivers anything, e.g. whether an edge's condition keeps any record.

    Records are a one-shot stream, so their first record is pulled and put back in front of the rest: use the
    returned data, not `data`. Anything that is not records (a file, an empty input) delivers as it is."""
    if not isinstance(data, Records):
        return data, True
    rest = iter(data)
    first = next(rest, _NOTHING)
    if first is _NOTHING:
        return Records([], json_native=data.json_native), False
    return Records(itertools.chain([first], rest), json_native=data.json_native), True


def _edged_records(records: Records, mapper, condition) -> Iterator[dict]:  # noqa: ANN001 - compiled JSONata
    for number, record in enumerate(records, start=1):
        if condition is not None and not is_truthy(evaluate(condition, record, f"edge condition, record {number}")):
            continue
        if mapper is None:
            yield record
        else:
            yield from result_records(evaluate(mapper, record, f"edge mapper, record {number}"))


def joined(inputs: list[BlockData], number: int, entry: dict) -> BlockData:
    """The input of a block with several parents: their records, concatenated in the order of the parents' block
    numbers. Parents that gave nothing add nothing; a file cannot be joined (checked when the graph is made for
    blocks that always give files, here for those that may)."""
    given = [data for data in inputs if data is not None]
    if not given:
        return None
    for data in given:
        if not isinstance(data, Records):
            raise BlockError(f"block {number} ({entry.get('blockName')}) joins the outputs of several blocks, and "
                             f"one of them gave a file ({getattr(data, 'name', '?')}): a join takes records only")
    return Records(itertools.chain.from_iterable(given), json_native=all(data.json_native for data in given))
