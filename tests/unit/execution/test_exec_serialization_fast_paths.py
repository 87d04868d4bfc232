"""The fast paths of stored records (one C encoder for every record, one raw_decode per line) behave exactly like
json.dumps / json.loads would, including the unusual lines that leave the fast path."""
from __future__ import annotations

import io
import json

import pytest

from canvas.execution.context import BlockError
from canvas.execution.serialization import encode_record, iter_json_lines, json_default


def read(content: bytes) -> list[dict]:
    return list(iter_json_lines(lambda: io.BytesIO(content)))


@pytest.mark.parametrize("record", [
    {"id": 1, "name": "Zoë", "line\u2028break": "tab\there", "nested": {"list": [1, 2.5, None, True]}},
    {"nan": float("nan"), "big": 10**30, "empty": {}, "quote": "\"\\"},
], ids=["unicode and nesting", "edge numbers and escapes"])
def test_encoding_matches_json_dumps(record):
    expected = json.dumps(record, ensure_ascii=False, separators=(",", ":"), default=json_default)
    assert encode_record(record) == expected
    assert "\n" not in encode_record(record)  # one record, one line


def test_unusual_but_valid_lines_are_read_as_json_loads_reads_them():
    content = b'{"a":1}\n  {"b":2}  \n\n \t \n{"c":"x\xe2\x80\xa8y"}\r\n{"d":1}'
    assert read(content) == [{"a": 1}, {"b": 2}, {"c": "x\u2028y"}, {"d": 1}]


@pytest.mark.parametrize(("content", "message"), [
    (b'{"a":1}\n[1,2]\n', "line 2 is list, not a JSON object"),
    (b'{"a":1}\n{"a":1} {"b":2}\n', "line 2 is not valid JSON: Extra data"),
    (b'{"a":1}\n{"a":\n', "line 2 is not valid JSON"),
    (b'{"a":1}\n{"a":"\xff"}\n', "not valid UTF-8"),
], ids=["not an object", "two objects on a line", "cut short", "not UTF-8"])
def test_bad_lines_fail_with_a_clear_message(content, message):
    with pytest.raises(BlockError, match=message):
        read(content)


def test_json_native_records_are_stored_as_the_exact_encoder_would_store_them():
    from canvas.execution.data import Records
    from canvas.execution.serialization import write_records

    records = [{"id": 1, "name": "Zoë", "tags": ["a", None], "nested": {"ok": True, "n": 2.5}, "quote": "\"\\"},
               {"id": 2, "line\u2028break": "x"}]
    fast, exact = io.BytesIO(), io.BytesIO()
    assert write_records(Records(iter(records), json_native=True), fast) == 2
    write_records(Records(iter(records)), exact)
    assert fast.getvalue() == exact.getvalue()
    assert read(fast.getvalue()) == records


def test_json_native_records_still_refuse_what_is_not_an_object():
    from canvas.execution.data import Records
    from canvas.execution.serialization import write_records

    with pytest.raises(BlockError, match="record 1 is list"):
        write_records(Records([{"a": 1}, [1]], json_native=True), io.BytesIO())
