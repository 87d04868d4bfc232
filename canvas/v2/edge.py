"""A flow edge's JSONata condition and mapper, applied by the runner to a block's input records before the block
runs (chain entries made from a v2 graph carry them as `inputCondition` / `inputMapper`). No Flask here."""
from __future__ import annotations

from collections.abc import Callable, Iterator

from canvas.execution.blocks._jsonata import compile_expression, evaluate, is_truthy, result_records
from canvas.execution.data import BlockData, Records


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


def _edged_records(records: Records, mapper, condition) -> Iterator[dict]:  # noqa: ANN001 - compiled JSONata
    for number, record in enumerate(records, start=1):
        if condition is not None and not is_truthy(evaluate(condition, record, f"edge condition, record {number}")):
            continue
        if mapper is None:
            yield record
        else:
            yield from result_records(evaluate(mapper, record, f"edge mapper, record {number}"))
