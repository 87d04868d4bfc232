"""Readers and writers shared by the format blocks (CSV, JSON, JSON lines): all of them stream.

A reader takes a FileData and yields dict records lazily, opening the file when iteration starts and closing it at
the end, so a malformed line late in a big file fails the block only when it is reached (error messages name it).
"""
from __future__ import annotations

import codecs
import csv
import decimal
import io
import itertools
import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TextIO

import ijson

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


def _as_record(value: Any, where: str) -> dict:
    if not isinstance(value, dict):
        raise BlockError(f"{where} is {type(value).__name__}, not an object")
    return value


# --- JSON, parsed incrementally by ijson ---------------------------------------------------------------------------


def _json_backend() -> Any:
    """ijson's C backend (yajl2_c, in the binary wheels ijson publishes); its pure Python one where no wheel fits."""
    try:
        return ijson.get_backend("yajl2_c")
    except ImportError:
        return ijson.get_backend("python")


JSON_BACKEND = _json_backend()
JSON_READ_SIZE = 64 * 1024  # bytes per read: ijson's default, a little faster here than 16 or 256 KiB
JSON_WHITESPACE = b" \t\r\n"
UTF8_CODECS = ("utf-8", "utf-8-sig")  # read as they are; a file in another encoding is converted to UTF-8 first
NOT_JSON_NUMBERS = (b"NaN", b"Infinity", b"-Infinity")  # Python's json writes and reads them unless told not to
FRIENDLIER_REASONS = {
    "premature EOF": "the text ends inside a value (is the file cut short?)",
    "trailing garbage": "unexpected text after the JSON value",
}


class _NumberTooBig(Exception):
    """A number the fast parse cannot hold (an integer of 64 bits or more, 1e400): parse again exactly."""

    def __init__(self, records_given: int):
        super().__init__(records_given)
        self.records_given = records_given


def iter_json_records(file: FileData, encoding: str = DEFAULT_ENCODING, items_path: str = "") -> Iterator[dict]:
    """Records from a JSON array of objects, a single object, or objects one after the other (JSON lines); with
    `items_path` (ijson's prefix syntax: "data.item" is each item of the array under "data"), the values found at
    that path in each top-level value.

    Parsed incrementally, so memory holds one record and a 64 KiB read at a time, and time grows linearly with the
    size. Numbers come as json.loads gives them: int for integers, float for the rest. The fast parse builds floats
    itself but gives up on numbers beyond 64 bits; a file holding one is parsed again with exact numbers (Decimal,
    then float), from the record after the last one already given."""
    try:
        yield from _parsed_records(file, encoding, items_path, exact_numbers=False)
    except _NumberTooBig as too_big:
        exact = _parsed_records(file, encoding, items_path, exact_numbers=True)
        yield from itertools.islice(exact, too_big.records_given, None)


def _parsed_records(file: FileData, encoding: str, items_path: str, exact_numbers: bool) -> Iterator[dict]:
    with _json_reader(file, encoding) as reader:
        index = -1
        try:
            first_byte = reader.skip_to_first_value()
            if first_byte is None:
                return  # nothing but whitespace: no records
            prefix, several_values = _selection(first_byte, items_path)
            values = JSON_BACKEND.items(reader, prefix, use_float=not exact_numbers, multiple_values=several_values,
                                        buf_size=JSON_READ_SIZE)
            for index, value in enumerate(map(_floats_for_decimals, values) if exact_numbers else values):
                if not isinstance(value, dict):
                    raise BlockError(f"{_value_name(index, prefix)} is {type(value).__name__}, not an object")
                yield value
        except UnicodeDecodeError as error:
            raise BlockError(f"JSON is not valid {encoding}: {error.reason}") from None
        except ijson.JSONError as error:
            if not exact_numbers and _is_number_overflow(error):
                raise _NumberTooBig(records_given=index + 1) from None
            raise _json_error(error, reader, encoding) from None


def _selection(first_byte: bytes, items_path: str) -> tuple[str, bool]:
    """ijson's prefix for the records, and whether the text may hold several top-level values."""
    if items_path:
        return items_path, True  # in every top-level value: JSON lines of envelopes unwrap too
    if first_byte == b"[":
        return "item", False  # one array: text after it is an error, as it always was
    return "", True  # objects one after the other: a single object, JSON lines, concatenated objects


def _value_name(index: int, prefix: str) -> str:
    if prefix == "item":
        return f"item {index}"
    return f"value {index}" + (f" at {prefix!r}" if prefix else "")


def _floats_for_decimals(value: Any) -> Any:
    """`value` with ijson's exact Decimal numbers as the floats json.loads would give (1e400 is inf, as there)."""
    if isinstance(value, dict):
        return {key: _floats_for_decimals(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_floats_for_decimals(item) for item in value]
    return float(value) if isinstance(value, decimal.Decimal) else value


@contextmanager
def _json_reader(file: FileData, encoding: str) -> Iterator[_JsonReader]:
    """UTF-8 files go to the parser as they are; a file in another encoding is decoded and encoded as UTF-8."""
    try:
        codec = codecs.lookup(encoding).name
    except LookupError:
        raise BlockError(f"unknown text encoding {encoding!r}") from None
    if codec in UTF8_CODECS:
        with file.open() as stream:
            yield _JsonReader(stream.read)
        return
    with open_text(file, encoding) as text:
        yield _TranscodedJsonReader(lambda size: text.read(size).encode("utf-8"))


class _JsonReader:
    """The UTF-8 bytes the parser reads, from `read_chunk`. It keeps the last chunk handed out and counts what came
    before it, so that a parse error (placed by yajl within the chunk it was parsing) gets a position in the file."""

    unit = "byte"

    def __init__(self, read_chunk: Callable[[int], bytes]):
        self._read_chunk = read_chunk
        self._unread = b""
        self.last = b""
        self.before_last = 0  # units (bytes here) read before `last`

    def read(self, size: int) -> bytes:
        if size == 0:
            return b""  # ijson's probe: are these bytes or text?
        self.before_last += self.units(self.last)
        if self._unread:
            self.last, self._unread = self._unread, b""
        else:
            self.last = self._read_chunk(size)
        return self.last

    def skip_to_first_value(self) -> bytes | None:
        """Skips a byte order mark and whitespace; returns the first byte of the first value (left to be read), or
        None at the end. yajl refuses a byte order mark, and the first byte tells an array from other values."""
        head = self._read_chunk(JSON_READ_SIZE)
        head_start = len(codecs.BOM_UTF8) if head.startswith(codecs.BOM_UTF8) else 0
        while head:
            rest = head[head_start:].lstrip(JSON_WHITESPACE)
            self.before_last += self.units(head[: len(head) - len(rest)])
            if rest:
                self._unread = rest
                return rest[:1]
            head, head_start = self._read_chunk(JSON_READ_SIZE), 0
        return None

    def units(self, chunk: bytes) -> int:
        return len(chunk)

    def position(self, offset: int) -> str:
        """Where the parser stopped: `offset` bytes into the last chunk, counted from 1 in the file's units."""
        return f"{self.unit} {self.before_last + self.units(self.last[:offset])}"


class _TranscodedJsonReader(_JsonReader):
    """A file decoded from another encoding: positions count characters, which mean something in that file."""

    unit = "character"

    def units(self, chunk: bytes) -> int:
        return len(chunk.decode("utf-8", errors="ignore"))  # position() may cut the last chunk inside a character


def _json_error(error: ijson.JSONError, reader: _JsonReader, encoding: str) -> BlockError:
    """ijson's error as a message naming the position. yajl words it "parse error: <reason>", then shows the text
    around the error with an arrow under the place it stopped; finding that text in the last chunk places it."""
    reason_line, *context = _error_bytes(error).split(b"\n")
    reason = reason_line.decode("utf-8", errors="replace")
    if "premature EOF" in reason:  # found when the parse is completed, past the last chunk
        offset = len(reader.last)
    else:
        offset = _yajl_error_offset(reader.last, context[0]) if len(context) >= 2 else None
    if offset is None:  # another backend's wording, or an excerpt that was not found: ijson's message as it is
        return BlockError(f"invalid JSON: {reason}")
    position = reader.position(offset)
    if "invalid bytes in UTF8" in reason:
        return BlockError(f"JSON is not valid {encoding}: invalid bytes near {position}")  # ends a byte or two on
    reason = reason.removeprefix("parse error: ").removeprefix("lexical error: ").rstrip(".")
    message = f"invalid JSON at {position}: {FRIENDLIER_REASONS.get(reason, reason)}"
    excerpt = context[0].strip().decode("utf-8", errors="replace")
    if excerpt:
        message += f", near {excerpt!r}"
    if reader.last[max(offset - 1, 0) :].startswith(NOT_JSON_NUMBERS):
        message += " (NaN and Infinity are not JSON numbers: write null, or the value as text)"
    return BlockError(message)


def _error_bytes(error: ijson.JSONError) -> bytes:
    """ijson's message; yajl's comes as bytes when its excerpt of the text is not valid UTF-8."""
    message = error.args[0] if error.args else b""
    return message if isinstance(message, bytes) else str(message).encode("utf-8")


def _is_number_overflow(error: ijson.JSONError) -> bool:
    """yajl's "integer overflow" or "numeric (floating point) overflow" (the first line: not the excerpt)."""
    return b"overflow" in _error_bytes(error).split(b"\n")[0]


def _yajl_error_offset(chunk: bytes, context: bytes) -> int | None:
    """The offset in `chunk` at which yajl stopped, from its excerpt `context`: up to 30 bytes either side of the
    offset, line breaks shown as spaces, shifted right with spaces so that the offset falls at column 40."""
    shown = chunk.replace(b"\n", b" ").replace(b"\r", b" ")

    def rendered(offset: int) -> bytes:
        return b" " * (40 - offset if offset < 30 else 10) + shown[max(offset - 30, 0) : offset + 30]

    candidates = list(range(min(30, len(chunk) + 1)))  # near the start of the chunk: any of these
    found = shown.find(context[10:])
    while found >= 0:  # further in, the excerpt starts 30 bytes before the offset
        candidates.append(found + 30)
        found = shown.find(context[10:], found + 1)
    return next((offset for offset in candidates if offset <= len(chunk) and rendered(offset) == context), None)
