"""Records → XML file: <root><item><key>value</key>...</item>...</root>, streamed into a temporary file.

Nested objects become child elements, arrays become repeated elements of the same name (an array inside an array is
flattened), null and empty objects become empty elements, booleans are written true/false. Keys that are not valid
XML names are made valid: invalid characters become '_', and a name that cannot start an XML name gets a '_' first.
Characters XML 1.0 cannot carry (most control characters) are replaced by U+FFFD.
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, TextIO
from xml.sax.saxutils import escape

from canvas.execution.blocks._file_names import output_file_name_problem
from canvas.execution.blocks._formats import csv_cell, temp_output_path, with_extension
from canvas.execution.blocks.base import Block, VariableSpec, expect_records, register
from canvas.execution.context import BlockContext, BlockError
from canvas.execution.data import BlockData, FileData

XML_CONTENT_TYPE = "application/xml"
INDENT = "  "
_XML_NAME = re.compile(r"^[^\W\d][\w.\-]*$")  # an XML name without namespaces: letter or '_' first
_INVALID_NAME_CHARACTERS = re.compile(r"[^\w.\-]")
_INVALID_XML_CHARACTERS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


@register
class XmlFromRecords(Block):
    key = "xml.from_records"
    title = "Records to XML"
    description = "An XML document with one `item` element per record inside a `root` element."
    input_kind = "records"
    output_kind = "file"
    variables = {
        "root": VariableSpec("string", default="records", description="Name of the document element."),
        "item": VariableSpec("string", default="record", description="Name of the element of each record."),
        "filename": VariableSpec("string", default="records.xml", description="File name; '.xml' is appended.",
                                 text_check=output_file_name_problem),
    }

    def run(self, context: BlockContext, data: BlockData) -> FileData:
        records = context.cancellable(expect_records(data, self.key))
        root = _checked_name(context.variables.get("root") or "records", "root")
        item = _checked_name(context.variables.get("item") or "record", "item")
        name = with_extension(context.variables.get("filename") or "records.xml", ".xml")
        path = temp_output_path(context, ".xml")
        output = FileData.from_temp_path(name, XML_CONTENT_TYPE, path)
        with open(path, "w", encoding="utf-8") as out:
            count = write_document(out, root, item, records)
        context.logger.info("wrote %d records as XML", count)
        return output


def write_document(out: TextIO, root: str, item: str, records: Iterable[dict]) -> int:
    out.write(f'<?xml version="1.0" encoding="UTF-8"?>\n<{root}>')
    count = 0
    for count, record in enumerate(records, start=1):
        if not isinstance(record, dict):
            raise BlockError(f"record {count - 1} is {type(record).__name__}, not an object")
        _write_element(out, item, record, 1)
    out.write(f"\n</{root}>\n")
    return count


def _write_element(out: TextIO, name: str, value: Any, depth: int) -> None:
    if isinstance(value, (list, tuple)):
        for item in value:
            _write_element(out, name, item, depth)
        return
    tag = xml_name(name)
    indent = "\n" + INDENT * depth
    if value is None or value == {}:
        out.write(f"{indent}<{tag}/>")
    elif isinstance(value, dict):
        out.write(f"{indent}<{tag}>")
        for key, child in value.items():
            _write_element(out, key, child, depth + 1)
        out.write(f"{indent}</{tag}>")
    else:
        out.write(f"{indent}<{tag}>{escape(_xml_text(value))}</{tag}>")


def _xml_text(value: Any) -> str:
    return _INVALID_XML_CHARACTERS.sub("\ufffd", csv_cell(value))


def xml_name(key: Any) -> str:
    """`key` as a valid XML element name (see the module docstring)."""
    name = _INVALID_NAME_CHARACTERS.sub("_", str(key))
    return name if _XML_NAME.match(name) else f"_{name}"


def _checked_name(name: str, variable: str) -> str:
    if not _XML_NAME.match(name):
        raise BlockError(f"variable '{variable}' must be a valid XML element name, got {name!r}")
    return name
