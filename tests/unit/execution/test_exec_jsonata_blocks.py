"""JSONata transform and filter blocks."""
from __future__ import annotations

import datetime as dt
import decimal
import logging

import pytest

from canvas.execution.blocks.base import merged_variables
from canvas.execution.context import BlockContext, BlockError
from canvas.execution.data import BlockData, Records
from canvas.execution.registry import get_block
from canvas.storage.blob import FileSystemBlobStore

EMPLOYEES = [
    {"name": "Ana", "salary": 5000, "city": "NY", "skills": ["sql", "python"]},
    {"name": "Bob", "salary": 3000, "city": "LA", "skills": []},
    {"name": "Cid", "salary": 7000, "city": "NY", "skills": ["go"]},
]


def run_block(key: str, data: BlockData, tmp_path, **variables) -> list[dict]:
    block_class = get_block(key)
    context = BlockContext(
        merged_variables(block_class, variables), None, logging.getLogger("test"),
        FileSystemBlobStore(tmp_path), None, "run-1", 1, "wf", temp_dir=tmp_path,
    )
    return list(block_class().run(context, data))


def test_transform_per_record(tmp_path):
    expression = "{'employee': name, 'monthly': salary / 12, 'firstSkill': skills[0]}"
    output = run_block("jsonata.transform", Records(iter(EMPLOYEES)), tmp_path, expression=expression)
    assert output[0] == {"employee": "Ana", "monthly": 5000 / 12, "firstSkill": "sql"}
    assert output[1] == {"employee": "Bob", "monthly": 250}  # undefined fields are left out, as in JSONata


def test_transform_array_results_give_several_records_and_undefined_drops(tmp_path):
    output = run_block("jsonata.transform", Records(EMPLOYEES), tmp_path, expression="skills.{'skill': $}")
    assert output == [{"skill": "sql"}, {"skill": "python"}, {"skill": "go"}]  # Bob's empty array gives nothing


def test_transform_null_drops_the_record_and_scalars_are_wrapped(tmp_path):
    expression = "city = 'NY' ? name : null"
    assert run_block("jsonata.transform", Records(EMPLOYEES), tmp_path, expression=expression) == [
        {"value": "Ana"},
        {"value": "Cid"},
    ]


def test_transform_whole_mode_sees_all_records(tmp_path):
    expression = "{'total': $sum($.salary), 'cities': $distinct($.city)}"
    output = run_block("jsonata.transform", Records(iter(EMPLOYEES)), tmp_path, expression=expression, mode="whole")
    assert output == [{"total": 15000, "cities": ["NY", "LA"]}]


def test_transform_takes_python_values_json_does_not_know(tmp_path):
    records = [{"when": dt.date(2026, 3, 5), "price": decimal.Decimal("2.50")}]
    output = run_block("jsonata.transform", Records(records), tmp_path, expression="{'w': when, 'p': price * 2}")
    assert output == [{"w": "2026-03-05", "p": 5}]


def test_transform_compile_errors_are_reported_at_start(tmp_path):
    with pytest.raises(BlockError, match="not a valid JSONata expression"):
        run_block("jsonata.transform", Records(EMPLOYEES), tmp_path, expression="{'a': ")


def test_transform_evaluation_errors_name_the_record(tmp_path):
    records = [{"n": 1}, {"n": "text"}]
    with pytest.raises(BlockError, match="record 1"):
        run_block("jsonata.transform", Records(records), tmp_path, expression="{'double': n * 2}")


def test_expression_is_not_taken_for_placeholders():
    spec = get_block("jsonata.transform").variables["expression"]
    assert spec.required and spec.placeholders is False
    assert get_block("jsonata.filter").variables["condition"].placeholders is False


def test_filter_keeps_truthy_records(tmp_path):
    assert [r["name"] for r in run_block("jsonata.filter", Records(EMPLOYEES), tmp_path, condition="salary > 4000")] == [
        "Ana",
        "Cid",
    ]


def test_filter_uses_jsonata_truthiness(tmp_path):
    kept = run_block("jsonata.filter", Records(EMPLOYEES), tmp_path, condition="skills")  # [] is false
    assert [record["name"] for record in kept] == ["Ana", "Cid"]
    assert run_block("jsonata.filter", Records(EMPLOYEES), tmp_path, condition="missing") == []


def test_filter_passes_the_original_records_through(tmp_path):
    records = [{"when": dt.datetime(2026, 1, 1), "keep": True}]
    assert run_block("jsonata.filter", Records(records), tmp_path, condition="keep") == records


def test_filter_errors(tmp_path):
    with pytest.raises(BlockError, match="variable 'condition'"):
        run_block("jsonata.filter", Records(EMPLOYEES), tmp_path, condition="(")
    with pytest.raises(BlockError, match="record 0"):
        run_block("jsonata.filter", Records([{"a": "x"}]), tmp_path, condition="a + 1 > 0")
    with pytest.raises(BlockError, match="needs records"):
        run_block("jsonata.filter", None, tmp_path, condition="true")


@pytest.mark.parametrize(("expression", "said"), [
    ('$number(name)', "unable to cast 'Ana' to a number"),
    ('"a" + 1', "The left side of the + operator must evaluate to a number"),
])
def test_evaluation_errors_speak_jsonata_not_python(tmp_path, expression, said):
    with pytest.raises(BlockError) as raised:
        run_block("jsonata.transform", Records(iter(EMPLOYEES)), tmp_path, expression=expression)
    assert said in str(raised.value)
    assert "could not convert" not in str(raised.value) and "float" not in str(raised.value)
