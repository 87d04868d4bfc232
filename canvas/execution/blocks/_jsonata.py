"""JSONata through jsonata-python: compile once per block run, evaluate per record, and turn the library's
exceptions into BlockErrors that say what went wrong and where."""
from __future__ import annotations

import re
from typing import Any

import jsonata
from jsonata.functions import Functions
from jsonata.jexception import JException

from canvas.execution.context import BlockError
from canvas.execution.serialization import to_jsonable

_NUMBER_CAST = re.compile(r"could not convert string to float: (.*)")


def compile_expression(text: Any, variable: str) -> jsonata.Jsonata:
    if not isinstance(text, str) or not text.strip():
        raise BlockError(f"variable '{variable}' must be a non-empty JSONata expression")
    try:
        return jsonata.Jsonata(text)
    except Exception as error:  # the library raises JException, but also plain Python errors on odd input
        raise BlockError(f"variable '{variable}' is not a valid JSONata expression: {_describe(error)}") from None


def jsonata_problem(text: str) -> str | None:
    """Why `text` is no JSONata expression, or None: a variable's ``text_check``, so that a typo is refused when the
    workflow is written instead of failing its runs."""
    if not text.strip():
        return "must be a non-empty JSONata expression"
    try:
        jsonata.Jsonata(text)
    except Exception as error:  # as in compile_expression
        return f"is not a valid JSONata expression: {_describe(error)}"
    return None


def evaluate(expression: jsonata.Jsonata, value: Any, where: str) -> Any:
    """The expression's result over `value` (made JSON-only first: the library refuses dates, decimals...)."""
    try:
        return expression.evaluate(to_jsonable(value))
    except Exception as error:
        raise BlockError(f"JSONata failed on {where}: {_describe(error)}") from None


def is_truthy(result: Any) -> bool:
    """JSONata's own boolean casting ($boolean): "", 0, [], {} and undefined are false."""
    return bool(Functions.to_boolean(result))


def result_records(result: Any) -> list[dict]:
    """A result as records: an array gives one per item, null/undefined none, a non-object {"value": v}."""
    if result is None:
        return []
    items = result if isinstance(result, list) else [result]
    return [item if isinstance(item, dict) else {"value": item} for item in items if item is not None]


def _describe(error: Exception) -> str:
    """The library's own message (JException: JSONata's wording); a plain Python error escaping from the library
    is told in JSONata's terms instead of Python's ("could not convert string to float")."""
    if isinstance(error, JException):
        return str(error) or "JSONata error"
    cast = _NUMBER_CAST.fullmatch(str(error))
    if cast:
        return f"unable to cast {cast.group(1)} to a number"
    return "a function or operator was given a value it cannot take"
