"""Parsing the Quartz dialect: every token form, normalisation and round trips, and every rejected form's message."""
from __future__ import annotations

import pytest

from canvas.scheduling.quartz import CronExpression, CronSyntaxError, parse

SECONDS, MINUTES, HOURS, DAY_OF_MONTH, MONTH, DAY_OF_WEEK, YEAR = range(7)


@pytest.mark.parametrize(("text", "normalised"), [
    pytest.param("0 0 2,6 ? * TUE *", "0 0 2,6 ? * TUE *", id="canvas-example-with-year-star"),
    pytest.param("0 0 12 ? * mon-fri", "0 0 12 ? * MON-FRI", id="names-upper-cased"),
    pytest.param("0  0\t12 * jan ?", "0 0 12 * JAN ?", id="tabs-and-double-spaces-collapsed"),
    pytest.param("  0 0 12 * * ?  ", "0 0 12 * * ?", id="outer-whitespace-dropped"),
    pytest.param("00 05 1 * * ?", "0 5 1 * * ?", id="leading-zeros-dropped"),
    pytest.param("0 0 0 L-0 * ?", "0 0 0 L * ?", id="L-0-written-as-L"),
    pytest.param("0 0 0 l-3w * ?", "0 0 0 L-3W * ?", id="L-nW-lower-case"),
    pytest.param("0 0 0 lw * ?", "0 0 0 LW * ?", id="LW-lower-case"),
    pytest.param("0 0 0 15w * ?", "0 0 0 15W * ?", id="nW-lower-case"),
    pytest.param("/5 * * ? * *", "*/5 * * ? * *", id="bare-slash-step-written-as-star-step"),
    pytest.param("0 0 0 ? * fril", "0 0 0 ? * FRIL", id="name-L-kept-as-name"),
    pytest.param("0 0 0 ? * 6L", "0 0 0 ? * 6L", id="number-L"),
    pytest.param("0 0 0 ? * fri#3", "0 0 0 ? * FRI#3", id="name-hash-kept-as-name"),
    pytest.param("0 0 0 ? * 6#3", "0 0 0 ? * 6#3", id="number-hash"),
    pytest.param("0 0 0 ? * l", "0 0 0 ? * L", id="L-alone-in-day-of-week"),
    pytest.param("0 0 0 ? nov-feb *", "0 0 0 ? NOV-FEB *", id="wrapping-month-names"),
    pytest.param("0 0 22-2 ? * FRI-MON", "0 0 22-2 ? * FRI-MON", id="wrapping-ranges"),
    pytest.param("5-55/10 */7 1-23/2 1/5 */3 ? 2026/2", "5-55/10 */7 1-23/2 1/5 */3 ? 2026/2", id="all-step-forms"),
    pytest.param("0 0 0 1,15 * ?", "0 0 0 1,15 * ?", id="plain-list"),
    pytest.param("0 0 0 ? * MON,3,FRI", "0 0 0 ? * MON,3,FRI", id="names-and-numbers-in-one-list"),
    pytest.param("0 0 0 ? * *,2", "0 0 0 ? * *,2", id="star-in-a-list"),
    pytest.param("0 0 12 * * ? 2026-2028", "0 0 12 * * ? 2026-2028", id="year-range"),
    pytest.param("0 15 10 ? * 6L 2002-2005", "0 15 10 ? * 6L 2002-2005", id="past-years-are-valid"),
])
def test_parse_normalises_and_round_trips(text, normalised):
    expression = parse(text)
    assert str(expression) == normalised
    assert parse(str(expression)) == expression
    assert str(parse(str(expression))) == str(expression)


@pytest.mark.parametrize(("text", "field", "values"), [
    pytest.param("*/15 * * ? * *", SECONDS, {0, 15, 30, 45}, id="star-step-from-minimum"),
    pytest.param("5/15 * * ? * *", SECONDS, {5, 20, 35, 50}, id="a-slash-n-runs-to-maximum"),
    pytest.param("0 10-12 * ? * *", MINUTES, {10, 11, 12}, id="range"),
    pytest.param("0 5-55/10 * ? * *", MINUTES, {5, 15, 25, 35, 45, 55}, id="range-with-step"),
    pytest.param("50-10 * * ? * *", SECONDS, {50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10},
                 id="seconds-range-wraps"),
    pytest.param("0 0 22-2 ? * *", HOURS, {22, 23, 0, 1, 2}, id="hours-range-wraps"),
    pytest.param("0 0 22-2/2 ? * *", HOURS, {22, 0, 2}, id="wrapping-range-with-step"),
    pytest.param("0 0 */5 ? * *", HOURS, {0, 5, 10, 15, 20}, id="hours-star-step"),
    pytest.param("0 0 0 28-2 * ?", DAY_OF_MONTH, {28, 29, 30, 31, 1, 2}, id="day-of-month-range-wraps-at-31"),
    pytest.param("0 0 0 1/5 * ?", DAY_OF_MONTH, {1, 6, 11, 16, 21, 26, 31}, id="every-5-days-from-the-1st"),
    pytest.param("0 0 0 ? NOV-FEB *", MONTH, {11, 12, 1, 2}, id="month-names-wrap"),
    pytest.param("0 0 0 ? 7/6 *", MONTH, {7}, id="javadoc-7-slash-6-is-only-july"),
    pytest.param("0 0 0 ? 11-2 *", MONTH, {11, 12, 1, 2}, id="month-numbers-wrap"),
    pytest.param("0 0 0 ? * FRI-MON", DAY_OF_WEEK, {6, 7, 1, 2}, id="weekday-names-wrap"),
    pytest.param("0 0 0 ? * 2-6/2", DAY_OF_WEEK, {2, 4, 6}, id="weekday-numbers-with-step"),
    pytest.param("0 0 0 ? * */2", DAY_OF_WEEK, {1, 3, 5, 7}, id="weekday-star-step"),
    pytest.param("0 0 0 ? * L", DAY_OF_WEEK, {7}, id="L-alone-is-saturday"),
    pytest.param("0 0 0 ? * SUN,SAT", DAY_OF_WEEK, {1, 7}, id="sun-is-1-sat-is-7"),
    pytest.param("0 0 0 ? * * 2026/30", YEAR, {2026, 2056, 2086, 2116, 2146, 2176}, id="year-step-runs-to-2199"),
    pytest.param("0 0 0 ? * * 2098-2099", YEAR, {2098, 2099}, id="last-years"),
])
def test_token_forms_expand_to_quartz_values(text, field, values):
    assert set(parse(text).fields[field].values) == values


@pytest.mark.parametrize("text", [
    pytest.param("0 0 12 * * ?", id="question-mark-in-day-of-week"),
    pytest.param("0 0 12 ? * *", id="question-mark-in-day-of-month"),
    pytest.param("0 15 10 ? * 6#3", id="nth-weekday"),
    pytest.param("0 15 10 ? * 6#5", id="fifth-weekday"),
    pytest.param("0 15 10 L-30 * ?", id="largest-last-day-offset"),
    pytest.param("0 15 10 L-30W * ?", id="largest-offset-with-W"),
    pytest.param("0 15 10 31W * ?", id="W-on-day-31"),
    pytest.param("0 15 10 1W * ?", id="W-on-day-1"),
    pytest.param("59 59 23 31 12 ? 2099", id="all-maxima"),
    pytest.param("0 0 0 1 1 ? 1970", id="first-year"),
    pytest.param("0 0 0 1 1 ? 2199", id="last-year-quartz-documents"),
])
def test_valid_quartz_forms_parse(text):
    assert isinstance(parse(text), CronExpression)


@pytest.mark.parametrize(("text", "message"), [
    pytest.param("0 0 12 ? * MON-FRI/2", "day-of-week: 'MON-FRI/2' applies a step to names",
                 id="step-on-weekday-names"),
    pytest.param("0 0 12 ? JAN-DEC/2 *", "month: 'JAN-DEC/2' applies a step to names", id="step-on-month-names"),
    pytest.param("0 0 12 ? JAN/2 *", "e.g. '1/2'", id="step-on-one-name-suggests-numbers"),
    pytest.param("0/0 * * ? * *", "seconds: '0/0' has a step of 0", id="zero-step"),
    pytest.param("*/0 * * ? * *", "seconds: '*/0' has a step of 0", id="zero-star-step"),
    pytest.param("*/60 * * ? * *", "seconds: '*/60' has a step larger than 59", id="step-too-large"),
    pytest.param("0 0/120 8-18 ? * 2-6", "minutes: '0/120' has a step larger than 59", id="quartz-issue-58"),
    pytest.param("0 0 12.5 ? * *", "hours: '12.5' is not a valid value", id="decimal"),
    pytest.param("0 0 0 ?? * *", "day-of-month: '??' is not a valid value", id="double-question-mark"),
    pytest.param("0 0 0 ? * * 2026 0", "expected 6 or 7 fields", id="eighth-field"),
    pytest.param("0 0 0 ? JANUARY *", "month: 'JANUARY' is not a month name; use the three-letter names JAN-DEC",
                 id="full-month-name"),
    pytest.param("0 0 0 ? * MONDAY", "day-of-week: 'MONDAY' is not a day-of-week name", id="full-weekday-name"),
    pytest.param("0 0 0 ? FOO *", "month: 'FOO' is not a month name; use JAN-DEC or 1-12", id="unknown-month-name"),
    pytest.param("0 0 0 ? JAN-FOO *", "month: 'JAN-FOO' is not a month name", id="quartz-574-bad-range-end"),
    pytest.param("@daily", "'@daily': macros such as '@daily' are not Quartz", id="macro"),
    pytest.param("0 0 * * * *", "one of them must be '?'", id="quartz-621-both-star"),
    pytest.param("0 0 * 4 * *", "support for specifying both a day-of-week AND a day-of-month parameter is not "
                 "implemented", id="quartz-621-day-and-star"),
    pytest.param("0 0 12 ? * ?", "are both '?'", id="both-question-marks"),
    pytest.param("0 0 0 ? * 0", "day-of-week: '0' is out of range 1-7 (SUN-SAT)", id="weekday-zero"),
    pytest.param("0 0 0 ? * 8", "day-of-week: '8' is out of range 1-7 (SUN-SAT)", id="weekday-eight"),
    pytest.param("60 0 0 ? * *", "seconds: '60' is out of range 0-59", id="second-60"),
    pytest.param("0 0 24 ? * *", "hours: '24' is out of range 0-23", id="hour-24"),
    pytest.param("0 0 0 32 * ?", "day-of-month: '32' is out of range 1-31", id="day-32"),
    pytest.param("0 0 0 0 * ?", "day-of-month: '0' is out of range 1-31", id="day-0"),
    pytest.param("0 0 0 ? 13 *", "month: '13' is out of range 1-12 (JAN-DEC)", id="month-13"),
    pytest.param("0 5-70 0 ? * *", "minutes: '5-70' is out of range 0-59", id="range-end-out-of-range"),
    pytest.param("0 0 0 ? * * 1969", "year: '1969' is out of range 1970-2199", id="year-before-1970"),
    pytest.param("0 0 0 ? * * 2200", "year: '2200' is out of range 1970-2199", id="year-after-2199"),
    pytest.param("0 0 0 ? * * 2028-2026", "year: '2028-2026' runs backwards", id="backwards-year-range"),
    pytest.param("0 0 0 1,,2 * ?", "day-of-month: '1,,2' has an empty item", id="empty-list-item"),
    pytest.param("0 0 0 1, * ?", "day-of-month: '1,' has an empty item", id="trailing-comma"),
    pytest.param("0 0 L-3 ? * *", "hours: 'L-3' is not allowed here; it is only valid in day-of-month",
                 id="L-minus-n-in-hours"),
    pytest.param("0 0 0 ? * L-3", "day-of-week: 'L-3' is not allowed here; it is only valid in day-of-month",
                 id="L-minus-n-in-day-of-week"),
    pytest.param("0 0 0 ? * LW", "day-of-week: 'LW' is not allowed here", id="LW-in-day-of-week"),
    pytest.param("L 0 0 ? * *", "seconds: 'L' is not allowed here; it is only valid in day-of-month or day-of-week",
                 id="L-in-seconds"),
    pytest.param("0 0 ? ? * *", "hours: '?' is not allowed here", id="question-mark-in-hours"),
    pytest.param("0 0 0 ? * 15W", "day-of-week: '15W' is not allowed here", id="W-in-day-of-week"),
    pytest.param("0 0 0 6#3 * ?", "day-of-month: '6#3' is not allowed here", id="hash-in-day-of-month"),
    pytest.param("0 0 0 1-5W * ?", "day-of-month: '1-5W' puts 'W' on a range", id="W-on-a-range"),
    pytest.param("0 0 0 1,15W * ?", "day-of-month: '1,15W' combines '15W' with other values", id="W-in-a-list"),
    pytest.param("0 0 0 15W,1 * ?", "combines '15W' with other values", id="W-first-in-a-list"),
    pytest.param("0/5 * * 32W 1 ?", "day-of-month: '32W' is out of range 1-31", id="quartz-96-W-past-31"),
    pytest.param("0 0 0 0W * ?", "day-of-month: '0W' is out of range 1-31", id="W-on-day-0"),
    pytest.param("0 0 0 ? * 6#6", "day-of-week: '6#6' asks for occurrence 6; the number after '#' must be 1-5",
                 id="hash-six"),
    pytest.param("0 0 0 ? * 6#0", "the number after '#' must be 1-5", id="hash-zero"),
    pytest.param("0 0 0 ? * 8#1", "day-of-week: '8#1' is out of range 1-7", id="hash-on-weekday-8"),
    pytest.param("0 0 0 ? * 3#1,6#3", "combines '3#1' with other values", id="two-hashes"),
    pytest.param("0 0 0 ? * 6#3,2", "combines '6#3' with other values", id="hash-in-a-list"),
    pytest.param("0 43 9 1,5,29,L * ?", "combines 'L' with other values", id="quartz-640-L-in-day-of-month-list"),
    pytest.param("0 43 9 ? * SAT,SUN,L", "combines 'L' with other values", id="quartz-640-L-in-weekday-list"),
    pytest.param("0 43 9 ? * 6L,2", "combines '6L' with other values", id="nL-in-a-list"),
    pytest.param("0 0 0 LW,15 * ?", "combines 'LW' with other values", id="LW-in-a-list"),
    pytest.param("0 0 0 ? * 8L", "day-of-week: '8L' is out of range 1-7", id="nL-on-weekday-8"),
    pytest.param("0 0 0 ? * 2-6L", "day-of-week: '2-6L' puts 'L' on a range", id="L-on-a-range"),
    pytest.param("0 0 0 L-31 * ?", "day-of-month: 'L-31' has an offset of 31", id="L-offset-past-30"),
    pytest.param("0 0 0 ? * MON-5", "mixes a name and a number", id="name-to-number-range"),
    pytest.param("0 0 0 ? * 2-FRI", "mixes a name and a number", id="number-to-name-range"),
    pytest.param("0 0 0 ? * 1-5-7", "day-of-week: '1-5-7' is not a valid value", id="double-range"),
    pytest.param("0 0 0 ? * *5", "day-of-week: '*5' is not a valid value", id="star-followed-by-digit"),
    pytest.param("/ 0 8-18 ? * 2-6", "seconds: '/' is not a valid value", id="slash-without-step"),
    pytest.param("0/ 0 8-18 ? * 2-6", "seconds: '0/' is not a valid value", id="slash-without-step-after-number"),
    pytest.param("0 0 0 L- * ?", "day-of-month: 'L-' is not a valid value", id="L-dash-without-offset"),
    pytest.param("0 0 0 ? * -5", "day-of-week: '-5' is not a valid value", id="leading-dash"),
    pytest.param("0 0 0 W * ?", "day-of-month: 'W' is not a valid value", id="W-alone"),
    pytest.param("", "the cron expression is empty", id="empty"),
    pytest.param("0 0 0 ? *", "expected 6 or 7 fields (seconds minutes hours day-of-month month day-of-week [year]), "
                 "got 5", id="five-fields"),
    pytest.param("0 0 0", "got 3", id="three-fields"),
])
def test_invalid_expressions_are_rejected_with_field_and_token(text, message):
    with pytest.raises(CronSyntaxError) as caught:
        parse(text)
    assert message.lower() in str(caught.value).lower()


@pytest.mark.parametrize(("unix", "quartz"), [
    pytest.param("0 */5 * * *", "0 0 */5 ? * *", id="every-5-hours"),
    pytest.param("*/15 * * * *", "0 */15 * ? * *", id="every-15-minutes"),
    pytest.param("30 9 * * 1-5", "0 30 9 ? * 2-6", id="weekdays-renumbered-from-unix"),
    pytest.param("0 0 * * 0", "0 0 0 ? * 1", id="unix-sunday-0-is-quartz-1"),
    pytest.param("0 0 * * 7", "0 0 0 ? * 1", id="unix-sunday-7-is-quartz-1"),
    pytest.param("0 0 * * MON", "0 0 0 ? * MON", id="weekday-names-kept"),
    pytest.param("0 12 1 * *", "0 0 12 1 * ?", id="day-of-month-keeps-its-value"),
])
def test_five_field_unix_expression_gets_the_quartz_form_in_its_message(unix, quartz):
    with pytest.raises(CronSyntaxError) as caught:
        parse(unix)
    message = str(caught.value)
    assert message.startswith("expected 6 or 7 fields (seconds minutes hours day-of-month month day-of-week [year]), "
                              "got 5; Quartz puts seconds first, e.g. ")
    assert message.endswith(f"'{quartz}'")
    parse(quartz)  # the suggestion itself is valid Quartz


def test_cron_syntax_error_is_a_value_error():
    assert issubclass(CronSyntaxError, ValueError)


def test_expressions_compare_by_normalised_text():
    assert parse("0 0 12 ? * mon") == parse("00 0 12 ? * MON")
    assert hash(parse("0 0 12 ? * mon")) == hash(parse("0 0 12 ? * MON"))
    assert parse("0 0 12 ? * MON") != parse("0 0 12 ? * TUE")
    assert repr(parse("0 0 12 * * ?")) == "CronExpression('0 0 12 * * ?')"


def test_six_field_expression_is_written_back_with_six_fields():
    assert str(parse("0 0 12 * * ?")) == "0 0 12 * * ?"
    assert str(parse("0 0 12 * * ? *")) == "0 0 12 * * ? *"
