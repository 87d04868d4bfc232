"""The format blocks: records from a variable or a file, and records ↔ CSV / JSON / XML round trips."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from canvas.execution.blocks.base import merged_variables
from canvas.execution.context import BlockCancelledError, BlockContext, BlockError
from canvas.execution.data import BlockData, FileData, Records
from canvas.execution.registry import get_block
from canvas.storage.blob import FileSystemBlobStore

EMPLOYEES = [
    {"id": 1, "name": "Ana Lima", "city": "São Paulo", "active": True},
    {"id": 2, "name": 'Bob "the builder", Jr.', "city": "New York\nNY", "active": False},
    {"id": 3, "name": "Chen", "city": None, "active": True},
]


def run_block(key: str, data: BlockData, tmp_path: Path, **variables) -> BlockData:
    block_class = get_block(key)
    context = BlockContext(
        variables=merged_variables(block_class, variables),
        credentials=None,
        logger=logging.getLogger(f"test.{key}"),
        blob_store=FileSystemBlobStore(tmp_path / "blobs"),
        file_hub=None,
        run_id="run-1",
        block_number=1,
        workflow_name="test",
        temp_dir=tmp_path,
    )
    return block_class().run(context, data)


def as_text(file: FileData) -> str:
    return file.read_bytes().decode("utf-8")


def test_records_from_variable(tmp_path):
    output = run_block("records.from_variable", None, tmp_path, records=EMPLOYEES)
    assert list(output) == EMPLOYEES


def test_records_from_variable_names_the_bad_item(tmp_path):
    with pytest.raises(BlockError, match="item 1 is str"):
        run_block("records.from_variable", None, tmp_path, records=[{"a": 1}, "oops"])


def test_noop_passes_its_input_through(tmp_path):
    records = Records([{"a": 1}])
    assert run_block("noop", records, tmp_path) is records


def test_csv_round_trip(tmp_path):
    csv_file = run_block("csv.from_records", Records(iter(EMPLOYEES)), tmp_path, filename="employees")
    assert (csv_file.name, csv_file.content_type) == ("employees.csv", "text/csv")
    assert as_text(csv_file).startswith("id,name,city,active\r\n1,Ana Lima,São Paulo,true\r\n")
    records = list(run_block("csv.to_records", csv_file, tmp_path))
    assert records == [
        {"id": "1", "name": "Ana Lima", "city": "São Paulo", "active": "true"},
        {"id": "2", "name": 'Bob "the builder", Jr.', "city": "New York\nNY", "active": "false"},
        {"id": "3", "name": "Chen", "city": "", "active": "true"},
    ]


def test_csv_columns_delimiter_and_no_header(tmp_path):
    csv_file = run_block(
        "csv.from_records", Records(EMPLOYEES), tmp_path, columns=["name", "id"], delimiter=";", header=False
    )
    assert as_text(csv_file).splitlines()[0] == "Ana Lima;1"
    records = list(run_block("csv.to_records", csv_file, tmp_path, delimiter=";", header=False))
    assert records[0] == {"column1": "Ana Lima", "column2": "1"}


def test_csv_later_keys_widen_the_table(tmp_path):
    records = [{"a": 1}, {"a": 2, "b": {"nested": [1, "x"]}}, {"c": True}]
    csv_file = run_block("csv.from_records", Records(iter(records)), tmp_path)
    assert as_text(csv_file).splitlines() == ["a,b,c", "1,,", '2,"{""nested"": [1, ""x""]}",', ",,true"]


def test_csv_from_no_records(tmp_path):
    assert as_text(run_block("csv.from_records", Records([]), tmp_path)) == ""
    assert as_text(run_block("csv.from_records", Records([]), tmp_path, columns=["a", "b"])) == "a,b\r\n"


def test_csv_from_records_rejects_a_file_input(tmp_path):
    with pytest.raises(BlockError, match="needs records as input, got a file"):
        run_block("csv.from_records", FileData.from_bytes("x.csv", "text/csv", b""), tmp_path)


def test_csv_to_records_handles_bom_ragged_rows_and_duplicate_headers(tmp_path):
    data = "\ufeffname,name,\r\nA,B,C,D\r\n\r\nE\r\n".encode("utf-8")
    records = list(run_block("csv.to_records", FileData.from_bytes("in.csv", "text/csv", data), tmp_path))
    assert records == [
        {"name": "A", "name_2": "B", "column3": "C", "column4": "D"},
        {"name": "E", "name_2": "", "column3": "", "column4": ""},
    ]


def test_json_round_trip(tmp_path):
    json_file = run_block("json.from_records", Records(iter(EMPLOYEES)), tmp_path)
    assert (json_file.name, json_file.content_type) == ("records.json", "application/json")
    assert json.loads(as_text(json_file)) == EMPLOYEES
    assert list(run_block("json.to_records", json_file, tmp_path)) == EMPLOYEES


def test_json_lines_and_empty_array(tmp_path):
    lines_file = run_block("json.from_records", Records(EMPLOYEES), tmp_path, lines=True, filename="out")
    assert lines_file.name == "out.jsonl" and len(as_text(lines_file).splitlines()) == 3
    assert list(run_block("json.to_records", lines_file, tmp_path)) == EMPLOYEES
    empty = run_block("json.from_records", Records([]), tmp_path)
    assert json.loads(as_text(empty)) == [] and list(run_block("json.to_records", empty, tmp_path)) == []


def test_json_reader_streams_across_chunk_boundaries(tmp_path):
    records = [{"id": index, "text": "é" * (index % 50), "n": 1.5e10} for index in range(5000)]
    data = json.dumps(records).encode("utf-8")  # about 300 kB: several 64 kB chunks
    file = FileData.from_bytes("big.json", "application/json", data)
    assert list(run_block("json.to_records", file, tmp_path)) == records
    single = FileData.from_bytes("one.json", "application/json", b' {"only": 1} ')
    assert list(run_block("json.to_records", single, tmp_path)) == [{"only": 1}]


@pytest.mark.parametrize(
    "content, fragment",
    [
        (b'[{"a": 1}, 2]', "item 1 is int"),
        (b'[{"a": 1} {"a": 2}]', "at byte 11: after array element, I expect ',' or ']'"),
        (b'[{"a": 1}, {"a": }]', "invalid JSON at byte 18"),
        (b'[{"a": 1}', "at byte 9: the text ends inside a value"),
        (b'[{"a": 1}] extra', "at byte 12: unexpected text"),
    ],
)
def test_json_errors(tmp_path, content, fragment):
    file = FileData.from_bytes("bad.json", "application/json", content)
    with pytest.raises(BlockError, match=fragment):
        list(run_block("json.to_records", file, tmp_path))


def test_xml_round_trip(tmp_path):
    records = [
        {"id": 1, "name": "A & B <co>", "tags": ["x", "y"], "address": {"city": "Oslo", "zip": "0150"}},
        {"id": 2, "name": "Ünïcode", "tags": ["only"], "address": None},
    ]
    xml_file = run_block("xml.from_records", Records(iter(records)), tmp_path, root="people", item="person")
    text = as_text(xml_file)
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>\n<people>\n  <person>')
    assert "<name>A &amp; B &lt;co&gt;</name>" in text
    back = list(run_block("xml.to_records", xml_file, tmp_path, item="person"))
    assert back == [
        {"id": "1", "name": "A & B <co>", "tags": ["x", "y"], "address": {"city": "Oslo", "zip": "0150"}},
        {"id": "2", "name": "Ünïcode", "tags": "only", "address": ""},
    ]


def test_xml_names_are_made_valid_and_bad_root_names_refused(tmp_path):
    xml_file = run_block("xml.from_records", Records([{"first name": "x", "1st": "y"}]), tmp_path)
    assert "<first_name>x</first_name>" in as_text(xml_file) and "<_1st>y</_1st>" in as_text(xml_file)
    with pytest.raises(BlockError, match="valid XML element name"):
        run_block("xml.from_records", Records([]), tmp_path, root="not valid")


def test_xml_to_records_reads_attributes_namespaces_and_nested_items(tmp_path):
    document = b"""<?xml version="1.0"?>
    <feed xmlns="urn:x"><meta>skip</meta>
      <entries>
        <entry id="7"><title lang="en">Hello</title><entry>inner</entry></entry>
        <entry id="8"><title>World</title></entry>
      </entries>
    </feed>"""
    file = FileData.from_bytes("feed.xml", "application/xml", document)
    assert list(run_block("xml.to_records", file, tmp_path, item="entry")) == [
        {"@id": "7", "title": {"@lang": "en", "#text": "Hello"}, "entry": "inner"},
        {"@id": "8", "title": "World"},
    ]


def test_xml_that_is_not_well_formed(tmp_path):
    file = FileData.from_bytes("bad.xml", "application/xml", b"<records><record><a>1</record></records>")
    with pytest.raises(BlockError, match="not well-formed"):
        list(run_block("xml.to_records", file, tmp_path))


@pytest.mark.parametrize(
    "name, content_type, content",
    [
        ("data.csv", "application/octet-stream", b"a,b\n1,2\n"),
        ("data.json", "application/octet-stream", b'[{"a": "1", "b": "2"}]'),
        ("data.jsonl", "application/octet-stream", b'{"a": "1", "b": "2"}\n'),
        ("download", "text/csv; charset=utf-8", b"a,b\n1,2\n"),
        ("download", "application/x-ndjson", b'{"a": "1", "b": "2"}\n'),
        ("download", "application/octet-stream", b'  [{"a": "1", "b": "2"}]'),
        ("download", "application/octet-stream", b"a,b\n1,2\n"),
    ],
)
def test_records_from_file_detects_the_format(tmp_path, name, content_type, content):
    file = FileData.from_bytes(name, content_type, content)
    assert list(run_block("records.from_file", file, tmp_path)) == [{"a": "1", "b": "2"}]


def test_records_from_file_with_an_explicit_format(tmp_path):
    file = FileData.from_bytes("data.txt", "text/plain", b'{"a": 1}\n{"a": 2}\n')
    assert list(run_block("records.from_file", file, tmp_path, format="jsonl")) == [{"a": 1}, {"a": 2}]
    with pytest.raises(BlockError, match="line 2"):
        bad = FileData.from_bytes("data.txt", "text/plain", b'{"a": 1}\n[1]\n')
        list(run_block("records.from_file", bad, tmp_path, format="jsonl"))


def test_a_cancelled_run_stops_a_long_loop(tmp_path):
    block_class = get_block("csv.from_records")
    context = BlockContext(
        merged_variables(block_class, {}), None, logging.getLogger("t"), FileSystemBlobStore(tmp_path), None,
        "r", 1, "wf", is_cancelled=lambda: True, temp_dir=tmp_path,
    )
    with pytest.raises(BlockCancelledError):
        block_class().run(context, Records({"n": n} for n in range(10)))


def test_temporary_output_files_are_removed_with_their_file_data(tmp_path):
    csv_file = run_block("csv.from_records", Records([{"a": 1}]), tmp_path)
    temp_files = list(tmp_path.glob("canvas-block-*"))
    assert len(temp_files) == 1
    del csv_file
    assert not temp_files[0].exists()


def test_text_encodings(tmp_path):
    latin = FileData.from_bytes("in.csv", "text/csv", "name\nJosé\n".encode("latin-1"))
    assert list(run_block("csv.to_records", latin, tmp_path, encoding="latin-1")) == [{"name": "José"}]
    with pytest.raises(BlockError, match="not valid utf-8"):
        list(run_block("csv.to_records", latin, tmp_path))
    with pytest.raises(BlockError, match="unknown text encoding"):
        list(run_block("csv.to_records", latin, tmp_path, encoding="klingon"))


def test_cancellable_checks_before_each_batch_and_keeps_every_item(tmp_path):
    checks = []
    context = BlockContext({}, None, logging.getLogger("t"), None, None, "r", 1, "wf",
                           is_cancelled=lambda: checks.append(1) or False)
    assert list(context.cancellable(range(25), every=10)) == list(range(25))
    assert len(checks) == 4  # before 0, 10, 20 and the (empty) rest
