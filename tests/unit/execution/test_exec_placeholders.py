"""Placeholders: .NET custom date formats, the simple placeholders, brace escaping and the errors found at
instantiation time."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from canvas.execution.placeholders import (
    KNOWN_PLACEHOLDERS,
    PlaceholderError,
    PlaceholderValues,
    find_placeholder_errors,
    resolve_placeholders,
)

NEW_YORK_WINTER = timezone(timedelta(hours=-5))
MORNING = datetime(2026, 3, 5, 7, 4, 9, 123400, tzinfo=NEW_YORK_WINTER)  # a Thursday
AFTERNOON = datetime(2026, 3, 5, 13, 5, 0, tzinfo=NEW_YORK_WINTER)


def values_at(moment: datetime = MORNING) -> PlaceholderValues:
    return PlaceholderValues(now=moment, workflow_name="NY Employees", run_id="run-42", block_number=3)


def resolve(text: str, moment: datetime = MORNING) -> str:
    return resolve_placeholders(text, values_at(moment))


def test_canvas_example_file_name():
    assert resolve("NY_Employees_{date:yyyy-MM-dd-HH-mm}") == "NY_Employees_2026-03-05-07-04"


def test_twelve_hour_clock_with_am_pm_designator():
    assert resolve("{date:h:mm tt}", AFTERNOON) == "1:05 PM"
    assert resolve("{date:hh:mm tt}", MORNING) == "07:04 AM"
    assert resolve("{date:h t}", AFTERNOON) == "1 P"
    assert resolve("{date:h tt}", datetime(2026, 3, 5, 0, 30)) == "12 AM"
    assert resolve("{date:h tt}", datetime(2026, 3, 5, 12, 30)) == "12 PM"


@pytest.mark.parametrize(
    "fmt, expected",
    [
        ("yyyy", "2026"),
        ("yy", "26"),
        ("y", "26"),
        ("yyyyy", "02026"),
        ("MM", "03"),
        ("M", "3"),
        ("MMM", "Mar"),
        ("MMMM", "March"),
        ("dd", "05"),
        ("d", "5"),
        ("ddd", "Thu"),
        ("dddd", "Thursday"),
        ("HH", "07"),
        ("H", "7"),
        ("hh", "07"),
        ("mm", "04"),
        ("m", "4"),
        ("ss", "09"),
        ("s", "9"),
        ("fff", "123"),
        ("ff", "12"),
        ("f", "1"),
        ("ffffff", "123400"),
        ("FFFFFF", "1234"),
        ("zzz", "-05:00"),
        ("zz", "-05"),
        ("z", "-5"),
        ("K", "-05:00"),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_each_custom_token(fmt, expected):
    # Two tokens at least, so a single letter is not taken for a .NET standard format ("d" = short date).
    assert resolve(f"{{date:[{fmt}]}}") == f"[{expected}]"


def test_percent_makes_a_single_letter_a_custom_token():
    assert resolve("{date:%d}") == "5"
    assert resolve("{date:%h}", AFTERNOON) == "1"


def test_single_letters_are_dotnet_standard_formats():
    assert resolve("{date:d}") == "03/05/2026"
    assert resolve("{date:s}") == "2026-03-05T07:04:09"
    assert resolve("{date:u}") == "2026-03-05 12:04:09Z"  # converted to UTC, as .NET does


def test_trimmed_fraction_drops_the_dot_when_nothing_is_left():
    assert resolve("{date:HH:mm:ss.FFF}", AFTERNOON) == "13:05:00"
    assert resolve("{date:ss.FFF}") == "09.123"


def test_quoted_literals_and_escapes():
    assert resolve("{date:yyyy'T'HH 'o''clock'}") == "2026T07 oclock"
    assert resolve('{date:"Week of" MMM d}') == "Week of Mar 5"
    assert resolve("{date:HH\\hmm}") == "07h04"
    assert resolve("{date:'{'yyyy'}'}") == "{2026}"


def test_literal_separators_pass_through():
    assert resolve("{date:yyyy/MM/dd HH:mm_ss.fff}") == "2026/03/05 07:04_09.123"


def test_simple_placeholders_and_literal_braces():
    text = "{{literal}} {workflowName}/{runId}/block-{blockNumber}"
    assert resolve(text) == "{literal} NY Employees/run-42/block-3"


def test_nested_lists_and_dicts_are_resolved_in_a_deep_copy():
    value = {"file": "{runId}.csv", "list": ["{blockNumber}", 5, None, {"deep": "{date:yyyy}"}], "n": 1}
    resolved = resolve_placeholders(value, values_at())
    assert resolved == {"file": "run-42.csv", "list": ["3", 5, None, {"deep": "2026"}], "n": 1}
    assert value["file"] == "{runId}.csv"  # the original is untouched
    assert resolved["list"] is not value["list"]


def test_keys_are_not_resolved():
    assert resolve_placeholders({"{runId}": "x"}, values_at()) == {"{runId}": "x"}


def test_known_placeholders_are_listed():
    assert KNOWN_PLACEHOLDERS == ("date", "workflowName", "runId", "blockNumber")


@pytest.mark.parametrize(
    "value, expected_fragment",
    [
        ("{foo}", "unknown placeholder {foo}"),
        ("{WorkflowName}", "did you mean {workflowName}?"),
        ("a{b", "unclosed '{'"),
        ("a}b", "unmatched '}'"),
        ('{"json": 1}', "unknown placeholder"),
        ("{date}", "needs a format"),
        ("{runId:yyyy}", "takes no format"),
        ("{date:YYYY-MM-dd}", "unsupported format token 'Y'"),
        ("{date:yyyy-MM-ddTHH}", "quote literal text as 'T'"),
        ("{date:Q}", "unsupported format token 'Q'"),
        ("{date:'unterminated}", "not closed"),
        ("{date:HH\\}", "unclosed '{'"),
        ("{date:ffffffff}", "at most 7"),
        ("{date:h%}", "'%' must be followed"),
    ],
)
def test_errors(value, expected_fragment):
    errors = find_placeholder_errors(value)
    assert len(errors) == 1 and expected_fragment in errors[0], errors
    with pytest.raises(PlaceholderError):
        resolve_placeholders(value, values_at())


def test_errors_in_nested_values_name_their_path():
    value = {"headers": [{"name": "X-Run", "value": "{run}"}], "ok": "{runId}", "count": 3}
    assert find_placeholder_errors(value) == [
        "headers[0].value: unknown placeholder {run} (did you mean {runId}?)"
    ]


def test_no_errors_for_valid_values():
    assert find_placeholder_errors(["plain", "{{x}}", {"a": "{date:yyyy-MM-dd}"}, 5, None]) == []
