"""`canvas cron "<expr>" [--tz ZONE] [--after ISO] [-n COUNT]`: fire times one per line, exit 2 on bad input."""
from __future__ import annotations

import re
import subprocess
import sys

import pytest
from click.testing import CliRunner

from canvas.schedules.cli import cron


def run_cron(*args: str):
    return CliRunner().invoke(cron, list(args))


def test_prints_the_next_fire_times_one_per_line():
    result = run_cron("0 30 2 ? * *", "--tz", "Europe/Oslo", "--after", "2026-03-27T00:00:00Z", "-n", "3")
    assert result.exit_code == 0
    assert result.output.splitlines() == ["2026-03-27T02:30:00+01:00", "2026-03-28T02:30:00+01:00",
                                          "2026-03-30T02:30:00+02:00"]


def test_defaults_are_five_times_in_utc_after_now():
    result = run_cron("*/10 * * ? * *")
    lines = result.output.splitlines()
    assert result.exit_code == 0 and len(lines) == 5
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:[0-5]0\+00:00", line) for line in lines)


def test_an_expression_with_no_more_fire_times_is_an_error():
    """It printed nothing and exited 0, which a script reads as success; the API refuses such a schedule."""
    result = run_cron("0 0 0 1 1 ? 2020")
    assert result.exit_code == 2 and result.output.startswith("Error: '0 0 0 1 1 ? 2020' never fires after ")


@pytest.mark.parametrize(("args", "message"), [
    (["0 0 12 ? * 8"], "Error: '0 0 12 ? * 8' is not a valid Quartz cron expression: day-of-week: '8' is out of "
                       "range 1-7 (SUN-SAT)"),
    (["0 */5 * * *"], "Error: '0 */5 * * *' is not a valid Quartz cron expression: expected 6 or 7 fields"),
    (["0 0 12 * * ?", "--tz", "Mars/Base"], "Error: --tz: 'Mars/Base' is not a known IANA time zone"),
    (["0 0 12 * * ?", "--after", "soon"], "Error: --after: 'soon' is not an ISO 8601 instant"),
], ids=["bad-field", "unix-form", "unknown-zone", "bad-after"])
def test_invalid_input_goes_to_stderr_with_exit_status_2(args, message):
    result = CliRunner().invoke(cron, args)
    assert result.exit_code == 2
    assert result.stderr.startswith(message) and result.stdout == ""


def test_the_real_command_exits_2():
    result = subprocess.run([sys.executable, "-m", "canvas", "cron", "0 0 12 * * *"], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 2 and result.stdout == ""
    assert "day-of-month and day-of-week are '*' and '*'" in result.stderr
