"""File Hub write and read blocks."""
from __future__ import annotations

import logging

import pytest

from canvas.execution.blocks.base import merged_variables
from canvas.execution.context import BlockContext, BlockError
from canvas.execution.data import BlockData, FileData, Records
from canvas.execution.registry import get_block
from canvas.storage.blob import FileHub, FileSystemBlobStore


@pytest.fixture
def hub(tmp_path) -> FileHub:
    return FileHub(FileSystemBlobStore(tmp_path / "blobs"), "acct-1")


def run_block(key: str, data: BlockData, hub: FileHub | None, tmp_path, **variables) -> BlockData:
    block_class = get_block(key)
    context = BlockContext(
        merged_variables(block_class, variables), None, logging.getLogger("test"),
        FileSystemBlobStore(tmp_path / "blobs"), hub, "run-1", 2, "wf", temp_dir=tmp_path,
    )
    return block_class().run(context, data)


def test_write_then_read_a_file(hub, tmp_path):
    report = FileData.from_bytes("report.csv", "text/csv", b"a,b\r\n1,2\r\n")
    written = run_block("filehub.write", report, hub, tmp_path, filename="exports/NY_2026-03-05.csv")
    assert (written.name, written.content_type, written.read_bytes()) == ("NY_2026-03-05.csv", "text/csv", b"a,b\r\n1,2\r\n")
    assert hub.list() == ["exports/NY_2026-03-05.csv"]
    read = run_block("filehub.read", None, hub, tmp_path, filename="exports/NY_2026-03-05.csv")
    assert (read.name, read.content_type, read.read_bytes()) == ("NY_2026-03-05.csv", "text/csv", b"a,b\r\n1,2\r\n")


def test_write_defaults_to_the_input_file_name(hub, tmp_path):
    run_block("filehub.write", FileData.from_bytes("in.txt", "text/plain", b"x"), hub, tmp_path)
    assert hub.list() == ["in.txt"]


def test_write_records_as_json_lines(hub, tmp_path):
    written = run_block("filehub.write", Records(iter([{"a": 1}, {"a": "é"}])), hub, tmp_path, filename="r.jsonl")
    assert written.content_type == "application/x-ndjson"
    assert written.read_bytes() == '{"a":1}\n{"a":"é"}\n'.encode("utf-8")


def test_overwrite_false_refuses_an_existing_file(hub, tmp_path):
    first = FileData.from_bytes("a.txt", "text/plain", b"first")
    run_block("filehub.write", first, hub, tmp_path, filename="a.txt")
    second = FileData.from_bytes("a.txt", "text/plain", b"second")
    with pytest.raises(BlockError, match="file already exists"):
        run_block("filehub.write", second, hub, tmp_path, filename="a.txt", overwrite=False)
    assert hub.open("a.txt").read_bytes() == b"first"
    run_block("filehub.write", second, hub, tmp_path, filename="a.txt")  # overwrite defaults to true
    assert hub.open("a.txt").read_bytes() == b"second"


def test_names_that_escape_are_refused(hub, tmp_path):
    with pytest.raises(BlockError, match="invalid File Hub file name"):
        run_block("filehub.write", FileData.from_bytes("x", "text/plain", b"x"), hub, tmp_path, filename="../x")
    with pytest.raises(BlockError, match="invalid File Hub file name"):
        run_block("filehub.read", None, hub, tmp_path, filename="a/../../b")


def test_reading_a_missing_file(hub, tmp_path):
    with pytest.raises(BlockError, match="no file 'nope.csv' in the File Hub"):
        run_block("filehub.read", None, hub, tmp_path, filename="nope.csv")


def test_without_a_file_hub(tmp_path):
    with pytest.raises(BlockError, match="not available"):
        run_block("filehub.read", None, None, tmp_path, filename="a")
