"""CSV file → records, streaming row by row; every value is text (CSV has no types)."""
from __future__ import annotations

from canvas.execution.blocks._formats import DEFAULT_ENCODING, checked_delimiter, iter_csv_records
from canvas.execution.blocks.base import Block, VariableSpec, expect_file, register
from canvas.execution.context import BlockContext, BlockError
from canvas.execution.data import BlockData, Records


@register
class CsvToRecords(Block):
    key = "csv.to_records"
    title = "CSV to records"
    description = "One record per row, keyed by the header row (or `columns`, or column1..N)."
    input_kind = "file"
    output_kind = "records"
    variables = {
        "delimiter": VariableSpec("string", default=",", description="Cell delimiter (one character)."),
        "header": VariableSpec("boolean", default=True, description="Whether the first row names the columns."),
        "columns": VariableSpec("array", description="Column names to use instead of the header row."),
        "encoding": VariableSpec("string", default=DEFAULT_ENCODING, description="Text encoding of the file."),
    }

    def run(self, context: BlockContext, data: BlockData) -> Records:
        file = expect_file(data, self.key)
        variables = context.variables
        columns = variables.get("columns")
        if columns is not None and not all(isinstance(name, str) for name in columns):
            raise BlockError("variable 'columns' must be an array of strings")
        records = iter_csv_records(
            file,
            delimiter=checked_delimiter(variables.get("delimiter")),
            encoding=variables.get("encoding") or DEFAULT_ENCODING,
            header=variables.get("header", True) is not False,
            columns=columns,
        )
        return Records(context.cancellable(records), json_native=True)
