"""The fault-injection suite's table at the end of the run (terminal summary and benchmarks/results/faults.md): a
plugin of the whole suite (tests/conftest.py), because under pytest-xdist the process that prints the summary collects
no test and so never loads tests/faults/conftest.py. Each scenario's figures reach it on its test's report."""
from __future__ import annotations

import pytest

from tests.faults.harness import Figures, notes_lines, results_table, write_report

FIGURES_PROPERTY = "fault figures"
REPORTED: list[Figures] = []


def record_figures(item: pytest.Item, scenarios: list) -> None:
    """Each recorded scenario's figures on the report of the test that ran it (teardown)."""
    for scenario in scenarios:
        if scenario.recorded:
            item.user_properties.append((FIGURES_PROPERTY, scenario.figures.as_dict()))


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "teardown":
        REPORTED.extend(Figures.from_dict(value) for key, value in report.user_properties if key == FIGURES_PROPERTY)


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:  # noqa: ANN001, ARG001
    if not REPORTED or hasattr(config, "workerinput"):  # an xdist worker's reports go to the controller
        return
    path = write_report(REPORTED)
    terminalreporter.section("fault-injection suite")
    for line in results_table(REPORTED).splitlines() + notes_lines(REPORTED):
        terminalreporter.write_line(line)
    terminalreporter.write_line(f"(also written to {path})")
