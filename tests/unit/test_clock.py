"""canvas.clock: a process follows the database server's clock only when its own is off by the tolerance or more,
and says so once per change."""
from __future__ import annotations

import logging
import time
from datetime import datetime, timezone

import pytest

from canvas import clock


@pytest.fixture(autouse=True)
def machine_clock():
    clock.adopt(0.0)
    yield
    clock.adopt(0.0)


def distance_from_machine() -> float:
    return (clock.utcnow() - datetime.now(timezone.utc)).total_seconds()


def test_a_clock_within_the_tolerance_is_taken_as_it_is(caplog):
    with caplog.at_level(logging.INFO, logger="canvas.clock"):
        clock.adopt(clock.CLOCK_TOLERANCE_SECONDS * 0.9)
    assert clock.offset_seconds() == 0.0
    assert abs(distance_from_machine()) < 0.5
    assert not caplog.records


@pytest.mark.parametrize(("measured", "words"), [(18.0, "18.0 s behind"), (-18.0, "18.0 s ahead of")])
def test_a_clock_off_by_more_follows_the_server_and_says_so_once(caplog, measured, words):
    with caplog.at_level(logging.INFO, logger="canvas.clock"):
        clock.adopt(measured)
        clock.adopt(measured + 0.2)  # a later measurement, within the tolerance of the first: said already
    assert abs(distance_from_machine() - (measured + 0.2)) < 0.5
    assert abs(clock.now_seconds() - time.time() - (measured + 0.2)) < 0.5
    assert abs((clock.machine_utcnow() - datetime.now(timezone.utc)).total_seconds()) < 0.5
    [record] = caplog.records
    assert record.levelno == logging.WARNING and f"this machine's clock is {words} the database server's" in \
        record.getMessage()


def test_a_clock_set_right_again_is_taken_as_it_is_and_said(caplog):
    clock.adopt(30.0)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="canvas.clock"):
        clock.adopt(0.01)
    assert clock.offset_seconds() == 0.0 and abs(distance_from_machine()) < 0.5
    assert [record.getMessage() for record in caplog.records] == [
        "this machine's clock agrees with the database server's again (within 1 s)"]
