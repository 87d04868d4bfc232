"""How block outputs are stored and read back.

Records are stored as JSON lines (one object per line, UTF-8) and read back line by line, so neither direction
holds more than one record (plus a write batch) in memory; files are stored as their bytes.
"""
from __future__ import annotations

import base64
import datetime as dt
import decimal
import enum
import json
import sys
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from json.encoder import c_make_encoder, encode_basestring
from pathlib import Path, PurePath
from typing import Any, BinaryIO

import msgspec

from canvas.execution.context import BlockError
from canvas.execution.data import DEFAULT_CONTENT_TYPE, BlockData, FileData, Records
from canvas.storage.blob import StoredBlob, copy_file_data, put_file_data

RECORDS_CONTENT_TYPE = "application/x-ndjson"
KIND_RECORDS, KIND_FILE, KIND_NONE = "records", "file", "none"
WRITE_BATCH_SIZE = 500  # records joined into one write: fewer calls, still a small buffer
DEFAULT_FILE_NAME = "output"


@dataclass(frozen=True)
class OutputInfo:
    kind: str  # "records" | "file" | "none"
    content_type: str | None
    record_count: int | None
    file_name: str | None


def json_default(value: Any) -> Any:
    """JSON for the values Python libraries hand us that json does not know (SQL rows, parsed dates...)."""
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, decimal.Decimal):
        return _decimal_to_json(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, (uuid.UUID, PurePath)):
        return str(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"a value of type {type(value).__name__} cannot be written as JSON")


def _decimal_to_json(value: decimal.Decimal) -> int | float | str:
    """An integral decimal as an int; otherwise a float when that loses nothing, else the exact text."""
    if not value.is_finite():
        return str(value)
    if value == value.to_integral_value():
        return int(value)
    as_float = float(value)
    return as_float if decimal.Decimal(repr(as_float)) == value else str(value)


def _record_encoder() -> Callable[[dict], str]:
    """Compact JSON text, UTF-8 as is (no \\u escapes). JSONEncoder.encode builds a new C encoder for every call,
    a measurable share of a million-record export: this one is built once. Cycles are not looked for (records come
    from JSON, SQL rows and the like; a cycle would still fail, with RecursionError), which also leaves the encoder
    without state, safe to share between threads."""
    if c_make_encoder is None:  # a Python without the C accelerator
        return json.JSONEncoder(ensure_ascii=False, default=json_default, separators=(",", ":"),
                                check_circular=False).encode
    encode = c_make_encoder(None, json_default, encode_basestring, None, ":", ",", False, False, True)
    return lambda record: "".join(encode(record, 0))


encode_record = _record_encoder()  # one record as compact JSON text
_DECODER = json.JSONDecoder()
_LINES_DECODER = msgspec.json.Decoder()
_LINES_ENCODER = msgspec.json.Encoder()
_DOCUMENT_DECODER = msgspec.json.Decoder()
READ_CHUNK_SIZE = 1024 * 1024


def decode_json_document(content: bytes) -> Any:
    """A JSON document (an API's answer) as Python values: msgspec first, about twice as fast as json on the pages
    of a big export and giving the same values; what msgspec refuses (NaN literals, UTF-16, errors) goes to json,
    which accepts what it always did and words the error for anything truly malformed (ValueError)."""
    try:
        try:
            return _DOCUMENT_DECODER.decode(content)
        except (msgspec.DecodeError, UnicodeDecodeError):
            return json.loads(content)
    except RecursionError:  # both decoders recurse: a document's depth is an error of the document, not of the block
        raise ValueError(f"nested more deeply than {sys.getrecursionlimit()} levels") from None


def to_jsonable(value: Any) -> Any:
    """`value` with every non-JSON type converted as json_default does (for libraries that only take JSON types)."""
    if isinstance(value, dict):
        return {str(key): to_jsonable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [to_jsonable(item) for item in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return to_jsonable(json_default(value))


Progress = Callable[[int], None]  # told how many records are stored so far, after every write batch


def _no_progress(count: int) -> None:
    pass


def write_output(data: BlockData, sink: BinaryIO, progress: Progress = _no_progress) -> OutputInfo:
    if data is None:
        return OutputInfo(KIND_NONE, None, None, None)
    if isinstance(data, Records):
        return OutputInfo(KIND_RECORDS, RECORDS_CONTENT_TYPE, write_records(data, sink, progress), None)
    if isinstance(data, FileData):
        copy_file_data(data, sink)
        return _file_info(data)
    raise TypeError(f"a block output must be Records, FileData or None, not {type(data).__name__}")


def _file_info(data: FileData) -> OutputInfo:
    return OutputInfo(KIND_FILE, data.content_type or DEFAULT_CONTENT_TYPE, None, data.name)


def write_records(records: Records, sink: BinaryIO, progress: Progress = _no_progress) -> int:
    """Writes records as JSON lines; returns how many."""
    if records.json_native:
        return _write_native_records(records, sink, progress)
    count = 0
    batch: list[str] = []
    for record in records:
        if not isinstance(record, dict):
            raise BlockError(f"record {count} is {type(record).__name__}, not an object")
        batch.append(encode_record(record))
        count += 1
        if len(batch) == WRITE_BATCH_SIZE:
            _write_lines(batch, sink)
            batch = []
            progress(count)
    _write_lines(batch, sink)
    progress(count)
    return count


def _write_native_records(records: Records, sink: BinaryIO, progress: Progress) -> int:
    """Records of JSON types only, encoded by msgspec a batch at a time (about ten times faster than json; for JSON
    types the text is the same, except that a NaN becomes null, which is valid JSON where NaN is not)."""
    count = 0
    batch: list[dict] = []
    for record in records:
        if type(record) is not dict:
            raise BlockError(f"record {count} is {type(record).__name__}, not an object")
        batch.append(record)
        count += 1
        if len(batch) == WRITE_BATCH_SIZE:
            sink.write(_LINES_ENCODER.encode_lines(batch))
            batch = []
            progress(count)
    if batch:
        sink.write(_LINES_ENCODER.encode_lines(batch))
    progress(count)
    return count


def _write_lines(lines: list[str], sink: BinaryIO) -> None:
    if lines:
        sink.write(("\n".join(lines) + "\n").encode("utf-8"))


def read_output(
    kind: str, content_type: str | None, file_name: str | None, opener: Callable[[], BinaryIO],
    frozen_path: Path | None = None,
) -> BlockData:
    """A stored output as block data again; records are read lazily, line by line, when iterated."""
    if kind == KIND_NONE:
        return None
    if kind == KIND_RECORDS:
        return Records(iter_json_lines(opener), json_native=True)
    if kind == KIND_FILE:
        return FileData(file_name or DEFAULT_FILE_NAME, content_type or DEFAULT_CONTENT_TYPE, opener, frozen_path)
    raise ValueError(f"unknown output kind {kind!r}")


def iter_json_lines(opener: Callable[[], BinaryIO]) -> Iterator[dict]:
    """Records from a JSON lines stream; opens it only when iteration starts and closes it at the end.

    Whole lines are decoded a chunk at a time with msgspec (about three times faster than json for the million-record
    case, with the same values: its numbers, strings and nesting decode as json's do). A chunk msgspec refuses (NaN
    literals, bad UTF-8, a line that is not an object) is read again line by line, which gives the exact error."""
    with opener() as stream:
        line_number, remainder = 0, b""
        while chunk := stream.read(READ_CHUNK_SIZE):
            data = remainder + chunk
            cut = data.rfind(b"\n") + 1
            complete, remainder = data[:cut], data[cut:]
            if complete:
                yield from _records_of_chunk(complete, line_number)
                line_number += complete.count(b"\n")
        if remainder.strip():
            yield from _records_of_chunk(remainder, line_number)


def _records_of_chunk(data: bytes, lines_before: int) -> Iterator[dict]:
    try:
        records = _LINES_DECODER.decode_lines(data)
    except (msgspec.DecodeError, UnicodeDecodeError):
        records = None
    # msgspec also takes two objects on one line, or skips a blank one: one record per line, or the careful path.
    lines = data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
    if records is not None and len(records) == lines and all(type(record) is dict for record in records):
        yield from records
        return
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise BlockError(f"the records are not valid UTF-8 after line {lines_before}: {error.reason}") from None
    lines = text.split("\n")  # not splitlines(): U+2028 and friends may stand inside a JSON string
    yield from _records_of_lines(lines[:-1] if lines and lines[-1] == "" else lines, lines_before)


def _records_of_lines(lines: Iterable[str], lines_before: int) -> Iterator[dict]:
    """Line by line (text already decoded): one raw_decode per line, which is several times cheaper than json.loads
    on bytes (encoding detection and a decode per call). Anything unusual (blank lines, leading blanks, errors)
    takes the careful path."""
    decode = _DECODER.raw_decode
    for line_number, line in enumerate(lines, start=lines_before + 1):
        try:
            record, end = decode(line)
        except ValueError:
            record, end = None, 0
        if type(record) is dict and (end == len(line) or line[end:].isspace()):
            yield record
        elif line.strip():
            yield _decode_line(line, line_number)


def _decode_line(line: str, line_number: int) -> dict:
    try:
        record = json.loads(line)
    except ValueError as error:
        raise BlockError(f"line {line_number} is not valid JSON: {error}") from None
    if not isinstance(record, dict):
        raise BlockError(f"line {line_number} is {type(record).__name__}, not a JSON object")
    return record


NO_OUTPUT_KEY = ""  # a block that gave nothing has no blob
_EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def store_output(store, key: str, data: BlockData, progress: Progress = _no_progress):
    """Writes `data` under `key`; returns (StoredBlob, OutputInfo). `store` is a canvas.storage.BlobStore.
    Nothing is written for no output (uploads, e-mails): an empty file would cost a write and, on PostgreSQL
    deployments, an fsync for every such block."""
    if data is None:
        return StoredBlob(NO_OUTPUT_KEY, 0, _EMPTY_SHA256), OutputInfo(KIND_NONE, None, None, None)
    if isinstance(data, FileData):
        return put_file_data(store, key, data), _file_info(data)
    stored = store.put(key, lambda sink: write_output(data, sink, progress))
    return stored, stored.result


def load_output(store, key: str, info: OutputInfo) -> BlockData:
    """The output stored under `key` by store_output, read lazily from `store`."""
    if info.kind == KIND_NONE:
        return None
    return read_output(info.kind, info.content_type, info.file_name, lambda: store.open(key), store.local_path(key))
