"""Readers and writers shared by the format blocks (CSV, JSON, JSON lines): all of them stream.

A reader takes a FileData and yields dict records lazily, opening the file when iteration starts and closing it at
the end, so a malformed line late in a big file fails the block only when it is reached (error messages name it).
"""
from __future__ import annotations

import codecs
import csv
import io
import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TextIO

from canvas.execution.context import BlockContext, BlockError
from canvas.execution.data import FileData, new_temp_path
from canvas.execution.serialization import json_default

DEFAULT_ENCODING = "utf-8-sig"  # reads plain UTF-8 too, and drops the byte order mark Excel likes to write
CHUNK_CHARS = 64 * 1024
MAX_RECORD_CHARS = 64 * 1024 * 1024  # one JSON value larger than this is almost surely malformed input
NEAR_END = 16  # a decode error this close to the end of the buffer may just be a value cut by the chunking
FORMATS = ("auto", "json", "jsonl", "csv")
JSON_LINES_TYPES = ("application/x-ndjson", "application/jsonl", "application/x-jsonlines", "application/ndjson")
JSON_LINES_EXTENSIONS = (".jsonl", ".ndjson")
CSV_TYPES = ("text/csv", "application/csv", "text/tab-separated-values")
CSV_EXTENSIONS = (".csv", ".tsv", ".txt")


@contextmanager
def open_text(file: FileData, encoding: str = DEFAULT_ENCODING) -> Iterator[TextIO]:
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise BlockError(f"unknown text encoding {encoding!r}") from None
    with file.open() as stream:
        # newline="" hands "\r\n" through untouched: the csv module needs that for line breaks inside quoted cells.
        text = io.TextIOWrapper(stream, encoding=encoding, errors="strict", newline="")
        try:
            yield text
        finally:
            text.detach()  # the outer `with` closes the binary stream


def with_extension(name: str, extension: str) -> str:
    return name if name.lower().endswith(extension) else name + extension


def temp_output_path(context: BlockContext, extension: str):
    return new_temp_path(extension, context.temp_dir)


# --- format detection ----------------------------------------------------------------------------------------------


def detect_format(file: FileData) -> str:
    """"json", "jsonl" or "csv", from the content type, then the file extension, then the first byte."""
    content_type = (file.content_type or "").split(";")[0].strip().lower()
    name = file.name.lower()
    if content_type in JSON_LINES_TYPES or name.endswith(JSON_LINES_EXTENSIONS):
        return "jsonl"
    if content_type in CSV_TYPES or name.endswith(CSV_EXTENSIONS):
        return "csv"
    if content_type == "application/json" or content_type.endswith("+json") or name.endswith(".json"):
        return "json"
    return "json" if _first_character(file) in ("[", "{") else "csv"


def _first_character(file: FileData) -> str:
    with file.open() as stream:
        peekable = stream if hasattr(stream, "peek") else io.BufferedReader(stream)
        head = peekable.peek(1024)[:1024].decode("utf-8", errors="ignore").lstrip("\ufeff \t\r\n")
    return head[:1]


def iter_file_records(file: FileData, fmt: str, encoding: str, delimiter: str = ",") -> Iterator[dict]:
    fmt = detect_format(file) if fmt == "auto" else fmt
    if fmt == "csv":
        return iter_csv_records(file, delimiter=delimiter, encoding=encoding)
    if fmt == "jsonl":
        return iter_json_lines_records(file, encoding)
    return iter_json_records(file, encoding)


# --- CSV -------------------------------------------------------------------------------------------------------------


def checked_delimiter(value: object) -> str:
    delimiter = "," if value is None else value
    if not isinstance(delimiter, str) or len(delimiter) != 1 or delimiter in "\r\n\"":
        raise BlockError("variable 'delimiter' must be one character (not a quote or a line break)")
    return delimiter


def csv_cell(value: Any) -> str:
    """A record value as CSV text: nothing for null, JSON for nested values, lower-case booleans as in JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, ensure_ascii=False, default=json_default)
    if isinstance(value, (int, float)):
        return str(value)
    converted = json_default(value)
    return converted if isinstance(converted, str) else csv_cell(converted)


def iter_csv_records(
    file: FileData,
    delimiter: str = ",",
    encoding: str = DEFAULT_ENCODING,
    header: bool = True,
    columns: Sequence[str] | None = None,
) -> Iterator[dict]:
    """Records keyed by the header row (or `columns`, or column1..N); every value is text, missing cells are ""."""
    with open_text(file, encoding) as text:
        rows = csv.reader(text, delimiter=delimiter)
        names = list(columns or [])
        try:
            if header:
                header_row = next(rows, None)
                names = names or unique_names(header_row or [])
            for row in rows:
                if row:  # a blank line is no record
                    yield _row_record(row, names)
        except csv.Error as error:
            raise BlockError(f"CSV line {rows.line_num}: {error}") from None
        except UnicodeDecodeError as error:
            raise BlockError(f"CSV is not valid {encoding}: {error.reason}") from None


def _row_record(row: list[str], names: list[str]) -> dict:
    """Extra cells get columnN names (nothing is dropped); missing cells are empty."""
    if len(row) > len(names):
        names.extend(f"column{index}" for index in range(len(names) + 1, len(row) + 1))
    record = dict(zip(names, row))
    for name in names[len(row) :]:
        record[name] = ""
    return record


def unique_names(header_row: Sequence[str]) -> list[str]:
    """Header cells as record keys: blanks become columnN, repeats get a _2, _3... suffix (no value is lost)."""
    names: list[str] = []
    seen: set[str] = set()
    for index, cell in enumerate(header_row, start=1):
        name = cell.strip() or f"column{index}"
        candidate, suffix = name, 2
        while candidate in seen:
            candidate, suffix = f"{name}_{suffix}", suffix + 1
        seen.add(candidate)
        names.append(candidate)
    return names


# --- JSON and JSON lines -------------------------------------------------------------------------------------------


def iter_json_lines_records(file: FileData, encoding: str = DEFAULT_ENCODING) -> Iterator[dict]:
    with open_text(file, encoding) as text:
        try:
            for line_number, line in enumerate(text, start=1):
                if line.strip():
                    yield _as_record(_loads_line(line, line_number), f"line {line_number}")
        except UnicodeDecodeError as error:
            raise BlockError(f"JSON lines are not valid {encoding}: {error.reason}") from None


def _loads_line(line: str, line_number: int) -> Any:
    try:
        return json.loads(line)
    except ValueError as error:
        raise BlockError(f"line {line_number} is not valid JSON: {error}") from None


def iter_json_records(file: FileData, encoding: str = DEFAULT_ENCODING) -> Iterator[dict]:
    """Records from a JSON array of objects, or from one or more objects one after the other (a single object,
    JSON lines); read in chunks, so a big array never sits in memory whole."""
    with open_text(file, encoding) as text:
        try:
            yield from _json_stream_records(_JsonChunks(text))
        except UnicodeDecodeError as error:
            raise BlockError(f"JSON is not valid {encoding}: {error.reason}") from None


def _json_stream_records(stream: _JsonChunks) -> Iterator[dict]:
    if stream.next_char() == "[":
        yield from _array_records(stream)
        if stream.next_char() is not None:
            raise BlockError(f"unexpected text after the JSON array at character {stream.offset}")
        return
    index = 0
    while stream.next_char() is not None:
        yield _as_record(stream.decode_value(), f"value {index}")
        index += 1


def _array_records(stream: _JsonChunks) -> Iterator[dict]:
    stream.skip(1)  # "["
    if stream.next_char() == "]":
        stream.skip(1)
        return
    index = 0
    while True:
        yield _as_record(stream.decode_value(), f"item {index}")
        index += 1
        separator = stream.next_char()
        stream.skip(1)
        if separator == "]":
            return
        if separator != ",":
            raise BlockError(f"expected ',' or ']' after item {index - 1} at character {stream.offset - 1}")


def _as_record(value: Any, where: str) -> dict:
    if not isinstance(value, dict):
        raise BlockError(f"{where} is {type(value).__name__}, not an object")
    return value


class _JsonChunks:
    """A text stream read in chunks, decoding one JSON value at a time with JSONDecoder.raw_decode."""

    def __init__(self, text: TextIO):
        self._text = text
        self._buffer = ""
        self._pos = 0
        self._discarded = 0  # characters dropped from the front of the buffer, for error positions
        self._eof = False
        self._decoder = json.JSONDecoder()

    @property
    def offset(self) -> int:
        return self._discarded + self._pos

    def next_char(self) -> str | None:
        """The next non-whitespace character (not consumed), None at the end."""
        while True:
            while self._pos < len(self._buffer) and self._buffer[self._pos] in " \t\r\n":
                self._pos += 1
            if self._pos < len(self._buffer):
                return self._buffer[self._pos]
            if not self._read_more():
                return None

    def skip(self, count: int) -> None:
        self._pos += count

    def decode_value(self) -> Any:
        self.next_char()  # raw_decode does not skip leading whitespace itself
        while True:
            try:
                value, end = self._decoder.raw_decode(self._buffer, self._pos)
            except json.JSONDecodeError as error:
                if self._is_cut_short(error) and self._read_more():
                    continue
                raise BlockError(f"invalid JSON at character {self._discarded + error.pos}: {error.msg}") from None
            if end == len(self._buffer) and self._read_more():
                continue  # a number or literal at the very end of the chunk may go on in the next one
            self._pos = end
            self._compact()
            return value

    def _is_cut_short(self, error: json.JSONDecodeError) -> bool:
        if len(self._buffer) - self._pos > MAX_RECORD_CHARS:
            return False
        return error.msg.startswith("Unterminated") or error.pos >= len(self._buffer) - NEAR_END

    def _read_more(self) -> bool:
        if self._eof:
            return False
        chunk = self._text.read(CHUNK_CHARS)
        if not chunk:
            self._eof = True
            return False
        self._buffer += chunk
        return True

    def _compact(self) -> None:
        if self._pos > CHUNK_CHARS:
            self._discarded += self._pos
            self._buffer = self._buffer[self._pos :]
            self._pos = 0

