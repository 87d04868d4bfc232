"""Records → CSV file ("Records to CSV"), streamed into a temporary file.

Columns: `columns` when set (order and subset; missing values are empty). Otherwise the keys of the first record,
with keys first seen in later records appended as new columns. Rows are written as they come, so memory stays
flat; only when later records brought new columns is the file rewritten once to widen the header and pad the
earlier rows (a second streaming pass, paid only by data whose shape varies).
"""
from __future__ import annotations

import csv
import itertools
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from canvas.execution.blocks._formats import checked_delimiter, csv_cell, temp_output_path, with_extension
from canvas.execution.blocks.base import Block, VariableSpec, expect_records, register
from canvas.execution.context import BlockContext, BlockError
from canvas.execution.data import BlockData, FileData

CSV_CONTENT_TYPE = "text/csv"
NATIVE_CELL_TYPES = frozenset({str, int, float, type(None)})  # exact types: bool is an int subclass
_END = object()  # marks an empty record stream (None could be a record, a wrong one)


@register
class CsvFromRecords(Block):
    key = "csv.from_records"
    title = "Records to CSV"
    description = "A CSV file (UTF-8, RFC 4180 line ends); nested values are written as JSON, null as empty."
    input_kind = "records"
    output_kind = "file"
    variables = {
        "filename": VariableSpec("string", default="records.csv", description="File name; '.csv' is appended."),
        "delimiter": VariableSpec("string", default=",", description="Cell delimiter (one character)."),
        "columns": VariableSpec("array", description="Columns in order; default: the keys of the records."),
        "header": VariableSpec("boolean", default=True, description="Whether to write a header row."),
    }

    def run(self, context: BlockContext, data: BlockData) -> FileData:
        records = expect_records(data, self.key)
        variables = context.variables
        columns = variables.get("columns")
        if columns is not None and not all(isinstance(name, str) for name in columns):
            raise BlockError("variable 'columns' must be an array of strings")
        path = temp_output_path(context, ".csv")
        name = with_extension(variables.get("filename") or "records.csv", ".csv")
        output = FileData.from_temp_path(name, CSV_CONTENT_TYPE, path)  # owns the file from now on, even on error
        table = CsvTable(
            path, checked_delimiter(variables.get("delimiter")), variables.get("header", True) is not False, columns
        )
        table.write(context.cancellable(records))
        context.logger.info("wrote %s (%d bytes)", name, path.stat().st_size)
        return output


class CsvTable:
    def __init__(self, path: Path, delimiter: str, header: bool, columns: Sequence[str] | None):
        self.path = path
        self.delimiter = delimiter
        self.header = header
        self.fixed_columns = list(columns) if columns is not None else None

    def write(self, records: Iterable[dict]) -> None:
        """Writes every record. Counting them is left to the runner: an int per record is measurable here."""
        iterator = iter(records)
        first = next(iterator, _END)
        if first is _END:
            columns, rows = list(self.fixed_columns or []), iter(())
        else:
            columns = list(self.fixed_columns if self.fixed_columns is not None else _checked(first))
            rows = itertools.chain([first], iterator)
        all_columns = list(columns)
        with open(self.path, "w", encoding="utf-8", newline="") as out:
            writer = csv.writer(out, delimiter=self.delimiter)
            if self.header and columns:
                writer.writerow(columns)
            writer.writerows(self._rows(rows, all_columns))
        if len(all_columns) > len(columns):
            self._widen(all_columns, skip_header=self.header and bool(columns))

    def _rows(self, records: Iterable[dict], columns: list[str]) -> Iterator[Iterable]:
        """The cells of each record, in column order; appends to `columns` the keys it has not seen before."""
        # The hottest loop of a big export: helpers out of line and lazy maps keep it lean.
        known = set(columns)
        grows = self.fixed_columns is None
        for record in records:
            if not isinstance(record, dict):
                _checked(record)
            if grows and not record.keys() <= known:
                _add_new_keys(record, columns, known)
            yield map(_cell, map(record.get, columns))

    def _widen(self, columns: list[str], skip_header: bool) -> None:
        """Rewrites the file with the full header, padding the rows written before later columns appeared."""
        widened = self.path.with_name(self.path.name + ".widened")
        try:
            with open(self.path, encoding="utf-8", newline="") as source, open(
                widened, "w", encoding="utf-8", newline=""
            ) as out:
                rows = csv.reader(source, delimiter=self.delimiter)
                if skip_header:
                    next(rows, None)
                writer = csv.writer(out, delimiter=self.delimiter)
                if self.header:
                    writer.writerow(columns)
                for row in rows:
                    writer.writerow(row + [""] * (len(columns) - len(row)))
            os.replace(widened, self.path)
        finally:
            widened.unlink(missing_ok=True)


def _cell(value: object, native_types: frozenset = NATIVE_CELL_TYPES) -> object:
    """The csv module writes str, int, float and None (as "") itself; only other values need converting."""
    return value if type(value) in native_types else csv_cell(value)


def _add_new_keys(record: dict, columns: list[str], known: set[str]) -> None:
    new_keys = [key for key in record if key not in known]
    columns.extend(new_keys)
    known.update(new_keys)


def _checked(record: object) -> dict:
    if not isinstance(record, dict):
        raise BlockError(f"a record is {type(record).__name__}, not an object")
    return record
