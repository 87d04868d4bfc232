"""XML file → records: each `item` element becomes a record, parsed incrementally (iterparse) and cleared once
read, so memory holds one record at a time whatever the size of the document.

Child elements become keys (namespace prefixes dropped); a child with children or attributes becomes a nested
object; repeated children become an array; attributes become "@name" keys and the text of an element that also has
children or attributes goes under "#text". Values are text, as XML has no types; empty elements give "".
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from xml.etree import ElementTree

from canvas.execution.blocks.base import Block, VariableSpec, expect_file, register
from canvas.execution.context import BlockContext, BlockError
from canvas.execution.data import BlockData, FileData, Records


@register
class XmlToRecords(Block):
    key = "xml.to_records"
    title = "XML to records"
    description = "One record per `item` element, wherever it sits in the document."
    input_kind = "file"
    output_kind = "records"
    variables = {
        "item": VariableSpec("string", default="record", description="Name of the element that holds one record."),
    }

    def run(self, context: BlockContext, data: BlockData) -> Records:
        file = expect_file(data, self.key)
        item = context.variables.get("item") or "record"
        return Records(context.cancellable(iter_xml_records(file, item)))


def iter_xml_records(file: FileData, item: str) -> Iterator[dict]:
    with file.open() as stream:
        try:
            yield from _records(ElementTree.iterparse(stream, events=("start", "end")), item)
        except ElementTree.ParseError as error:
            raise BlockError(f"the XML is not well-formed: {error}") from None


def _records(events, item: str) -> Iterator[dict]:
    open_elements: list[ElementTree.Element] = []
    item_depth = None  # depth of the item element being read; items nested inside it are plain children
    for event, element in events:
        if event == "start":
            open_elements.append(element)
            if item_depth is None and local_name(element.tag) == item:
                item_depth = len(open_elements)
            continue
        depth = len(open_elements)
        open_elements.pop()
        if item_depth == depth:
            yield element_record(element)
            item_depth = None
        if item_depth is None:  # done with it (an item, or content outside any item): free it
            element.clear()
            if open_elements:
                open_elements[-1].remove(element)


def element_record(element: ElementTree.Element) -> dict:
    record: dict[str, Any] = {f"@{local_name(name)}": value for name, value in element.attrib.items()}
    for child in element:
        name, value = local_name(child.tag), element_value(child)
        if name not in record:
            record[name] = value
        elif isinstance(record[name], list):
            record[name].append(value)
        else:
            record[name] = [record[name], value]  # element values are never lists, so a list means "repeated"
    text = (element.text or "").strip()
    if text:
        record["#text"] = text
    return record


def element_value(element: ElementTree.Element) -> Any:
    if len(element) or element.attrib:
        return element_record(element)
    return element.text or ""


def local_name(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]  # "{namespace}name" → "name"
