"""json.to_records parses incrementally (ijson): the shapes it always read, `itemsPath` envelopes, numbers as json.loads
gives them, errors that name their position, and memory that stays flat on a big input."""
from __future__ import annotations

import io
import json
import logging
import tracemalloc
from pathlib import Path

import pytest

from canvas.execution.blocks._formats import JSON_BACKEND, iter_json_records
from canvas.execution.blocks.base import merged_variables
from canvas.execution.context import BlockContext, BlockError
from canvas.execution.data import FileData, Records
from canvas.execution.registry import get_block


def to_records(content: bytes, tmp_path: Path, **variables) -> list[dict]:
    return list(run_json_to_records(json_file(content), tmp_path, **variables))


def run_json_to_records(file: FileData, tmp_path: Path, **variables) -> Records:
    block_class = get_block("json.to_records")
    context = BlockContext(merged_variables(block_class, variables), None, logging.getLogger("test.json"), None,
                           None, "run-1", 1, "test", temp_dir=tmp_path)
    return block_class().run(context, file)


def json_file(content: bytes) -> FileData:
    return FileData.from_bytes("in.json", "application/json", content)


def test_the_c_parser_is_the_one_in_use():
    assert JSON_BACKEND.backend_name == "yajl2_c"  # ijson's wheels ship it; the Python one is a slow fallback


@pytest.mark.parametrize(
    "content, expected",
    [
        (b'[{"a": 1}, {"b": [1, {"c": null}]}]', [{"a": 1}, {"b": [1, {"c": None}]}]),
        (b'{"only": true}', [{"only": True}]),
        (b'{"a": 1}\n{"a": 2}\n\n{"a": 3}\n', [{"a": 1}, {"a": 2}, {"a": 3}]),  # JSON lines
        (b'{"a": 1}{"a": 2} {"a": 3}', [{"a": 1}, {"a": 2}, {"a": 3}]),  # concatenated
        (b"\xef\xbb\xbf  [ ]  ", []),  # a byte order mark, whitespace, an empty array
        (b"", []),
        (b" \r\n\t", []),
        ('[{"navn": "Blåbærsyltetøy", "by": "ÆRØ"}]'.encode(), [{"navn": "Blåbærsyltetøy", "by": "ÆRØ"}]),
    ],
)
def test_the_shapes_it_always_read(tmp_path, content, expected):
    assert to_records(content, tmp_path) == expected


def test_numbers_are_what_json_loads_gives():
    content = (b'[{"int": 7, "neg": -3, "float": 1.5, "exp": 1e10, "one": 1.0, "minus_zero": -0.0, "tiny": 5e-324,'
               b' "big": 123456789012345678901234567890, "huge": 1e400, "u64": 18446744073709551615}]')
    records = list(iter_json_records(json_file(content)))
    expected = json.loads(content)
    assert records == expected
    assert [type(value) for value in records[0].values()] == [type(value) for value in expected[0].values()]
    assert repr(records[0]["minus_zero"]) == "-0.0"


def test_a_number_beyond_64_bits_late_in_the_file_keeps_every_record_once():
    # The fast parse gives up at the big number; the exact one starts again after the records already given.
    items = [{"n": index, "x": index / 4} for index in range(30_000)]
    content = json.dumps(items + [{"n": 2**64}] + items[:3]).encode()
    assert list(iter_json_records(json_file(content))) == items + [{"n": 2**64}] + items[:3]


def test_records_are_json_native(tmp_path):
    assert run_json_to_records(json_file(b"[]"), tmp_path).json_native is True


@pytest.mark.parametrize(
    "content, items_path, expected",
    [
        (b'{"data": [{"a": 1}, {"a": 2}], "meta": {"next": null}}', "data.item", [{"a": 1}, {"a": 2}]),
        (b'{"meta": {"page": 1}, "result": {"rows": [{"a": 1}]}}', " result.rows.item ", [{"a": 1}]),
        (b'[{"rows": [{"a": 1}]}, {"rows": [{"a": 2}, {"a": 3}]}]', "item.rows.item", [{"a": 1}, {"a": 2}, {"a": 3}]),
        (b'{"data": [{"a": 1}]}\n{"data": [{"a": 2}]}\n', "data.item", [{"a": 1}, {"a": 2}]),  # JSON lines of pages
        (b'{"data": {"a": 1}}', "data", [{"a": 1}]),
        (b'{"data": []}', "data.item", []),
    ],
)
def test_items_path_unwraps_envelopes(tmp_path, content, items_path, expected):
    assert to_records(content, tmp_path, itemsPath=items_path) == expected


def test_an_items_path_that_finds_nothing_says_so_in_the_log(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="test.json"):
        assert to_records(b'{"results": [{"a": 1}]}', tmp_path, itemsPath="data.item") == []
    assert "itemsPath 'data.item' found no records" in caplog.text


@pytest.mark.parametrize(
    "content, message",
    [
        (b'[{"a": 1}, 2]', "item 1 is int, not an object"),
        (b'{"a": 1}\n[1]\n', "value 1 is list, not an object"),
        (b'[{"a": 1} {"a": 2}]',
         "invalid JSON at byte 11: after array element, I expect ',' or ']', near '[{\"a\": 1} {\"a\": 2}]'"),
        (b'[{"a": 1}, {"a": }]',
         "invalid JSON at byte 18: unallowed token at this point in JSON text, near '[{\"a\": 1}, {\"a\": }]'"),
        (b'[{"a": 1}', "invalid JSON at byte 9: the text ends inside a value (is the file cut short?)"),
        (b'[{"a": 1}] extra', "invalid JSON at byte 12: unexpected text after the JSON value, near '[{\"a\": 1}] extra'"),
        (b'[{"a": 1}]\n[{"a": 2}]',
         "invalid JSON at byte 12: unexpected text after the JSON value, near '[{\"a\": 1}] [{\"a\": 2}]'"),
        (b'{"a": 1}\n{"a" 2}',
         ("invalid JSON at byte 15: object key and value must be separated by a colon (':'), "
          "near '{\"a\": 1} {\"a\" 2}'")),
        (b'[{"a": NaN}]',
         ("invalid JSON at byte 8: invalid char in json text, near '[{\"a\": NaN}]' "
          "(NaN and Infinity are not JSON numbers: write null, or the value as text)")),
        (b'[{"a": "caf\xe9"}]', "JSON is not valid utf-8-sig: invalid bytes near byte 13"),  # é is byte 12
    ],
)
def test_errors_name_the_item_or_the_position(tmp_path, content, message):
    with pytest.raises(BlockError) as raised:
        to_records(content, tmp_path)
    assert str(raised.value) == message


def test_an_error_far_into_the_file_names_its_byte(tmp_path):
    good = json.dumps([{"id": index, "text": "æ" * (index % 40)} for index in range(5000)], ensure_ascii=False)
    good = good.encode()
    content = good[:-1] + b', {"id": tru}]'  # beyond the first few 64 KiB reads
    position = content.index(b"tru}") + len(b"tru")  # counted from 1: yajl stops at the end of the bad literal
    with pytest.raises(BlockError, match=rf"^invalid JSON at byte {position}: invalid string in json text, near '.*"
                                         r"\{\"id\": tru\}\]'$"):
        to_records(content, tmp_path)


def test_other_encodings_are_decoded_and_positions_count_characters(tmp_path):
    nordic = '[{"navn": "Ærø", "by": "Tromsø"}]'
    assert to_records(nordic.encode("latin-1"), tmp_path, encoding="latin-1") == [{"navn": "Ærø", "by": "Tromsø"}]
    assert to_records(nordic.encode("utf-16"), tmp_path, encoding="utf-16") == [{"navn": "Ærø", "by": "Tromsø"}]
    with pytest.raises(BlockError, match=r"^invalid JSON at character 23: unallowed token"):
        to_records('[{"navn": "Ærø", "x": }]'.encode("cp1252"), tmp_path, encoding="cp1252")
    with pytest.raises(BlockError, match=r"^JSON is not valid ascii: ordinal not in range\(128\)$"):
        to_records('[{"navn": "Ærø"}]'.encode("latin-1"), tmp_path, encoding="ascii")
    with pytest.raises(BlockError, match="^unknown text encoding 'klingon'$"):
        to_records(b"[]", tmp_path, encoding="klingon")


class GeneratedEnvelope(io.RawIOBase):
    """{"data": [ {...}, ... ], "meta": {...}} made as it is read: the input itself never sits in memory."""

    def __init__(self, count: int):
        self.parts = self._parts(count)
        self.pending = b""
        self.bytes_read = 0

    @staticmethod
    def _parts(count: int, per_part: int = 1000):
        yield b'{"data": ['
        for start in range(0, count, per_part):
            indexes = range(start, min(start + per_part, count))
            yield (b"," if start else b"") + b",".join(
                b'{"id": %d, "name": "record %d", "score": %d.25}' % (index, index, index) for index in indexes)
        yield b'], "meta": {"count": %d}}' % count

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:
        while len(self.pending) < len(buffer):
            part = next(self.parts, None)
            if part is None:
                break
            self.pending += part
        size = min(len(buffer), len(self.pending))
        buffer[:size], self.pending = self.pending[:size], self.pending[size:]
        self.bytes_read += size
        return size


def test_a_big_envelope_is_streamed_record_by_record(tmp_path):
    count = 100_000  # about 5 MB of JSON
    stream = GeneratedEnvelope(count)
    file = FileData("big.json", "application/json", lambda: stream)
    records = iter(run_json_to_records(file, tmp_path, itemsPath="data.item"))
    assert next(records) == {"id": 0, "name": "record 0", "score": 0.25}
    assert stream.bytes_read <= 128 * 1024  # the first record came after a read or two, not the whole value
    tracemalloc.start()
    try:
        seen = 1
        for seen, record in enumerate(records, start=2):
            assert record["id"] == seen - 1
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert seen == count
    assert stream.bytes_read > 5_000_000
    assert peak < 2_000_000  # records are not kept: a list of them would take over 30 MB
