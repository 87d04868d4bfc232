"""Block declarations: variable checking, merging, placeholder opt-out, the registry and chain kinds."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from canvas.execution.blocks.base import (
    Block,
    VariableSpec,
    check_chain,
    check_variables,
    find_variable_placeholder_errors,
    merged_variables,
    resolve_variables,
)
from canvas.execution.placeholders import PlaceholderValues
from canvas.execution.registry import UnknownBlockError, all_blocks, get_block, register

BUILT_IN_KEYS = {
    "records.from_variable", "records.from_file", "csv.from_records", "csv.to_records", "json.from_records",
    "json.to_records", "xml.from_records", "xml.to_records", "jsonata.transform", "jsonata.filter",
    "filehub.write", "filehub.read", "noop",
}


class Sample(Block):
    key = "test.sample"
    title = "Sample"
    variables = {
        "name": VariableSpec("string", required=True),
        "count": VariableSpec("integer", default=10),
        "ratio": VariableSpec("number"),
        "enabled": VariableSpec("boolean", default=True),
        "items": VariableSpec("array"),
        "options": VariableSpec("object"),
        "anything": VariableSpec("any"),
        "mode": VariableSpec("string", default="fast", choices=("fast", "slow")),
        "expression": VariableSpec("string", placeholders=False),
    }


def test_valid_values_have_no_errors():
    values = {"name": "x", "count": 3, "ratio": 2, "enabled": False, "items": [], "options": {}, "anything": 1.5}
    assert check_variables(Sample, values) == []
    assert check_variables(Sample, {"name": "x", "ratio": 0.5, "mode": "slow"}) == []


@pytest.mark.parametrize(
    "name, value, fragment",
    [
        ("count", True, "must be an integer, got boolean"),
        ("count", 1.5, "must be an integer, got number"),
        ("count", "3", "must be an integer, got string"),
        ("ratio", False, "must be a number, got boolean"),
        ("ratio", "1", "must be a number, got string"),
        ("enabled", 1, "must be a boolean, got integer"),
        ("items", {}, "must be an array, got object"),
        ("options", [], "must be an object, got array"),
        ("name", 5, "must be a string, got integer"),
        ("mode", "medium", "must be one of 'fast', 'slow'"),
    ],
)
def test_wrong_types_name_the_variable(name, value, fragment):
    errors = check_variables(Sample, {"name": "x", name: value})
    assert errors == [f"variable '{name}' {fragment}"]


def test_unknown_and_missing_required_variables():
    errors = check_variables(Sample, {"nmae": "typo"})
    assert errors[0].startswith("unknown variable 'nmae'")
    assert "variable 'name' is required" in errors


def test_null_for_a_required_variable_counts_as_missing():
    assert check_variables(Sample, {"name": None}) == ["variable 'name' is required"]


def test_merged_variables_overlay_defaults_with_deep_copies():
    class WithList(Block):
        key, title = "test.with_list", "With list"
        variables = {"items": VariableSpec("array", default=[1]), "other": VariableSpec("string", default="d")}

    merged = merged_variables(WithList, {"other": "o"})
    assert merged == {"items": [1], "other": "o"}
    merged["items"].append(2)
    assert WithList.variables["items"].default == [1]


def test_placeholders_are_resolved_except_where_a_variable_opts_out():
    values = PlaceholderValues(datetime(2026, 1, 2, tzinfo=timezone.utc), "wf", "r1", 2)
    variables = {"name": "{runId}-{date:yyyyMMdd}", "expression": "{'a': b}"}
    assert find_variable_placeholder_errors(Sample, variables) == []
    assert resolve_variables(Sample, variables, values) == {"name": "r1-20260102", "expression": "{'a': b}"}
    assert find_variable_placeholder_errors(Sample, {"name": "{nope}"})[0].startswith("variable 'name': unknown")


def test_registry_holds_every_built_in_block():
    keys = {block.key for block in all_blocks()}
    assert BUILT_IN_KEYS <= keys
    assert get_block("noop").title == "No operation"
    assert get_block("records.from_variable").title == "Records from a variable"


def test_unknown_block_error_names_the_key():
    with pytest.raises(KeyError) as caught:
        get_block("does.not.exist")
    assert isinstance(caught.value, UnknownBlockError)
    assert str(caught.value) == "unknown block 'does.not.exist'"


def test_register_rejects_bad_declarations():
    class BadType(Block):
        key, title = "test.bad_type", "Bad"
        variables = {"x": VariableSpec("float")}

    class BadDefault(Block):
        key, title = "test.bad_default", "Bad"
        variables = {"x": VariableSpec("integer", default="1")}

    class Duplicate(Block):
        key, title = "noop", "Another noop"

    for block_class in (BadType, BadDefault):
        with pytest.raises(TypeError):
            register(block_class)
    with pytest.raises(ValueError, match="already used"):
        register(Duplicate)


def test_declared_flags_of_built_in_blocks():
    write = get_block("filehub.write")
    assert write.application_kind == "filehub" and write.side_effects
    assert get_block("csv.from_records").side_effects is False
    for block in all_blocks():
        assert check_variables(block, merged_variables(block, {})) == [] or any(
            spec.required for spec in block.variables.values()
        )


def test_check_chain_reports_kind_mismatches():
    chain = [get_block(key) for key in ("records.from_variable", "csv.from_records", "csv.to_records", "noop")]
    assert check_chain(chain) == []
    wrong = [get_block("records.from_variable"), get_block("csv.to_records")]
    assert check_chain(wrong) == ["block 2 (csv.to_records) takes file but is given records"]
    assert check_chain([get_block("csv.to_records")]) == ["block 1 (csv.to_records) takes file but is given none"]
