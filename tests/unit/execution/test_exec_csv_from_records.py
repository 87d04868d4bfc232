"""csv.from_records: encodings and byte order marks (Excel and Nordic letters), quoting styles, and clear errors for
what an encoding or a quoting style cannot write."""
from __future__ import annotations

import logging
from pathlib import Path

import pytest

from canvas.execution.blocks.base import merged_variables
from canvas.execution.blocks.csv_from_records import BATCH_SIZE
from canvas.execution.context import BlockContext, BlockError
from canvas.execution.data import FileData, Records
from canvas.execution.registry import get_block

NORDIC = [
    {"navn": "Blåbærsyltetøy", "by": "ÆRØSKØBING", "antall": 1},
    {"navn": "Ørjan Ås", "by": "Tromsø", "antall": 2.5},
]
NORDIC_TEXT = "navn,by,antall\r\nBlåbærsyltetøy,ÆRØSKØBING,1\r\nØrjan Ås,Tromsø,2.5\r\n"
NORDIC_AS_READ = [  # what csv.to_records gives back: every value is text
    {"navn": "Blåbærsyltetøy", "by": "ÆRØSKØBING", "antall": "1"},
    {"navn": "Ørjan Ås", "by": "Tromsø", "antall": "2.5"},
]
VARYING = [{"a": 1, "b": "x"}, {"a": 2.5, "b": None, "c": True}, {"c": 'say "hi"'}]  # "c" appears late: widening


def run_block(key: str, data: object, tmp_path: Path, **variables) -> object:
    block_class = get_block(key)
    context = BlockContext(merged_variables(block_class, variables), None, logging.getLogger(f"test.{key}"), None,
                           None, "run-1", 1, "test", temp_dir=tmp_path)
    return block_class().run(context, data)


def csv_bytes(records: list[dict], tmp_path: Path, **variables) -> bytes:
    return run_block("csv.from_records", Records(iter(records)), tmp_path, **variables).read_bytes()


def read_back(content: bytes, tmp_path: Path, **variables) -> list[dict]:
    file = FileData.from_bytes("in.csv", "text/csv", content)
    return list(run_block("csv.to_records", file, tmp_path, **variables))


def test_utf8_without_a_byte_order_mark_by_default(tmp_path):
    assert csv_bytes(NORDIC, tmp_path) == NORDIC_TEXT.encode("utf-8")


def test_utf8_with_a_byte_order_mark_for_excel_round_trips(tmp_path):
    content = csv_bytes(NORDIC, tmp_path, bom=True)
    assert content == b"\xef\xbb\xbf" + NORDIC_TEXT.encode("utf-8")
    assert read_back(content, tmp_path) == NORDIC_AS_READ  # csv.to_records drops the mark


@pytest.mark.parametrize("encoding", ["cp1252", "latin-1"])
def test_nordic_letters_in_single_byte_encodings_round_trip(tmp_path, encoding):
    content = csv_bytes(NORDIC, tmp_path, encoding=encoding)
    assert content == NORDIC_TEXT.encode(encoding)
    assert b"\xe6\xf8\xe5" in csv_bytes([{"x": "æøå"}], tmp_path, encoding=encoding)
    assert b"\xc6\xd8\xc5" in csv_bytes([{"x": "ÆØÅ"}], tmp_path, encoding=encoding)
    assert read_back(content, tmp_path, encoding=encoding) == NORDIC_AS_READ


def test_utf16_byte_order_marks(tmp_path):
    # "utf-16" writes its own mark whatever bom says; "utf-16-le" writes one only when asked.
    assert csv_bytes([{"å": 1}], tmp_path, encoding="utf-16") == "å\r\n1\r\n".encode("utf-16")  # mark included
    assert csv_bytes([{"å": 1}], tmp_path, encoding="utf-16-le") == "å\r\n1\r\n".encode("utf-16-le")
    assert csv_bytes([{"å": 1}], tmp_path, encoding="utf-16-le", bom=True) == "\ufeffå\r\n1\r\n".encode("utf-16-le")


@pytest.mark.parametrize(
    "quoting, expected",
    [
        ("minimal", 'a,b,c\r\n1,x,\r\n2.5,,true\r\n,,"say ""hi"""\r\n'),
        ("all", '"a","b","c"\r\n"1","x",""\r\n"2.5","","true"\r\n"","","say ""hi"""\r\n'),
        ("nonnumeric", '"a","b","c"\r\n1,"x",""\r\n2.5,"","true"\r\n"","","say ""hi"""\r\n'),
    ],
)
def test_quoting_styles_also_when_later_columns_widen_the_table(tmp_path, quoting, expected):
    assert csv_bytes(VARYING, tmp_path, quoting=quoting).decode() == expected


def test_quoting_none_writes_plain_cells(tmp_path):
    records = [{"a": 1, "b": "x"}, {"a": 2.5, "b": None, "c": "late"}]
    assert csv_bytes(records, tmp_path, quoting="none") == b"a,b,c\r\n1,x,\r\n2.5,,late\r\n"


def test_widening_keeps_the_byte_order_mark_and_line_breaks_inside_cells(tmp_path):
    records = [{"a": "x"}, {"a": "y", "b": 'two\r\nlines, "quoted"'}, {"c": "å"}]
    expected = 'x,,\r\ny,"two\r\nlines, ""quoted""",\r\n,,å\r\n'
    assert csv_bytes(records, tmp_path, bom=True) == b"\xef\xbb\xbf" + ("a,b,c\r\n" + expected).encode()
    assert csv_bytes(records, tmp_path, bom=True, header=False) == b"\xef\xbb\xbf" + expected.encode()
    assert csv_bytes(records, tmp_path, encoding="utf-16") == ("a,b,c\r\n" + expected).encode("utf-16")


@pytest.mark.parametrize(
    "records, variables, message",
    [
        (NORDIC + [{"navn": "Smile 😀", "by": "Oslo"}], {"encoding": "latin-1"},
         "record 3, column 'navn': '😀' cannot be written in latin-1"),
        ([{"navn 😀": "x"}], {"encoding": "cp1252"}, "column name 'navn 😀' cannot be written: '😀' cannot be written in cp1252"),
        ([{"a": "\ud800"}], {}, "record 1, column 'a': '\\ud800' cannot be written in utf-8"),  # a lone surrogate
        ([{"a": 1, "b": "x"}, {"a": 2, "b": "x,y"}], {"quoting": "none"},
         ("record 2, column 'b': it needs quotes, which quoting 'none' does not write "
          "(need to escape, but no escapechar set)")),
        ([{"a": "x"}, {"a": None}], {"quoting": "none"},
         "record 2: it needs quotes, which quoting 'none' does not write (single empty field record must be quoted)"),
        (NORDIC, {"encoding": "klingon"}, "unknown text encoding 'klingon'"),
        (NORDIC, {"encoding": "rot13"}, "unknown text encoding 'rot13'"),  # a codec, but not a text encoding
        (NORDIC, {"encoding": "latin-1", "bom": True}, "encoding 'latin-1' has no byte order mark: set bom to false"),
        (NORDIC, {"encoding": "latin-1", "delimiter": "€"}, "the delimiter '€' cannot be written in latin-1"),
        (NORDIC, {"quoting": "sometimes"}, "variable 'quoting' must be one of minimal, all, nonnumeric, none"),
    ],
)
def test_what_cannot_be_written_fails_clearly(tmp_path, records, variables, message):
    with pytest.raises(BlockError) as raised:
        csv_bytes(records, tmp_path, **variables)
    assert str(raised.value) == message


def test_the_record_that_cannot_be_written_is_named_across_batches(tmp_path):
    records = [{"n": index, "text": "plain"} for index in range(1, 2 * BATCH_SIZE + 501)]
    records[2 * BATCH_SIZE + 99]["text"] = "Ørjan 🎿"  # record 2100: in the third batch
    with pytest.raises(BlockError, match=r"^record 2100, column 'text': '🎿' cannot be written in cp1252$"):
        csv_bytes(records, tmp_path, encoding="cp1252")


def test_filehub_write_csv_takes_the_same_text_variables():
    assert {"encoding", "bom", "quoting"} <= set(get_block("filehub.write_csv").variables)
