"""The one JSON decoder of request documents, and the one check of request text.

Every request document is decoded here (the before-request body check, flask's `request.get_json`, JSON carried in
string fields), so every dialect refuses the same things the same way:
- nesting deeper than MAX_JSON_NESTING, found by one scan of the text, so that nothing recurses on a hostile body;
- NUL characters (PostgreSQL text cannot hold them) and lone surrogates (no UTF-8 database can store them), in
  values and in property names, reported with the path of the first one.
"""
from __future__ import annotations

import json
import re
from typing import Any

from canvas.defaults import MAX_JSON_NESTING

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
# Strings (closed or not) and runs of other characters: what is left are the brackets that nest.
_NOT_NESTING = re.compile(r'"(?:[^"\\]+|\\.)*"?|[^\[\]{}"]+', re.DOTALL)


class JsonInputError(ValueError):
    """A request value that is refused; `path` names where it is (property names and list positions)."""

    def __init__(self, message: str, path: tuple = ()):
        super().__init__(message)
        self.message = message
        self.path = path

    @property
    def where(self) -> str:
        return ".".join(str(part) for part in self.path)


def decode_json(raw: bytes | str) -> Any:
    """The document in `raw`; JsonInputError if it is nested too deeply or holds text no database can store,
    ValueError (UnicodeDecodeError included) if it is no JSON at all."""
    text = raw.decode(json.detect_encoding(raw)) if isinstance(raw, (bytes, bytearray)) else raw
    check_nesting(text)
    document = json.loads(text)
    check_document_text(document)
    return document


def check_nesting(text: str, what: str = "Request body") -> None:
    """Refuse a document nested deeper than MAX_JSON_NESTING, counting brackets outside strings, without recursion."""
    depth = 0
    for bracket in _NOT_NESTING.sub("", text):
        depth += 1 if bracket in "[{" else -1
        if depth > MAX_JSON_NESTING:
            raise JsonInputError(f"{what} is nested too deeply (more than {MAX_JSON_NESTING} levels)")


def check_document_text(document: Any) -> None:
    """Refuse the first string (value or property name) holding a NUL or a lone surrogate, naming its path."""
    pending: list[tuple[tuple, Any]] = [((), document)]
    while pending:
        path, value = pending.pop()
        if isinstance(value, str):
            check_text(value, path)
        elif isinstance(value, dict):
            for key, item in value.items():
                check_text(key, path, property_name=True)
                pending.append(((*path, key), item))
        elif isinstance(value, list):
            pending.extend(((*path, index), item) for index, item in enumerate(value))


def check_text(value: str, path: tuple = (), *, property_name: bool = False) -> None:
    found = _UNSTORABLE.search(value)
    if found is None:
        return
    what = "a property name" if property_name else "text"
    if found.group() == "\x00":
        raise JsonInputError(f"{what} must not contain NUL characters (\\u0000)", path)
    raise JsonInputError(f"{what} must not contain a lone surrogate (\\u{ord(found.group()):04x}); "
                         "send characters outside the BMP as a surrogate pair", path)
