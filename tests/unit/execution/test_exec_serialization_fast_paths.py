"""The fast paths of stored records (one C encoder for every record, one raw_decode per line) behave exactly like
json.dumps / json.loads would, including the unusual lines that leave the fast path."""
from __future__ import annotations

import io
import json

import pytest

from canvas.execution.context import BlockError
from canvas.execution.serialization import decode_json_document, encode_record, iter_json_lines, json_default


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


@pytest.mark.parametrize("content", [
    b'[{"id": 1, "name": "Zo\xc3\xab", "rate": 150.1, "big": 123456789012345678901234567890}, null, true]',
    b'{"a": 1, "a": 2, "nested": {"deep": [[], {}, -0.0, 1e308, 5e-324]}}',
    b'  {"nan": NaN, "inf": -Infinity}  ',  # not JSON, but json has always taken it: msgspec refuses, json reads it
    '{"utf16": "\u00e9"}'.encode("utf-16"),  # json detects UTF-16/32; msgspec only reads UTF-8
], ids=["values", "duplicate keys and numbers", "NaN literals", "UTF-16"])
def test_api_answers_decode_exactly_as_json_loads_decodes_them(content):
    expected, decoded = json.loads(content), decode_json_document(content)
    assert json.dumps(decoded, sort_keys=True) == json.dumps(expected, sort_keys=True)
    assert type(decoded) is type(expected)


@pytest.mark.parametrize("content", [b'{"a": 1', b'[1, 2] [3]', b'{"a": "\xff"}'],
                         ids=["cut short", "two documents", "bad UTF-8"])
def test_malformed_api_answers_fail_with_json_s_own_words(content):
    with pytest.raises(ValueError) as expected:
        json.loads(content)
    with pytest.raises(ValueError) as raised:
        decode_json_document(content)
    assert str(raised.value) == str(expected.value)
