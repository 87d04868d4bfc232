"""The block base class and its declared variables.

A block is a small class: registry key, title, the application it needs, whether it changes the outside world,
what data it takes and gives, its variables, and `run(context, data)`. Blocks hold no state between runs: the
runner makes a fresh instance per block run. A block that imports a heavy library inside `run` (to keep it out of the
API's processes) names it in `preload()` as well, so that a forking worker loads it once instead of in every child.
"""
from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from canvas.execution.context import BlockError
from canvas.execution.data import BlockData, FileData, Records
from canvas.execution.placeholders import PlaceholderValues, find_placeholder_errors, resolve_placeholders

if TYPE_CHECKING:
    from canvas.execution.context import BlockContext

DATA_KINDS = ("records", "file", "none", "any")
VARIABLE_TYPES = ("string", "integer", "number", "boolean", "array", "object", "any")


@dataclass(frozen=True)
class VariableSpec:
    type: str  # "string" | "integer" | "number" | "boolean" | "array" | "object" | "any"
    default: Any = None
    required: bool = False
    description: str = ""
    choices: tuple = ()  # allowed values, when the variable is an enumeration
    placeholders: bool = True  # False: taken literally, for values with brace syntax of their own (JSONata)
    # Why a string value cannot work (bad JSONata, a path where a file name belongs), or None: checked when a template
    # or workflow is written, so the mistake is refused then rather than found by a run.
    text_check: Callable[[str], str | None] | None = None


class Block:
    key: ClassVar[str]  # registry key, e.g. "records.from_variable"
    title: ClassVar[str]  # human name, e.g. "Records from a variable"
    description: ClassVar[str] = ""
    application_kind: ClassVar[str | None] = None  # "ftp", "rest", "smtp", "sql", "sftp", "filehub"; None = none
    side_effects: ClassVar[bool] = False  # changes the outside world (upload, send, insert): dry runs replace it
    # Confirms its input records one by one (context.confirm) and skips those an earlier run confirmed
    # (context.resume_after): a later run of the block on the same input goes on where it stopped.
    resumable: ClassVar[bool] = False
    # Dates what it writes by the day the run is on in the workflow's time zone (context.today()), like a
    # `{date:...}` placeholder: the runner looks the zone up for it.
    dated: ClassVar[bool] = False
    input_kind: ClassVar[str] = "any"  # "records" | "file" | "none" | "any": what it accepts
    output_kind: ClassVar[str] = "any"  # "records" | "file" | "none" | "any": what it gives
    variables: ClassVar[dict[str, VariableSpec]] = {}

    def run(self, context: BlockContext, data: BlockData) -> BlockData:
        raise NotImplementedError

    @classmethod
    def preload(cls) -> None:
        """Import the libraries the block imports only when it runs (so that the API's processes, which register every
        block, never carry them). A forking worker calls this before it forks: its children inherit the modules
        instead of importing them again for every run."""


# Registered blocks by key. Kept here, not in the registry module, so that a block module can register itself (and
# be imported by another block module) without importing the registry, which loads every block module.
_BLOCKS: dict[str, type[Block]] = {}


class UnknownBlockError(KeyError):
    """No block is registered under that key."""

    def __init__(self, key: str):
        super().__init__(key)
        self.key = key
        self.message = f"unknown block {key!r}"

    def __str__(self) -> str:  # KeyError would show the repr of the key alone
        return self.message


def register(block_class: type[Block]) -> type[Block]:
    """Class decorator: adds the block to the registry after checking its declaration."""
    _check_declaration(block_class)
    existing = _BLOCKS.get(block_class.key)
    if existing is not None and _full_name(existing) != _full_name(block_class):  # the same one again: a reload
        raise ValueError(f"block key {block_class.key!r} is already used by {_full_name(existing)}")
    _BLOCKS[block_class.key] = block_class
    return block_class


def _full_name(block_class: type[Block]) -> str:
    return f"{block_class.__module__}.{block_class.__qualname__}"


def _check_declaration(block_class: type[Block]) -> None:
    """A mistake in a block's declaration fails at import, not in the first run that uses it."""
    name = block_class.__qualname__
    if not getattr(block_class, "key", None) or not getattr(block_class, "title", None):
        raise TypeError(f"block {name} needs a key and a title")
    for kind in (block_class.input_kind, block_class.output_kind):
        if kind not in DATA_KINDS:
            raise TypeError(f"block {name}: data kind {kind!r} is not one of {DATA_KINDS}")
    for variable, spec in block_class.variables.items():
        if spec.type not in VARIABLE_TYPES:
            raise TypeError(f"block {name}: variable {variable!r} has unknown type {spec.type!r}")
        problem = type_problem(spec, spec.default)
        if problem:
            raise TypeError(f"block {name}: the default of variable {variable!r} {problem}")


def type_problem(spec: VariableSpec, value: Any) -> str | None:
    """Why `value` does not fit `spec` (JSON types: an integer is an int but not a bool), or None."""
    if value is None:
        return None  # unset; whether that is allowed is the `required` check's business
    fits = {
        "string": isinstance(value, str),
        "integer": isinstance(value, int) and not isinstance(value, bool),
        "number": isinstance(value, (int, float)) and not isinstance(value, bool),
        "boolean": isinstance(value, bool),
        "array": isinstance(value, (list, tuple)),
        "object": isinstance(value, dict),
        "any": True,
    }[spec.type]
    if not fits:
        return f"must be {_article(spec.type)}, got {_json_type_name(value)}"
    if spec.choices and value not in spec.choices:
        return "must be one of " + ", ".join(repr(choice) for choice in spec.choices)
    return None


def check_variables(block_class: type[Block], values: dict, *, partial: bool = False) -> list[str]:
    """Unknown names, values of the wrong type and missing required variables (a declared default counts as set).
    `partial`: the values are defaults that a later layer may complete (a template), so nothing is required yet."""
    specs = block_class.variables
    errors = [f"unknown variable '{name}' (known: {', '.join(specs) or 'none'})" for name in values if name not in specs]
    for name, spec in specs.items():
        value = values.get(name)
        if value is None and spec.default is None and spec.required and not partial:
            errors.append(f"variable '{name}' is required")
        problem = type_problem(spec, value) or _text_problem(spec, value)
        if problem:
            errors.append(f"variable '{name}' {problem}")
    return errors


def _text_problem(spec: VariableSpec, value: Any) -> str | None:
    if spec.text_check is None or not isinstance(value, str):
        return None
    return spec.text_check(value)


def merged_variables(block_class: type[Block], overrides: dict) -> dict:
    """The declared defaults overlaid by `overrides`; deep copies, so a block may not change the class's defaults."""
    merged = {name: copy.deepcopy(spec.default) for name, spec in block_class.variables.items()}
    merged.update(copy.deepcopy(overrides))
    return merged


def find_variable_placeholder_errors(block_class: type[Block], values: dict) -> list[str]:
    """Placeholder errors in the variables that take placeholders, each message naming its variable."""
    errors = []
    for name, value in values.items():
        if _takes_placeholders(block_class, name):
            errors.extend(f"variable '{name}': {message}" for message in find_placeholder_errors(value))
    return errors


def resolve_variables(block_class: type[Block], values: dict, placeholder_values: PlaceholderValues) -> dict:
    """`values` with placeholders resolved, except in variables declared with placeholders=False."""
    return {
        name: resolve_placeholders(value, placeholder_values)
        if _takes_placeholders(block_class, name)
        else copy.deepcopy(value)
        for name, value in values.items()
    }


def _takes_placeholders(block_class: type[Block], name: str) -> bool:
    spec = block_class.variables.get(name)
    return spec is None or spec.placeholders


def check_chain(block_classes: Sequence[type[Block]], first_has_input: bool = False) -> list[str]:
    """Blocks whose input kind cannot take what the previous block gives (block numbers are 1-based)."""
    errors = []
    given = "any" if first_has_input else "none"
    for number, block_class in enumerate(block_classes, start=1):
        wanted = block_class.input_kind
        if "any" not in (given, wanted) and given != wanted:
            errors.append(f"block {number} ({block_class.key}) takes {wanted} but is given {given}")
        given = block_class.output_kind
    return errors


def expect_records(data: BlockData, block_key: str) -> Records:
    if isinstance(data, Records):
        return data
    raise BlockError(f"{block_key} needs records as input, got {_data_kind(data)}")


def expect_file(data: BlockData, block_key: str) -> FileData:
    if isinstance(data, FileData):
        return data
    raise BlockError(f"{block_key} needs a file as input, got {_data_kind(data)}")


def _data_kind(data: BlockData) -> str:
    if data is None:
        return "nothing (is it the first block, or did the previous block give no output?)"
    return "records" if isinstance(data, Records) else "a file"


def _article(type_name: str) -> str:
    return {"any": "anything", "array": "an array", "object": "an object", "integer": "an integer"}.get(
        type_name, f"a {type_name}"
    )


def _json_type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, (list, tuple)):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "string" if isinstance(value, str) else type(value).__name__
