"""Records → CSV file ("Records to CSV"), streamed into a temporary file.

Columns: `columns` when set (order and subset; missing values are empty). Otherwise the keys of the first record,
with keys first seen in later records appended as new columns. Rows are written as they come, so memory stays
flat; only when later records brought new columns is the file rewritten once to widen the header and pad the
earlier rows (a second streaming pass, paid only by data whose shape varies).

Text: UTF-8 unless `encoding` names another (cp1252, latin-1, utf-16...); `bom` starts the file with a byte order
mark, which Excel needs to read UTF-8 as UTF-8 (æøå, ÆØÅ). `quoting` says which cells are quoted: those that need
it (minimal), all, all but numbers (nonnumeric), or none. A value that the encoding cannot hold, or that would need
quotes when quoting is none, fails the block with its record and column named.
"""
from __future__ import annotations

import codecs
import csv
import io
import itertools
import os
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from canvas.execution.blocks._file_names import output_file_name_problem
from canvas.execution.blocks._formats import checked_delimiter, csv_cell, temp_output_path, with_extension
from canvas.execution.blocks.base import Block, VariableSpec, expect_records, register
from canvas.execution.context import BlockContext, BlockError
from canvas.execution.data import BlockData, FileData

CSV_CONTENT_TYPE = "text/csv"
NATIVE_CELL_TYPES = frozenset({str, int, float, type(None)})  # exact types: bool is an int subclass
QUOTING = {"minimal": csv.QUOTE_MINIMAL, "all": csv.QUOTE_ALL, "nonnumeric": csv.QUOTE_NONNUMERIC, "none": csv.QUOTE_NONE}
# How the csv module writes a null cell under each quoting: the padding of rows written before a column appeared.
EMPTY_CELL = {"minimal": "", "all": '""', "nonnumeric": '""', "none": ""}
QUOTE = '"'
LINE_END = "\r\n"  # RFC 4180
BATCH_SIZE = 1000  # records per writerows call: a record that cannot be written is looked for in its batch
_END = object()  # marks an empty record stream (None could be a record, a wrong one)


@register
class CsvFromRecords(Block):
    key = "csv.from_records"
    title = "Records to CSV"
    description = (
        "A CSV file (UTF-8 unless `encoding` says otherwise, RFC 4180 line ends); nested values are written as "
        "JSON, null as empty."
    )
    input_kind = "records"
    output_kind = "file"
    variables = {
        "filename": VariableSpec("string", default="records.csv", description="File name; '.csv' is appended.",
                                 text_check=output_file_name_problem),
        "delimiter": VariableSpec("string", default=",", description="Cell delimiter (one character)."),
        "columns": VariableSpec("array", description="Columns in order; default: the keys of the records."),
        "header": VariableSpec("boolean", default=True, description="Whether to write a header row."),
        "encoding": VariableSpec(
            "string", default="utf-8", description="Text encoding: utf-8, cp1252 (Excel on Windows), latin-1, utf-16..."
        ),
        "bom": VariableSpec(
            "boolean",
            default=False,
            description=(
                "Start the file with a byte order mark, which Excel needs to read UTF-8 as UTF-8 (æøå, ÆØÅ). "
                "utf-8-sig, utf-16 and utf-32 write one anyway; latin-1 and cp1252 have none."
            ),
        ),
        "quoting": VariableSpec(
            "string",
            default="minimal",
            choices=tuple(QUOTING),
            description=(
                "Which cells are quoted: those that need it (minimal), all, all but numbers (nonnumeric; an empty "
                "cell is quoted too), or none (a value that would need quotes fails the block)."
            ),
        ),
    }

    def run(self, context: BlockContext, data: BlockData) -> FileData:
        records = expect_records(data, self.key)
        variables = context.variables
        columns = variables.get("columns")
        if columns is not None and not all(isinstance(name, str) for name in columns):
            raise BlockError("variable 'columns' must be an array of strings")
        text = CsvText.from_variables(variables)  # checked before there is a file to clean up
        path = temp_output_path(context, ".csv")
        name = with_extension(variables.get("filename") or "records.csv", ".csv")
        output = FileData.from_temp_path(name, CSV_CONTENT_TYPE, path)  # owns the file from now on, even on error
        table = CsvTable(path, text, variables.get("header", True) is not False, columns)
        table.write(context.cancellable(records))
        context.logger.info("wrote %s (%d bytes, %s)", name, path.stat().st_size, text.encoding)
        return output


@dataclass(frozen=True)
class CsvText:
    """How rows become text (delimiter, quoting) and the text bytes (encoding, byte order mark)."""

    delimiter: str = ","
    quoting: str = "minimal"
    encoding: str = "utf-8"
    bom: bool = False

    @classmethod
    def from_variables(cls, variables: dict) -> CsvText:
        text = cls(
            checked_delimiter(variables.get("delimiter")),
            variables.get("quoting") or "minimal",
            variables.get("encoding") or "utf-8",
            variables.get("bom") is True,
        )
        text.check()
        return text

    def check(self) -> None:
        if self.quoting not in QUOTING:
            raise BlockError(f"variable 'quoting' must be one of {', '.join(QUOTING)}")
        try:
            "".encode(self.encoding)
        except LookupError:  # no such codec, or one that is no text encoding (rot13)
            raise BlockError(f"unknown text encoding {self.encoding!r}") from None
        if self.bom and _encoding_problem("\ufeff", self.encoding):
            raise BlockError(f"encoding {self.encoding!r} has no byte order mark: set bom to false")
        if _encoding_problem(self.delimiter, self.encoding):
            raise BlockError(f"the delimiter {self.delimiter!r} cannot be written in {self.encoding}")

    @property
    def adds_bom(self) -> bool:
        """Whether the byte order mark is ours to write: utf-8-sig, utf-16 and utf-32 write their own, even for ""."""
        return self.bom and not "".encode(self.encoding)

    def writer(self, out: TextIO):  # the csv module's writer type is not public
        return csv.writer(out, delimiter=self.delimiter, quoting=QUOTING[self.quoting], lineterminator=LINE_END)

    @contextmanager
    def opened_for_writing(self, path: Path) -> Iterator[TextIO]:
        with open(path, "w", encoding=self.encoding, newline="") as out:
            if self.adds_bom:
                out.write("\ufeff")
            yield out

    @contextmanager
    def opened_for_reading(self, path: Path) -> Iterator[TextIO]:
        with open(path, encoding=self.encoding, newline="") as source:
            if self.adds_bom:
                source.read(1)  # the byte order mark written by opened_for_writing
            yield source

    def row_problem(self, cells: Sequence[object]) -> str | None:
        """Why a row cannot be written: it needs quotes that quoting none does not write, or holds a character that
        the encoding lacks. Writes it apart, as the table would."""
        buffer = io.StringIO()
        try:
            self.writer(buffer).writerow(cells)
        except csv.Error as error:
            if self.quoting == "none":
                return f"it needs quotes, which quoting 'none' does not write ({error})"
            return str(error)
        return _encoding_problem(buffer.getvalue(), self.encoding)

    def cell_problem(self, value: object) -> str | None:
        # A second cell: with quoting none, a row of one empty cell cannot be written, but an empty cell can.
        return self.row_problem([value, "x"])


class CsvTable:
    def __init__(self, path: Path, text: CsvText, header: bool, columns: Sequence[str] | None):
        self.path = path
        self.text = text
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
        with self.text.opened_for_writing(self.path) as out:
            writer = self.text.writer(out)
            if self.header and columns:
                self._write_header(writer, columns)
            self._write_rows(writer, rows, all_columns)
        if len(all_columns) > len(columns):
            self._widen(all_columns, skip_header=self.header and bool(columns))

    def _write_header(self, writer, columns: list[str]) -> None:
        try:
            writer.writerow(columns)
        except (csv.Error, UnicodeEncodeError) as error:
            raise self._unwritable_header(columns, error) from None

    def _unwritable_header(self, columns: list[str], error: Exception) -> BlockError:
        for name in columns:
            problem = self.text.cell_problem(name)
            if problem:
                return BlockError(f"column name {name!r} cannot be written: {problem}")
        return BlockError(f"the header row cannot be written: {self.text.row_problem(columns) or error}")

    def _write_rows(self, writer, records: Iterator[dict], columns: list[str]) -> None:
        """A batch at a time, so that a record that cannot be written is found again and named."""
        for first_number, batch in _batches(records, BATCH_SIZE):
            try:
                writer.writerows(self._rows(batch, columns))
            except (csv.Error, UnicodeEncodeError) as error:
                raise self._unwritable(batch, first_number, columns, error) from None

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

    def _unwritable(self, batch: list[dict], first_number: int, columns: list[str], error: Exception) -> BlockError:
        """The first record of the batch that cannot be written (numbered from 1), and its first such cell."""
        for number, record in enumerate(batch, start=first_number):
            cells = [_cell(record.get(column)) for column in columns]
            row_problem = self.text.row_problem(cells)
            if row_problem is None:
                continue
            for column, cell in zip(columns, cells):
                problem = self.text.cell_problem(cell)
                if problem:
                    return BlockError(f"record {number}, column {column!r}: {problem}")
            return BlockError(f"record {number}: {row_problem}")
        last_number = first_number + len(batch) - 1
        return BlockError(f"one of records {first_number} to {last_number} cannot be written: {error}")

    def _widen(self, columns: list[str], skip_header: bool) -> None:
        """Rewrites the file with the full header, padding the rows written before later columns appeared. The rows
        are copied as written, empty cells added at their end: parsing them again would lose how they were quoted
        (nonnumeric tells numbers by their missing quotes)."""
        widened = self.path.with_name(self.path.name + ".widened")
        empty_cell = self.text.delimiter + EMPTY_CELL[self.text.quoting]
        try:
            with self.text.opened_for_reading(self.path) as source, self.text.opened_for_writing(widened) as out:
                rows = _rows_as_written(source)
                if skip_header:
                    next(rows, None)
                if self.header:
                    self._write_header(self.text.writer(out), columns)
                for row in rows:
                    missing = len(columns) - _cell_count(row, self.text.delimiter)
                    out.write(row.removesuffix(LINE_END) + empty_cell * missing + LINE_END)
            os.replace(widened, self.path)
        finally:
            widened.unlink(missing_ok=True)


def _batches(records: Iterator[dict], size: int) -> Iterator[tuple[int, list[dict]]]:
    """Lists of up to `size` records, each with the number of its first record (the first of all is 1)."""
    number = 1
    while batch := list(itertools.islice(records, size)):
        yield number, batch
        number += len(batch)


def _rows_as_written(lines: Iterable[str]) -> Iterator[str]:
    """The rows of a CSV file written here, each as its exact text. A line break inside a quoted cell does not end
    its row: quotes come in pairs ("" inside a quoted cell too), so an odd count means a quoted cell is still open."""
    row = ""
    for line in lines:
        row += line
        if row.count(QUOTE) % 2 == 0:
            yield row
            row = ""
    if row:
        yield row


def _cell_count(row: str, delimiter: str) -> int:
    """The cells of a row as written: its delimiters outside quotes, plus one. Split at its quotes, the row's text
    outside quoted cells is at the even places."""
    return 1 + sum(part.count(delimiter) for part in row.split(QUOTE)[::2])


def _encoding_problem(text: str, encoding: str) -> str | None:
    try:
        codecs.encode(text, encoding)
    except UnicodeEncodeError as error:
        return f"{error.object[error.start:error.end]!r} cannot be written in {encoding}"
    return None


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
