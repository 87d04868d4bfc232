"""JSONata transform: reshape records with a JSONata expression, as the v2 flow edges' mappers do."""
from __future__ import annotations

from collections.abc import Iterable, Iterator

import jsonata

from canvas.execution.blocks._jsonata import compile_expression, evaluate, jsonata_problem, result_records
from canvas.execution.blocks.base import Block, VariableSpec, expect_records, register
from canvas.execution.context import BlockContext
from canvas.execution.data import BlockData, Records

MODES = ("per_record", "whole")


@register
class JsonataTransform(Block):
    key = "jsonata.transform"
    title = "JSONata transform"
    description = (
        "per_record (default): the expression runs once per record, with the record as input; it streams. "
        "whole: it runs once over the array of all records ($ is the array), for sums, grouping and sorting; "
        "that holds every record in memory, so keep it for data sets that fit. In both modes an array result "
        "gives one record per item, null/undefined gives none and a non-object value v gives {\"value\": v}."
    )
    input_kind = "records"
    output_kind = "records"
    variables = {
        "expression": VariableSpec("string", required=True, placeholders=False, description="JSONata expression.",
                                   text_check=jsonata_problem),
        "mode": VariableSpec("string", default="per_record", choices=MODES, description="per_record or whole."),
    }

    def run(self, context: BlockContext, data: BlockData) -> Records:
        records = context.cancellable(expect_records(data, self.key))
        expression = compile_expression(context.variables.get("expression"), "expression")
        if context.variables.get("mode") == "whole":
            return Records(_transform_whole(expression, records))
        return Records(_transform_each(expression, records))


def _transform_each(expression: jsonata.Jsonata, records: Iterable[dict]) -> Iterator[dict]:
    for index, record in enumerate(records):
        yield from result_records(evaluate(expression, record, f"record {index}"))


def _transform_whole(expression: jsonata.Jsonata, records: Iterable[dict]) -> Iterator[dict]:
    everything = list(records)
    yield from result_records(evaluate(expression, everything, f"the {len(everything)} records"))
