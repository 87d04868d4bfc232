"""JSON file → records: a JSON array of objects, a single object, or objects one after the other (JSON lines)."""
from __future__ import annotations

from canvas.execution.blocks._formats import DEFAULT_ENCODING, iter_json_records
from canvas.execution.blocks.base import Block, VariableSpec, expect_file, register
from canvas.execution.context import BlockContext
from canvas.execution.data import BlockData, Records


@register
class JsonToRecords(Block):
    key = "json.to_records"
    title = "JSON to records"
    description = "Reads the file in chunks, so a big array never sits in memory whole."
    input_kind = "file"
    output_kind = "records"
    variables = {
        "encoding": VariableSpec("string", default=DEFAULT_ENCODING, description="Text encoding of the file."),
    }

    def run(self, context: BlockContext, data: BlockData) -> Records:
        file = expect_file(data, self.key)
        encoding = context.variables.get("encoding") or DEFAULT_ENCODING
        return Records(context.cancellable(iter_json_records(file, encoding)))
