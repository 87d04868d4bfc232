"""JSON file → records: a JSON array of objects, a single object, or objects one after the other (JSON lines); with
`itemsPath`, the items found at that path, e.g. the array of a {"data": [...]} envelope.

The file is parsed incrementally (ijson), so memory holds one record at a time and time grows linearly with the size.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator

from canvas.execution.blocks._formats import DEFAULT_ENCODING, iter_json_records
from canvas.execution.blocks.base import Block, VariableSpec, expect_file, register
from canvas.execution.context import BlockContext, BlockError
from canvas.execution.data import BlockData, Records


@register
class JsonToRecords(Block):
    key = "json.to_records"
    title = "JSON to records"
    description = (
        "Parses the file incrementally: memory holds one record at a time, however big the array, and time grows "
        "linearly with the size. NaN and Infinity, which are not JSON, are refused."
    )
    input_kind = "file"
    output_kind = "records"
    variables = {
        "encoding": VariableSpec("string", default=DEFAULT_ENCODING, description="Text encoding of the file."),
        "itemsPath": VariableSpec(
            "string",
            default="",
            description=(
                "Where the records are, as names joined by dots with `item` for the items of an array: `data.item` "
                "reads the array of {\"data\": [...]}, `item.rows.item` the rows of each object of an array. "
                "Empty: the file's top-level array, or its top-level objects."
            ),
        ),
    }

    def run(self, context: BlockContext, data: BlockData) -> Records:
        file = expect_file(data, self.key)
        encoding = context.variables.get("encoding") or DEFAULT_ENCODING
        items_path = _checked_items_path(context.variables.get("itemsPath"))
        records = iter_json_records(file, encoding, items_path)
        if items_path:
            records = _warn_when_empty(records, context, items_path)
        # Parsed JSON holds JSON types only: storing the records may take the fast encoder.
        return Records(context.cancellable(records), json_native=True)


def _checked_items_path(value: object) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise BlockError("variable 'itemsPath' must be a string such as data.item")
    return value.strip()


def _warn_when_empty(records: Iterable[dict], context: BlockContext, items_path: str) -> Iterator[dict]:
    """A path that matches nothing gives no records, as an empty array does: say so, a typo is the likelier cause."""
    iterator = iter(records)
    first = next(iterator, None)
    if first is None:
        context.logger.warning("itemsPath %r found no records: is the path right (names joined by dots, `item` for "
                               "the items of an array)?", items_path)
        return
    yield first
    yield from iterator
