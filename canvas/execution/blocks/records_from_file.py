"""Records read from a JSON, JSON lines or CSV file, whichever the file turns out to be."""
from __future__ import annotations

from canvas.execution.blocks._formats import DEFAULT_ENCODING, FORMATS, checked_delimiter, iter_file_records
from canvas.execution.blocks.base import Block, VariableSpec, expect_file, register
from canvas.execution.context import BlockContext
from canvas.execution.data import BlockData, Records


@register
class RecordsFromFile(Block):
    key = "records.from_file"
    title = "Records from a file"
    description = (
        "Reads a JSON array (or JSON objects one after the other), JSON lines or CSV; `auto` decides by content "
        "type, then file extension, then the first character. Streams: the file is never loaded whole."
    )
    input_kind = "file"
    output_kind = "records"
    variables = {
        "format": VariableSpec("string", default="auto", choices=FORMATS, description="auto, json, jsonl or csv."),
        "encoding": VariableSpec("string", default=DEFAULT_ENCODING, description="Text encoding of the file."),
        "delimiter": VariableSpec("string", default=",", description="CSV cell delimiter (one character)."),
    }

    def run(self, context: BlockContext, data: BlockData) -> Records:
        file = expect_file(data, self.key)
        variables = context.variables
        delimiter = checked_delimiter(variables.get("delimiter"))
        records = iter_file_records(
            file, variables.get("format") or "auto", variables.get("encoding") or DEFAULT_ENCODING, delimiter
        )
        return Records(context.cancellable(records))
