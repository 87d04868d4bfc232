"""JSONata filter: keeps the records for which a JSONata condition is true (JSONata's truthiness)."""
from __future__ import annotations

from collections.abc import Iterable, Iterator

import jsonata

from canvas.execution.blocks._jsonata import compile_expression, evaluate, is_truthy, jsonata_problem
from canvas.execution.blocks.base import Block, VariableSpec, expect_records, register
from canvas.execution.context import BlockContext
from canvas.execution.data import BlockData, Records


@register
class JsonataFilter(Block):
    key = "jsonata.filter"
    title = "JSONata filter"
    description = "Keeps a record when the condition, evaluated with the record as input, is truthy; streams."
    input_kind = "records"
    output_kind = "records"
    variables = {
        "condition": VariableSpec("string", required=True, placeholders=False, description="JSONata condition.",
                                  text_check=jsonata_problem),
    }

    def run(self, context: BlockContext, data: BlockData) -> Records:
        records = context.cancellable(expect_records(data, self.key))
        condition = compile_expression(context.variables.get("condition"), "condition")
        return Records(_kept(condition, records))


def _kept(condition: jsonata.Jsonata, records: Iterable[dict]) -> Iterator[dict]:
    for index, record in enumerate(records):
        if is_truthy(evaluate(condition, record, f"record {index}")):
            yield record
