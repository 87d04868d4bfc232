"""The default number of API workers (`canvas api` without --workers or CANVAS_API_WORKERS): 2 x cores + 1, as far
as half the available memory holds them at ~100 MB each, never fewer than 2."""
from __future__ import annotations

import pytest

from config.gunicorn import available_memory, default_workers, machine_default_workers

GB = 1024 ** 3


@pytest.mark.parametrize(("cores", "available", "expected"), [
    pytest.param(1, 16 * GB, 3, id="one core, plenty of memory: 2 x 1 + 1"),
    pytest.param(2, 24 * GB, 5, id="two cores, plenty of memory: 2 x 2 + 1"),
    pytest.param(8, 64 * GB, 17, id="eight cores, plenty of memory: 2 x 8 + 1"),
    pytest.param(8, 1 * GB, 5, id="eight cores, 1 GB available: half of it at 100 MB each"),
    pytest.param(4, int(0.3 * GB), 2, id="little memory: still 2"),
    pytest.param(0, 16 * GB, 3, id="cores unknown: as one"),
])
def test_default_api_workers_follow_cores_and_memory(cores, available, expected):
    assert default_workers(cores, available) == expected


def test_without_a_memory_figure_cores_decide():
    assert default_workers(4, None) == 9


def test_this_machine_gets_at_least_two_and_its_memory_is_read():
    assert machine_default_workers() >= 2
    assert available_memory() is None or available_memory() > 0
