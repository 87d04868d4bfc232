"""Records → JSON file: a JSON array of objects (or JSON lines), streamed into a temporary file."""
from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from canvas.execution.blocks._file_names import output_file_name_problem
from canvas.execution.blocks._formats import temp_output_path, with_extension
from canvas.execution.blocks.base import Block, VariableSpec, expect_records, register
from canvas.execution.context import BlockContext, BlockError
from canvas.execution.data import BlockData, FileData, Records
from canvas.execution.serialization import RECORDS_CONTENT_TYPE, encode_record, write_records

JSON_CONTENT_TYPE = "application/json"


@register
class JsonFromRecords(Block):
    key = "json.from_records"
    title = "Records to JSON"
    description = "A JSON array with one object per line (UTF-8), or JSON lines when `lines` is true."
    input_kind = "records"
    output_kind = "file"
    variables = {
        "filename": VariableSpec("string", description="File name; default records.json (records.jsonl for lines).",
                                 text_check=output_file_name_problem),
        "lines": VariableSpec("boolean", default=False, description="Write JSON lines instead of an array."),
    }

    def run(self, context: BlockContext, data: BlockData) -> FileData:
        records = context.cancellable(expect_records(data, self.key))
        lines = context.variables.get("lines") is True
        extension = ".jsonl" if lines else ".json"
        name = with_extension(context.variables.get("filename") or f"records{extension}", extension)
        path = temp_output_path(context, extension)
        output = FileData.from_temp_path(name, RECORDS_CONTENT_TYPE if lines else JSON_CONTENT_TYPE, path)
        count = _write_lines(path, records) if lines else _write_array(path, records)
        context.logger.info("wrote %d records as JSON", count)
        return output


def _encoded(records: Iterable[dict]):
    for index, record in enumerate(records):
        if not isinstance(record, dict):
            raise BlockError(f"record {index} is {type(record).__name__}, not an object")
        yield encode_record(record)


def _write_array(path: Path, records: Iterable[dict]) -> int:
    count = 0
    with open(path, "w", encoding="utf-8") as out:
        out.write("[")
        for count, text in enumerate(_encoded(records), start=1):
            out.write("\n" if count == 1 else ",\n")
            out.write(text)
        out.write("\n]\n" if count else "]\n")
    return count


def _write_lines(path: Path, records: Iterable[dict]) -> int:
    with open(path, "wb") as out:
        return write_records(Records(records), out)
