"""Records typed into the workflow: a source block for tests, fixed lookup tables and demos."""
from __future__ import annotations

from canvas.execution.blocks.base import Block, VariableSpec, register
from canvas.execution.context import BlockContext, BlockError
from canvas.execution.data import BlockData, Records


@register
class RecordsFromVariable(Block):
    key = "records.from_variable"
    title = "Records from a variable"
    description = "Gives the records of the variable `records`; any input is ignored."
    input_kind = "any"
    output_kind = "records"
    variables = {
        "records": VariableSpec("array", required=True, description="The records: an array of JSON objects."),
    }

    def run(self, context: BlockContext, data: BlockData) -> Records:
        records = context.variables.get("records")
        if not isinstance(records, (list, tuple)):
            raise BlockError("variable 'records' must be an array of objects")
        for index, item in enumerate(records):
            if not isinstance(item, dict):
                raise BlockError(f"variable 'records': item {index} is {type(item).__name__}, not an object")
        return Records(list(records), json_native=True)
