"""Variable placeholders: `{date:<.NET format>}`, `{workflowName}`, `{runId}`, `{blockNumber}`.

Braces follow .NET composite formatting: every `{...}` is a placeholder and `{{` / `}}` stand for literal braces, so
a lone brace is an error. That is stricter than leaving unknown text alone, on purpose: errors surface when a
workflow is instantiated (find_placeholder_errors), not at 3 a.m. in a scheduled run. Variables that hold brace
syntax of their own (JSONata expressions) opt out through VariableSpec(placeholders=False).

Only string values are resolved, inside nested lists and dicts; dict keys are names and stay as they are.
"""
from __future__ import annotations

import difflib
import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

KNOWN_PLACEHOLDERS = ("date", "workflowName", "runId", "blockNumber")
BRACE_HINT = "write '{{' and '}}' for literal braces"


class PlaceholderError(ValueError):
    """A value holds a placeholder that cannot be resolved; the message says which and why."""


@dataclass
class PlaceholderValues:
    now: datetime  # aware, already in the workflow's time zone
    workflow_name: str
    run_id: str
    block_number: int


@dataclass(frozen=True)
class _Placeholder:
    name: str
    argument: str | None  # the text after ':' (the date format), None without ':'
    source: str  # as written, braces included, for messages


def resolve_placeholders(value: Any, values: PlaceholderValues) -> Any:
    """A deep copy of `value` with every placeholder in every string resolved; PlaceholderError on a bad one."""
    return _map_strings(value, lambda text: _resolve_text(text, values))


def find_placeholder_errors(value: Any) -> list[str]:
    """Every placeholder problem in the strings of `value`; a message is prefixed with its path when nested."""
    errors: list[str] = []
    _collect_errors(value, "", errors)
    return errors


def _collect_errors(value: Any, path: str, errors: list[str]) -> None:
    if isinstance(value, str):
        errors.extend(f"{path}: {message}" if path else message for message in _text_errors(value))
    elif isinstance(value, dict):
        for key, item in value.items():
            _collect_errors(item, f"{path}.{key}" if path else str(key), errors)
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            _collect_errors(item, f"{path}[{index}]", errors)


def _text_errors(text: str) -> list[str]:
    try:
        parts = _parse_template(text)
    except PlaceholderError as error:
        return [str(error)]
    errors = []
    for part in parts:
        if isinstance(part, _Placeholder):
            try:
                _check_placeholder(part)
            except PlaceholderError as error:
                errors.append(str(error))
    return errors


def _map_strings(value: Any, resolve_text: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return resolve_text(value)
    if isinstance(value, dict):
        return {key: _map_strings(item, resolve_text) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_map_strings(item, resolve_text) for item in value]
    return value


def _resolve_text(text: str, values: PlaceholderValues) -> str:
    if "{" not in text and "}" not in text:
        return text  # the common case: nothing to parse
    pieces = []
    for part in _parse_template(text):
        pieces.append(_render(part, values) if isinstance(part, _Placeholder) else part)
    return "".join(pieces)


def _render(placeholder: _Placeholder, values: PlaceholderValues) -> str:
    _check_placeholder(placeholder)
    if placeholder.name == "date":
        return format_date(values.now, compile_date_format(placeholder.argument))
    simple = {"workflowName": values.workflow_name, "runId": values.run_id, "blockNumber": values.block_number}
    return str(simple[placeholder.name])


def _check_placeholder(placeholder: _Placeholder) -> None:
    name, argument = placeholder.name, placeholder.argument
    if name not in KNOWN_PLACEHOLDERS:
        raise PlaceholderError(_unknown_message(placeholder))
    if name != "date":
        if argument is not None:
            raise PlaceholderError(f"{placeholder.source}: {{{name}}} takes no format")
        return
    if not argument:
        raise PlaceholderError(f"{placeholder.source}: a date needs a format, e.g. {{date:yyyy-MM-dd}}")
    try:
        compile_date_format(argument)
    except DateFormatError as error:
        raise PlaceholderError(f"{placeholder.source}: {error}") from None


def _unknown_message(placeholder: _Placeholder) -> str:
    message = f"unknown placeholder {placeholder.source}"
    by_case = {known.lower(): known for known in KNOWN_PLACEHOLDERS}
    close = by_case.get(placeholder.name.lower()) or next(
        iter(difflib.get_close_matches(placeholder.name, KNOWN_PLACEHOLDERS, n=1)), None
    )
    if close:
        return f"{message} (did you mean {{{close}}}?)"
    known = ", ".join(f"{{{name}}}" for name in KNOWN_PLACEHOLDERS)
    return f"{message} (known placeholders: {known}; {BRACE_HINT})"


def _parse_template(text: str) -> list[str | _Placeholder]:
    """Literal text and placeholders, in order; PlaceholderError for unbalanced braces."""
    parts: list[str | _Placeholder] = []
    literal: list[str] = []
    index = 0
    while index < len(text):
        char = text[index]
        if char in "{}" and text.startswith(char * 2, index):
            literal.append(char)
            index += 2
        elif char == "}":
            raise PlaceholderError(f"unmatched '}}' at position {index}; {BRACE_HINT}")
        elif char == "{":
            end = _placeholder_end(text, index)
            parts.append("".join(literal))
            literal = []
            parts.append(_make_placeholder(text[index : end + 1]))
            index = end + 1
        else:
            literal.append(char)
            index += 1
    parts.append("".join(literal))
    return [part for part in parts if part != ""]


def _placeholder_end(text: str, start: int) -> int:
    """Index of the '}' closing the placeholder opened at `start`. Inside a format (after ':') quoted text and
    backslash escapes may hold a '}', as in {date:'{'yyyy'}'}."""
    in_format, quote, index = False, None, start + 1
    while index < len(text):
        char = text[index]
        if quote:
            quote = None if char == quote else quote
            index += 2 if char == "\\" else 1
            continue
        if char == "}":
            return index
        if char == ":":
            in_format = True
        elif in_format and char in "'\"":
            quote = char
        elif in_format and char == "\\":
            index += 1
        index += 1
    unclosed_quote = f" (the quote {quote} in the format is not closed)" if quote else ""
    raise PlaceholderError(f"unclosed '{{' at position {start}{unclosed_quote}; {BRACE_HINT}")


def _make_placeholder(source: str) -> _Placeholder:
    body = source[1:-1]
    name, colon, argument = body.partition(":")
    return _Placeholder(name, argument if colon else None, source)


# --- .NET custom date and time format strings (invariant culture) -------------------------------------------------

DATE_TOKEN_LETTERS = "dfFghHKmMstyz"
MAX_FRACTION_DIGITS = 7
DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MONTH_NAMES = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
               "November", "December")
# A format of one character is a .NET *standard* format; these are the invariant culture's patterns.
STANDARD_FORMATS = {
    "d": "MM/dd/yyyy", "D": "dddd, dd MMMM yyyy", "f": "dddd, dd MMMM yyyy HH:mm",
    "F": "dddd, dd MMMM yyyy HH:mm:ss", "g": "MM/dd/yyyy HH:mm", "G": "MM/dd/yyyy HH:mm:ss", "m": "MMMM dd",
    "M": "MMMM dd", "o": "yyyy'-'MM'-'dd'T'HH':'mm':'ss'.'fffffffK", "O": "yyyy'-'MM'-'dd'T'HH':'mm':'ss'.'fffffffK",
    "r": "ddd, dd MMM yyyy HH':'mm':'ss 'GMT'", "R": "ddd, dd MMM yyyy HH':'mm':'ss 'GMT'",
    "s": "yyyy'-'MM'-'dd'T'HH':'mm':'ss", "t": "HH:mm", "T": "HH:mm:ss", "u": "yyyy'-'MM'-'dd HH':'mm':'ss'Z'",
    "U": "dddd, dd MMMM yyyy HH:mm:ss", "y": "yyyy MMMM", "Y": "yyyy MMMM",
}
UTC_STANDARD_FORMATS = "rRuU"  # .NET converts to UTC first for these
# Letters people carry over from other date dialects, with the .NET token they most likely meant.
TOKEN_HINTS = {"Y": "y", "D": "d", "S": "s", "a": "tt", "A": "tt", "N": "m"}


class DateFormatError(ValueError):
    """A date format string .NET would reject, or would print in a way nobody means (a stray letter)."""


@dataclass(frozen=True)
class CompiledDateFormat:
    parts: tuple[str | tuple[str, int], ...]  # literal text, or (token letter, repeat count)
    to_utc: bool = False


@functools.lru_cache(maxsize=256)
def compile_date_format(fmt: str) -> CompiledDateFormat:
    if len(fmt) == 1:
        if fmt in STANDARD_FORMATS:
            return CompiledDateFormat(_tokenize(STANDARD_FORMATS[fmt]), fmt in UTC_STANDARD_FORMATS)
        if fmt.isascii() and fmt.isalpha() and fmt not in DATE_TOKEN_LETTERS:
            raise DateFormatError(_stray_letter_message(fmt))
        raise DateFormatError(f"'{fmt}' alone is not a standard date format; write '%{fmt}' for the single token")
    return CompiledDateFormat(_tokenize(fmt))


def _tokenize(fmt: str) -> tuple[str | tuple[str, int], ...]:
    parts: list[str | tuple[str, int]] = []
    index = 0
    while index < len(fmt):
        part, index = _next_part(fmt, index)
        parts.append(part)
    return tuple(parts)


def _next_part(fmt: str, index: int) -> tuple[str | tuple[str, int], int]:
    """The token or literal starting at `index`, and where the next one starts."""
    char = fmt[index]
    if char in DATE_TOKEN_LETTERS:
        end = _run_end(fmt, index)
        return _checked_token(char, end - index), end
    if char in "'\"":
        end = _quote_end(fmt, index)
        return _unescape(fmt[index + 1 : end - 1]), end
    if char == "\\":
        if index + 1 == len(fmt):
            raise DateFormatError("the format ends with a lone backslash")
        return fmt[index + 1], index + 2
    if char == "%":  # '%d': the custom token 'd' alone (a lone 'd' would be a standard format)
        if index + 1 == len(fmt) or fmt[index + 1] not in DATE_TOKEN_LETTERS:
            raise DateFormatError("'%' must be followed by one format token letter")
        return (fmt[index + 1], 1), index + 2
    if char.isascii() and char.isalpha():
        raise DateFormatError(_stray_letter_message(char))
    return char, index + 1  # separators, digits, spaces: literal as in .NET


def _run_end(fmt: str, start: int) -> int:
    end = start
    while end < len(fmt) and fmt[end] == fmt[start]:
        end += 1
    return end


def _checked_token(letter: str, count: int) -> tuple[str, int]:
    if letter in "fF" and count > MAX_FRACTION_DIGITS:
        raise DateFormatError(f"at most {MAX_FRACTION_DIGITS} '{letter}' fraction digits")
    return letter, count


def _quote_end(fmt: str, start: int) -> int:
    """Index just past the quote closing the one at `start`; a backslash inside escapes the next character."""
    index = start + 1
    while index < len(fmt):
        if fmt[index] == "\\":
            index += 2
            continue
        if fmt[index] == fmt[start]:
            return index + 1
        index += 1
    raise DateFormatError(f"unterminated quoted text starting at position {start}")


def _unescape(quoted: str) -> str:
    out, index = [], 0
    while index < len(quoted):
        if quoted[index] == "\\" and index + 1 < len(quoted):
            index += 1
        out.append(quoted[index])
        index += 1
    return "".join(out)


def _stray_letter_message(letter: str) -> str:
    hint = TOKEN_HINTS.get(letter)
    message = f"unsupported format token '{letter}'"
    if hint:
        message += f" (did you mean '{hint}'?)"
    return f"{message}; quote literal text as '{letter}' or escape it as \\{letter}"


def format_date(moment: datetime, compiled: CompiledDateFormat) -> str:
    if compiled.to_utc and moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc)
    out: list[str] = []
    for part in compiled.parts:
        if isinstance(part, str):
            out.append(part)
        elif part[0] == "F":
            _append_trimmed_fraction(out, moment, part[1])
        else:
            out.append(_FORMATTERS[part[0]](moment, part[1]))
    return "".join(out)


def _append_trimmed_fraction(out: list[str], moment: datetime, count: int) -> None:
    """'F' drops trailing zeros; with nothing left .NET also drops a '.' written just before it."""
    digits = _fraction(moment, count).rstrip("0")
    if digits:
        out.append(digits)
    elif out and out[-1].endswith("."):
        out[-1] = out[-1][:-1]


def _fraction(moment: datetime, count: int) -> str:
    return f"{moment.microsecond:06d}0"[:count]  # .NET ticks have 7 digits; Python stops at microseconds


def _number(value: int, count: int, width: int = 2) -> str:
    return str(value) if count == 1 else str(value).zfill(min(count, width))


def _day(moment: datetime, count: int) -> str:
    if count <= 2:
        return _number(moment.day, count)
    name = DAY_NAMES[moment.weekday()]
    return name[:3] if count == 3 else name


def _month(moment: datetime, count: int) -> str:
    if count <= 2:
        return _number(moment.month, count)
    name = MONTH_NAMES[moment.month - 1]
    return name[:3] if count == 3 else name


def _year(moment: datetime, count: int) -> str:
    if count <= 2:
        return _number(moment.year % 100, count)
    return str(moment.year).zfill(count)


def _offset(moment: datetime) -> timedelta:
    offset = moment.utcoffset()
    return offset if offset is not None else moment.astimezone().utcoffset()  # naive: local time, as .NET


def _zone(moment: datetime, count: int) -> str:
    minutes = int(_offset(moment).total_seconds() // 60)
    sign = "-" if minutes < 0 else "+"
    hours, rest = divmod(abs(minutes), 60)
    if count >= 3:
        return f"{sign}{hours:02d}:{rest:02d}"
    return f"{sign}{_number(hours, count)}"


def _zone_info(moment: datetime, count: int) -> str:
    return "" if moment.tzinfo is None else _zone(moment, 3) * count


_FORMATTERS: dict[str, Callable[[datetime, int], str]] = {
    "d": _day,
    "f": _fraction,
    "g": lambda moment, count: "A.D.",
    "h": lambda moment, count: _number((moment.hour % 12) or 12, count),
    "H": lambda moment, count: _number(moment.hour, count),
    "K": _zone_info,
    "m": lambda moment, count: _number(moment.minute, count),
    "M": _month,
    "s": lambda moment, count: _number(moment.second, count),
    "t": lambda moment, count: ("AM" if moment.hour < 12 else "PM")[: 1 if count == 1 else 2],
    "y": _year,
    "z": _zone,
}
