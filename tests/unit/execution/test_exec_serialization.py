"""Stored outputs: JSON lines for records, bytes for files, read back lazily; and the big streaming check."""
from __future__ import annotations

import datetime as dt
import decimal
import gc
import io
import json
import logging
import tracemalloc
import uuid

import pytest

from canvas.execution.blocks.base import merged_variables
from canvas.execution.context import BlockContext, BlockError
from canvas.execution.data import FileData, Records
from canvas.execution.registry import get_block
from canvas.execution.serialization import (
    RECORDS_CONTENT_TYPE,
    OutputInfo,
    load_output,
    read_output,
    store_output,
    write_output,
)
from canvas.storage.blob import FileSystemBlobStore


def test_records_round_trip_through_json_lines():
    records = [{"id": 1, "name": "Zoë", "tags": ["a", "b"], "nested": {"x": None}}, {"id": 2, "ok": True}]
    sink = io.BytesIO()
    info = write_output(Records(iter(records)), sink)
    assert info == OutputInfo("records", RECORDS_CONTENT_TYPE, 2, None)
    lines = sink.getvalue().decode("utf-8").splitlines()
    assert lines[0] == '{"id":1,"name":"Zoë","tags":["a","b"],"nested":{"x":null}}'  # UTF-8, not \u escapes
    restored = read_output(info.kind, info.content_type, info.file_name, lambda: io.BytesIO(sink.getvalue()))
    assert list(restored) == records


def test_python_values_are_written_sensibly():
    record = {
        "when": dt.datetime(2026, 3, 5, 7, 4, tzinfo=dt.timezone.utc),
        "day": dt.date(2026, 3, 5),
        "price": decimal.Decimal("12.50"),
        "big": decimal.Decimal("12345678901234567890.123456789"),
        "whole": decimal.Decimal("10"),
        "raw": b"\x00\x01",
        "id": uuid.UUID(int=1),
    }
    sink = io.BytesIO()
    write_output(Records([record]), sink)
    assert json.loads(sink.getvalue()) == {
        "when": "2026-03-05T07:04:00+00:00",
        "day": "2026-03-05",
        "price": 12.5,
        "big": "12345678901234567890.123456789",
        "whole": 10,
        "raw": "AAE=",
        "id": "00000000-0000-0000-0000-000000000001",
    }


def test_a_record_that_is_not_an_object_fails():
    with pytest.raises(BlockError, match="record 1 is list"):
        write_output(Records([{"a": 1}, [1, 2]]), io.BytesIO())


def test_files_round_trip_as_bytes():
    data = FileData.from_bytes("report.csv", "text/csv", b"a,b\r\n1,2\r\n")
    sink = io.BytesIO()
    info = write_output(data, sink)
    assert info == OutputInfo("file", "text/csv", None, "report.csv")
    restored = read_output(info.kind, info.content_type, info.file_name, lambda: io.BytesIO(sink.getvalue()))
    assert isinstance(restored, FileData)
    assert (restored.name, restored.content_type, restored.read_bytes()) == ("report.csv", "text/csv", sink.getvalue())


def test_no_output():
    sink = io.BytesIO()
    info = write_output(None, sink)
    assert info.kind == "none" and sink.getvalue() == b""
    assert read_output("none", None, None, lambda: io.BytesIO()) is None


def test_reading_is_lazy_and_opens_only_when_iterated():
    opened = []

    def opener():
        opened.append(True)
        return io.BytesIO(b'{"a":1}\n\n{"a":2}\n')

    records = read_output("records", RECORDS_CONTENT_TYPE, None, opener)
    assert opened == []
    assert list(records) == [{"a": 1}, {"a": 2}]  # blank lines are skipped
    assert opened == [True]


def test_a_corrupt_line_names_its_line_number():
    records = read_output("records", RECORDS_CONTENT_TYPE, None, lambda: io.BytesIO(b'{"a":1}\n{oops\n'))
    with pytest.raises(BlockError, match="line 2"):
        list(records)


def test_store_and_load_output_through_the_blob_store(tmp_path):
    store = FileSystemBlobStore(tmp_path)
    stored, info = store_output(store, "runs/r/block-1.out", Records([{"a": 1}]))
    assert info.record_count == 1 and stored.size == len(b'{"a":1}\n')
    assert list(load_output(store, "runs/r/block-1.out", info)) == [{"a": 1}]


def test_a_block_s_temporary_file_is_stored_as_a_file_output_and_outlives_it(tmp_path):
    temporary = tmp_path / "canvas-block-1.csv"
    temporary.write_bytes(b"id\n1\n")
    output = FileData.from_temp_path("e.csv", "text/csv", temporary)
    store = FileSystemBlobStore(tmp_path / "blobs")
    stored, info = store_output(store, "runs/r/block-2.out", output)
    assert (info.kind, info.content_type, info.file_name, stored.size) == ("file", "text/csv", "e.csv", 5)
    del output
    gc.collect()
    assert not temporary.exists()  # the block's temporary file is cleaned up as before
    assert load_output(store, "runs/r/block-2.out", info).read_bytes() == b"id\n1\n"


def test_a_million_records_stream_to_csv_and_into_the_store_in_little_memory(tmp_path):
    def generated(count):
        for number in range(count):
            yield {"id": number, "name": "employee", "active": True}

    store = FileSystemBlobStore(tmp_path / "blobs")
    block_class = get_block("csv.from_records")
    context = BlockContext(
        merged_variables(block_class, {}), None, logging.getLogger("test"), store, None, "r", 2, "wf",
        temp_dir=tmp_path,
    )
    tracemalloc.start()
    try:
        output = block_class().run(context, Records(generated(1_000_000)))
        stored, info = store_output(store, "runs/r/block-2.out", output)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 50 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB"
    assert info.kind == "file" and info.file_name == "records.csv"
    with store.open("runs/r/block-2.out") as blob:
        assert blob.readline() == b"id,name,active\r\n"
        assert blob.readline() == b"0,employee,true\r\n"
        assert sum(1 for _ in blob) == 999_999
